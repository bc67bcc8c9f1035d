"""VALARM (RFC 5545 §3.6.6) ⇄ the item's one reminder (ReminderIsSet, ReminderMinutesBeforeStart)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from exchangelib import CalendarItem
from icalendar import Alarm, Event

from gateway.common import ical
from gateway.common.timezones import to_utc
from gateway.ews.mapping.vevent import VEvent


def add_alarm(event: VEvent, item: CalendarItem) -> None:
    """The reminder as a DISPLAY VALARM triggered relative to the start."""
    if not item.reminder_is_set or item.reminder_minutes_before_start is None:
        return
    trigger = ical.format_duration(-timedelta(minutes=item.reminder_minutes_before_start))
    lines = (
        ical.line("ACTION", "DISPLAY"),
        ical.line("DESCRIPTION", "Reminder"),
        ical.line("TRIGGER", trigger),
    )
    event.alarm = ical.component("VALARM", lines)


def _reminder_minutes(alarm: Alarm, event: Event, item: CalendarItem) -> int | None:
    """Minutes before the start at which the alarm fires (TRIGGER, RFC 5545 §3.8.6.3); None if Exchange cannot."""
    trigger = alarm.get("TRIGGER")
    if trigger is None:
        return None
    value = trigger.dt
    if isinstance(value, timedelta):
        if str(trigger.params.get("RELATED", "START")).upper() == "END":
            value += _as_dt(item.end, item, end=True) - _as_dt(item.start, item)
        lead = -value
    elif "RRULE" in event or item.is_all_day:
        return None  # an absolute trigger fires once: no reminder relative to every occurrence
    else:
        lead = _as_dt(item.start, item) - to_utc(value)
    if lead < timedelta(0):
        return None  # fires after the start: Exchange reminders cannot
    return int(lead.total_seconds() // 60)


def _as_dt(value: date | datetime, item: CalendarItem, end: bool = False) -> datetime:
    """An item's start or end as a UTC instant; a date is its midnight (the day after, for an end)."""
    if isinstance(value, datetime):
        return to_utc(value)
    day = value + timedelta(days=1) if end else value
    return to_utc(datetime.combine(day, time.min).replace(tzinfo=item._start_timezone))


def mapped_alarm(event: Event, item: CalendarItem) -> int | None:
    """Which VALARM of ``event`` (index among its VALARMs) is the item's reminder: the first that fires
    at or before the start (ACTION:NONE ignored); None when none can be."""
    alarms = [c for c in event.subcomponents if c.name == "VALARM"]
    for index, alarm in enumerate(alarms):
        if str(alarm.get("ACTION", "")).upper() == "NONE":
            continue
        if _reminder_minutes(alarm, event, item) is not None:
            return index
    return None


def read_alarm(event: Event, item: CalendarItem) -> None:
    """The reminder from the first VALARM that fires at or before the start (ACTION:NONE ignored)."""
    item.reminder_is_set, item.reminder_minutes_before_start = False, 0
    index = mapped_alarm(event, item)
    if index is not None:
        alarm = [c for c in event.subcomponents if c.name == "VALARM"][index]
        item.reminder_is_set = True
        item.reminder_minutes_before_start = _reminder_minutes(alarm, event, item)
