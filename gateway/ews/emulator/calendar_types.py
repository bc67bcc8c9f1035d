"""The complex types inside a ``t:CalendarItem`` (types.xsd), read from requests and written to responses.

``AttendeeType`` and ``EmailAddressType`` (organizer, attendees), ``RecurrenceType``,
``ExtendedPropertyType``, ``OccurrenceInfoType`` (first/last/modified occurrences) and the
``TimeZoneDefinitionType`` of StartTimeZone/EndTimeZone.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from lxml import etree

from gateway.common.timezones import time_zone_definition
from gateway.ews.emulator.mapi import extended_property_xml, item_value
from gateway.ews.emulator.model import Attendee, CalendarItem, ExtendedValue, StoreError, zone_known
from gateway.ews.emulator.recurrence import Recurrence, instances
from gateway.ews.emulator.series import make_occurrence
from gateway.ews.emulator.soap import T_NS, T
from gateway.ews.emulator.xsd import child, fmt_date, fmt_dt, local, parse_date, parse_dt, text

_PATTERN_TAGS = {
    f"{p}Recurrence": p
    for p in ("Daily", "Weekly", "AbsoluteMonthly", "RelativeMonthly", "AbsoluteYearly", "RelativeYearly")
}
_RANGE_TAGS = {"NoEndRecurrence": "NoEnd", "EndDateRecurrence": "EndDate", "NumberedRecurrence": "Numbered"}

# -- AttendeeType / EmailAddressType ------------------------------------------------------------------


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


def mailbox_xml(att: Attendee) -> etree._Element:
    """``t:Mailbox`` (EmailAddressType) of an attendee or organizer."""
    parts = [T.Name(att.name)] if att.name else []
    return T.Mailbox(*parts, T.EmailAddress(att.email), T.RoutingType("SMTP"), T.MailboxType("Mailbox"))


def attendees_xml(tag: str, people: list[Attendee]) -> etree._Element | None:
    """``t:<tag>`` (ArrayOfAttendeesType) of ``t:Attendee``; None when there is nobody."""
    if not people:
        return None
    out = []
    for att in people:
        parts = [mailbox_xml(att), T.ResponseType(att.response_type)]
        if att.last_response_time is not None:
            parts.append(T.LastResponseTime(fmt_dt(att.last_response_time)))
        out.append(T.Attendee(*parts))
    return T(tag, *out)


# -- RecurrenceType -----------------------------------------------------------------------------------


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
    pattern = T(f"{rec.pattern}Recurrence", *parts)
    range_parts = [T.StartDate(fmt_date(rec.start_date, zone))]
    if rec.range_type == "EndDate" and rec.end_date is not None:
        range_parts.append(T.EndDate(fmt_date(rec.end_date, zone)))
    if rec.range_type == "Numbered":
        range_parts.append(T.NumberOfOccurrences(str(rec.number_of_occurrences)))
    return T.Recurrence(pattern, T(f"{rec.range_type}Recurrence", *range_parts))


# -- ExtendedPropertyType -----------------------------------------------------------------------------


def parse_extended(elem: etree._Element) -> ExtendedValue:
    """``ExtendedPropertyType``: the URI exactly as sent plus a ``Value`` or ``Values``."""
    uri = child(elem, "ExtendedFieldURI")
    if uri is None:
        raise StoreError("ErrorInvalidExtendedProperty", "ExtendedFieldURI is missing.")
    values = child(elem, "Values")
    if values is not None:
        return ExtendedValue(tuple(uri.attrib.items()), [v.text or "" for v in values], is_array=True)
    return ExtendedValue(tuple(uri.attrib.items()), [text(elem, "Value")])


def extended_xml(item: CalendarItem, wanted: list[dict[str, str]]) -> list[etree._Element]:
    """The ``t:ExtendedProperty`` elements of ``item`` that a shape asks for, in the order asked.

    Properties Exchange maintains (mapi.py) come from the item's fields; others as a client stored them.
    """
    out = []
    for uri in wanted:
        value = item_value(item, uri)
        if value is not None:
            out.append(extended_property_xml(uri, value))  # the URI exactly as this request spelled it
    return out


# -- OccurrenceInfoType and DeletedOccurrenceInfoType ------------------------------------------------


def occurrence_info_xml(tag: str, item: CalendarItem) -> etree._Element:
    """``t:<tag>`` (OccurrenceInfoType) of an occurrence or exception."""
    return T(
        tag,
        T.ItemId(Id=item.item_id, ChangeKey=item.change_key),
        T.Start(fmt_dt(item.start)),
        T.End(fmt_dt(item.end)),
        T.OriginalStart(fmt_dt(item.original_start or item.start)),
    )


def first_last_xml(item: CalendarItem, last: bool) -> etree._Element | None:
    """``t:FirstOccurrence`` / ``t:LastOccurrence`` of a master (none for the last of an endless series)."""
    if item.recurrence is None or (last and item.recurrence.range_type == "NoEnd"):
        return None
    found = None
    for inst in instances(item.recurrence, item.start, item.end, item.zone):
        if inst.index in item.deleted:
            continue
        found = item.exceptions.get(inst.index) or make_occurrence(item, inst)
        if not last:
            break
    return occurrence_info_xml("LastOccurrence" if last else "FirstOccurrence", found) if found else None


def modified_occurrences_xml(item: CalendarItem) -> etree._Element | None:
    """``t:ModifiedOccurrences``: the master's exceptions in instance order."""
    if not item.exceptions:
        return None
    return T.ModifiedOccurrences(
        *[occurrence_info_xml("Occurrence", e) for _, e in sorted(item.exceptions.items())]
    )


def deleted_occurrences_xml(item: CalendarItem) -> etree._Element | None:
    """``t:DeletedOccurrences``: the original starts of the master's deleted occurrences."""
    if not item.deleted:
        return None
    return T.DeletedOccurrences(
        *[T.DeletedOccurrence(T.Start(fmt_dt(s))) for _, s in sorted(item.deleted.items())]
    )


# -- TimeZoneDefinitionType --------------------------------------------------------------------------


def parse_zone_id(elem: etree._Element) -> str:
    """The Windows id of a ``TimeZoneDefinition`` (``Id``; falls back to a known ``Name``)."""
    zone = elem.get("Id") or elem.get("Name") or ""
    if not zone_known(zone):
        raise StoreError("ErrorTimeZone", "The time zone is not recognised.")
    return zone


def time_zone_xml(tag: str, windows_id: str) -> etree._Element:
    """``t:<tag>`` holding the full definition of a Windows time zone."""
    elem = time_zone_definition(windows_id)
    elem.tag = f"{{{T_NS}}}{tag}"
    return elem
