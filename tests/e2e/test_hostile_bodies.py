"""Nothing blocks the server: hostile or merely large calendar data is parsed, mapped and rendered off the
event loop, limits refuse what would cost too much, and the event caches stay within their byte budget."""

from __future__ import annotations

import gc
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import requests

from gateway.config import LimitsConfig
from gateway.loop_monitor import freeze_startup_heap
from tests.e2e.test_event_loop import lag_counts
from tests.e2e.test_write_path import ICS, exchange_subjects, primary_url
from tests.support.gateway import GatewayStack

ACCEPTABLE_LAG = "0.1"  # seconds: a wake-up later than this means something held the loop


@pytest.fixture
def frozen_heap() -> Iterator[None]:
    """Requested after the stack: as ``serve`` and ``demo`` do once started (gateway.loop_monitor.freeze_startup_heap): what is
    alive now (here also the emulator and pytest) is kept out of full garbage collections, whose pauses
    hold every thread and would otherwise be measured as the loop's lag."""
    freeze_startup_heap()
    time.sleep(0.2)  # the freeze's own full collection held the loop: let the monitor record it now
    yield
    gc.unfreeze()


def late_wakeups(before: dict[str, int], after: dict[str, int]) -> int:
    """Event-loop wake-ups more than 100 ms late between two readings of the lag histogram."""
    return (after["+Inf"] - after[ACCEPTABLE_LAG]) - (before["+Inf"] - before[ACCEPTABLE_LAG])


def while_polling_health(stack, work: Callable[[], object]) -> tuple[object, float]:
    """Run ``work`` in a thread while /healthz is asked again and again; (its result, slowest answer)."""
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(work()))
    thread.start()
    slowest = 0.0
    while thread.is_alive():
        started = time.perf_counter()
        assert requests.get(stack.base_url + "/healthz", timeout=10).status_code == 200
        slowest = max(slowest, time.perf_counter() - started)
        time.sleep(0.01)
    thread.join()
    return result[0], slowest


def in_a_quiet_window(stack, work: Callable[[], object], attempts: int = 3) -> tuple[object, int, float]:
    """``work`` while /healthz is polled: (its result, late loop wake-ups, slowest /healthz answer), from the
    first of ``attempts`` windows with no late wake-up and no slow answer (else the last window).

    The emulator and this test client run in the gateway's process and share its GIL, so once in a while
    they hold a wake-up late on their own; a second window does not repeat that. A gateway that parses or
    renders on its loop is late in every window, so the defect still fails the test. ``work`` must be
    repeatable (a refused PUT, reads).
    """
    for _ in range(attempts):
        before = lag_counts(stack)
        result, slowest = while_polling_health(stack, work)
        late = late_wakeups(before, lag_counts(stack))
        if late == 0 and slowest < 0.25:
            break
    return result, late, slowest


def body(uid: str, event_lines: str = "", calendar_lines: str = "") -> str:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//tests//EN\r\n" + calendar_lines + "BEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20261120T100000Z\r\nDTSTART:20300513T100000Z\r\nDTEND:20300513T110000Z\r\n"
        f"SUMMARY:Hostile\r\n{event_lines}END:VEVENT\r\nEND:VCALENDAR\r\n"
    )


ZONES = "".join(
    f"BEGIN:VTIMEZONE\r\nTZID:Z{n}\r\nBEGIN:STANDARD\r\nDTSTART:19700101T000000\r\nTZOFFSETFROM:+0000\r\n"
    "TZOFFSETTO:+0000\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n"
    for n in range(7000)
)
ATTENDEES = "ORGANIZER:mailto:alice@example.com\r\n" + "".join(
    f"ATTENDEE:mailto:p{n}@example.com\r\n" for n in range(20_000)
)
ALARMS = "".join(
    f"BEGIN:VALARM\r\nACTION:DISPLAY\r\nDESCRIPTION:x\r\nTRIGGER:-PT{n}M\r\nEND:VALARM\r\n"
    for n in range(9000)
)
# 150,000 tiny properties in a megabyte: half a minute of parsing, refused before it.
TINY_PROPERTIES = "X-A:1\r\n" * 130_000
# Within every limit of the body, but 15,000 properties: seconds of parsing (off the loop), then refused
# because more than Exchange can keep for the client (the residual's cap, gateway/ews/mapping/residual.py).
MANY_PROPERTIES = "".join(f"X-FILL-{n}:{'y' * 40}\r\n" for n in range(15_000))


@pytest.mark.parametrize(
    ("name", "event_lines", "calendar_lines", "status", "words"),
    [
        ("zones", "", ZONES, 403, "at most 20 VTIMEZONEs"),
        ("attendees", ATTENDEES, "", 403, "at most 300 attendees"),
        ("alarms", ALARMS, "", 403, "at most 20 alarms"),
        ("lines", TINY_PROPERTIES, "", 403, "at most 20000 lines"),
        ("properties", MANY_PROPERTIES, "", 403, "properties Exchange has no field for"),
    ],
)
def test_hostile_puts_never_hold_the_event_loop(
    stack, emulator, frozen_heap, name, event_lines, calendar_lines, status, words
):
    uid = str(uuid.uuid4())
    text = body(uid, event_lines, calendar_lines)
    assert 600_000 < len(text) < 1_000_000  # under max-resource-size: the limits of the body's content decide
    url = primary_url(stack) + f"hostile-{name}.ics"
    sent_before = len(emulator.state.store.mailboxes["alice@example.com"].sent)
    answer, late, slowest = in_a_quiet_window(
        stack,
        lambda: requests.put(
            url, data=text.encode(), headers=ICS, auth=("alice", stack.password), timeout=60
        ),
    )
    assert answer.status_code == status, answer.text[:300]
    assert words in answer.text
    assert late == 0
    assert slowest < 0.25
    # Refused bodies reach Exchange not at all: no item, no invitation.
    assert exchange_subjects(emulator, uid) == ([] if status != 201 else ["Hostile"])
    assert len(emulator.state.store.mailboxes["alice@example.com"].sent) == sent_before


DESCRIPTION = "DESCRIPTION:" + "\r\n ".join(["Meeting notes, " * 4 + "x" * 13] * 4000) + "\r\n"  # ~300 KB


@pytest.fixture
def small_cache_stack(emulator, tmp_path) -> Iterator[GatewayStack]:
    """The gateway with event caches of 1 MiB in all."""
    with GatewayStack(
        emulator, tmp_path / "data", limits=LimitsConfig(item_cache_bytes=1_048_576)
    ) as gateway:
        yield gateway


def cache_bytes(stack) -> dict[str, int]:
    text = requests.get(stack.base_url + "/metrics", timeout=10).text
    return {name: int(v) for name, v in re.findall(r'gateway_item_cache_bytes\{cache="(\w+)"\} (\d+)', text)}


def test_a_month_of_large_events_is_served_without_holding_the_loop_or_the_memory(
    small_cache_stack, emulator, frozen_heap
):
    stack = small_cache_stack
    base = primary_url(stack)
    for n in range(10):
        text = body(str(uuid.uuid4()), DESCRIPTION).replace("20300513", f"203005{n + 10:02d}")
        assert (
            requests.put(
                f"{base}large-{n}.ics", data=text.encode(), headers=ICS, auth=("alice", stack.password)
            ).status_code
            == 201
        )
    month = (
        '<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/>'
        '<C:calendar-data/></D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
        '<C:time-range start="20300501T000000Z" end="20300601T000000Z"/></C:comp-filter></C:comp-filter>'
        "</C:filter></C:calendar-query>"
    )
    listing = (
        '<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/><D:getcontentlength/><D:getlastmodified/>'
        "</D:prop></D:propfind>"
    )

    def read_everything() -> list[int]:
        auth = ("alice", stack.password)
        statuses = [
            requests.request("REPORT", base, data=month, headers={"Depth": "1"}, auth=auth).status_code,
            requests.request("PROPFIND", base, data=listing, headers={"Depth": "1"}, auth=auth).status_code,
        ]
        statuses += [requests.get(f"{base}large-{n}.ics", auth=auth).status_code for n in range(10)]
        return statuses

    statuses, late, slowest = in_a_quiet_window(stack, read_everything)
    assert statuses == [207, 207] + [200] * 10
    assert late == 0
    assert slowest < 0.25
    # 10 renderings of ~300 KB were read; the singles' cache keeps what fits in its half of 1 MiB.
    held = cache_bytes(stack)
    assert 0 < held["singles"] <= 524_288 and held["exceptions"] <= 524_288


def test_a_cache_too_small_to_keep_anything_still_renders_series_whole(emulator, tmp_path):
    """The exceptions a rendering needs are held for it, whatever the byte-bounded cache keeps."""
    with GatewayStack(emulator, tmp_path / "data", limits=LimitsConfig(item_cache_bytes=2)) as stack:
        uid = str(uuid.uuid4())
        series = (
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//tests//EN\r\nBEGIN:VEVENT\r\n"
            f"UID:{uid}\r\nDTSTAMP:20261120T100000Z\r\nDTSTART:20300506T100000Z\r\nDTEND:20300506T110000Z\r\n"
            "RRULE:FREQ=WEEKLY;COUNT=4\r\nSUMMARY:Weekly\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\n"
            f"UID:{uid}\r\nDTSTAMP:20261120T100000Z\r\nRECURRENCE-ID:20300513T100000Z\r\n"
            "DTSTART:20300513T140000Z\r\nDTEND:20300513T150000Z\r\nSUMMARY:Weekly (moved)\r\nEND:VEVENT\r\n"
            "END:VCALENDAR\r\n"
        )
        url = primary_url(stack) + "weekly.ics"
        assert (
            requests.put(url, data=series.encode(), headers=ICS, auth=("alice", stack.password)).status_code
            == 201
        )
        for _ in range(2):
            assert "SUMMARY:Weekly (moved)" in requests.get(url, auth=("alice", stack.password)).text
        assert cache_bytes(stack) == {"exceptions": 0, "singles": 0}
