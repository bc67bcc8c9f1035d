"""Time ranges (RFC 4791 §9.9): when a component, an instance of a series or an alarm overlaps one.

The overlap rules are RFC 4791 §9.9's tables: an event with a DATE-TIME DTSTART and neither DTEND nor
DURATION is an instant (``start <= DTSTART < end``), one with a DATE DTSTART lasts the day; an alarm
overlaps when one of its trigger times (with its repetitions) does. Instances of a series come from
recurring_ical_events and are then judged by these rules, with the properties the stored component
has: recurring_ical_events gives every instance a DTEND, which an instance of an event without one
must not show (RFC 5545 §3.6.1).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import recurring_ical_events
from icalendar import Calendar, Component
from lxml import etree

from .limits import MAX_DATE_TIME, MIN_DATE_TIME, clamp

RECURRING = frozenset({"VEVENT", "VTODO", "VJOURNAL"})
# RFC 4791 §9.9: the components a time-range may test.
TIMED = frozenset({"VEVENT", "VTODO", "VJOURNAL", "VFREEBUSY", "VALARM"})
MAX_INSTANCES = 2000
_MARGIN = timedelta(days=1)  # asked of recurring_ical_events beyond the range, then judged exactly


class FilterError(ValueError):
    """The filter cannot be evaluated as sent (400 with valid-filter)."""


def parse_utc(value: str | None) -> datetime | None:
    """An RFC 4791 §9.9 attribute value: a UTC DATE-TIME ``YYYYMMDDTHHMMSSZ``."""
    if not value:
        return None
    try:
        return datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise FilterError(f"{value!r} is not a UTC date-time like 20250101T000000Z.") from None


@dataclass(frozen=True)
class TimeRange:
    """``CALDAV:time-range``: either bound may be open."""

    start: datetime | None
    end: datetime | None

    @classmethod
    def parse(cls, el: etree._Element | None) -> TimeRange | None:
        if el is None:
            return None
        tr = cls(parse_utc(el.get("start")), parse_utc(el.get("end")))
        if tr.start is None and tr.end is None:
            raise FilterError("A time-range needs a start or an end attribute.")
        if tr.start and tr.end and tr.end <= tr.start:
            raise FilterError("The time-range ends before it starts.")
        return tr

    def holds(self, moment: datetime) -> bool:
        """``start <= moment < end`` (an alarm's trigger, an instant)."""
        return (self.start is None or self.start <= moment) and (self.end is None or moment < self.end)

    def overlaps(self, first: datetime, last: datetime) -> bool:
        """``start < last AND end > first`` (a span with a length)."""
        return (self.start is None or self.start < last) and (self.end is None or self.end > first)


def as_utc(value: date | datetime) -> datetime:
    """A DATE or DATE-TIME in UTC; floating times and dates are read as UTC."""
    if not isinstance(value, datetime):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def span(comp: Component) -> tuple[datetime, datetime | None] | None:
    """(start, end) in UTC by RFC 4791 §9.9; end None for an instant (no end, or a zero DURATION)."""
    if "DTSTART" not in comp:
        return None
    first = comp.decoded("DTSTART")
    start = as_utc(first)
    if "DTEND" in comp:
        return start, as_utc(comp.decoded("DTEND"))
    if "DURATION" in comp:
        duration = comp.decoded("DURATION")
        return start, (start + duration if duration > timedelta(0) else None)
    return start, (None if isinstance(first, datetime) else start + timedelta(days=1))


def component_in_range(comp: Component, tr: TimeRange) -> bool:
    """RFC 4791 §9.9 overlap of an event-like component by DTSTART and DTEND / DURATION (a VTODO by
    its own table, :func:`todo_in_range`)."""
    if comp.name == "VTODO":
        return todo_in_range(comp, tr)
    found = span(comp)
    if found is None:
        return False
    start, end = found
    return tr.holds(start) if end is None else tr.overlaps(start, end)


def todo_in_range(todo: Component, tr: TimeRange) -> bool:
    """RFC 4791 §9.9's VTODO table: by DTSTART with DURATION or DUE, DTSTART alone, DUE alone, then
    COMPLETED and CREATED; a VTODO with none of them overlaps every range. An open bound is infinite."""

    def at(name: str) -> datetime | None:
        return as_utc(todo.decoded(name)) if name in todo else None

    low = tr.start or datetime.min.replace(tzinfo=UTC)
    high = tr.end or datetime.max.replace(tzinfo=UTC)
    start, due, completed, created = at("DTSTART"), at("DUE"), at("COMPLETED"), at("CREATED")
    if start is not None and "DURATION" in todo:
        finish = start + todo.decoded("DURATION")
        return low <= finish and (high > start or high >= finish)
    if start is not None and due is not None:
        return (low < due or low <= start) and (high > start or high >= due)
    if start is not None:
        return low <= start < high
    if due is not None:
        return low < due <= high
    if completed is not None and created is not None:
        return (low <= created or low <= completed) and (high >= created or high >= completed)
    if completed is not None:
        return low <= completed <= high
    if created is not None:
        return high > created
    return True


def value_in_range(value: object, tr: TimeRange) -> bool:
    """A DATE or DATE-TIME property value inside the range (a prop-filter's time-range)."""
    moment = getattr(value, "dt", None)
    return isinstance(moment, date) and tr.holds(as_utc(moment))


def instances(
    calendar: Calendar, start: datetime | None, end: datetime | None, name: str = "VEVENT"
) -> Iterator[Component]:
    """Instances overlapping [start, end) by RFC 4791 §9.9, each with the properties its stored
    component has; an open end is walked lazily, a year at a time.

    Ranges are cut to the dates calendars hold (:func:`.limits.clamp`); recurring_ical_events is asked
    for a day more on each side and every instance judged exactly.
    """
    bounds = clamp(start, end)
    if bounds is None:
        return
    tr = TimeRange(start, end)
    faithful = _Faithful(calendar, name)
    query = recurring_ical_events.of(calendar, components=[name])
    low = max(bounds[0] - _MARGIN, MIN_DATE_TIME)
    high = min(bounds[1] + _MARGIN, MAX_DATE_TIME)
    if end is not None or not _endless(calendar, name):
        for instance in query.between(low, high):
            faithful.restore(instance)
            if component_in_range(instance, tr):
                yield instance
        return
    seen: set[tuple[str, str]] = set()
    window_start = max(low, faithful.earliest or low)
    window = timedelta(days=366)
    while window_start < high:
        window_end = min(window_start + window, high)
        found = 0
        for instance in query.between(window_start, window_end):
            key = (str(instance.get("UID")), str(instance.get("DTSTART").to_ical()))
            if key in seen:  # an instance spanning a window boundary is reported twice
                continue
            seen.add(key)
            found += 1
            faithful.restore(instance)
            if component_in_range(instance, tr):
                yield instance
        window_start = window_end
        if found < 50:
            window *= 2  # a sparse series (yearly, say) reaches the far end in few steps


class _Faithful:
    """Puts back on an instance the DTEND / DURATION its stored component has (or lacks)."""

    def __init__(self, calendar: Calendar, name: str) -> None:
        self.masters: dict[str, Component] = {}
        self.overrides: dict[tuple[str, datetime], Component] = {}
        starts = []
        for comp in calendar.walk(name):
            uid = str(comp.get("UID", ""))
            if "RECURRENCE-ID" in comp:
                self.overrides[(uid, as_utc(comp.decoded("RECURRENCE-ID")))] = comp
            else:
                self.masters[uid] = comp
            if "DTSTART" in comp:
                starts.append(as_utc(comp.decoded("DTSTART")))
        self.earliest = min(starts) - _MARGIN if starts else None

    def restore(self, instance: Component) -> None:
        uid = str(instance.get("UID", ""))
        source = None
        if "RECURRENCE-ID" in instance:
            source = self.overrides.get((uid, as_utc(instance.decoded("RECURRENCE-ID"))))
        source = source or self.masters.get(uid)
        if source is None or "DTEND" in source:
            return
        end = instance.decoded("DTEND") if "DTEND" in instance else None
        instance.pop("DTEND", None)
        if "DURATION" in source and "DURATION" not in instance and end is not None:
            instance.add("DURATION", end - instance.decoded("DTSTART"))


def _endless(calendar: Calendar, name: str) -> bool:
    """Whether a component recurs without UNTIL or COUNT (RFC 5545 §3.3.10)."""
    for comp in calendar.walk(name):
        rules = comp.get("RRULE")
        for rule in rules if isinstance(rules, list) else [rules] if rules is not None else []:
            if "UNTIL" not in rule and "COUNT" not in rule:
                return True
    return False


# --- alarms (RFC 4791 §9.9, RFC 5545 §3.6.6) -------------------------------------------------


def alarms_in_range(parent: Component, root: Calendar, tr: TimeRange) -> Iterator[Component]:
    """The VALARMs of ``parent`` one of whose trigger times lies in the range.

    ``parent`` is an instance (from a time-range on its component) or a stored component; for a stored
    recurring master, the alarms of each of its instances count (those not overridden), looked for
    over the range widened by how far the alarms lie from their instance.
    """
    alarms = [c for c in parent.subcomponents if c.name == "VALARM"]
    if not alarms:
        return
    for occurrence in _occurrences(parent, root, tr, alarms):
        for alarm in alarms:
            if any(tr.holds(moment) for moment in triggers(alarm, occurrence)):
                yield alarm
                return


def _occurrences(
    parent: Component, root: Calendar, tr: TimeRange, alarms: list[Component]
) -> Iterator[Component]:
    if "RRULE" not in parent and "RDATE" not in parent:
        yield parent
        return
    reach = max((_reach(alarm, parent) for alarm in alarms), default=timedelta(0))
    start = None if tr.start is None else tr.start - reach
    end = None if tr.end is None else tr.end + reach
    uid = str(parent.get("UID", ""))
    overridden = {
        as_utc(c.decoded("RECURRENCE-ID"))
        for c in root.walk(parent.name)
        if "RECURRENCE-ID" in c and str(c.get("UID", "")) == uid
    }
    series = Calendar()
    series.add_component(parent)
    for zone in root.walk("VTIMEZONE"):
        series.add_component(zone)
    found = 0
    for instance in instances(series, start, end, parent.name):
        rid = instance.get("RECURRENCE-ID")
        if rid is not None and as_utc(rid.dt) in overridden:
            continue
        yield instance
        found += 1
        if found >= MAX_INSTANCES:
            return


def _reach(alarm: Component, parent: Component) -> timedelta:
    """How far from its instance's start an alarm can fire: offset, repetitions and the event's length."""
    trigger = alarm.get("TRIGGER")
    offset = trigger.dt if trigger is not None and isinstance(trigger.dt, timedelta) else timedelta(0)
    repeat, every = _repeats(alarm)
    found = span(parent)
    length = (found[1] - found[0]) if found and found[1] else timedelta(days=1)
    return abs(offset) + repeat * every + length + _MARGIN


def _repeats(alarm: Component) -> tuple[int, timedelta]:
    try:
        repeat = int(alarm.get("REPEAT", 0))
    except (TypeError, ValueError):
        repeat = 0
    every = alarm.decoded("DURATION") if "DURATION" in alarm else timedelta(0)
    if not isinstance(every, timedelta) or every <= timedelta(0):
        return 0, timedelta(0)
    return min(max(repeat, 0), MAX_INSTANCES), every


def triggers(alarm: Component, occurrence: Component) -> list[datetime]:
    """RFC 5545 §3.8.6.3 trigger times of an alarm of one occurrence, with its REPEATs (§3.8.6.2)."""
    trigger = alarm.get("TRIGGER")
    if trigger is None:
        return []
    value = trigger.dt
    if isinstance(value, timedelta):
        found = span(occurrence)
        if found is None:
            return []
        start, end = found
        related_end = str(trigger.params.get("RELATED", "START")).upper() == "END"
        base = (end or start) if related_end else start
        first = base + value
    elif isinstance(value, date):
        first = as_utc(value)
    else:
        return []
    repeat, every = _repeats(alarm)
    return [first + every * n for n in range(repeat + 1)]
