"""``gateway_stage_seconds``: what the stages record (gateway/common/stages.py)."""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway.common.stages import StageTimes, TimedPool


def _count(times: StageTimes, stage: str) -> tuple[int, float]:
    count = total = 0.0
    for line in times.render_prometheus().splitlines():
        if line.startswith(f'gateway_stage_seconds_count{{stage="{stage}"}}'):
            count = int(line.rsplit(" ", 1)[1])
        if line.startswith(f'gateway_stage_seconds_sum{{stage="{stage}"}}'):
            total = float(line.rsplit(" ", 1)[1])
    return int(count), total


async def test_entering_times_the_wait_for_a_lock_and_releases_it_on_an_error() -> None:
    times = StageTimes()
    lock = asyncio.Lock()
    await lock.acquire()
    asyncio.get_running_loop().call_later(0.2, lock.release)
    with pytest.raises(ValueError):
        async with times.entering(lock, "index_lock"):
            raise ValueError("boom")
    assert not lock.locked()
    count, total = _count(times, "index_lock")
    assert count == 1 and total >= 0.15  # the wait, not the body
    text = times.render_prometheus()
    assert 'gateway_stage_seconds_bucket{stage="index_lock",le="0.25"} 1' in text
    assert 'gateway_stage_seconds_bucket{stage="index_lock",le="+Inf"} 1' in text


def test_a_timed_pool_records_the_wait_for_a_thread_and_the_run() -> None:
    from gateway.common import stages

    before_queue, _ = _count(stages.STAGES, "probe_queue")
    pool = TimedPool("probe", 1)
    try:
        futures = [pool.submit(time.sleep, 0.1) for _ in range(3)]  # one thread: the third waits ~0.2 s
        for future in futures:
            future.result()
    finally:
        pool.shutdown()
    queue_count, queue_total = _count(stages.STAGES, "probe_queue")
    run_count, run_total = _count(stages.STAGES, "probe_run")
    assert queue_count - before_queue == 3 and run_count >= 3
    assert queue_total >= 0.25 and run_total >= 0.29
