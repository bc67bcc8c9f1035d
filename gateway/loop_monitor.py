"""Measures how long the gateway's event loop is kept from running, for ``/metrics``.

All EWS work (exchangelib's blocking HTTP and XML parsing) belongs in worker threads; anything that
holds the loop delays every other client's request. A small task asks to wake up every
``interval`` seconds and records how late it actually woke: that lateness is the time the loop
spent busy with something else. It is exported as the histogram
``gateway_event_loop_lag_seconds`` and the gauge ``gateway_event_loop_lag_max_seconds`` (the
worst since the process started), so an operator — or ``python -m gateway bench`` — can tell
whether requests queued behind work done on the loop.

Garbage collection is the other thing that stops the loop: CPython's collector holds the GIL for a
whole collection, whichever thread triggers it. Its pauses are exported per generation as
``gateway_gc_pause_seconds``, and :func:`freeze_startup_heap` keeps the full collections short.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from gateway.ews.metrics import Histogram, histogram_lines

# Lateness buckets in seconds: a healthy loop wakes within a millisecond or two.
LAG_BUCKETS: tuple[float, ...] = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def freeze_startup_heap() -> int:
    """Take every object alive at start-up out of the collector's view (``gc.freeze``); returns how many.

    A full (generation 2) collection walks every tracked object while holding the GIL. A started
    gateway holds ~125,000 of them (modules, classes, exchangelib's field tables) that live as long
    as the process; walking them made each full collection take ~100 ms under the 50-client
    benchmark, and those pauses were its late event-loop wake-ups. Frozen, a full collection takes
    11–75 ms (docs/PERFORMANCE.md). Called by the serving entry points once the application is built.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


class LoopMonitor:
    """Wakes every ``interval`` seconds and records how late each wake-up was; times GC pauses."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.histogram = Histogram(LAG_BUCKETS)
        self.max_lag = 0.0
        self.gc_pauses = {generation: Histogram(LAG_BUCKETS) for generation in range(3)}
        self._gc_started: float | None = None

    def on_gc(self, phase: str, info: dict[str, Any]) -> None:
        """A ``gc.callbacks`` entry: times each collection (the collector does not nest)."""
        if phase == "start":
            self._gc_started = time.perf_counter()
        elif self._gc_started is not None:
            self.gc_pauses[info["generation"]].observe(time.perf_counter() - self._gc_started)
            self._gc_started = None

    def record(self, lag: float) -> None:
        """One wake-up ``lag`` seconds after it was due."""
        lag = max(0.0, lag)
        self.histogram.observe(lag)
        self.max_lag = max(self.max_lag, lag)

    async def run(self) -> None:
        """Sample until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.interval
            await asyncio.sleep(self.interval)
            self.record(loop.time() - due)

    def render_prometheus(self) -> str:
        """The lag histogram and the worst lag, Prometheus text format 0.0.4."""
        lines = [
            "# HELP gateway_event_loop_lag_seconds How late the event loop woke a timer: time it spent busy.",
            "# TYPE gateway_event_loop_lag_seconds histogram",
            *histogram_lines("gateway_event_loop_lag_seconds", "", self.histogram),
            "# HELP gateway_event_loop_lag_max_seconds The worst event-loop lag since the process started.",
            "# TYPE gateway_event_loop_lag_max_seconds gauge",
            f"gateway_event_loop_lag_max_seconds {self.max_lag:.6f}",
            "# HELP gateway_gc_pause_seconds How long each garbage collection held the interpreter, per generation.",
            "# TYPE gateway_gc_pause_seconds histogram",
            *(
                line
                for generation, pauses in self.gc_pauses.items()
                for line in histogram_lines("gateway_gc_pause_seconds", f'generation="{generation}"', pauses)
            ),
            "# HELP gateway_gc_frozen_objects Objects kept out of garbage collection since start-up.",
            "# TYPE gateway_gc_frozen_objects gauge",
            f"gateway_gc_frozen_objects {gc.get_freeze_count()}",
        ]
        return "\n".join(lines) + "\n"


LOOP_MONITOR_KEY = web.AppKey("gateway_loop_monitor", LoopMonitor)


def setup_loop_monitor(app: web.Application, interval: float = 0.05) -> LoopMonitor:
    """Run a :class:`LoopMonitor` for the application's lifetime."""
    monitor = app[LOOP_MONITOR_KEY] = LoopMonitor(interval)

    async def lifetime(_app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(monitor.run())
        gc.callbacks.append(monitor.on_gc)
        yield
        gc.callbacks.remove(monitor.on_gc)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(lifetime)
    return monitor
