"""How much work one request may cause: the bounds a PUT body must respect and the dates a calendar holds.

A calendar object is parsed, validated and mapped in full before it is stored, and a store acts on what
it holds (Exchange sends one invitation per ATTENDEE). A body a few hundred kilobytes long can hold
thousands of VTIMEZONEs, attendees, alarms or overrides; each limit here bounds that work and is refused
with a sentence naming it. Where RFC 4791 defines a property and a precondition for a limit
(``max-resource-size`` §5.2.5, ``min-date-time`` §5.2.6, ``max-date-time`` §5.2.7,
``max-attendees-per-instance`` §5.2.9) the calendars advertise it and a PUT beyond it is refused with
that precondition (§5.3.2.1); the others are ``valid-calendar-object-resource``.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from icalendar import Calendar, Component

from .errors import DavError
from .xml import cal

# Exchange stores times as Windows FILETIMEs, which begin in 1601, and Outlook's calendar ends with
# 4500: the span a calendar object may use (RFC 4791 §5.2.6/§5.2.7). It also keeps every date the
# gateway computes with (a time-zone shift, an alarm offset, a day added to an all-day end) far from
# the limits of Python's datetime (years 1 and 9999).
MIN_DATE_TIME = datetime(1601, 1, 1, tzinfo=UTC)
MAX_DATE_TIME = datetime(4500, 12, 31, 23, 59, 59, tzinfo=UTC)


@dataclass(frozen=True)
class Limits:
    """Bounds of one calendar object resource (see ``[limits]`` in config/gateway.example.toml)."""

    max_resource_size: int = 1_000_000  # bytes of a PUT body (CALDAV:max-resource-size)
    max_attendees: int = 300  # ATTENDEEs of one VEVENT (CALDAV:max-attendees-per-instance)
    max_timezones: int = 20  # VTIMEZONEs of one resource
    max_alarms: int = 20  # VALARMs of one VEVENT
    max_overrides: int = 500  # RECURRENCE-ID VEVENTs of one series
    max_properties: int = 20_000  # content lines (properties, BEGIN/END) of one resource


def utc_text(moment: datetime) -> str:
    """A UTC DATE-TIME as RFC 4791 §5.2.6 writes the min/max-date-time property values."""
    return moment.strftime("%Y%m%dT%H%M%SZ")


def clamp(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime] | None:
    """A query range cut to the span calendars can hold; None when nothing of it lies in that span.

    Nothing is stored outside [MIN_DATE_TIME, MAX_DATE_TIME], so cutting a range to it changes no answer,
    and keeps expansions and Exchange's CalendarView away from dates nobody can compute with.
    """
    low = MIN_DATE_TIME if start is None else max(start, MIN_DATE_TIME)
    high = MAX_DATE_TIME if end is None else min(end, MAX_DATE_TIME)
    return (low, high) if low < high else None


VALID_OBJECT = cal("valid-calendar-object-resource")
MAX_ATTENDEES = cal("max-attendees-per-instance")
# Lines that start a component or property whose number a limit bounds (RFC 5545 §3.1: names are
# case-insensitive; a folded line goes on with a space, so it never starts like one of these).
_COUNTED = re.compile(
    rb"^(BEGIN:VTIMEZONE|BEGIN:VEVENT|BEGIN:VALARM|ATTENDEE[;:]|RECURRENCE-ID[;:])", re.I | re.M
)
DatePart = date | datetime


def precheck(data: bytes, limits: Limits) -> None:
    """Refuse, before the (costly) parse, a body whose plain lines already exceed a limit.

    Counting lines is exact enough to refuse: N events with more than N × max attendees (or alarms)
    hold at least one event over the limit. A body that hides lines by folding them oddly is still
    parsed and counted exactly by :func:`check_counts`.
    """
    counts = Counter(match.upper().rstrip(b";:") for match in _COUNTED.findall(data))
    events = max(1, counts[b"BEGIN:VEVENT"])
    _bound(counts[b"BEGIN:VTIMEZONE"], limits.max_timezones, _timezones_sentence)
    _bound(counts[b"RECURRENCE-ID"], limits.max_overrides, _overrides_sentence)
    if counts[b"ATTENDEE"] > limits.max_attendees * events:
        raise _too_many_attendees(limits)
    _bound(counts[b"BEGIN:VALARM"], limits.max_alarms * events, lambda _n, _m: _alarms_sentence(limits))
    # Each content line becomes several objects: 150,000 tiny properties fit in a megabyte and take
    # half a minute to parse. Folded continuation lines (CRLF + space or tab) are not content lines.
    lines = data.count(b"\n") - data.count(b"\n ") - data.count(b"\n\t") + (not data.endswith(b"\n"))
    _bound(lines, limits.max_properties, _properties_sentence)


def check_counts(calendar: Calendar, limits: Limits) -> None:
    """The exact counts of the parsed body: VTIMEZONEs and overrides per resource, attendees and
    alarms per VEVENT or VTODO."""
    parts = calendar.subcomponents
    _bound(sum(c.name == "VTIMEZONE" for c in parts), limits.max_timezones, _timezones_sentence)
    events = [c for c in parts if c.name in ("VEVENT", "VTODO")]
    _bound(sum("RECURRENCE-ID" in e for e in events), limits.max_overrides, _overrides_sentence)
    for event in events:
        attendees = event.get("ATTENDEE", [])
        if len(attendees if isinstance(attendees, list) else [attendees]) > limits.max_attendees:
            raise _too_many_attendees(limits)
        if sum(c.name == "VALARM" for c in event.subcomponents) > limits.max_alarms:
            raise DavError(403, _alarms_sentence(limits), VALID_OBJECT)


def _bound(count: int, limit: int, sentence) -> None:
    if count > limit:
        raise DavError(403, sentence(count, limit), VALID_OBJECT)


def _timezones_sentence(count: int, limit: int) -> str:
    return f"A calendar object may hold at most {limit} VTIMEZONEs; this one has {count}."


def _properties_sentence(count: int, limit: int) -> str:
    return f"A calendar object may have at most {limit} lines (properties); this one has {count}."


def _overrides_sentence(count: int, limit: int) -> str:
    return f"A series may have at most {limit} modified occurrences (RECURRENCE-ID); this one has {count}."


def _alarms_sentence(limits: Limits) -> str:
    return f"An event may have at most {limits.max_alarms} alarms (VALARM)."


def _too_many_attendees(limits: Limits) -> DavError:
    # Exchange sends an invitation to every attendee: the limit keeps one PUT from mailing thousands.
    return DavError(403, f"An event may invite at most {limits.max_attendees} attendees.", MAX_ATTENDEES)


def check_dates(calendar: Calendar) -> None:
    """RFC 4791 §5.3.2.1 min-date-time / max-date-time: every DATE or DATE-TIME value of the events (and
    the end a DURATION gives, and an RRULE's UNTIL) lies in [MIN_DATE_TIME, MAX_DATE_TIME)."""
    for component in calendar.walk():
        if component.name not in ("VEVENT", "VTODO", "VALARM"):
            continue
        for name, value in component.property_items(recursive=False):
            for moment in _moments(value):
                _check_moment(name, moment)
        _check_end(component)


def _moments(value: object) -> list[DatePart]:
    """The dates and date-times a property value holds (DATE-TIME, lists, periods, UNTIL)."""
    found: list[object] = []
    dt = getattr(value, "dt", None)
    if isinstance(dt, tuple):  # a PERIOD: (start, end or duration)
        found.extend(dt)
    elif dt is not None:
        found.append(dt)
    for item in getattr(value, "dts", None) or ():
        found.append(getattr(item, "dt", None))
    if hasattr(value, "get") and isinstance(value, dict):  # vRecur: UNTIL is a list
        found.extend(value.get("UNTIL", []) or [])
    return [m for m in found if isinstance(m, date)]


def _check_moment(name: str, moment: DatePart) -> None:
    at = _utc(moment)
    if at is None or at < MIN_DATE_TIME:
        raise DavError(
            403,
            f"{name} {_shown(moment)} lies before {MIN_DATE_TIME.date()}, the earliest date a calendar holds.",
            cal("min-date-time"),
        )
    if at >= MAX_DATE_TIME:  # RFC 4791 §5.3.2.1: values less than max-date-time
        raise DavError(
            403,
            f"{name} {_shown(moment)} lies after {MAX_DATE_TIME.date()}, the latest date a calendar holds.",
            cal("max-date-time"),
        )


def _check_end(component: Component) -> None:
    """A DURATION must not carry the end past MAX_DATE_TIME (DTSTART was checked on its own)."""
    start = getattr(component.get("DTSTART"), "dt", None)
    duration = getattr(component.get("DURATION"), "dt", None)
    if not isinstance(start, date) or not isinstance(duration, timedelta):
        return
    try:
        at = _utc(start + duration)
    except OverflowError:
        at = None
    if at is None or not MIN_DATE_TIME <= at < MAX_DATE_TIME:
        edge = "max-date-time" if duration >= timedelta(0) else "min-date-time"
        raise DavError(
            403,
            f"DTSTART plus DURATION ends outside {MIN_DATE_TIME.date()} to {MAX_DATE_TIME.date()}, "
            "the dates a calendar holds.",
            cal(edge),
        )


def _utc(moment: DatePart) -> datetime | None:
    """The moment in UTC (floating times and dates read as UTC); None when even that overflows."""
    if not isinstance(moment, datetime):
        return datetime(moment.year, moment.month, moment.day, tzinfo=UTC)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except (OverflowError, ValueError):
        # A zone offset pushed the time beyond year 1 or 9999: far outside either way.
        return None if moment.year < 5000 else datetime.max.replace(tzinfo=UTC)


def _shown(moment: DatePart) -> str:
    return moment.isoformat()
