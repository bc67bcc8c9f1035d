"""A calendar item's MIME content: the iCalendar object Exchange returns for ``IncludeMimeContent``.

GetItem with ``t:IncludeMimeContent`` (or ``item:MimeContent`` among AdditionalProperties) answers the
item as iCalendar, base64, in ``t:MimeContent`` before ``t:ItemId`` (ItemType's sequence). Exchange
writes it as its iCalendar converter does for Outlook: ``METHOD:PUBLISH``, one VTIMEZONE named by the
Windows zone id with yearly rules from 1601, the series (RRULE, EXDATE of deleted occurrences), its
modified occurrences as VEVENTs with RECURRENCE-ID, and the X-MICROSOFT-CDO-* properties Outlook reads
(busy status, all-day flag, instance type). DavMail reads events only this way. The reverse (an item
built from MIME, CreateItem) is in mime_import.py.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from lxml import etree

from gateway.common.ical import (
    component,
    format_date,
    format_duration,
    format_local,
    format_utc,
    line,
    text_line,
)
from gateway.common.timezones import T_NS, time_zone_definition
from gateway.ews.emulator.mapi import INSTANCE_TYPES
from gateway.ews.emulator.model import Attendee, CalendarItem
from gateway.ews.emulator.rrule import to_rrule
from gateway.ews.emulator.soap import T

PRODID = "Microsoft Exchange Server 2010"  # what Exchange 2010 to 2019 write
PARTSTAT = {
    "Accept": "ACCEPTED",
    "Organizer": "ACCEPTED",
    "Tentative": "TENTATIVE",
    "Decline": "DECLINED",
}
BUSY_STATUS = {
    "Free": "FREE",
    "Tentative": "TENTATIVE",
    "Busy": "BUSY",
    "OOF": "OOF",
    "WorkingElsewhere": "WORKINGELSEWHERE",
    "NoData": "BUSY",
}
CLASSES = {"Normal": "PUBLIC", "Personal": "PRIVATE", "Private": "PRIVATE", "Confidential": "CONFIDENTIAL"}
PRIORITIES = {"High": ("1", "2"), "Normal": ("5", "1"), "Low": ("9", "0")}  # PRIORITY, CDO-IMPORTANCE
_CODES = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def mime_content_xml(item: CalendarItem) -> etree._Element:
    """``t:MimeContent`` (base64 of the UTF-8 iCalendar text) for a response."""
    text = base64.b64encode(item_ical(item).encode("utf-8")).decode("ascii")
    return T.MimeContent(text, CharacterSet="UTF-8")


def item_ical(item: CalendarItem) -> str:
    """The iCalendar object of one item: a single event, a series with its exceptions, or one occurrence."""
    events = [_vevent(item, item)]
    events += [_vevent(exc, item) for _, exc in sorted(item.exceptions.items())]
    body = [
        line("METHOD", "PUBLISH"),
        line("PRODID", PRODID),
        line("VERSION", "2.0"),
        vtimezone(item.start_tz),
    ]
    return component("VCALENDAR", [*body, *events])


def _local(value: datetime, zone: ZoneInfo) -> str:
    return format_local(value.astimezone(zone))


def _when(name: str, value: datetime, item: CalendarItem) -> str:
    if item.is_all_day:
        return line(name, format_date(value.astimezone(item.zone).date()), [("VALUE", "DATE")])
    return line(name, _local(value, item.zone), [("TZID", item.start_tz)])


def _person(name: str, person: Attendee, role: str | None) -> str:
    params = [("CN", person.name or person.email)]
    if role is not None:
        params += [("ROLE", role), ("PARTSTAT", PARTSTAT.get(person.response_type, "NEEDS-ACTION"))]
        params.append(("RSVP", "TRUE"))
    return line(name, f"mailto:{person.email}", params)


def _vevent(event: CalendarItem, master: CalendarItem) -> str:
    lines = []
    if event.is_meeting and event.organizer is not None:
        lines.append(_person("ORGANIZER", event.organizer, None))
        for people, role in ((event.required, "REQ-PARTICIPANT"), (event.optional, "OPT-PARTICIPANT")):
            lines += [_person("ATTENDEE", a, role) for a in people]
        lines += [_person("ATTENDEE", a, "NON-PARTICIPANT") for a in event.resources]
    if event.body:
        lines.append(text_line("DESCRIPTION", event.body, [("LANGUAGE", "en-US")]))
    if event is master and event.recurrence is not None:
        lines.append(line("RRULE", to_rrule(event.recurrence, event.start, event.zone, event.is_all_day)))
        for _, original in sorted(event.deleted.items()):
            lines.append(_when("EXDATE", original, event))
    lines.append(text_line("UID", master.uid))
    if event is not master and event.original_start is not None:
        lines.append(_when("RECURRENCE-ID", event.original_start, master))
    lines.append(text_line("SUMMARY", event.subject, [("LANGUAGE", "en-US")]))
    lines += [_when("DTSTART", event.start, event), _when("DTEND", event.end, event)]
    priority, importance = PRIORITIES.get(event.importance, PRIORITIES["Normal"])
    lines += [
        line("CLASS", CLASSES.get(event.sensitivity, "PUBLIC")),
        line("PRIORITY", priority),
        line("DTSTAMP", format_utc(event.modified)),
        line("TRANSP", "TRANSPARENT" if event.free_busy == "Free" else "OPAQUE"),
        line("STATUS", _status(event)),
        line("SEQUENCE", str(event.sequence)),
    ]
    if event.location:
        lines.append(text_line("LOCATION", event.location, [("LANGUAGE", "en-US")]))
    if event.categories:
        lines.append(line("CATEGORIES", ",".join(c.replace(",", "\\,") for c in event.categories)))
    busy = BUSY_STATUS.get(event.free_busy, "BUSY")
    lines += [
        line("X-MICROSOFT-CDO-APPT-SEQUENCE", str(event.sequence)),
        line("X-MICROSOFT-CDO-BUSYSTATUS", busy),
        line("X-MICROSOFT-CDO-INTENDEDSTATUS", busy),
        line("X-MICROSOFT-CDO-ALLDAYEVENT", "TRUE" if event.is_all_day else "FALSE"),
        line("X-MICROSOFT-CDO-IMPORTANCE", importance),
        line("X-MICROSOFT-CDO-INSTTYPE", str(INSTANCE_TYPES[event.item_type])),
    ]
    if event.reminder_is_set:
        alarm = [
            line("DESCRIPTION", "REMINDER"),
            line(
                "TRIGGER", format_duration(-timedelta(minutes=event.reminder_minutes)), [("RELATED", "START")]
            ),
            line("ACTION", "DISPLAY"),
        ]
        lines.append(component("VALARM", alarm))
    return component("VEVENT", lines)


def _status(event: CalendarItem) -> str:
    if event.is_cancelled:
        return "CANCELLED"
    return "TENTATIVE" if event.free_busy == "Tentative" else "CONFIRMED"


# --- VTIMEZONE ----------------------------------------------------------------------------------


def _offset(minutes: int) -> str:
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"


def _bias_minutes(duration: str) -> int:
    """Minutes of an xs:duration such as ``-PT1H`` or ``PT5H30M``."""
    sign = -1 if duration.startswith("-") else 1
    body = duration.lstrip("-").removeprefix("PT")
    hours, _, rest = body.partition("H") if "H" in body else ("0", "", body)
    minutes = rest.removesuffix("M") or "0"
    return sign * (int(hours) * 60 + int(minutes))


def vtimezone(windows_id: str) -> str:
    """A VTIMEZONE for a Windows zone as Exchange writes it: TZID the Windows id, DTSTART in 1601 and
    one yearly RRULE per change (from the same rules as the zone's ``t:TimeZoneDefinition``)."""
    definition = time_zone_definition(windows_id, year=datetime.now(UTC).year)
    periods = {
        p.get("Id"): -_bias_minutes(p.get("Bias", "PT0M")) for p in definition.iter(f"{{{T_NS}}}Period")
    }
    standard = next(o for i, o in periods.items() if i.endswith("Standard"))
    rules = list(definition.iter(f"{{{T_NS}}}RecurringDayTransition"))
    if not rules:
        observance = [
            line("DTSTART", "16010101T000000"),
            line("TZOFFSETFROM", _offset(standard)),
            line("TZOFFSETTO", _offset(standard)),
        ]
        return component("VTIMEZONE", [line("TZID", windows_id), component("STANDARD", observance)])
    daylight = next(o for i, o in periods.items() if i.endswith("Daylight"))
    parts = [line("TZID", windows_id)]
    for name, to, frm in (("STANDARD", standard, daylight), ("DAYLIGHT", daylight, standard)):
        rule = next(r for r in rules if periods[r.findtext(f"{{{T_NS}}}To")] == to)
        clock = _bias_minutes(rule.findtext(f"{{{T_NS}}}TimeOffset"))
        ordinal = rule.findtext(f"{{{T_NS}}}Occurrence")
        day = _CODES[_DAYS.index(rule.findtext(f"{{{T_NS}}}DayOfWeek"))]
        month = rule.findtext(f"{{{T_NS}}}Month")
        observance = [
            line("DTSTART", f"16010101T{clock // 60:02d}{clock % 60:02d}00"),
            line("TZOFFSETFROM", _offset(frm)),
            line("TZOFFSETTO", _offset(to)),
            line("RRULE", f"FREQ=YEARLY;INTERVAL=1;BYDAY={ordinal}{day};BYMONTH={month}"),
        ]
        parts.append(component(name, observance))
    return component("VTIMEZONE", parts)
