"""XML (de)serialisation of calendar items (types.xsd ``CalendarItemType``).

Requests: a ``t:CalendarItem`` from CreateItem, or the one-field ``t:CalendarItem`` inside an
UpdateItem ``SetItemField``/``AppendToItemField``, is applied element by element onto a
:class:`~gateway.ews.emulator.store.CalendarItem`. Responses: elements are emitted in the
schema's ``xs:sequence`` order (ItemType's part, then CalendarItemType's), filtered by the
requested shape (``IdOnly``/``Default``/``AllProperties`` + ``AdditionalProperties``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from lxml import etree

from gateway.common.timezones import time_zone_definition
from gateway.ews.emulator.model import (
    FREE_BUSY_TYPES,
    Attendee,
    CalendarItem,
    ExtendedValue,
    StoreError,
    uri_key,
    zone_known,
)
from gateway.ews.emulator.recurrence import Recurrence, instances
from gateway.ews.emulator.series import make_occurrence
from gateway.ews.emulator.soap import T_NS, T

_PATTERN_TAGS = {
    f"{p}Recurrence": p
    for p in ("Daily", "Weekly", "AbsoluteMonthly", "RelativeMonthly", "AbsoluteYearly", "RelativeYearly")
}
_RANGE_TAGS = {"NoEndRecurrence": "NoEnd", "EndDateRecurrence": "EndDate", "NumberedRecurrence": "Numbered"}


def local(elem: etree._Element) -> str:
    """The local name of an element (namespace stripped)."""
    return etree.QName(elem).localname


def child(elem: etree._Element, name: str) -> etree._Element | None:
    """The first ``t:<name>`` child of ``elem``."""
    return elem.find(f"{{{T_NS}}}{name}")


def text(elem: etree._Element | None, name: str, default: str = "") -> str:
    """The text of the ``t:<name>`` child (``""`` if empty, ``default`` if absent)."""
    found = None if elem is None else child(elem, name)
    return found.text or "" if found is not None else default


def fmt_dt(value: datetime) -> str:
    """xs:dateTime in UTC with a ``Z``, as Exchange answers."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_dt(value: str) -> datetime:
    """xs:dateTime from a request; a value without offset is taken as UTC."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise StoreError("ErrorInvalidValueForProperty", "Invalid xs:dateTime value.") from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def parse_date(value: str) -> date:
    """xs:date, tolerating the offset suffix Exchange sometimes adds (``2024-03-01+01:00``)."""
    return date.fromisoformat(value.strip()[:10])


def parse_bool(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "1")


def fmt_bool(value: bool) -> str:
    return "true" if value else "false"


# -- requests --------------------------------------------------------------------------------------


def parse_attendee(elem: etree._Element) -> Attendee:
    """``AttendeeType`` (or a ``SingleRecipientType``'s Mailbox parent)."""
    mailbox = child(elem, "Mailbox")
    response = text(elem, "ResponseType", "Unknown")
    last = text(elem, "LastResponseTime")
    return Attendee(
        email=text(mailbox, "EmailAddress").lower(),
        name=text(mailbox, "Name"),
        response_type=response,
        last_response_time=parse_dt(last) if last else None,
    )


def parse_recurrence(elem: etree._Element) -> Recurrence:
    """``RecurrenceType``: one pattern element followed by one range element."""
    pattern_elem = next((c for c in elem if local(c) in _PATTERN_TAGS), None)
    range_elem = next((c for c in elem if local(c) in _RANGE_TAGS), None)
    if pattern_elem is None or range_elem is None:
        raise StoreError("ErrorCalendarInvalidRecurrence", "Recurrence needs a pattern and a range.")
    days = text(pattern_elem, "DaysOfWeek").split()
    rec = Recurrence(
        pattern=_PATTERN_TAGS[local(pattern_elem)],
        start_date=parse_date(text(range_elem, "StartDate")),
        interval=int(text(pattern_elem, "Interval", "1") or 1),
        days_of_week=days,
        first_day_of_week=text(pattern_elem, "FirstDayOfWeek", "Sunday"),
        day_of_month=int(text(pattern_elem, "DayOfMonth")) if text(pattern_elem, "DayOfMonth") else None,
        day_of_week_index=text(pattern_elem, "DayOfWeekIndex") or None,
        month=text(pattern_elem, "Month") or None,
        range_type=_RANGE_TAGS[local(range_elem)],
        end_date=parse_date(text(range_elem, "EndDate")) if text(range_elem, "EndDate") else None,
        number_of_occurrences=int(text(range_elem, "NumberOfOccurrences") or 0) or None,
    )
    try:
        rec.validate()
    except ValueError as exc:
        raise StoreError("ErrorCalendarInvalidRecurrence", str(exc)) from exc
    return rec


def parse_extended(elem: etree._Element) -> ExtendedValue:
    """``ExtendedPropertyType``: the URI exactly as sent plus a ``Value`` or ``Values``."""
    uri = child(elem, "ExtendedFieldURI")
    if uri is None:
        raise StoreError("ErrorInvalidExtendedProperty", "ExtendedFieldURI is missing.")
    values = child(elem, "Values")
    if values is not None:
        return ExtendedValue(tuple(uri.attrib.items()), [v.text or "" for v in values], is_array=True)
    return ExtendedValue(tuple(uri.attrib.items()), [text(elem, "Value")])


def _zone_id(elem: etree._Element) -> str:
    """The Windows id of a ``TimeZoneDefinition`` (``Id``; falls back to a known ``Name``)."""
    zone = elem.get("Id") or elem.get("Name") or ""
    if not zone_known(zone):
        raise StoreError("ErrorTimeZone", "The time zone is not recognised.")
    return zone


def _set_attendees(attr: str) -> Callable[[CalendarItem, etree._Element, bool], None]:
    def setter(item: CalendarItem, elem: etree._Element, append: bool) -> None:
        found = [parse_attendee(a) for a in elem]
        setattr(item, attr, (getattr(item, attr) if append else []) + found)

    return setter


def _set_text(attr: str) -> Callable[[CalendarItem, etree._Element, bool], None]:
    def setter(item: CalendarItem, elem: etree._Element, append: bool) -> None:
        setattr(item, attr, (getattr(item, attr) if append else "") + (elem.text or ""))

    return setter


def _set_choice(attr: str, allowed: tuple[str, ...]) -> Callable[[CalendarItem, etree._Element, bool], None]:
    def setter(item: CalendarItem, elem: etree._Element, append: bool) -> None:
        value = (elem.text or "").strip()
        if value not in allowed:
            raise StoreError("ErrorInvalidValueForProperty", f"Invalid value for {local(elem)}.")
        setattr(item, attr, value)

    return setter


def _set_body(item: CalendarItem, elem: etree._Element, append: bool) -> None:
    item.body = (item.body if append else "") + (elem.text or "")
    item.body_type = elem.get("BodyType", "Text")


def _set_categories(item: CalendarItem, elem: etree._Element, append: bool) -> None:
    item.categories = (item.categories if append else []) + [s.text or "" for s in elem]


def _set_recurrence(item: CalendarItem, elem: etree._Element, append: bool) -> None:
    item.recurrence = parse_recurrence(elem)


def _set_extended(item: CalendarItem, elem: etree._Element, append: bool) -> None:
    value = parse_extended(elem)
    item.extended[uri_key(dict(value.uri))] = value


def _set_tz(attrs: tuple[str, ...]) -> Callable[[CalendarItem, etree._Element, bool], None]:
    def setter(item: CalendarItem, elem: etree._Element, append: bool) -> None:
        for attr in attrs:
            setattr(item, attr, _zone_id(elem))

    return setter


def _set_dt(attr: str) -> Callable[[CalendarItem, etree._Element, bool], None]:
    def setter(item: CalendarItem, elem: etree._Element, append: bool) -> None:
        setattr(item, attr, parse_dt(elem.text or ""))

    return setter


def _set_bool(attr: str) -> Callable[[CalendarItem, etree._Element, bool], None]:
    def setter(item: CalendarItem, elem: etree._Element, append: bool) -> None:
        setattr(item, attr, parse_bool(elem.text))

    return setter


def _set_organizer(item: CalendarItem, elem: etree._Element, append: bool) -> None:
    item.organizer = parse_attendee(elem)


def _set_reminder(item: CalendarItem, elem: etree._Element, append: bool) -> None:
    item.reminder_minutes = int(elem.text or 0)


# Writable CalendarItem elements -> setter(item, element, append). Elements not listed (read-only
# or not modelled, e.g. MimeContent, Culture, IsResponseRequested) are accepted and ignored.
SETTERS: dict[str, Callable[[CalendarItem, etree._Element, bool], None]] = {
    "Subject": _set_text("subject"),
    "Sensitivity": _set_choice("sensitivity", ("Normal", "Personal", "Private", "Confidential")),
    "Body": _set_body,
    "Categories": _set_categories,
    "Importance": _set_choice("importance", ("Low", "Normal", "High")),
    "ReminderIsSet": _set_bool("reminder_is_set"),
    "ReminderMinutesBeforeStart": _set_reminder,
    "ExtendedProperty": _set_extended,
    "UID": _set_text("uid"),
    "Start": _set_dt("start"),
    "End": _set_dt("end"),
    "IsAllDayEvent": _set_bool("is_all_day"),
    "LegacyFreeBusyStatus": _set_choice("free_busy", FREE_BUSY_TYPES),
    "Location": _set_text("location"),
    "Organizer": _set_organizer,
    "RequiredAttendees": _set_attendees("required"),
    "OptionalAttendees": _set_attendees("optional"),
    "Resources": _set_attendees("resources"),
    "Recurrence": _set_recurrence,
    "MeetingTimeZone": _set_tz(("start_tz", "end_tz")),
    "StartTimeZone": _set_tz(("start_tz",)),
    "EndTimeZone": _set_tz(("end_tz",)),
}
# FieldURI -> what DeleteItemField resets.
DELETABLE: dict[str, Callable[[CalendarItem], None]] = {
    "item:Subject": lambda i: setattr(i, "subject", ""),
    "calendar:Organizer": lambda i: setattr(i, "organizer", None),
    "item:Body": lambda i: setattr(i, "body", ""),
    "item:Categories": lambda i: setattr(i, "categories", []),
    "calendar:Location": lambda i: setattr(i, "location", ""),
    "calendar:RequiredAttendees": lambda i: setattr(i, "required", []),
    "calendar:OptionalAttendees": lambda i: setattr(i, "optional", []),
    "calendar:Resources": lambda i: setattr(i, "resources", []),
    "calendar:Recurrence": lambda i: setattr(i, "recurrence", None),
    "item:ReminderMinutesBeforeStart": lambda i: setattr(i, "reminder_minutes", 0),
}


def apply_item(item: CalendarItem, elem: etree._Element, append: bool = False) -> None:
    """Apply every child of a request ``t:CalendarItem`` onto ``item`` (CreateItem / SetItemField)."""
    for sub in elem:
        if not isinstance(sub.tag, str):
            continue
        setter = SETTERS.get(local(sub))
        if setter is not None:
            setter(item, sub, append)
    if item.is_all_day:
        _snap_all_day(item)


def _snap_all_day(item: CalendarItem) -> None:
    # Exchange moves all-day bounds to local midnights: start back, end forward.
    zone = item.zone
    start = item.start.astimezone(zone)
    end = item.end.astimezone(zone)
    start_day = start.date()
    end_day = end.date() if end.time() == datetime.min.time() else end.date() + timedelta(days=1)
    end_day = max(end_day, start_day + timedelta(days=1))
    item.start = datetime.combine(start_day, datetime.min.time(), zone).astimezone(UTC)
    item.end = datetime.combine(end_day, datetime.min.time(), zone).astimezone(UTC)


# -- responses -------------------------------------------------------------------------------------


@dataclass
class Shape:
    """A requested ``ItemShape``: base shape plus AdditionalProperties."""

    base: str = "AllProperties"
    fields: set[str] = field(default_factory=set)
    extended: list[dict[str, str]] = field(default_factory=list)

    @classmethod
    def parse(cls, elem: etree._Element | None) -> Shape:
        """Read an ``m:ItemShape`` (``t:BaseShape`` + ``t:AdditionalProperties``); absent means IdOnly."""
        if elem is None:
            return cls("IdOnly")
        shape = cls(text(elem, "BaseShape", "IdOnly"))
        extra = child(elem, "AdditionalProperties")
        for path in extra if extra is not None else []:
            if local(path) == "FieldURI":
                shape.fields.add(path.get("FieldURI", ""))
            elif local(path) == "ExtendedFieldURI":
                shape.extended.append(dict(path.attrib))
        return shape

    def wants(self, uri: str) -> bool:
        if self.base == "AllProperties":
            return True
        return uri in self.fields or (self.base == "Default" and uri in DEFAULT_FIELDS)


DEFAULT_FIELDS = frozenset(
    {
        "item:Subject",
        "item:HasAttachments",
        "item:IsAssociated",
        "calendar:Start",
        "calendar:End",
        "calendar:LegacyFreeBusyStatus",
        "calendar:Location",
        "calendar:CalendarItemType",
        "calendar:Organizer",
    }
)


def _mailbox(att: Attendee) -> etree._Element:
    parts = [T.Name(att.name)] if att.name else []
    return T.Mailbox(*parts, T.EmailAddress(att.email), T.RoutingType("SMTP"), T.MailboxType("Mailbox"))


def _attendees(tag: str, people: list[Attendee]) -> etree._Element | None:
    if not people:
        return None
    out = []
    for att in people:
        parts = [_mailbox(att), T.ResponseType(att.response_type)]
        if att.last_response_time is not None:
            parts.append(T.LastResponseTime(fmt_dt(att.last_response_time)))
        out.append(T.Attendee(*parts))
    return getattr(T, tag)(*out)


def fmt_date(day: date, zone: ZoneInfo) -> str:
    """xs:date with the zone's offset on that day (``2026-03-10+01:00``), as Exchange writes range dates.

    exchangelib reads a date only in that form; a bare date would come back as a datetime.
    """
    offset = datetime.combine(day, datetime.min.time(), zone).utcoffset() or timedelta(0)
    if not offset:
        return f"{day.isoformat()}Z"
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{day.isoformat()}{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def recurrence_xml(rec: Recurrence, zone: ZoneInfo) -> etree._Element:
    """``RecurrenceType`` in schema order (pattern fields, then range fields); dates in ``zone``."""
    parts: list[etree._Element] = []
    if rec.pattern in ("Daily", "Weekly", "AbsoluteMonthly", "RelativeMonthly"):
        parts.append(T.Interval(str(rec.interval)))
    if rec.pattern.startswith("Relative") or rec.pattern == "Weekly":
        parts.append(T.DaysOfWeek(" ".join(rec.days_of_week)))
    if rec.pattern == "Weekly":
        parts.append(T.FirstDayOfWeek(rec.first_day_of_week))
    if rec.pattern.startswith("Relative"):
        parts.append(T.DayOfWeekIndex(rec.day_of_week_index or "First"))
    if rec.pattern.startswith("Absolute"):
        parts.append(T.DayOfMonth(str(rec.day_of_month)))
    if rec.pattern.endswith("Yearly"):
        parts.append(T.Month(rec.month or "January"))
    pattern = getattr(T, f"{rec.pattern}Recurrence")(*parts)
    range_parts = [T.StartDate(fmt_date(rec.start_date, zone))]
    if rec.range_type == "EndDate" and rec.end_date is not None:
        range_parts.append(T.EndDate(fmt_date(rec.end_date, zone)))
    if rec.range_type == "Numbered":
        range_parts.append(T.NumberOfOccurrences(str(rec.number_of_occurrences)))
    return T.Recurrence(pattern, getattr(T, f"{rec.range_type}Recurrence")(*range_parts))


def _occurrence_info(tag: str, item: CalendarItem) -> etree._Element:
    return getattr(T, tag)(
        T.ItemId(Id=item.item_id, ChangeKey=item.change_key),
        T.Start(fmt_dt(item.start)),
        T.End(fmt_dt(item.end)),
        T.OriginalStart(fmt_dt(item.original_start or item.start)),
    )


def _first_last(item: CalendarItem, last: bool) -> etree._Element | None:
    if item.recurrence is None or (last and item.recurrence.range_type == "NoEnd"):
        return None
    found = None
    for inst in instances(item.recurrence, item.start, item.end, item.zone):
        if inst.index in item.deleted:
            continue
        found = item.exceptions.get(inst.index) or make_occurrence(item, inst)
        if not last:
            break
    return _occurrence_info("LastOccurrence" if last else "FirstOccurrence", found) if found else None


def _tz(tag: str, windows_id: str) -> etree._Element:
    elem = time_zone_definition(windows_id)
    elem.tag = f"{{{T_NS}}}{tag}"
    return elem


def _extended(item: CalendarItem, wanted: list[dict[str, str]]) -> list[etree._Element]:
    out = []
    for uri in wanted:
        stored = item.extended.get(uri_key(uri))
        if stored is None:
            continue
        # Echo the URI exactly as this request spelled it.
        value = (
            T.Values(*[T.Value(v) for v in stored.values])
            if stored.is_array
            else T.Value(stored.values[0] if stored.values else "")
        )
        out.append(T.ExtendedProperty(T.ExtendedFieldURI(**uri), value))
    return out


def _is_recurring(i: CalendarItem) -> bool:
    # Exchange reports IsRecurring for occurrences and exceptions, not for the master itself.
    return i.item_type in ("Occurrence", "Exception")


Emitter = Callable[[CalendarItem], "etree._Element | list[etree._Element] | None"]
# (FieldURI, emitter) in the schema's element order: ItemType's sequence, then CalendarItemType's.
FIELDS: list[tuple[str, Emitter]] = [
    ("item:ParentFolderId", lambda i: T.ParentFolderId(Id=i.folder_id)),
    ("item:ItemClass", lambda i: T.ItemClass("IPM.Appointment")),
    ("item:Subject", lambda i: T.Subject(i.subject)),
    ("item:Sensitivity", lambda i: T.Sensitivity(i.sensitivity)),
    ("item:Body", lambda i: T.Body(i.body, BodyType=i.body_type)),
    ("item:DateTimeReceived", lambda i: T.DateTimeReceived(fmt_dt(i.created))),
    ("item:Size", lambda i: T.Size(str(len(i.subject) + len(i.body) + 512))),
    (
        "item:Categories",
        lambda i: T.Categories(*[T.String(c) for c in i.categories]) if i.categories else None,
    ),
    ("item:Importance", lambda i: T.Importance(i.importance)),
    ("item:DateTimeCreated", lambda i: T.DateTimeCreated(fmt_dt(i.created))),
    ("item:ReminderIsSet", lambda i: T.ReminderIsSet(fmt_bool(i.reminder_is_set))),
    ("item:ReminderMinutesBeforeStart", lambda i: T.ReminderMinutesBeforeStart(str(i.reminder_minutes))),
    ("item:DisplayTo", lambda i: T.DisplayTo("; ".join(a.name or a.email for a in i.required))),
    ("item:HasAttachments", lambda i: T.HasAttachments("false")),
    ("item:LastModifiedTime", lambda i: T.LastModifiedTime(fmt_dt(i.modified))),
    ("item:IsAssociated", lambda i: T.IsAssociated("false")),
    ("calendar:UID", lambda i: T.UID(i.uid) if i.uid else None),
    (
        "calendar:RecurrenceId",
        lambda i: T.RecurrenceId(fmt_dt(i.original_start)) if i.original_start else None,
    ),
    ("calendar:DateTimeStamp", lambda i: T.DateTimeStamp(fmt_dt(i.modified))),
    ("calendar:Start", lambda i: T.Start(fmt_dt(i.start))),
    ("calendar:End", lambda i: T.End(fmt_dt(i.end))),
    (
        "calendar:OriginalStart",
        lambda i: T.OriginalStart(fmt_dt(i.original_start)) if i.original_start else None,
    ),
    ("calendar:IsAllDayEvent", lambda i: T.IsAllDayEvent(fmt_bool(i.is_all_day))),
    ("calendar:LegacyFreeBusyStatus", lambda i: T.LegacyFreeBusyStatus(i.free_busy)),
    ("calendar:Location", lambda i: T.Location(i.location) if i.location else None),
    ("calendar:IsMeeting", lambda i: T.IsMeeting(fmt_bool(i.is_meeting))),
    ("calendar:IsCancelled", lambda i: T.IsCancelled(fmt_bool(i.is_cancelled))),
    ("calendar:IsRecurring", lambda i: T.IsRecurring(fmt_bool(_is_recurring(i)))),
    ("calendar:MeetingRequestWasSent", lambda i: T.MeetingRequestWasSent(fmt_bool(i.is_meeting))),
    ("calendar:IsResponseRequested", lambda i: T.IsResponseRequested(fmt_bool(i.is_meeting))),
    ("calendar:CalendarItemType", lambda i: T.CalendarItemType(i.item_type)),
    ("calendar:MyResponseType", lambda i: T.MyResponseType(i.my_response_type)),
    ("calendar:Organizer", lambda i: T.Organizer(_mailbox(i.organizer)) if i.organizer else None),
    ("calendar:RequiredAttendees", lambda i: _attendees("RequiredAttendees", i.required)),
    ("calendar:OptionalAttendees", lambda i: _attendees("OptionalAttendees", i.optional)),
    ("calendar:Resources", lambda i: _attendees("Resources", i.resources)),
    ("calendar:Duration", lambda i: T.Duration(_duration(i.end - i.start))),
    ("calendar:AppointmentSequenceNumber", lambda i: T.AppointmentSequenceNumber(str(i.sequence))),
    ("calendar:AppointmentState", lambda i: T.AppointmentState(str(_state(i)))),
    (
        "calendar:Recurrence",
        lambda i: (
            recurrence_xml(i.recurrence, i.zone)
            if i.recurrence is not None and i.item_type == "RecurringMaster"
            else None
        ),
    ),
    (
        "calendar:FirstOccurrence",
        lambda i: _first_last(i, last=False) if i.item_type == "RecurringMaster" else None,
    ),
    (
        "calendar:LastOccurrence",
        lambda i: _first_last(i, last=True) if i.item_type == "RecurringMaster" else None,
    ),
    (
        "calendar:ModifiedOccurrences",
        lambda i: (
            T.ModifiedOccurrences(
                *[_occurrence_info("Occurrence", e) for _, e in sorted(i.exceptions.items())]
            )
            if i.exceptions
            else None
        ),
    ),
    (
        "calendar:DeletedOccurrences",
        lambda i: (
            T.DeletedOccurrences(
                *[T.DeletedOccurrence(T.Start(fmt_dt(s))) for _, s in sorted(i.deleted.items())]
            )
            if i.deleted
            else None
        ),
    ),
    ("calendar:StartTimeZone", lambda i: _tz("StartTimeZone", i.start_tz)),
    ("calendar:EndTimeZone", lambda i: _tz("EndTimeZone", i.end_tz)),
]
_EXTENDED_AFTER = "item:HasAttachments"  # ExtendedProperty sits between HasAttachments and Culture


def _duration(delta: timedelta) -> str:
    """xs:duration (``PT1H30M``)."""
    minutes = int(delta.total_seconds() // 60)
    days, minutes = divmod(minutes, 1440)
    return f"P{days}DT{minutes // 60}H{minutes % 60}M" if days else f"PT{minutes // 60}H{minutes % 60}M"


def _state(item: CalendarItem) -> int:
    # AppointmentState bit flags: 1 meeting, 2 received, 4 cancelled.
    state = 1 if item.is_meeting else 0
    if item.is_meeting and item.my_response_type != "Organizer":
        state |= 2
    return state | (4 if item.is_cancelled else 0)


def item_xml(item: CalendarItem, shape: Shape) -> etree._Element:
    """A ``t:CalendarItem`` for a response, with the fields ``shape`` asks for, in schema order."""
    elem = T.CalendarItem(T.ItemId(Id=item.item_id, ChangeKey=item.change_key))
    if shape.base == "IdOnly" and not shape.fields and not shape.extended:
        return elem
    for uri, emit in FIELDS:
        if shape.wants(uri):
            _append(elem, emit(item))
        if uri == _EXTENDED_AFTER:
            _append(elem, _extended(item, shape.extended))
    return elem


def _append(parent: etree._Element, value: etree._Element | list[etree._Element] | None) -> None:
    if value is None:
        return
    for part in value if isinstance(value, list) else [value]:
        parent.append(part)
