"""calendar-query filters and calendar-data transformations (RFC 4791 §9.6-§9.9).

The backend narrows a query by the outer time range; this module applies the exact
filter to each object's iCalendar text and renders ``expand`` / ``limit-recurrence-set``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice

import recurring_ical_events
from icalendar import Calendar, Component
from lxml import etree

from .limits import MIN_DATE_TIME
from .timerange import (
    MAX_INSTANCES,
    RECURRING,
    TIMED,
    FilterError,
    TimeRange,
    alarms_in_range,
    as_utc,
    component_in_range,
    instances,
    parse_utc,
    value_in_range,
)
from .xml import cal

# Names other modules use from here.
__all__ = ["CompFilter", "FilterError", "PropFilter", "TimeRange", "instances", "parse_filter", "parse_utc"]


@dataclass(frozen=True)
class TextMatch:
    """``CALDAV:text-match`` (RFC 4791 §9.7.5): substring match under a collation."""

    text: str
    casefold: bool = True
    negate: bool = False

    def matches(self, value: str) -> bool:
        found = (self.text.casefold() in value.casefold()) if self.casefold else (self.text in value)
        return found != self.negate


@dataclass(frozen=True)
class PropFilter:
    """``CALDAV:prop-filter`` (RFC 4791 §9.7.2)."""

    name: str
    is_not_defined: bool = False
    text_match: TextMatch | None = None
    time_range: TimeRange | None = None
    param_filters: tuple[tuple[str, bool, TextMatch | None], ...] = ()

    def matches(self, comp: Component) -> bool:
        values = comp.get(self.name)
        if values is None:
            return self.is_not_defined
        if self.is_not_defined:
            return False
        values = values if isinstance(values, list) else [values]
        return any(self._value_matches(v) for v in values)

    def _value_matches(self, value: object) -> bool:
        if self.text_match and not self.text_match.matches(_text(value)):
            return False
        if self.time_range and not value_in_range(value, self.time_range):
            return False
        for name, not_defined, match in self.param_filters:
            param = getattr(value, "params", {}).get(name)
            if (param is None) != not_defined:
                return False
            if match and param is not None and not match.matches(str(param)):
                return False
        return True


@dataclass(frozen=True)
class CompFilter:
    """``CALDAV:comp-filter`` (RFC 4791 §9.7.1)."""

    name: str
    is_not_defined: bool = False
    time_range: TimeRange | None = None
    prop_filters: tuple[PropFilter, ...] = ()
    comp_filters: tuple[CompFilter, ...] = field(default_factory=tuple)

    def outer_range(self) -> TimeRange | None:
        """The time range of the first VEVENT-level comp-filter: what the backend can pre-filter."""
        for child in self.comp_filters:
            if child.time_range and not child.is_not_defined:
                return child.time_range
        return None

    def is_simple(self) -> bool:
        """True when the backend's time-range pre-filter already decides the match: VEVENT comp-filters
        with closed time ranges only (a backend may list every object for an open range)."""
        return not self.prop_filters and all(
            not c.prop_filters
            and not c.comp_filters
            and not c.is_not_defined
            and c.name == "VEVENT"
            and (c.time_range is None or (c.time_range.start is not None and c.time_range.end is not None))
            for c in self.comp_filters
        )

    def matches_calendar(self, calendar: Calendar) -> bool:
        """Evaluate this (VCALENDAR) filter against one calendar object resource."""
        if self.name != "VCALENDAR":
            return False
        return self._matches(calendar, calendar)

    def _matches(self, comp: Component, root: Calendar) -> bool:
        if not all(p.matches(comp) for p in self.prop_filters):
            return False
        return all(child._matches_in(comp, root) for child in self.comp_filters)

    def _matches_in(self, parent: Component, root: Calendar) -> bool:
        # An open-ended range over an endless RRULE has endless instances: look at a bounded number.
        candidates = islice(self._candidates(parent, root), MAX_INSTANCES)
        if self.is_not_defined:
            return next(candidates, None) is None
        return any(self._matches(c, root) for c in candidates)

    def _candidates(self, parent: Component, root: Calendar) -> Iterator[Component]:
        children = [c for c in parent.subcomponents if c.name == self.name]
        if not self.time_range:
            yield from children
        elif self.name in RECURRING and parent is root:
            # Instances, not stored components: a series matches when any occurrence overlaps.
            yield from instances(root, self.time_range.start, self.time_range.end, self.name)
        elif self.name == "VALARM":
            # RFC 4791 §9.9: an alarm overlaps when one of its trigger times lies in the range.
            yield from alarms_in_range(parent, root, self.time_range)
        else:
            yield from (c for c in children if component_in_range(c, self.time_range))


def parse_filter(el: etree._Element | None) -> CompFilter:
    """Parse ``CALDAV:filter``; its single child is the VCALENDAR comp-filter."""
    if el is None:
        raise FilterError("calendar-query needs a filter element (RFC 4791 §7.8).")
    comps = el.findall(cal("comp-filter"))
    if len(comps) != 1:
        raise FilterError("The filter must hold exactly one VCALENDAR comp-filter.")
    return _comp_filter(comps[0])


def _comp_filter(el: etree._Element) -> CompFilter:
    name = (el.get("name") or "").upper()
    if not name:
        raise FilterError("A comp-filter lacks its name attribute.")
    time_range = TimeRange.parse(el.find(cal("time-range")))
    if time_range is not None and name not in TIMED:
        # RFC 4791 §9.9: only these components have a time to test.
        raise FilterError(
            f"A time-range applies to VEVENT, VTODO, VJOURNAL, VFREEBUSY or VALARM, not to {name}: "
            "put it in the comp-filter of the component (e.g. VEVENT)."
        )
    return CompFilter(
        name=name,
        is_not_defined=el.find(cal("is-not-defined")) is not None,
        time_range=time_range,
        prop_filters=tuple(_prop_filter(p) for p in el.findall(cal("prop-filter"))),
        comp_filters=tuple(_comp_filter(c) for c in el.findall(cal("comp-filter"))),
    )


def _prop_filter(el: etree._Element) -> PropFilter:
    name = el.get("name")
    if not name:
        raise FilterError("A prop-filter lacks its name attribute.")
    params = tuple(
        (
            p.get("name", "").upper(),
            p.find(cal("is-not-defined")) is not None,
            _text_match(p.find(cal("text-match"))),
        )
        for p in el.findall(cal("param-filter"))
    )
    return PropFilter(
        name=name.upper(),
        is_not_defined=el.find(cal("is-not-defined")) is not None,
        text_match=_text_match(el.find(cal("text-match"))),
        time_range=TimeRange.parse(el.find(cal("time-range"))),
        param_filters=params,
    )


def _text_match(el: etree._Element | None) -> TextMatch | None:
    if el is None:
        return None
    collation = el.get("collation", "i;ascii-casemap")
    if collation not in ("i;ascii-casemap", "i;octet", "i;unicode-casemap"):
        raise FilterError(f"The collation {collation} is not supported (supported-collation).")
    return TextMatch(
        el.text or "", casefold=collation != "i;octet", negate=el.get("negate-condition") == "yes"
    )


def _text(value: object) -> str:
    if hasattr(value, "to_ical"):
        raw = value.to_ical()
        return raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
    return str(value)


def check_recurrence(calendar: Calendar) -> None:
    """Raise ValueError when the events' (or tasks') dates or recurrence rules cannot be evaluated."""
    for event in [*calendar.walk("VEVENT"), *calendar.walk("VTODO")]:
        for prop in (
            "DTSTART",
            "DTEND",
            "DUE",
            "COMPLETED",
            "RECURRENCE-ID",
            "RRULE",
            "EXDATE",
            "RDATE",
            "DURATION",
        ):
            if prop in event:
                event.decoded(prop)
    recurring_ical_events.of(calendar).between(MIN_DATE_TIME, MIN_DATE_TIME + timedelta(days=1))


def expand(data: str, start: datetime, end: datetime) -> str:
    """RFC 4791 §9.6.5: every instance in range as its own VEVENT (VTODO, in a task), in UTC, without RRULEs."""
    source = Calendar.from_ical(data)
    out = _shell(source)
    kind = "VTODO" if any(c.name == "VTODO" for c in source.subcomponents) else "VEVENT"
    for instance in instances(source, start, end, kind):
        for prop in ("DTSTART", "DTEND", "DUE", "RECURRENCE-ID"):
            if prop in instance and isinstance(instance.decoded(prop), datetime):
                value = as_utc(instance.decoded(prop))
                del instance[prop]
                instance.add(prop, value)
        for prop in ("RRULE", "RDATE", "EXDATE"):
            instance.pop(prop, None)
        out.add_component(instance)
    return out.to_ical().decode("utf-8")


def limit_recurrence_set(data: str, start: datetime, end: datetime) -> str:
    """RFC 4791 §9.6.6: the master plus only the overridden instances that touch the range."""
    source = Calendar.from_ical(data)
    out = _shell(source)
    tr = TimeRange(start, end)
    for comp in source.subcomponents:
        if comp.name == "VEVENT" and "RECURRENCE-ID" in comp:
            original = as_utc(comp.decoded("RECURRENCE-ID"))
            if not (component_in_range(comp, tr) or start <= original < end):
                continue
        out.add_component(comp)
    return out.to_ical().decode("utf-8")


def _shell(source: Calendar) -> Calendar:
    out = Calendar()
    for key, value in source.items():
        out[key] = value
    return out
