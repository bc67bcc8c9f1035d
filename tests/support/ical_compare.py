"""Is a calendar object resource read back the one a client stored? Property by property.

:func:`assert_same_properties` compares, per component (the VCALENDAR, each VEVENT paired by
RECURRENCE-ID, each VALARM or other sub-component of a VEVENT), the set of property names, the
parameter names of each property and its values. Order and folding never matter. Properties the
gateway keeps for the client (everything Exchange has no field for, and how the mapped ones were
written: CLASS, TRANSP, CATEGORIES, RRULE, ORGANIZER, ATTENDEE, DTSTAMP, DURATION, VALARMs, …) must
come back with the same values and parameter values. These are the normalisations, each because
Exchange (or RFC 4791) has its own form of the value:

1. VCALENDAR: PRODID is the gateway's; CALSCALE (only GREGORIAN exists, RFC 5545 §3.7.1) is not
   written; METHOD is dropped (RFC 4791 §4.1 forbids it in a stored resource). VTIMEZONEs are the
   gateway's own (not compared; each TZID used has one).
2. DTSTART, DTEND, RECURRENCE-ID, EXDATE: compared as instants (dates as dates); their TZID and
   VALUE parameters are the gateway's: a zone is named as Exchange names it, a floating time is in
   the calendar's zone, VALUE=DATE-TIME (the default) is not written. A RECURRENCE-ID is the
   occurrence it names (a midnight DATE-TIME of an all-day series is its day, Exchange 2010's
   midnight of a timed occurrence is that occurrence); EXDATE values are compared as one set over
   all EXDATE lines, an EXDATE;VALUE=DATE of a timed series as the occurrences of that day.
3. A TZID parameter of any other property names the zone as the gateway names it (value ignored).
4. SUMMARY, DESCRIPTION, LOCATION, UID, X-ALT-DESC: equal as text (TEXT escaping may differ).
5. SEQUENCE: equal as an integer.
"""

from __future__ import annotations

import zoneinfo
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from icalendar import Calendar
from icalendar.parser import Contentlines

TIME_PROPS = {"DTSTART", "DTEND", "RECURRENCE-ID", "EXDATE"}
TEXT_PROPS = {"SUMMARY", "DESCRIPTION", "LOCATION", "UID", "X-ALT-DESC"}
NOT_KEPT = {"VCALENDAR": {"PRODID", "CALSCALE", "METHOD"}}


@dataclass
class Comp:
    name: str
    props: list[tuple[str, dict[str, str], str]] = field(default_factory=list)
    children: list[Comp] = field(default_factory=list)

    def values(self, name: str) -> list[tuple[dict[str, str], str]]:
        return [(params, value) for key, params, value in self.props if key == name]


def _tree(text: str) -> Comp:
    stack: list[Comp] = []
    top = None
    for line in Contentlines.from_ical(text):
        if not line:
            continue
        name, params, value = line.parts()
        name = name.upper()
        if name == "BEGIN":
            comp = Comp(value.upper())
            if stack:
                stack[-1].children.append(comp)
            stack.append(comp)
        elif name == "END":
            top = stack.pop()
        else:
            stack[-1].props.append((name, {k.upper(): str(v) for k, v in params.items()}, value))
    assert top is not None
    return top


def _instant(value: date | datetime, zone: zoneinfo.ZoneInfo) -> date | datetime:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=zone)).astimezone(UTC)
    return value


def _same_moment(a: date | datetime, b: date | datetime, zone) -> bool:
    if isinstance(a, datetime) != isinstance(b, datetime):
        moment, day = (a, b) if isinstance(a, datetime) else (b, a)
        return moment.date() == day  # a midnight DATE-TIME naming an all-day occurrence
    return _instant(a, zone) == _instant(b, zone)


def _rid_order(event) -> tuple:
    rid = event.get("RECURRENCE-ID")
    if rid is None:
        return (0, "")
    value = rid.dt
    day = value.date() if isinstance(value, datetime) else value
    return (1, day.isoformat())


def _kept_form(params: dict[str, str], value: str, name: str) -> tuple:
    shown = {k: ("" if k == "TZID" else v) for k, v in params.items()}
    return name, tuple(sorted(shown.items())), value


def _compare_component(where: str, before: Comp, after: Comp, parsed_before, parsed_after, zone) -> None:
    skip = NOT_KEPT.get(before.name, set())
    names_before = {n for n, _, _ in before.props} - skip
    names_after = {n for n, _, _ in after.props} - skip
    assert names_after == names_before, (where, "properties", names_before ^ names_after)
    for name in sorted(names_before):
        ours, theirs = after.values(name), before.values(name)
        if name in TIME_PROPS:
            _compare_times(where, name, parsed_before, parsed_after, zone)
            ignored = {"TZID", "VALUE"}
        elif name in TEXT_PROPS:
            assert str(parsed_after.get(name)) == str(parsed_before.get(name)), (where, name)
            ignored = set()
        elif name == "SEQUENCE":
            assert int(ours[0][1]) == int(theirs[0][1]), (where, name)
            ignored = set()
        elif name in ("VERSION",):
            continue
        else:
            kept_before = Counter(_kept_form(p, v, name) for p, v in theirs)
            kept_after = Counter(_kept_form(p, v, name) for p, v in ours)
            assert kept_after == kept_before, (where, name, kept_before, kept_after)
            continue
        params_before = {k for p, _ in theirs for k in p} - ignored
        params_after = {k for p, _ in ours for k in p} - ignored
        assert params_after == params_before, (where, name, "parameters", params_before ^ params_after)


def _compare_times(where: str, name: str, before, after, zone) -> None:
    if name == "EXDATE":
        moments = []
        for event in (before, after):
            props = event.get("EXDATE", [])
            props = props if isinstance(props, list) else [props]
            moments.append({_instant(d.dt, zone) for p in props for d in p.dts})
        start = after["DTSTART"].dt
        if isinstance(start, datetime):  # a DATE excludes that day's occurrences: Exchange lists them
            days = {d for d in moments[0] if not isinstance(d, datetime)}
            on_days = {
                m for m in moments[1] if isinstance(m, datetime) and m.astimezone(start.tzinfo).date() in days
            }
            moments[0] = (moments[0] - days) | on_days
        assert moments[1] == moments[0], (where, name, moments[0] ^ moments[1])
        return
    original, ours = before[name].dt, after[name].dt
    if name == "RECURRENCE-ID" and not _same_moment(original, ours, zone):
        # Exchange 2010 names some occurrences of timed series by their day's midnight: same day
        assert isinstance(original, datetime) and original.time() == datetime.min.time(), (where, name)
        assert original.date() == ours.date(), (where, name, original, ours)
        return
    assert _same_moment(original, ours, zone), (where, name, original, ours)


def _sorted_children(comp: Comp) -> list[Comp]:
    return sorted(comp.children, key=lambda c: (c.name, sorted(map(repr, c.props))))


def assert_same_properties(original: str, stored: str, default_tz: str) -> None:
    """``stored`` (what GET returned) holds what ``original`` (what was PUT) held; see the module's rules."""
    zone = zoneinfo.ZoneInfo(default_tz)
    raw_before, raw_after = _tree(original), _tree(stored)
    _compare_component("VCALENDAR", raw_before, raw_after, {}, {}, zone)
    events = []
    for raw, text in ((raw_before, original), (raw_after, stored)):
        parsed = [c for c in Calendar.from_ical(text).subcomponents if c.name == "VEVENT"]
        comps = [c for c in raw.children if c.name == "VEVENT"]
        assert len(parsed) == len(comps)
        events.append(sorted(zip(parsed, comps, strict=True), key=lambda pair: _rid_order(pair[0])))
    assert len(events[1]) == len(events[0]), "VEVENT count"
    for (parsed_b, comp_b), (parsed_a, comp_a) in zip(events[0], events[1], strict=True):
        where = f"VEVENT {_rid_order(parsed_b)}"
        _compare_component(where, comp_b, comp_a, parsed_b, parsed_a, zone)
        children_b, children_a = _sorted_children(comp_b), _sorted_children(comp_a)
        assert [c.name for c in children_a] == [c.name for c in children_b], (where, "components")
        for child_b, child_a in zip(children_b, children_a, strict=True):
            assert Counter(_kept_form(p, v, n) for n, p, v in child_a.props) == Counter(
                _kept_form(p, v, n) for n, p, v in child_b.props
            ), (where, child_b.name)
