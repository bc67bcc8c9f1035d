"""RFC 4791 §9.9's VTODO table: when a task overlaps a time range (gateway.caldav.timerange)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from icalendar import Calendar

from gateway.caldav.timerange import TimeRange, component_in_range

RANGE = TimeRange(datetime(2026, 12, 10, tzinfo=UTC), datetime(2026, 12, 11, tzinfo=UTC))


def todo(*lines: str):
    text = "BEGIN:VCALENDAR\r\nBEGIN:VTODO\r\nUID:x\r\n" + "".join(f"{x}\r\n" for x in lines)
    return Calendar.from_ical(text + "END:VTODO\r\nEND:VCALENDAR\r\n").walk("VTODO")[0]


@pytest.mark.parametrize(
    ("lines", "inside"),
    [
        (("DTSTART:20261209T120000Z", "DURATION:PT13H"), True),  # ends inside
        (("DTSTART:20261209T000000Z", "DURATION:PT1H"), False),
        (("DTSTART:20261208T000000Z", "DUE:20261212T000000Z"), True),  # spans the range
        (("DTSTART:20261211T000000Z", "DUE:20261212T000000Z"), False),
        (("DTSTART:20261210T080000Z",), True),
        (("DTSTART:20261211T000000Z",), False),  # end > DTSTART fails
        (("DUE:20261211T000000Z",), True),  # end >= DUE
        (("DUE:20261210T000000Z",), False),  # start < DUE fails
        (("DUE;VALUE=DATE:20261211",), True),
        (("COMPLETED:20261210T120000Z", "CREATED:20261201T000000Z"), True),
        (("COMPLETED:20261212T120000Z",), False),
        (("CREATED:20261212T000000Z",), False),
        (("CREATED:20261201T000000Z",), True),
        (("SUMMARY:no dates",), True),
    ],
)
def test_vtodo_time_range_table(lines, inside):
    assert component_in_range(todo(*lines), RANGE) is inside


def test_open_ranges():
    assert component_in_range(
        todo("DUE:20261211T000000Z"), TimeRange(None, datetime(2026, 12, 12, tzinfo=UTC))
    )
    assert not component_in_range(
        todo("DUE:20261211T000000Z"), TimeRange(datetime(2026, 12, 12, tzinfo=UTC), None)
    )
