"""The event loop is never held by EWS work: slow Exchange answers must not stall other clients."""

from __future__ import annotations

import datetime as dt
import re
import threading

import caldav
import requests

LAG_BUCKET = re.compile(r'gateway_event_loop_lag_seconds_bucket\{le="([^"]+)"\} (\d+)')


def lag_counts(stack) -> dict[str, int]:
    """Cumulative event-loop lag histogram from /metrics: wake-ups at most ``le`` seconds late."""
    text = requests.get(stack.base_url + "/metrics", timeout=10).text
    return {le: int(n) for le, n in LAG_BUCKET.findall(text)}


def test_metrics_expose_event_loop_lag(stack):
    text = requests.get(stack.base_url + "/metrics", timeout=10).text
    assert "# TYPE gateway_event_loop_lag_seconds histogram" in text
    assert re.search(r"^gateway_event_loop_lag_max_seconds \d+\.\d+$", text, re.MULTILINE)
    assert lag_counts(stack)["+Inf"] >= 1


def test_slow_exchange_calls_leave_the_loop_free_for_other_clients(stack, emulator):
    client = caldav.DAVClient(url=stack.base_url + "/", username="alice", password=stack.password)
    calendar = client.principal().calendars()[0]
    emulator.set_faults(rules=[{"kind": "latency", "latency_ms": 1500, "operation": "FindItem"}])
    before = lag_counts(stack)
    start = dt.datetime.now(dt.UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    slow = threading.Thread(
        target=lambda: calendar.search(start=start, end=start + dt.timedelta(days=31), event=True)
    )
    slow.start()
    # While the month view waits 1.5 s for FindItem, other requests are answered.
    answered = [requests.get(stack.base_url + "/healthz", timeout=10).status_code for _ in range(5)]
    slow.join(timeout=30)
    after = lag_counts(stack)
    assert answered == [200] * 5
    assert emulator.stats()["operations"]["FindItem"] >= 1
    # No wake-up of the loop's timer was a second late: nothing held the loop for the FindItem's duration.
    late = (after["+Inf"] - after["1"]) - (before["+Inf"] - before["1"])
    assert late == 0
    assert after["+Inf"] > before["+Inf"]  # the monitor kept sampling during the call
