"""Free slots from busy time and working hours (gateway/booking/slots.py), and working hours as
GetUserAvailability writes them (gateway/ews/freebusy.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from lxml import etree

from gateway.booking import slots
from gateway.caldav.backend import BusyPeriod, WorkingHours, WorkingPeriod
from gateway.common.timezones import serializable_time_zone
from gateway.ews.freebusy import read_working_hours

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
T = "http://schemas.microsoft.com/exchange/services/2006/types"
NINE_TO_FIVE = WorkingHours(BERLIN, (WorkingPeriod((0, 1, 2, 3, 4), 9 * 60, 17 * 60),))


def at(day: int, hour: int, minute: int = 0, zone=BERLIN) -> datetime:
    """A moment in March 2026 (Monday 2 March; Berlin moves to summer time on Sunday 29 March)."""
    return datetime(2026, 3, day, hour, minute, tzinfo=zone)


def question(
    start: datetime, end: datetime, minutes: int = 30, step: int = 30, zone=BERLIN
) -> slots.SlotQuestion:
    return slots.SlotQuestion(start, end, timedelta(minutes=minutes), timedelta(minutes=step), zone)


def test_working_hours_cut_the_window_per_local_day() -> None:
    spans = slots.working_spans(NINE_TO_FIVE, at(6, 0), at(10, 0))  # Friday to Tuesday
    assert spans == [(at(6, 9), at(6, 17)), (at(9, 9), at(9, 17))]


def test_working_hours_follow_the_zone_across_a_daylight_saving_change() -> None:
    [friday, monday] = slots.working_spans(NINE_TO_FIVE, at(27, 0), at(31, 0))
    assert friday[0].astimezone(UTC).hour == 8 and monday[0].astimezone(UTC).hour == 7  # CET, then CEST


def test_slots_avoid_busy_time_and_lie_on_the_callers_grid() -> None:
    busy = slots.busy_spans(
        [
            BusyPeriod(at(2, 10), at(2, 11, 15), "BUSY"),
            BusyPeriod(at(2, 13), at(2, 14), "BUSY-TENTATIVE"),
            BusyPeriod(at(2, 15), at(2, 16), "FREE"),
        ]
    )
    working = slots.working_spans(NINE_TO_FIVE, at(2, 0), at(3, 0))
    found = slots.free_slots(question(at(2, 0), at(3, 0), 60, 30), busy, working)
    starts = [s.astimezone(BERLIN).strftime("%H:%M") for s, _ in found]
    assert starts == ["09:00", "11:30", "12:00", "14:00", "14:30", "15:00", "15:30", "16:00"]


def test_the_grid_is_the_callers_local_day() -> None:
    """A caller in New York (6 hours behind Berlin in March before the 8th) gets slots on their own clock."""
    found = slots.free_slots(question(at(2, 9, 10), at(2, 11), 30, 45, NEW_YORK), [], None)
    assert [s.astimezone(NEW_YORK).strftime("%H:%M") for s, _ in found] == [
        "03:45",
        "04:30",
    ]  # 00:00, 00:45, … 03:00, 03:45


def test_without_working_hours_the_whole_window_is_offered() -> None:
    found = slots.free_slots(question(at(7, 0), at(8, 0), 60, 60), [], None)  # a Saturday
    assert len(found) == 24


def test_a_meeting_longer_than_any_free_stretch_finds_nothing() -> None:
    working = slots.working_spans(NINE_TO_FIVE, at(2, 0), at(3, 0))
    assert slots.free_slots(question(at(2, 0), at(3, 0), 9 * 60, 30), [], working) == []


def test_overrides() -> None:
    hours = slots.override("08:00-12:30", "mon,wed-thu", NEW_YORK)
    assert hours == WorkingHours(NEW_YORK, (WorkingPeriod((0, 2, 3), 480, 750),))
    assert slots.override("any", None, UTC) is None
    assert slots.override(None, None, UTC) is False
    assert slots.override(None, "sat-sun", UTC).periods[0].weekdays == (5, 6)
    assert slots.override(None, "fri-mon", UTC).periods[0].weekdays == (0, 4, 5, 6)
    for hours, days in (("9-5", None), ("17:00-09:00", None), ("09:00-25:00", None), (None, "someday")):
        with pytest.raises(slots.BadQuestion):
            slots.override(hours, days, UTC)


def _working_hours_element(days: str, zone: str) -> etree._Element:
    root = etree.Element(f"{{{T}}}WorkingHours")
    root.append(serializable_time_zone(zone, year=2026))
    array = etree.SubElement(root, f"{{{T}}}WorkingPeriodArray")
    period = etree.SubElement(array, f"{{{T}}}WorkingPeriod")
    for name, value in (("DayOfWeek", days), ("StartTimeInMinutes", "480"), ("EndTimeInMinutes", "1020")):
        etree.SubElement(period, f"{{{T}}}{name}").text = value
    return root


def test_working_hours_are_read_from_the_availability_answer() -> None:
    hours = read_working_hours(_working_hours_element("Monday Wednesday Friday", "W. Europe Standard Time"))
    assert hours is not None and hours.periods == (WorkingPeriod((0, 2, 4), 480, 1020),)
    [monday] = slots.working_spans(hours, at(2, 0), at(3, 0))
    assert monday == (at(2, 8), at(2, 17))
    summer = slots.working_spans(hours, at(30, 0), at(31, 0))  # the SerializableTimeZone's daylight rule
    assert summer == [(at(30, 8), at(30, 17))]
    weekdays = read_working_hours(_working_hours_element("Weekday", "Pacific Standard Time"))
    assert weekdays.periods[0].weekdays == (0, 1, 2, 3, 4)
    assert read_working_hours(None) is None
