"""CreateItem from MIME content: a calendar item built from the iCalendar object a client sends.

A ``t:CalendarItem`` of CreateItem may carry ``t:MimeContent`` (base64 iCalendar; DavMail creates every
event this way). Exchange builds the appointment from it — summary, description, location, UID, times in
the event's time zone, all-day, recurrence with its cancelled and modified occurrences, organizer and
attendees, class, categories, reminder, busy status — and then applies the other elements of the
request (create_item in item_ops.py calls :func:`import_mime` before ``apply_item``).

Times: a DATE-TIME ending in ``Z`` is UTC even when a TZID parameter is present (RFC 5545 §3.3.5 form 2
has no TZID; DavMail adds one); a TZID naming a Windows zone (as Exchange and DavMail write them) or an
IANA zone is used as such; an unknown TZID falls back to the request's zone, as a custom VTIMEZONE is
not matched here. Content lines are parsed here (RFC 5545 §3.1, §3.2) rather than with ``icalendar``,
which drops that ``Z``.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.common.ical import unescape_text
from gateway.common.timezones import iana_to_windows
from gateway.ews.emulator.model import Attendee, CalendarItem, StoreError, zone_for, zone_known
from gateway.ews.emulator.recurrence import Instance, instances
from gateway.ews.emulator.rrule import from_rrule
from gateway.ews.emulator.series import make_occurrence, normalise_series

_PARTSTAT = {"ACCEPTED": "Accept", "TENTATIVE": "Tentative", "DECLINED": "Decline"}
_MY_RESPONSE = {**_PARTSTAT, "NEEDS-ACTION": "NoResponseReceived"}
_BUSY = {
    "FREE": "Free",
    "TENTATIVE": "Tentative",
    "BUSY": "Busy",
    "OOF": "OOF",
    "WORKINGELSEWHERE": "WorkingElsewhere",
}
_CLASSES = {"PRIVATE": "Private", "CONFIDENTIAL": "Confidential"}
_PARAM = re.compile(r';([A-Za-z0-9-]+)=((?:"[^"]*"|[^";:,]*)(?:,(?:"[^"]*"|[^";:,]*))*)')


@dataclass
class Prop:
    """One content line: name, parameters (upper-case keys, unquoted values), raw value."""

    name: str
    params: dict[str, str]
    value: str

    @property
    def text(self) -> str:
        return unescape_text(self.value)


@dataclass
class Component:
    name: str
    props: list[Prop] = field(default_factory=list)
    children: list[Component] = field(default_factory=list)

    def first(self, name: str) -> Prop | None:
        return next((p for p in self.props if p.name == name), None)

    def all(self, name: str) -> list[Prop]:
        return [p for p in self.props if p.name == name]

    def walk(self, name: str) -> list[Component]:
        found = [self] if self.name == name else []
        for child in self.children:
            found += child.walk(name)
        return found


def _invalid(why: str) -> StoreError:
    return StoreError("ErrorMimeContentInvalid", f"The MIME content is not a valid iCalendar object: {why}.")


def parse_ical(text: str) -> Component:
    """The VCALENDAR of an iCalendar text (lines unfolded, parameters unquoted)."""
    lines = re.sub(r"\r?\n[ \t]", "", text).splitlines()
    stack: list[Component] = [Component("ROOT")]
    for raw in lines:
        if not raw.strip():
            continue
        head, colon, value = _split_value(raw)
        if not colon:
            raise _invalid(f"a line without a value: {raw[:40]!r}")
        name = head.split(";", 1)[0].upper()
        params = {k.upper(): v.replace('"', "") for k, v in _PARAM.findall(head[len(name) :])}
        if name == "BEGIN":
            stack.append(Component(value.strip().upper()))
        elif name == "END":
            if len(stack) < 2 or stack[-1].name != value.strip().upper():
                raise _invalid(f"END:{value} without its BEGIN")
            done = stack.pop()
            stack[-1].children.append(done)
        else:
            stack[-1].props.append(Prop(name, params, value))
    calendars = stack[0].walk("VCALENDAR")
    if len(stack) != 1 or not calendars or not calendars[0].walk("VEVENT"):
        raise _invalid("no complete VCALENDAR with a VEVENT")
    return calendars[0]


def _split_value(raw: str) -> tuple[str, str, str]:
    """Split a content line at the first colon outside a quoted parameter value."""
    quoted = False
    for index, char in enumerate(raw):
        if char == '"':
            quoted = not quoted
        elif char == ":" and not quoted:
            return raw[:index], ":", raw[index + 1 :]
    return raw, "", ""


# --- values -------------------------------------------------------------------------------------


def windows_zone(tzid: str | None) -> str | None:
    """The Windows zone a TZID names (a Windows id, or an IANA name), None if unknown."""
    if not tzid:
        return None
    if zone_known(tzid):
        return tzid
    try:
        ZoneInfo(tzid)
        return iana_to_windows(tzid)
    except (ZoneInfoNotFoundError, ValueError, KeyError):
        return None


def moment(prop: Prop, zone: ZoneInfo) -> datetime | date:
    """A DATE (as a date) or DATE-TIME (aware) value; floating times are in ``zone``."""
    value = prop.value.split(",")[0].strip().upper()
    try:
        if len(value) == 8 or prop.params.get("VALUE", "").upper() == "DATE":
            return date(int(value[:4]), int(value[4:6]), int(value[6:8]))
        parsed = datetime.strptime(value.rstrip("Z"), "%Y%m%dT%H%M%S")
    except ValueError:
        raise _invalid(f"{prop.name}:{prop.value}") from None
    if value.endswith("Z"):
        return parsed.replace(tzinfo=UTC)
    own = windows_zone(prop.params.get("TZID"))
    return parsed.replace(tzinfo=zone_for(own) if own else zone)


def _instant(value: datetime | date, zone: ZoneInfo) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime.combine(value, time(), zone).astimezone(UTC)


def _duration(text: str) -> timedelta:
    match = re.fullmatch(
        r"([+-])?P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?", text.strip()
    )
    if not match:
        raise _invalid(f"DURATION {text}")
    sign, weeks, days, hours, minutes, seconds = match.groups()
    delta = timedelta(
        weeks=int(weeks or 0),
        days=int(days or 0),
        hours=int(hours or 0),
        minutes=int(minutes or 0),
        seconds=int(seconds or 0),
    )
    return -delta if sign == "-" else delta


# --- the item -----------------------------------------------------------------------------------


def import_mime(item: CalendarItem, data: str, default_zone: str, owner: str) -> None:
    """Build ``item`` (a new, unstored item of ``owner``'s mailbox) from base64 MIME content."""
    try:
        text = base64.b64decode(data.strip(), validate=False).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise StoreError(
            "ErrorMimeContentConversionFailed", "The MIME content is not base64 UTF-8."
        ) from None
    events = parse_ical(text).walk("VEVENT")
    master = next((e for e in events if e.first("RECURRENCE-ID") is None), events[0])
    start_prop = master.first("DTSTART")
    if start_prop is None:
        raise _invalid("a VEVENT without DTSTART")
    windows = windows_zone(start_prop.params.get("TZID")) or default_zone
    item.start_tz = item.end_tz = windows
    zone = zone_for(windows)
    _times(item, master, zone)
    _properties(item, master)
    _people(item, master, owner)
    if master.first("RRULE") is not None:
        local = item.start.astimezone(zone)
        item.recurrence = from_rrule(master.first("RRULE").value, local.date(), zone, local.time())
        normalise_series(item)
        _exceptions(item, master, [e for e in events if e is not master], zone)


def _times(event: CalendarItem, source: Component, zone: ZoneInfo) -> None:
    start = moment(source.first("DTSTART"), zone)
    end_prop, duration = source.first("DTEND"), source.first("DURATION")
    if end_prop is not None:
        end = moment(end_prop, zone)
    elif duration is not None:
        end = start + _duration(duration.value)
    else:
        end = start + timedelta(days=1) if not isinstance(start, datetime) else start
    flag = source.first("X-MICROSOFT-CDO-ALLDAYEVENT")
    event.is_all_day = not isinstance(start, datetime) or (flag is not None and flag.value.upper() == "TRUE")
    event.start, event.end = _instant(start, zone), _instant(end, zone)


def _properties(event: CalendarItem, source: Component, override: bool = False) -> None:
    """The descriptive properties a VEVENT (or an override of one occurrence) carries; an override
    without an alarm keeps the series' reminder."""
    for name, attr in (
        ("SUMMARY", "subject"),
        ("DESCRIPTION", "body"),
        ("LOCATION", "location"),
        ("UID", "uid"),
    ):
        prop = source.first(name)
        if prop is not None:
            setattr(event, attr, prop.text)
    if source.first("DESCRIPTION") is not None:
        event.body_type = "Text"
    busy, transp, status = (source.first(n) for n in ("X-MICROSOFT-CDO-BUSYSTATUS", "TRANSP", "STATUS"))
    if busy is not None and busy.value.upper() in _BUSY:
        event.free_busy = _BUSY[busy.value.upper()]
    elif transp is not None and transp.value.upper() == "TRANSPARENT":
        event.free_busy = "Free"
    elif status is not None and status.value.upper() == "TENTATIVE":
        event.free_busy = "Tentative"
    klass = source.first("CLASS")
    if klass is not None:
        event.sensitivity = _CLASSES.get(klass.value.upper(), "Normal")
    categories = source.all("CATEGORIES")
    if categories:
        event.categories = [unescape_text(c) for p in categories for c in re.split(r"(?<!\\),", p.value) if c]
    alarms = [a for a in source.children if a.name == "VALARM" and a.first("TRIGGER") is not None]
    if not override:
        event.reminder_is_set = bool(alarms)
    if alarms:
        trigger = alarms[0].first("TRIGGER").value
        if not trigger.upper().startswith(("P", "-P", "+P")):
            return  # an absolute trigger: Exchange keeps its default lead time
        event.reminder_minutes = max(0, int(-_duration(trigger).total_seconds() // 60))


def _people(event: CalendarItem, source: Component, owner: str) -> None:
    organizer_prop = source.first("ORGANIZER")
    organizer = _address(organizer_prop) if organizer_prop is not None else owner
    mine = None
    for prop in source.all("ATTENDEE"):
        email = _address(prop)
        if email == owner:
            mine = prop.params.get("PARTSTAT", "NEEDS-ACTION").upper()
            if organizer == owner:
                continue
        person = Attendee(
            email, prop.params.get("CN", ""), _PARTSTAT.get(prop.params.get("PARTSTAT", ""), "Unknown")
        )
        role, kind = prop.params.get("ROLE", "").upper(), prop.params.get("CUTYPE", "").upper()
        if role == "NON-PARTICIPANT" or kind in ("RESOURCE", "ROOM"):
            event.resources.append(person)
        elif role == "OPT-PARTICIPANT":
            event.optional.append(person)
        else:
            event.required.append(person)
    if not event.is_meeting:
        return  # an ORGANIZER without attendees (DavMail adds one to every event) makes no meeting
    name = organizer_prop.params.get("CN", "") if organizer_prop is not None else ""
    event.organizer = Attendee(organizer, name)
    event.my_response_type = (
        "Organizer" if organizer == owner else _MY_RESPONSE.get(mine or "", "NoResponseReceived")
    )


def _address(prop: Prop) -> str:
    value = prop.value.strip()
    return (value[7:] if value.lower().startswith("mailto:") else value).lower()


def _exceptions(master: CalendarItem, source: Component, overrides: list[Component], zone: ZoneInfo) -> None:
    """EXDATEs become deleted occurrences, RECURRENCE-ID overrides exceptions (by original start)."""
    assert master.recurrence is not None

    def occurrence_at(value: datetime | date) -> Instance:
        wanted = _instant(value, zone)
        until = wanted + timedelta(days=2)  # an open series is never expanded further than needed
        for inst in instances(master.recurrence, master.start, master.end, zone, until=until):
            same_day = inst.start.astimezone(zone).date() == wanted.astimezone(zone).date()
            if inst.start == wanted or (master.is_all_day and same_day):
                return inst
        raise _invalid(f"{value} is not an occurrence of the series")

    for prop in source.all("EXDATE"):
        for value in prop.value.split(","):
            inst = occurrence_at(moment(Prop("EXDATE", prop.params, value), zone))
            master.deleted[inst.index] = inst.start
    for override in overrides:
        recurrence_id = override.first("RECURRENCE-ID")
        assert recurrence_id is not None
        inst = occurrence_at(moment(recurrence_id, zone))
        occurrence = make_occurrence(master, inst)
        if override.first("DTSTART") is not None:
            _times(occurrence, override, zone)
        _properties(occurrence, override, override=True)
        occurrence.uid, occurrence.item_type = master.uid, "Exception"
        master.exceptions[inst.index] = occurrence
