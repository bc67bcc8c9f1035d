"""Where a request's time goes, stage by stage, for ``/metrics`` (``gateway_stage_seconds{stage=…}``).

Under many clients a request can wait in several queues before and between its EWS calls: for
its calendar's index lock, for a slot of its account's EWS concurrency limit, for a thread of the
EWS worker pool or of the default executor (answers built off the loop), for the database. Each
such wait, and the work it waits for, is one stage; the time of every entry is observed into
that stage's histogram. ``python -m gateway bench`` reads the histograms before and after its
load window, so the stage whose waits reach seconds names the queue that holds a slow tail
(docs/PERFORMANCE.md, "the tail under 100 clients").

One registry per process (:data:`STAGES`): the stages are observed from the event loop and from
worker threads alike, so it takes a lock.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from bisect import bisect_left
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

T = TypeVar("T")

# Seconds: a healthy stage takes a few milliseconds; the 1 s bound separates a tail from the body.
BUCKETS: tuple[float, ...] = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class StageTimes:
    """A cumulative-bucket histogram of seconds per stage name (Prometheus semantics)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, list[int]] = {}
        self._sums: dict[str, float] = {}

    def observe(self, stage: str, seconds: float) -> None:
        with self._lock:
            counts = self._counts.get(stage)
            if counts is None:
                counts = self._counts[stage] = [0] * (len(BUCKETS) + 1)  # the last one: beyond every bound
                self._sums[stage] = 0.0
            counts[bisect_left(BUCKETS, seconds)] += 1
            self._sums[stage] += seconds

    @contextlib.contextmanager
    def timed(self, stage: str) -> Any:
        """Observe the time the ``with`` body takes."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.observe(stage, time.perf_counter() - started)

    @contextlib.asynccontextmanager
    async def entering(self, manager: AbstractAsyncContextManager[T], stage: str) -> AsyncIterator[T]:
        """``async with manager``, observing how long entering it (acquiring a lock) took as ``stage``."""
        started = time.perf_counter()
        value = await manager.__aenter__()
        self.observe(stage, time.perf_counter() - started)
        try:
            yield value
        except BaseException:
            if not await manager.__aexit__(*sys.exc_info()):
                raise
        else:
            await manager.__aexit__(None, None, None)

    def render_prometheus(self) -> str:
        with self._lock:
            snapshot = {stage: (list(c), self._sums[stage]) for stage, c in self._counts.items()}
        lines = [
            "# HELP gateway_stage_seconds Time per stage of a request: queues waited in and work done.",
            "# TYPE gateway_stage_seconds histogram",
        ]
        for stage, (counts, total) in sorted(snapshot.items()):
            label = f'stage="{stage}"'
            cumulative = 0
            for bound, count in zip(BUCKETS, counts, strict=False):
                cumulative += count
                lines.append(f'gateway_stage_seconds_bucket{{{label},le="{bound:g}"}} {cumulative}')
            lines.append(f'gateway_stage_seconds_bucket{{{label},le="+Inf"}} {sum(counts)}')
            lines.append(f"gateway_stage_seconds_sum{{{label}}} {total:.6f}")
            lines.append(f"gateway_stage_seconds_count{{{label}}} {sum(counts)}")
        return "\n".join(lines) + "\n"


STAGES = StageTimes()


class TimedPool(ThreadPoolExecutor):
    """A thread pool observing, per submitted call, its wait for a thread (``<name>_queue``) and its
    run (``<name>_run``)."""

    def __init__(self, name: str, max_workers: int, thread_name_prefix: str = "") -> None:
        super().__init__(max_workers=max_workers, thread_name_prefix=thread_name_prefix or name)
        self.stage = name

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        submitted = time.perf_counter()

        def run() -> T:
            began = time.perf_counter()
            STAGES.observe(f"{self.stage}_queue", began - submitted)
            try:
                return fn(*args, **kwargs)
            finally:
                STAGES.observe(f"{self.stage}_run", time.perf_counter() - began)

        return super().submit(run)
