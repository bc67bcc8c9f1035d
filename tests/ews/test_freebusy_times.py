"""CalendarEvent times of a GetUserAvailability answer become stdlib UTC periods, whatever zone they carry."""

from __future__ import annotations

from collections import namedtuple
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from exchangelib import EWSDateTime, EWSTimeZone
from exchangelib.ewsdatetime import UTC as EWS_UTC
from exchangelib.properties import FreeBusyView
from lxml import etree

from gateway.caldav.backend import BusyPeriod
from gateway.ews.freebusy import _Collected, read_view
from tests.support.schema import shared_dir

WINDOW = (datetime(2026, 1, 5, tzinfo=UTC), datetime(2026, 1, 6, tzinfo=UTC))


def periods(*events: tuple[datetime, datetime]) -> list[BusyPeriod]:
    view = SimpleNamespace(
        view_type="DetailedMerged",
        merged="",
        calendar_events=[SimpleNamespace(start=s, end=e, busy_type="Busy") for s, e in events],
    )
    collected = _Collected()
    collected.add_view(view, *WINDOW, "FREE")
    return collected.result("mailto:x@example.com").periods


def test_utc_event_times_become_stdlib_utc() -> None:
    (period,) = periods(
        (EWSDateTime(2026, 1, 5, 9, 30, tzinfo=EWS_UTC), EWSDateTime(2026, 1, 5, 10, tzinfo=EWS_UTC))
    )
    assert period == BusyPeriod(
        datetime(2026, 1, 5, 9, 30, tzinfo=UTC), datetime(2026, 1, 5, 10, tzinfo=UTC), "BUSY"
    )
    assert period.start.tzinfo is UTC and period.end.tzinfo is UTC


def test_zoned_event_times_are_converted_and_clipped() -> None:
    berlin = EWSTimeZone("Europe/Berlin")
    found = periods(
        (EWSDateTime(2026, 1, 5, 0, 30, tzinfo=berlin), EWSDateTime(2026, 1, 5, 10, 15, tzinfo=berlin)),
        (datetime(2026, 1, 5, 23, tzinfo=UTC), datetime(2026, 1, 6, 2, tzinfo=UTC)),
    )
    assert found == [
        BusyPeriod(WINDOW[0], datetime(2026, 1, 5, 9, 15, tzinfo=UTC), "BUSY"),
        BusyPeriod(datetime(2026, 1, 5, 23, tzinfo=UTC), WINDOW[1], "BUSY"),
    ]
    assert all(p.start.tzinfo is UTC and p.end.tzinfo is UTC for p in found)
    assert periods((WINDOW[0] - timedelta(hours=2), WINDOW[0])) == []


OWN_SAMPLE = (
    Path(__file__).resolve().parents[1] / "fixtures" / "ews" / "GetUserAvailability-two-views.response.xml"
)
MICROSOFT_SAMPLE = shared_dir() / "ews" / "samples" / "GetUserAvailability.response.xml"


@pytest.mark.parametrize(
    "sample",
    [
        pytest.param(OWN_SAMPLE, id="own"),
        pytest.param(
            MICROSOFT_SAMPLE,
            id="microsoft",
            marks=pytest.mark.skipif(
                not MICROSOFT_SAMPLE.exists(), reason=f"{MICROSOFT_SAMPLE} absent (shared test data)"
            ),
        ),
    ],
)
def test_answers_are_read_like_exchangelib_reads_them(sample: Path) -> None:
    """A GetUserAvailability answer (times with offsets, two views) read by the gateway's lean reader gives the
    same view types, merged strings, busy types and instants as exchangelib's FreeBusyView: the project's own
    fixture always, Microsoft's documented sample when the shared data is beside the repository."""
    views = (
        etree.parse(str(sample))
        .getroot()
        .iter("{http://schemas.microsoft.com/exchange/services/2006/messages}FreeBusyView")
    )
    account = namedtuple("Account", ["default_timezone"])(default_timezone=EWS_UTC)
    compared = 0
    for elem in views:
        ours = read_view(elem)
        theirs = FreeBusyView.from_xml(elem=elem, account=account)
        assert (ours.view_type, ours.merged) == (theirs.view_type, theirs.merged)
        assert [(e.start, e.end, e.busy_type) for e in ours.calendar_events] == [
            (e.start, e.end, e.busy_type)
            for e in theirs.calendar_events or ()  # aware: compared as instants
        ]
        assert all(e.start.tzinfo is UTC for e in ours.calendar_events)
        compared += len(ours.calendar_events)
    assert compared >= 3
