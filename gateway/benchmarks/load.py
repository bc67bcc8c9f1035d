"""The load workloads: many clients at once (6, concurrency) and many accounts (7, memory).

Unlike the timed workloads (:mod:`gateway.benchmarks.workloads`) they have no floor to compare
with: they report latency under a mixed load, the gateway's event-loop lag and garbage
collections read from its ``/metrics`` page, and its memory as accounts are added.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import aiohttp

from gateway.benchmarks import dav
from gateway.benchmarks.report import ms, percentile
from gateway.benchmarks.stack import BenchUser, Gateway, cpu_seconds, memory_kb
from gateway.benchmarks.workloads import Context

T = TypeVar("T")

# --- 6. concurrency -----------------------------------------------------------------------------


@dataclass
class _Sample:
    """One request of the mix: its operation, how long it took and whether it succeeded."""

    operation: str
    seconds: float
    ok: bool
    error: str = ""  # what went wrong: the HTTP status or the exception's kind


async def concurrency(
    ctx: Context,
    users: list[BenchUser],
    seconds: float,
    replicas: list[Gateway] | None = None,
    *,
    cold: bool = False,
    sticky: bool = False,
) -> dict[str, Any]:
    """``len(users)`` clients (one account each) mixing workloads 1–5 for ``seconds``.

    With ``replicas`` (gateway processes on one database) each request goes to the next replica in
    turn (:class:`dav.Rotation`, as a round-robin load balancer would send it), and CPU, event-loop
    lag and collections are summed over them. ``cold``: no warm-up, as a load test starts: each
    client's sign-in (the app password's hash) and first sync fall inside the window. ``sticky``: each
    client keeps to one replica (a balancer's session affinity) instead of taking them in turn.

    Besides the latency of the whole mix, each operation's own p50/p99 is reported (the mix spans
    30 ms polls to second-long free/busy answers, so its p99/p50 also measures the mix), and the
    gateway's event-loop lag over the window (``/metrics``): whether anything held the loop, with the
    full garbage collections of the window (they hold the GIL).
    """
    gateways = replicas or [ctx.gateway]
    urls = [g.base_url for g in gateways]
    shared = dav.Rotation(urls)
    clients = [
        dav.DavClient(dav.Rotation([urls[n % len(urls)]]) if sticky else shared, u, ctx.session)
        for n, u in enumerate(users)
    ]
    gate = asyncio.Semaphore(4)
    if cold:
        tokens: list[str | None] = [None] * len(clients)
    else:
        tokens = list(await asyncio.gather(*(prepare(c, gate, ctx.month) for c in clients)))
    before = await ctx.calls()
    metrics_before = [await metrics_text(ctx, g) for g in gateways]
    cpu_before = sum(cpu_seconds(g.pid) for g in gateways), cpu_seconds(ctx.emulator_pid)
    client_cpu_before = cpu_seconds(os.getpid())  # the clients are this one process: it needs a core too
    deadline = time.monotonic() + seconds
    started = time.perf_counter()
    batches = await asyncio.gather(
        *(
            _client_loop(ctx, c, token, deadline, random.Random(n))
            for n, (c, token) in enumerate(zip(clients, tokens, strict=True))
        )
    )
    wall = time.perf_counter() - started
    gateway_cpu, emulator_cpu = (
        sum(cpu_seconds(g.pid) for g in gateways) - cpu_before[0],
        cpu_seconds(ctx.emulator_pid) - cpu_before[1],
    )
    client_cpu = cpu_seconds(os.getpid()) - client_cpu_before
    calls = await ctx.calls() - before
    metrics_after = [await metrics_text(ctx, g) for g in gateways]
    lag = _window(loop_lag, metrics_before, metrics_after)
    full_gc = _window(full_collections, metrics_before, metrics_after)
    stages = _stages(metrics_before, metrics_after)
    samples = [s for batch in batches for s in batch]
    latencies = [s.seconds for s in samples if s.ok]
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    errors = sum(not s.ok for s in samples)
    late = lag.later_than(LOOP_STALL_SECONDS)
    return {
        "clients": len(clients),
        "cold_start": cold,
        "sticky": sticky,
        "seconds": round(wall, 1),
        "requests": len(samples),
        "throughput_rps": round(len(samples) / wall, 1),
        "errors": errors,
        "error_kinds": dict(Counter(s.error for s in samples if not s.ok)),
        "p50_ms": ms(p50),
        "p99_ms": ms(p99),
        "p99_over_p50": round(p99 / p50, 2) if p50 else None,
        "by_operation": _by_operation(samples),
        "ews_calls_per_request": round(sum(calls.values()) / max(1, len(samples)), 2),
        # Who was busy: on 2 cores the emulator and the gateway share the machine with the clients.
        "replicas": len(gateways),
        "gateway_cpu_share": round(gateway_cpu / wall, 2),
        "emulator_cpu_share": round(emulator_cpu / wall, 2),
        "client_cpu_share": round(client_cpu / wall, 2),
        "loop_lag": {
            "samples": lag.count,
            "mean_ms": ms(lag.total / lag.count) if lag.count else None,
            f"later_than_{ms(LOOP_STALL_SECONDS):g}_ms": late,
            "worst_bucket_ms": lag.worst_bucket_ms(),
        },
        # Full collections hold the GIL, so they are what can still stall the loop (loop_monitor.freeze_startup_heap).
        "gc_full_collections": {
            "count": full_gc.count,
            "mean_ms": ms(full_gc.total / full_gc.count) if full_gc.count else None,
            "worst_bucket_ms": full_gc.worst_bucket_ms(),
        },
        "stages": stages,
        "target": f"zero errors, p99 <= 3 x p50, no event-loop stall over {ms(LOOP_STALL_SECONDS):g} ms",
        "targets_met": {
            "zero errors": not errors,
            "p99 <= 3 x p50": bool(p50) and p99 <= 3 * p50,
            "no loop stall": late == 0,
        },
        "target_met": not errors and bool(p50) and p99 <= 3 * p50 and late == 0,
    }


def _by_operation(samples: list[_Sample]) -> dict[str, dict[str, Any]]:
    """Per operation of the mix: count, errors, p50 and p99 and their ratio."""
    result = {}
    for name in sorted({s.operation for s in samples}):
        mine = [s for s in samples if s.operation == name]
        ok = [s.seconds for s in mine if s.ok]
        p50, p99 = percentile(ok, 50), percentile(ok, 99)
        result[name] = {
            "requests": len(mine),
            "errors": len(mine) - len(ok),
            "p50_ms": ms(p50),
            "p99_ms": ms(p99),
            "p99_over_p50": round(p99 / p50, 2) if p50 else None,
        }
    return result


# A wake-up of the gateway's loop timer this late means a request waited behind work done on the loop.
LOOP_STALL_SECONDS = 0.1


@dataclass
class ScrapedHistogram:
    """A cumulative histogram read from the gateway's ``/metrics`` (seconds), or a difference of two."""

    buckets: dict[float, int]  # upper bound (inf for +Inf) -> wake-ups at most that late
    total: float
    count: int

    def __sub__(self, other: ScrapedHistogram) -> ScrapedHistogram:
        return ScrapedHistogram(
            {le: n - other.buckets.get(le, 0) for le, n in self.buckets.items()},
            self.total - other.total,
            self.count - other.count,
        )

    def __add__(self, other: ScrapedHistogram) -> ScrapedHistogram:
        bounds = self.buckets.keys() | other.buckets.keys()
        return ScrapedHistogram(
            {le: self.buckets.get(le, 0) + other.buckets.get(le, 0) for le in bounds},
            self.total + other.total,
            self.count + other.count,
        )

    def later_than(self, seconds: float) -> int:
        """Wake-ups more than ``seconds`` late (``seconds`` must be a bucket bound)."""
        return self.count - self.buckets.get(seconds, self.count)

    def worst_bucket_ms(self) -> str | None:
        """``"<= N"`` for the highest bucket with a wake-up in it (``"> N"`` beyond the last; None: no sample)."""
        bounds = sorted(self.buckets)
        worst = None
        for lower, upper in zip([0.0, *bounds], bounds, strict=False):
            if self.buckets[upper] > self.buckets.get(lower, 0):
                worst = upper if upper != float("inf") else None
                if worst is None:
                    return f"> {ms(lower):g}"
        return None if worst is None else f"<= {ms(worst):g}"


async def metrics_text(ctx: Context, gateway: Gateway | None = None) -> str:
    """The ``/metrics`` page of the gateway (or of one replica)."""
    async with ctx.session.get((gateway or ctx.gateway).base_url + "/metrics") as response:
        return await response.text()


def _window(read: Callable[[str], ScrapedHistogram], before: list[str], after: list[str]) -> ScrapedHistogram:
    """A histogram's growth over the window, summed over the replicas' pages."""
    total = ScrapedHistogram({}, 0.0, 0)
    for first, last in zip(before, after, strict=True):
        total = total + (read(last) - read(first))
    return total


def _stages(before: list[str], after: list[str]) -> dict[str, dict[str, Any]]:
    """Where requests spent their time over the window (``gateway_stage_seconds``, gateway/stages.py):
    per stage how often it was entered, its mean and the share of entries over 1 s."""
    result = {}
    for stage in sorted(set(STAGE_NAME.findall("".join(after)))):
        window = _window(
            lambda text, s=stage: scrape_histogram(text, "gateway_stage_seconds", f'stage="{s}"'),
            before,
            after,
        )
        if window.count:
            result[stage] = {
                "count": window.count,
                "mean_ms": ms(window.total / window.count),
                "over_1s": window.later_than(1.0),
                "worst_bucket_ms": window.worst_bucket_ms(),
            }
    return result


STAGE_NAME = re.compile(r'^gateway_stage_seconds_count\{stage="([^"]+)"\}', re.MULTILINE)


def scrape_histogram(text: str, name: str, labels: str = "") -> ScrapedHistogram:
    """The histogram ``name`` (with exactly ``labels``, ``key="value"`` text) of a ``/metrics`` page."""
    prefix, suffix = re.escape(f"{labels}," if labels else ""), re.escape(f"{{{labels}}}" if labels else "")
    line = re.compile(
        rf'^{name}_(?:bucket\{{{prefix}le="([^"]+)"\}}|(sum|count){suffix}) (\S+)$', re.MULTILINE
    )
    buckets: dict[float, int] = {}
    total, count = 0.0, 0
    for le, kind, value in line.findall(text):
        if le:
            buckets[float(le)] = int(value)
        elif kind == "sum":
            total = float(value)
        else:
            count = int(value)
    return ScrapedHistogram(buckets, total, count)


def loop_lag(metrics: str) -> ScrapedHistogram:
    """How late the gateway's event loop woke its timer (``gateway_event_loop_lag_seconds``)."""
    return scrape_histogram(metrics, "gateway_event_loop_lag_seconds")


def full_collections(metrics: str) -> ScrapedHistogram:
    """The gateway's generation-2 garbage-collection pauses (``gateway_gc_pause_seconds``)."""
    return scrape_histogram(metrics, "gateway_gc_pause_seconds", 'generation="2"')


async def prepare(client: dav.DavClient, gate: asyncio.Semaphore, month: tuple[datetime, datetime]) -> str:
    """The warm-up, outside the window: sign in (the app password's slow hash), the calendar's first sync (its
    index) and its first month view, as a client that has been running for a while has done. Behind
    replicas taken in turn, such a client has had its month view answered by each of them (each keeps
    its own renderings), so each replica answers one here."""
    async with gate:
        await client.sign_in()
        token = dav.sync_token_of((await client.ctag()).body)
        for url in client.rotation.urls:
            await dav.DavClient(url, client.user, client.session).month_view(*month)
        return token


class _Failed(Exception):
    """A request of the mix failed (already recorded as a failed sample)."""


async def _client_loop(
    ctx: Context, client: dav.DavClient, token: str | None, deadline: float, rng: random.Random
) -> list[_Sample]:
    """One client: a fixed-seed mix of month views, polls, delta syncs, writes and free/busy.

    Every HTTP request is one sample: a write step is a PUT, the GET a client then makes for the
    ETag (RFC 4791 §5.3.4), and a DELETE.
    """
    samples: list[_Sample] = []
    start, end = ctx.month

    async def step(name: str, request: Awaitable[T]) -> T:
        began = time.perf_counter()
        try:
            result = await request
        except (TimeoutError, dav.DavFailure, aiohttp.ClientError) as exc:
            error = str(exc).rsplit(": ", 1)[-1] if isinstance(exc, dav.DavFailure) else type(exc).__name__
            samples.append(_Sample(name, time.perf_counter() - began, False, error))
            raise _Failed from None
        samples.append(_Sample(name, time.perf_counter() - began, True))
        return result

    operations: list[Callable[[], Awaitable[Any]]] = [
        lambda: step("month view", client.month_view(start, end)),
        lambda: step("ctag poll", client.ctag()),
        lambda: step("sync-collection", client.sync(token)),
        lambda: _put_get_delete(step, client, ctx.month[0] + timedelta(days=2)),
        lambda: step("free/busy 20", client.outbox(ctx.fb_emails[:20], start, start + timedelta(days=30))),
    ]
    weights = (2, 3, 3, 1, 1)
    while token is None and time.monotonic() < deadline:  # a cold client: its first sync-token
        with contextlib.suppress(_Failed, dav.DavFailure):
            token = dav.sync_token_of((await step("ctag poll", client.ctag())).body)
    while time.monotonic() < deadline and len(samples) < 10_000:
        with contextlib.suppress(_Failed):
            await rng.choices(operations, weights)[0]()
    return samples


async def _put_get_delete(
    step: Callable[[str, Awaitable[Any]], Awaitable[Any]], client: dav.DavClient, when: datetime
) -> None:
    """A write step of the mix: PUT a new event, GET its ETag when the PUT gave none, DELETE it."""
    name = f"load-{uuid.uuid4()}.ics"
    created = await step("PUT", client.put(name, dav.event_ics(name[:-4], when, "Load")))
    etag = created.headers.get("ETag") or await step("GET after PUT", client.etag_after_put(name, created))
    await step("DELETE", client.delete(name, etag))


# --- 7. memory ----------------------------------------------------------------------------------


async def memory(ctx: Context, users: list[BenchUser], parallel: int, steps: int = 5) -> dict[str, Any]:
    """RSS of the gateway as accounts do their first month view (in ``steps`` chunks), and its peak."""
    start, end = ctx.month
    gate = asyncio.Semaphore(parallel)
    errors = 0

    async def one(user: BenchUser) -> None:
        nonlocal errors
        async with gate:
            try:
                await ctx.client(user).month_view(start, end)
            except (dav.DavFailure, aiohttp.ClientError):
                errors += 1

    growth = [(0, round(memory_kb(ctx.gateway.pid)["VmRSS"] / 1024, 1))]
    chunk = max(1, -(-len(users) // steps))
    for first in range(0, len(users), chunk):
        await asyncio.gather(*(one(u) for u in users[first : first + chunk]))
        growth.append((min(len(users), first + chunk), round(memory_kb(ctx.gateway.pid)["VmRSS"] / 1024, 1)))
    peak = memory_kb(ctx.gateway.pid)["VmHWM"] / 1024
    per_account = (growth[-1][1] - growth[0][1]) / max(1, len(users))
    return {
        "accounts": len(users),
        "month_view_errors": errors,
        "rss_mb_by_accounts": growth,
        "mb_per_account": round(per_account, 3),
        "peak_rss_mb": round(peak, 1),
        "target": "peak RSS <= 250 MB",
        "target_met": peak <= 250,
    }
