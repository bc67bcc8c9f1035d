"""Unit tests of free/busy translation: chunking, BusyType mapping, coalescing, status codes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from exchangelib import errors as ex

from gateway.caldav.backend import BusyPeriod
from gateway.ews.errors import EwsUnavailable
from gateway.ews.freebusy import _Collected, batches, coalesce, fbtype_for, status_for_error, windows

T0 = datetime(2026, 1, 5, tzinfo=UTC)


def _h(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def test_windows_of_at_most_42_days():
    chunks = windows(T0, T0 + timedelta(days=90))
    assert [(b - a).days for a, b in chunks] == [42, 42, 6]
    assert chunks[0][0] == T0 and chunks[-1][1] == T0 + timedelta(days=90)
    assert all(a[1] == b[0] for a, b in zip(chunks, chunks[1:], strict=False))
    assert windows(T0, T0 + timedelta(days=42)) == [(T0, T0 + timedelta(days=42))]


def test_windows_are_utc_and_refuse_empty_ranges():
    berlin = timezone(timedelta(hours=1))
    [(start, end)] = windows(datetime(2026, 1, 5, 1, tzinfo=berlin), datetime(2026, 1, 6, tzinfo=berlin))
    assert start == T0 and start.tzinfo is UTC and end.tzinfo is UTC
    with pytest.raises(ValueError):
        windows(T0, T0)


def test_batches_of_100():
    people = [f"u{i}@example.com" for i in range(250)]
    assert [len(b) for b in batches(people)] == [100, 100, 50]
    assert batches(people, 7)[0] == people[:7]


@pytest.mark.parametrize(
    ("busy_type", "option", "expected"),
    [
        ("Busy", "FREE", "BUSY"),
        ("Tentative", "FREE", "BUSY-TENTATIVE"),
        ("OOF", "FREE", "BUSY-UNAVAILABLE"),
        ("Free", "FREE", None),
        ("WorkingElsewhere", "FREE", None),
        ("WorkingElsewhere", "BUSY-TENTATIVE", "BUSY-TENTATIVE"),
        ("WorkingElsewhere", "BUSY", "BUSY"),
    ],
)
def test_busy_type_mapping(busy_type, option, expected):
    assert fbtype_for(busy_type, option) == expected


def test_coalesce_merges_overlapping_and_touching_periods_per_type():
    periods = [
        BusyPeriod(_h(3), _h(4), "BUSY"),
        BusyPeriod(_h(1), _h(2), "BUSY"),
        BusyPeriod(_h(2), _h(2.5), "BUSY"),  # touches the previous one
        BusyPeriod(_h(1.5), _h(5), "BUSY-TENTATIVE"),  # overlaps, but another type: kept apart
        BusyPeriod(_h(3.5), _h(3.75), "BUSY"),  # inside
    ]
    assert coalesce(periods) == [
        BusyPeriod(_h(1), _h(2.5), "BUSY"),
        BusyPeriod(_h(1.5), _h(5), "BUSY-TENTATIVE"),
        BusyPeriod(_h(3), _h(4), "BUSY"),
    ]
    assert coalesce([]) == []


def test_status_codes_for_mailbox_errors():
    assert status_for_error(ex.ErrorMailRecipientNotFound("x"))[0] == "3.7"
    assert status_for_error(ex.ErrorAccessDenied("x"))[0] == "3.8"
    assert status_for_error(ex.ErrorNoFreeBusyAccess("x"))[0] == "3.8"
    assert status_for_error(ex.ErrorFreeBusyGenerationFailed("x"))[0] == "5.1"
    status, message = status_for_error(EwsUnavailable("Exchange is busy; try again later."))
    assert (status, message) == ("5.1", "Exchange is busy; try again later.")


def _view(events, merged="", view_type="DetailedMerged"):
    return SimpleNamespace(
        view_type=view_type,
        merged=merged,
        calendar_events=[SimpleNamespace(start=s, end=e, busy_type=t) for s, e, t in events],
    )


def test_collected_clips_to_the_window_and_coalesces():
    collected = _Collected()
    collected.add_view(
        _view([(_h(-2), _h(1), "Busy"), (_h(1), _h(2), "Busy"), (_h(5), _h(6), "Free")]),
        _h(0),
        _h(24),
        "FREE",
    )
    collected.add_view(_view([(_h(23), _h(26), "OOF")]), _h(24), _h(48), "FREE")
    result = collected.result("mailto:bob@example.com")
    assert (result.attendee, result.status, result.no_data) == ("mailto:bob@example.com", "2.0", False)
    assert result.periods == [
        BusyPeriod(_h(0), _h(2), "BUSY"),
        BusyPeriod(_h(24), _h(26), "BUSY-UNAVAILABLE"),
    ]


def test_no_data_is_never_free():
    for view in (_view([(_h(1), _h(2), "NoData")]), _view([], merged="0044"), _view([], view_type="None")):
        collected = _Collected()
        collected.add_view(view, _h(0), _h(24), "FREE")
        result = collected.result("mailto:x@example.com")
        assert result.no_data is True
        assert result.status == "2.0"
        assert "not known to be free" in result.message


def test_first_failure_wins_and_keeps_partial_periods():
    collected = _Collected()
    collected.add_view(_view([(_h(1), _h(2), "Busy")]), _h(0), _h(24), "FREE")
    collected.fail(("5.1", "busy"))
    collected.fail(("3.7", "later"))
    result = collected.result("mailto:x@example.com")
    assert (result.status, result.message) == ("5.1", "busy")
    assert result.periods == [BusyPeriod(_h(1), _h(2), "BUSY")]
