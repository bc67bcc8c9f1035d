"""Measures how long the gateway's event loop is kept from running, for ``/metrics``.

All EWS work (exchangelib's blocking HTTP and XML parsing) belongs in worker threads; anything that
holds the loop delays every other client's request. A small task asks to wake up every
``interval`` seconds and records how late it actually woke: that lateness is the time the loop
spent busy with something else. It is exported as the histogram
``gateway_event_loop_lag_seconds`` and the gauge ``gateway_event_loop_lag_max_seconds`` (the
worst since the process started), so an operator — or ``python -m gateway bench`` — can tell
whether requests queued behind work done on the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from gateway.ews.metrics import Histogram, histogram_lines

# Lateness buckets in seconds: a healthy loop wakes within a millisecond or two.
LAG_BUCKETS: tuple[float, ...] = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class LoopMonitor:
    """Wakes every ``interval`` seconds and records how late each wake-up was."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.histogram = Histogram(LAG_BUCKETS)
        self.max_lag = 0.0

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
        ]
        return "\n".join(lines) + "\n"


LOOP_MONITOR_KEY = web.AppKey("gateway_loop_monitor", LoopMonitor)


def setup_loop_monitor(app: web.Application, interval: float = 0.05) -> LoopMonitor:
    """Run a :class:`LoopMonitor` for the application's lifetime."""
    monitor = app[LOOP_MONITOR_KEY] = LoopMonitor(interval)

    async def lifetime(_app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(monitor.run())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(lifetime)
    return monitor
