"""Every EWS field of a calendar item, declared once (types.xsd ``ItemType`` and ``CalendarItemType``).

As exchangelib declares a field on its item class, a :class:`Field` here names its element, its
FieldURI and the :class:`~gateway.ews.emulator.model.CalendarItem` attribute it holds; its class
is its type (text, boolean, date-time, attendee list, ...) and knows how to read it from a
request, write it to a response, reset it (DeleteItemField) and hand its value to a Restriction
or SortOrder. :data:`CALENDAR_ITEM_FIELDS` lists them in the schema's ``xs:sequence`` order
(ItemType's part, then CalendarItemType's): responses are written in that order, so they stay
schema-valid. The lookups the operations use are derived from that one list.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass
from datetime import UTC, tzinfo
from typing import TYPE_CHECKING

from lxml import etree

from gateway.ews.emulator.calendar_types import (
    attendees_xml,
    deleted_occurrences_xml,
    extended_xml,
    first_last_xml,
    mailbox_xml,
    modified_occurrences_xml,
    parse_attendee,
    parse_extended,
    parse_recurrence,
    parse_zone_id,
    recurrence_xml,
    time_zone_xml,
)
from gateway.ews.emulator.mapi import write_item
from gateway.ews.emulator.model import FREE_BUSY_TYPES, CalendarItem, StoreError
from gateway.ews.emulator.soap import T
from gateway.ews.emulator.xsd import fmt_bool, fmt_dt, fmt_duration, parse_bool, parse_dt

if TYPE_CHECKING:  # items.py defines the shape and builds on this module
    from gateway.ews.emulator.items import Shape

Elements = etree._Element | list[etree._Element] | None


@dataclass(frozen=True)
class Field:
    """One child element of ``t:CalendarItem``.

    Flags: ``writable`` (read from CreateItem/UpdateItem; other elements of a request are
    ignored, as Exchange ignores read-only ones), ``deletable`` (DeleteItemField resets it),
    ``required`` (DeleteItemField is refused), ``queryable`` (usable in a Restriction or
    SortOrder), ``default`` (part of the ``Default`` shape). ``compute`` derives a read-only
    value from other attributes instead of reading ``attr``.
    """

    name: str  # the element's local name in the types namespace
    uri: str  # its FieldURI ("item:…" or "calendar:…")
    attr: str = ""  # the CalendarItem attribute it holds ("" when computed)
    _: KW_ONLY
    compute: Callable[[CalendarItem], object] | None = None
    writable: bool = False
    deletable: bool = False
    required: bool = False
    queryable: bool = False
    default: bool = False

    def get(self, item: CalendarItem) -> object:
        """The field's value on ``item``: stored, or computed from other attributes."""
        return self.compute(item) if self.compute is not None else getattr(item, self.attr)

    def value(self, item: CalendarItem) -> object:
        """What a Restriction compares and a SortOrder sorts by."""
        return self.get(item)

    def empty(self) -> object:
        """The value a SetItemField starts from and a DeleteItemField leaves behind."""
        return None

    def parse(self, elem: etree._Element, current: object) -> object:
        """The value a request element carries; ``current`` is what AppendToItemField appends to."""
        raise NotImplementedError(f"{self.name} is read-only")

    def format(self, value: object) -> Elements:
        """The response element for a (non-None) value."""
        return T(self.name, str(value))

    def read(self, item: CalendarItem, elem: etree._Element, append: bool, zone: tzinfo = UTC) -> None:
        """Apply a request element (CreateItem, SetItemField, AppendToItemField) onto ``item``;
        ``zone`` is the request's zone for date-times without an offset."""
        current = getattr(item, self.attr) if append else self.empty()
        setattr(item, self.attr, self.parse(elem, current))

    def write(self, item: CalendarItem) -> Elements:
        """The response element(s) for ``item``; None when the field has no value to show."""
        value = self.get(item)
        return None if value is None else self.format(value)

    def emit(self, item: CalendarItem, shape: Shape) -> Elements:
        """:meth:`write`, if ``shape`` asks for this field."""
        return self.write(item) if shape.wants(self.uri) else None

    def delete(self, item: CalendarItem) -> None:
        """DeleteItemField. A field the store does not reset keeps its value (exchangelib deletes every
        empty field, modelled or not)."""
        if self.required:
            raise StoreError("ErrorInvalidPropertyDelete", "This property cannot be deleted.")
        if self.deletable:
            setattr(item, self.attr, self.empty())


@dataclass(frozen=True)
class TextField(Field):
    """xs:string; ``omit_empty`` leaves an empty value out of responses."""

    _: KW_ONLY
    omit_empty: bool = False

    def empty(self) -> object:
        return ""

    def parse(self, elem: etree._Element, current: object) -> object:
        return f"{current}{elem.text or ''}"

    def write(self, item: CalendarItem) -> Elements:
        return None if self.omit_empty and not self.get(item) else super().write(item)


@dataclass(frozen=True)
class ChoiceField(Field):
    """An enumeration: a value outside ``choices`` is refused (ErrorInvalidValueForProperty)."""

    _: KW_ONLY
    choices: tuple[str, ...] = ()

    def parse(self, elem: etree._Element, current: object) -> object:
        value = (elem.text or "").strip()
        if value not in self.choices:
            raise StoreError("ErrorInvalidValueForProperty", f"Invalid value for {self.name}.")
        return value


class BoolField(Field):
    """xs:boolean."""

    def parse(self, elem: etree._Element, current: object) -> object:
        return parse_bool(elem.text)

    def format(self, value: object) -> Elements:
        return T(self.name, fmt_bool(bool(value)))


class IntField(Field):
    """xs:int."""

    def empty(self) -> object:
        return 0

    def parse(self, elem: etree._Element, current: object) -> object:
        return int(elem.text or 0)


class DateTimeField(Field):
    """xs:dateTime (aware UTC in the store, written with a ``Z``). A request's value without an offset
    is a local time of the request's zone (items.apply_item says which)."""

    def parse(self, elem: etree._Element, current: object) -> object:
        return parse_dt(elem.text or "")

    def read(self, item: CalendarItem, elem: etree._Element, append: bool, zone: tzinfo = UTC) -> None:
        setattr(item, self.attr, parse_dt(elem.text or "", zone))

    def format(self, value: object) -> Elements:
        return T(self.name, fmt_dt(value))


class BodyField(TextField):
    """``BodyType``: the text and its ``BodyType`` attribute (Text or HTML)."""

    def read(self, item: CalendarItem, elem: etree._Element, append: bool, zone: tzinfo = UTC) -> None:
        super().read(item, elem, append)
        item.body_type = elem.get("BodyType", "Text")

    def write(self, item: CalendarItem) -> Elements:
        return T(self.name, item.body, BodyType=item.body_type)


class StringsField(Field):
    """``ArrayOfStringsType`` (Categories); an empty list is left out."""

    def empty(self) -> object:
        return []

    def parse(self, elem: etree._Element, current: object) -> object:
        return [*current, *[s.text or "" for s in elem]]

    def format(self, value: object) -> Elements:
        return T(self.name, *[T.String(s) for s in value]) if value else None


class AttendeesField(Field):
    """``ArrayOfAttendeesType``; an empty list is left out."""

    def empty(self) -> object:
        return []

    def parse(self, elem: etree._Element, current: object) -> object:
        return [*current, *[parse_attendee(a) for a in elem]]

    def format(self, value: object) -> Elements:
        return attendees_xml(self.name, value)


class RecipientField(Field):
    """``SingleRecipientType`` (the Organizer); restrictions compare its address."""

    def parse(self, elem: etree._Element, current: object) -> object:
        return parse_attendee(elem)

    def format(self, value: object) -> Elements:
        return T(self.name, mailbox_xml(value))

    def value(self, item: CalendarItem) -> object:
        return item.organizer.email if item.organizer else None


class RecurrenceField(Field):
    """``RecurrenceType``, written for recurring masters only (dates in the series' time zone)."""

    def parse(self, elem: etree._Element, current: object) -> object:
        return parse_recurrence(elem)

    def write(self, item: CalendarItem) -> Elements:
        if item.recurrence is None or item.item_type != "RecurringMaster":
            return None
        return recurrence_xml(item.recurrence, item.zone)


class TimeZoneField(Field):
    """``TimeZoneDefinitionType``: read by Id, written as the zone's full definition."""

    def parse(self, elem: etree._Element, current: object) -> object:
        return parse_zone_id(elem)

    def format(self, value: object) -> Elements:
        return time_zone_xml(self.name, str(value))


class MeetingTimeZoneField(TimeZoneField):
    """The Exchange 2007 form: sets both start and end zone. Never written: responses carry
    StartTimeZone and EndTimeZone instead, which exchangelib reads from Exchange 2010 on."""

    def read(self, item: CalendarItem, elem: etree._Element, append: bool, zone: tzinfo = UTC) -> None:
        item.start_tz = item.end_tz = parse_zone_id(elem)

    def write(self, item: CalendarItem) -> Elements:
        return None


class ElementField(Field):
    """A read-only element built whole by ``compute`` (ids, occurrence lists)."""

    def write(self, item: CalendarItem) -> Elements:
        return self.get(item)


class ExtendedPropertyField(Field):
    """``ExtendedPropertyType``: addressed by ExtendedFieldURI, so it has no FieldURI; a response
    carries the ones the shape names (``AdditionalProperties``), in its position of the sequence."""

    def read(self, item: CalendarItem, elem: etree._Element, append: bool, zone: tzinfo = UTC) -> None:
        write_item(item, parse_extended(elem))

    def emit(self, item: CalendarItem, shape: Shape) -> Elements:
        return extended_xml(item, shape.extended)


def _is_recurring(item: CalendarItem) -> bool:
    # Exchange reports IsRecurring for occurrences and exceptions, not for the master itself.
    return item.item_type in ("Occurrence", "Exception")


def _state(item: CalendarItem) -> int:
    # AppointmentState bit flags: 1 meeting, 2 received, 4 cancelled.
    state = 1 if item.is_meeting else 0
    if item.is_meeting and item.my_response_type != "Organizer":
        state |= 2
    return state | (4 if item.is_cancelled else 0)


def _of_master(build: Callable[[CalendarItem], Elements]) -> Callable[[CalendarItem], Elements]:
    """Only a recurring master has first and last occurrences."""
    return lambda i: build(i) if i.item_type == "RecurringMaster" else None


_SENSITIVITIES = ("Normal", "Personal", "Private", "Confidential")
_IMPORTANCES = ("Low", "Normal", "High")
_EDIT = {"writable": True, "deletable": True}  # fields a client sets and may clear again

# The start of ItemType's sequence, shared by every item type (t:CalendarItem, t:Task).
ITEM_TYPE_HEAD: tuple[Field, ...] = (
    ElementField("ParentFolderId", "item:ParentFolderId", compute=lambda i: T.ParentFolderId(Id=i.folder_id)),
    TextField("ItemClass", "item:ItemClass", compute=lambda i: i.item_class, queryable=True, required=True),
    TextField("Subject", "item:Subject", "subject", **_EDIT, queryable=True, default=True),
    ChoiceField(
        "Sensitivity",
        "item:Sensitivity",
        "sensitivity",
        choices=_SENSITIVITIES,
        writable=True,
        queryable=True,
    ),
    BodyField("Body", "item:Body", "body", **_EDIT, queryable=True),
    DateTimeField("DateTimeReceived", "item:DateTimeReceived", "created"),
    IntField("Size", "item:Size", compute=lambda i: len(i.subject) + len(i.body) + 512),
    StringsField("Categories", "item:Categories", "categories", **_EDIT, queryable=True),
    ChoiceField(
        "Importance", "item:Importance", "importance", choices=_IMPORTANCES, writable=True, queryable=True
    ),
    DateTimeField("DateTimeCreated", "item:DateTimeCreated", "created", queryable=True),
)

# ItemId is not listed: every t:CalendarItem starts with it, whatever the shape (see items.item_xml).
CALENDAR_ITEM_FIELDS: tuple[Field, ...] = (
    # -- ItemType's part of the sequence
    *ITEM_TYPE_HEAD,
    BoolField("ReminderIsSet", "item:ReminderIsSet", "reminder_is_set", writable=True),
    IntField("ReminderMinutesBeforeStart", "item:ReminderMinutesBeforeStart", "reminder_minutes", **_EDIT),
    TextField(
        "DisplayTo", "item:DisplayTo", compute=lambda i: "; ".join(a.name or a.email for a in i.required)
    ),
    BoolField("HasAttachments", "item:HasAttachments", compute=lambda i: False, default=True),
    ExtendedPropertyField("ExtendedProperty", "", writable=True),
    DateTimeField("LastModifiedTime", "item:LastModifiedTime", "modified", queryable=True),
    BoolField("IsAssociated", "item:IsAssociated", compute=lambda i: False, default=True),
    # -- CalendarItemType's part
    TextField("UID", "calendar:UID", "uid", writable=True, queryable=True, omit_empty=True),
    DateTimeField("RecurrenceId", "calendar:RecurrenceId", "original_start"),
    DateTimeField("DateTimeStamp", "calendar:DateTimeStamp", "modified"),
    DateTimeField(
        "Start", "calendar:Start", "start", writable=True, required=True, queryable=True, default=True
    ),
    DateTimeField("End", "calendar:End", "end", writable=True, required=True, queryable=True, default=True),
    DateTimeField("OriginalStart", "calendar:OriginalStart", "original_start"),
    BoolField("IsAllDayEvent", "calendar:IsAllDayEvent", "is_all_day", writable=True, queryable=True),
    ChoiceField(
        "LegacyFreeBusyStatus",
        "calendar:LegacyFreeBusyStatus",
        "free_busy",
        choices=FREE_BUSY_TYPES,
        writable=True,
        queryable=True,
        default=True,
    ),
    TextField(
        "Location", "calendar:Location", "location", **_EDIT, queryable=True, default=True, omit_empty=True
    ),
    BoolField("IsMeeting", "calendar:IsMeeting", compute=lambda i: i.is_meeting, queryable=True),
    BoolField("IsCancelled", "calendar:IsCancelled", "is_cancelled"),
    BoolField("IsRecurring", "calendar:IsRecurring", compute=_is_recurring, queryable=True),
    BoolField("MeetingRequestWasSent", "calendar:MeetingRequestWasSent", compute=lambda i: i.is_meeting),
    BoolField("IsResponseRequested", "calendar:IsResponseRequested", compute=lambda i: i.is_meeting),
    TextField("CalendarItemType", "calendar:CalendarItemType", "item_type", queryable=True, default=True),
    TextField("MyResponseType", "calendar:MyResponseType", "my_response_type"),
    RecipientField("Organizer", "calendar:Organizer", "organizer", **_EDIT, queryable=True, default=True),
    AttendeesField("RequiredAttendees", "calendar:RequiredAttendees", "required", **_EDIT),
    AttendeesField("OptionalAttendees", "calendar:OptionalAttendees", "optional", **_EDIT),
    AttendeesField("Resources", "calendar:Resources", "resources", **_EDIT),
    TextField("Duration", "calendar:Duration", compute=lambda i: fmt_duration(i.end - i.start)),
    IntField("AppointmentSequenceNumber", "calendar:AppointmentSequenceNumber", "sequence"),
    IntField("AppointmentState", "calendar:AppointmentState", compute=_state),
    RecurrenceField("Recurrence", "calendar:Recurrence", "recurrence", **_EDIT),
    ElementField(
        "FirstOccurrence", "calendar:FirstOccurrence", compute=_of_master(lambda i: first_last_xml(i, False))
    ),
    ElementField(
        "LastOccurrence", "calendar:LastOccurrence", compute=_of_master(lambda i: first_last_xml(i, True))
    ),
    ElementField("ModifiedOccurrences", "calendar:ModifiedOccurrences", compute=modified_occurrences_xml),
    ElementField("DeletedOccurrences", "calendar:DeletedOccurrences", compute=deleted_occurrences_xml),
    MeetingTimeZoneField("MeetingTimeZone", "calendar:MeetingTimeZone", "start_tz", writable=True),
    TimeZoneField("StartTimeZone", "calendar:StartTimeZone", "start_tz", writable=True),
    TimeZoneField("EndTimeZone", "calendar:EndTimeZone", "end_tz", writable=True),
)

# Derived lookups: request elements by name, FieldURIs (DeleteItemField, restrictions, shapes).
WRITABLE: dict[str, Field] = {f.name: f for f in CALENDAR_ITEM_FIELDS if f.writable}
BY_URI: dict[str, Field] = {f.uri: f for f in CALENDAR_ITEM_FIELDS if f.uri}
DEFAULT_FIELDS = frozenset(f.uri for f in CALENDAR_ITEM_FIELDS if f.default)
