"""exchangelib ``CalendarItem`` ⇄ iCalendar (RFC 5545) for one calendar object resource.

One resource (RFC 4791 §4.1) is one UID: a single appointment, or a recurring
master (``RRULE``, ``EXDATE``) with its modified occurrences as ``RECURRENCE-ID``
VEVENTs. :func:`to_ical` renders what GetItem returned; :func:`from_ical` turns
a PUT body into unsaved items for CreateItem/UpdateItem, refusing (with the CalDAV
precondition of RFC 4791 §5.3.2.1) what Exchange cannot store faithfully.

Choices worth knowing:
- Floating times (no TZID, no ``Z``) are read in ``default_tz``, the calendar's zone:
  Exchange has no floating time, and the calendar's zone is what the user sees.
- A TZID is kept as wall-clock time in the Exchange zone it resolves to
  (:mod:`gateway.ews.ical_tz`); a custom VTIMEZONE only picks that zone.
- Free/busy: ``X-MICROSOFT-CDO-BUSYSTATUS`` carries the exact LegacyFreeBusyStatus;
  TRANSP is TRANSPARENT for Free and WorkingElsewhere (which free/busy treats as
  free), OPAQUE otherwise. Without BUSYSTATUS: TRANSPARENT → Free,
  STATUS:TENTATIVE → Tentative, else Busy.
- Sensitivity Personal has no iCalendar class and is written as PRIVATE.
- Exchange has one reminder per item: the first VALARM that fires at or before the
  start is kept (VALARMs with ACTION:NONE, Apple's "no alarm", are ignored).
- An override with ``STATUS:CANCELLED`` is a deleted occurrence (EXDATE).
- ``RANGE=THISANDFUTURE``, RDATE, several RRULEs and rules no EWS pattern
  reproduces exactly are refused, never approximated.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from html.parser import HTMLParser
from itertools import islice

from exchangelib import CalendarItem, EWSDate, EWSDateTime, EWSTimeZone
from exchangelib.properties import Attendee, Body, HTMLBody, Mailbox
from icalendar import Alarm, Calendar, Event, vRecur

from gateway.caldav.backend import InvalidCalendarData
from gateway.common import ical
from gateway.common.timezones import to_utc
from gateway.ews import recurrence_map
from gateway.ews.ical_tz import UnknownTimezoneError, iana_name, resolve_tzid, vtimezone_text

CALDAV = "{urn:ietf:params:xml:ns:caldav}"
VALID_DATA = f"{CALDAV}valid-calendar-data"
VALID_OBJECT = f"{CALDAV}valid-calendar-object-resource"
PRODID = "-//Exchange CalDAV Gateway//EN"

READ_FIELDS: tuple[str, ...] = (
    "uid",
    "subject",
    "body",
    "location",
    "start",
    "end",
    "is_all_day",
    "legacy_free_busy_status",
    "sensitivity",
    "categories",
    "reminder_is_set",
    "reminder_minutes_before_start",
    "organizer",
    "required_attendees",
    "optional_attendees",
    "resources",
    "recurrence",
    "modified_occurrences",
    "deleted_occurrences",
    "type",
    "original_start",
    "datetime_created",
    "last_modified_time",
    "appointment_sequence_number",
    "_start_timezone",
    "_end_timezone",
)
"""CalendarItem fields to_ical reads (ItemId and ChangeKey always come with an item)."""

WRITE_FIELDS: tuple[str, ...] = (
    "subject",
    "body",
    "location",
    "start",
    "end",
    "is_all_day",
    "legacy_free_busy_status",
    "sensitivity",
    "categories",
    "reminder_is_set",
    "reminder_minutes_before_start",
    "required_attendees",
    "optional_attendees",
    "resources",
    "recurrence",
    "_start_timezone",
    "_end_timezone",
)
"""Fields from_ical sets, for UpdateItem. ``uid`` is set too but belongs to CreateItem only."""

OCCURRENCE_FIELDS: tuple[str, ...] = tuple(f for f in WRITE_FIELDS if f != "recurrence")
"""update_fields for an occurrence (an override): EWS forbids Recurrence there."""

_BUSY_TO_ICAL = {
    "Free": "FREE",
    "Tentative": "TENTATIVE",
    "Busy": "BUSY",
    "OOF": "OOF",
    "WorkingElsewhere": "WORKINGELSEWHERE",
}
_ICAL_TO_BUSY = {v: k for k, v in _BUSY_TO_ICAL.items()}
_TRANSPARENT = {"Free", "WorkingElsewhere"}
_CLASS_TO_ICAL = {
    "Normal": "PUBLIC",
    "Private": "PRIVATE",
    "Personal": "PRIVATE",
    "Confidential": "CONFIDENTIAL",
}
_ICAL_TO_CLASS = {"PUBLIC": "Normal", "PRIVATE": "Private", "CONFIDENTIAL": "Confidential"}
_RESPONSE_TO_PARTSTAT = {
    "Accept": "ACCEPTED",
    "Decline": "DECLINED",
    "Tentative": "TENTATIVE",
    "Organizer": "ACCEPTED",
    "NoResponseReceived": "NEEDS-ACTION",
    "Unknown": "NEEDS-ACTION",
}
_PARTSTAT_TO_RESPONSE = {
    "ACCEPTED": "Accept",
    "DECLINED": "Decline",
    "TENTATIVE": "Tentative",
    "NEEDS-ACTION": "NoResponseReceived",
}
_UTC_NAMES = {"UTC", "Etc/UTC", "Etc/GMT", "GMT"}


@dataclass
class Override:
    """A RECURRENCE-ID VEVENT: the occurrence that originally started at ``recurrence_id``."""

    recurrence_id: EWSDateTime | EWSDate
    item: CalendarItem


@dataclass
class EventResource:
    """One parsed calendar object resource, ready for CreateItem/UpdateItem."""

    uid: str
    master: CalendarItem
    overrides: list[Override] = field(default_factory=list)
    exdates: list[EWSDateTime | EWSDate] = field(default_factory=list)
    organizer_email: str | None = None
    attendee_emails: list[str] = field(default_factory=list)


# ======================================================================================
# EWS → iCalendar
# ======================================================================================


class _TextExtractor(HTMLParser):
    """HTML body → plain text: block elements and <br> become line breaks."""

    _BLOCKS = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in {"script", "style", "head", "title"}:
            self._skip += 1
        elif tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in {"script", "style", "head", "title"}:
            self._skip = max(0, self._skip - 1)
        elif tag in self._BLOCKS - {"br"}:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(re.sub(r"\s+", " ", data))


def html_to_text(markup: str) -> str:
    """Readable text of an HTML body (DESCRIPTION must be plain text, RFC 5545 §3.8.1.5)."""
    extractor = _TextExtractor()
    extractor.feed(markup)
    extractor.close()
    lines = [line.strip() for line in "".join(extractor.parts).split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _zone_of(item: CalendarItem, field_name: str) -> tzinfo:
    zone = getattr(item, f"_{field_name}_timezone", None)
    value = getattr(item, field_name)
    if zone is None and isinstance(value, datetime):
        zone = value.tzinfo
    return zone or EWSTimeZone("UTC")


def _wall(value: datetime, zone: tzinfo) -> datetime:
    """Naive wall-clock time of an instant in ``zone``, computed with zoneinfo:
    EWSDateTime.astimezone loses the fold of the repeated hour when DST ends."""
    key = getattr(zone, "key", None)
    plain = zoneinfo.ZoneInfo(key) if key else zone
    return datetime.fromtimestamp(value.timestamp(), tz=plain).replace(tzinfo=None)


def _is_utc(zone: tzinfo) -> bool:
    return getattr(zone, "key", None) in _UTC_NAMES or getattr(zone, "ms_id", None) == "UTC"


# Property order of icalendar's VEVENT (canonical ones first, the rest by name): unchanged output for clients.
_EVENT_ORDER = {
    name: i
    for i, name in enumerate(
        (
            "SUMMARY",
            "DTSTART",
            "DTEND",
            "DURATION",
            "DTSTAMP",
            "UID",
            "RECURRENCE-ID",
            "SEQUENCE",
            "RRULE",
            "RDATE",
            "EXDATE",
        )
    )
}
_DATE = (("VALUE", "DATE"),)


class _Event:
    """One VEVENT being written: (name, content line) pairs and its VALARM."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []
        self.alarm = ""

    def add(self, name: str, value: str, params: ical.Params = ()) -> None:
        """A property whose value is already in its value type's form (escaped, formatted)."""
        self.lines.append((name, ical.line(name, value, params)))

    def text(self, name: str, value: str, params: ical.Params = ()) -> None:
        """A TEXT property (RFC 5545 §3.3.11 escaping)."""
        self.add(name, ical.escape_text(value), params)

    def render(self) -> str:
        order = len(_EVENT_ORDER)
        self.lines.sort(
            key=lambda pair: (_EVENT_ORDER.get(pair[0], order), pair[0])
        )  # stable: ATTENDEEs keep theirs
        return ical.component("VEVENT", [*(text for _, text in self.lines), self.alarm])


class _Writer:
    """Writes one VCALENDAR as text, collecting the VTIMEZONEs its values need."""

    def __init__(self) -> None:
        self.zones: dict[str, tuple[tzinfo, int]] = {}

    def add_time(self, event: _Event, name: str, value: datetime, zone: tzinfo) -> None:
        """A DATE-TIME in UTC when Exchange has UTC, else local with TZID (RFC 5545 §3.3.5 forms 2/3)."""
        if _is_utc(zone):
            event.add(name, ical.format_utc(to_utc(value)))
            return
        local = _wall(value, zone)
        event.add(name, ical.format_local(local), (("TZID", self.tzid(zone, local.year)),))

    def tzid(self, zone: tzinfo, year: int) -> str:
        """The TZID for ``zone``; its VTIMEZONE will cover ``year`` on."""
        tzid = iana_name(zone)
        known = self.zones.get(tzid)
        self.zones[tzid] = (zone, min(year, known[1]) if known else year)
        return tzid

    def timezones(self) -> list[str]:
        """The VTIMEZONE texts (cached per zone and first year), sorted by TZID."""
        return [vtimezone_text(zone, tzid, year) for tzid, (zone, year) in sorted(self.zones.items())]


def _all_day_dates(item: CalendarItem) -> tuple[date, date]:
    """(DTSTART, exclusive DTEND) of an all-day item; exchangelib's end date is inclusive."""
    start, end = item.start, item.end
    if isinstance(start, datetime):  # not converted by exchangelib (e.g. built by hand)
        start_day = _wall(start, _zone_of(item, "start")).date()
        end_local = _wall(end, _zone_of(item, "end"))
        end_day = end_local.date() if end_local.time() == time.min else end_local.date() + timedelta(days=1)
        return start_day, max(end_day, start_day + timedelta(days=1))
    return start, max(end, start) + timedelta(days=1)


def _add_period(writer: _Writer, event: _Event, item: CalendarItem) -> None:
    if item.is_all_day:
        start, end = _all_day_dates(item)
        event.add("DTSTART", ical.format_date(start), _DATE)
        event.add("DTEND", ical.format_date(end), _DATE)
        return
    writer.add_time(event, "DTSTART", item.start, _zone_of(item, "start"))
    writer.add_time(event, "DTEND", item.end, _zone_of(item, "end"))


def _add_calendar_user(
    event: _Event, name: str, mailbox: Mailbox, params: tuple[tuple[str, str], ...]
) -> None:
    """ORGANIZER/ATTENDEE (CAL-ADDRESS, RFC 5545 §3.3.3: a URI, not escaped) with CN when Exchange has a name."""
    if mailbox.name:
        params = (("CN", mailbox.name), *params)
    event.add(name, f"mailto:{mailbox.email_address}", params)


def _add_people(event: _Event, item: CalendarItem) -> None:
    groups = (
        (item.required_attendees, (("ROLE", "REQ-PARTICIPANT"), ("CUTYPE", "INDIVIDUAL"))),
        (item.optional_attendees, (("ROLE", "OPT-PARTICIPANT"), ("CUTYPE", "INDIVIDUAL"))),
        (item.resources, (("ROLE", "NON-PARTICIPANT"), ("CUTYPE", "RESOURCE"))),
    )
    attendees = [(a, params) for people, params in groups for a in people or () if a.mailbox.email_address]
    if not attendees:
        return  # RFC 5545 §3.8.4.3: ORGANIZER only in group-scheduled components
    if item.organizer is not None and item.organizer.email_address:
        _add_calendar_user(event, "ORGANIZER", item.organizer, ())
    for attendee, params in attendees:
        partstat = _RESPONSE_TO_PARTSTAT.get(attendee.response_type or "Unknown", "NEEDS-ACTION")
        _add_calendar_user(event, "ATTENDEE", attendee.mailbox, (*params, ("PARTSTAT", partstat)))


def _add_alarm(event: _Event, item: CalendarItem) -> None:
    if not item.reminder_is_set or item.reminder_minutes_before_start is None:
        return
    trigger = ical.format_duration(-timedelta(minutes=item.reminder_minutes_before_start))
    lines = (
        ical.line("ACTION", "DISPLAY"),
        ical.line("DESCRIPTION", "Reminder"),
        ical.line("TRIGGER", trigger),
    )
    event.alarm = ical.component("VALARM", lines)


def _add_text(event: _Event, item: CalendarItem) -> None:
    if item.subject:
        event.text("SUMMARY", item.subject)
    if item.body:
        if isinstance(item.body, HTMLBody):
            event.text("DESCRIPTION", html_to_text(item.body))
            # Lets from_ical restore the HTML when a client sends DESCRIPTION back unchanged.
            # An X- property is TEXT unless it says otherwise (RFC 5545 §3.8.8.2): escaped as such.
            event.text("X-ALT-DESC", str(item.body), (("FMTTYPE", "text/html"),))
        else:
            event.text("DESCRIPTION", str(item.body))
    if item.location:
        event.text("LOCATION", item.location)
    categories = [c for c in item.categories or () if c]
    if categories:
        event.add("CATEGORIES", ",".join(ical.escape_text(c) for c in categories))
    event.add("CLASS", _CLASS_TO_ICAL.get(item.sensitivity or "Normal", "PUBLIC"))
    status = item.legacy_free_busy_status or "Busy"
    event.add("TRANSP", "TRANSPARENT" if status in _TRANSPARENT else "OPAQUE")
    if status in _BUSY_TO_ICAL:
        event.add("X-MICROSOFT-CDO-BUSYSTATUS", _BUSY_TO_ICAL[status])


def _add_stamps(event: _Event, item: CalendarItem) -> None:
    modified = item.last_modified_time or item.datetime_created
    event.add("DTSTAMP", ical.format_utc(to_utc(modified or datetime.now(UTC))))
    if item.datetime_created:
        event.add("CREATED", ical.format_utc(to_utc(item.datetime_created)))
    if item.last_modified_time:
        event.add("LAST-MODIFIED", ical.format_utc(to_utc(item.last_modified_time)))
    if item.appointment_sequence_number is not None:
        event.add("SEQUENCE", str(int(item.appointment_sequence_number)))


def _vevent(writer: _Writer, item: CalendarItem, uid: str) -> _Event:
    event = _Event()
    event.text("UID", uid)
    _add_stamps(event, item)
    _add_period(writer, event, item)
    _add_text(event, item)
    _add_people(event, item)
    _add_alarm(event, item)
    return event


def _local_start(item: CalendarItem) -> date | datetime:
    """The master's first start as local wall-clock (date for all-day)."""
    if item.is_all_day:
        return _all_day_dates(item)[0]
    return _wall(item.start, _zone_of(item, "start"))


def _add_recurrence(writer: _Writer, event: _Event, master: CalendarItem) -> None:
    zone = _zone_of(master, "start")
    start = _local_start(master)
    rule = recurrence_map.recurrence_to_rrule(master.recurrence, start)
    if "UNTIL" in rule and isinstance(start, datetime):
        rule["UNTIL"] = [to_utc(_aware(rule["UNTIL"][0], zone))]  # RFC 5545 §3.3.10: UTC
    event.add("RRULE", vRecur(rule).to_ical().decode("utf-8"))
    deleted = [o.start for o in master.deleted_occurrences or () if o.start is not None]
    _add_occurrence_times(writer, event, "EXDATE", master, sorted(deleted))


def _aware(local: datetime, zone: tzinfo) -> EWSDateTime:
    return EWSDateTime.from_datetime(local.replace(tzinfo=zone))


def _add_occurrence_times(
    writer: _Writer, event: _Event, name: str, master: CalendarItem, values: list
) -> None:
    """EXDATE / RECURRENCE-ID in the master's zone: dates for an all-day series."""
    if not values:
        return
    zone = _zone_of(master, "start")
    if master.is_all_day:
        days = [_wall(v, zone).date() if isinstance(v, datetime) else v for v in values]
        shown = days if name == "EXDATE" else days[:1]
        event.add(name, ",".join(ical.format_date(d) for d in shown), _DATE)
    elif name == "EXDATE" and not _is_utc(zone):
        local = [_wall(v, zone) for v in values]
        tzid = writer.tzid(zone, local[0].year)
        event.add(name, ",".join(ical.format_local(v) for v in local), (("TZID", tzid),))
    elif name == "EXDATE":
        event.add(name, ",".join(ical.format_utc(to_utc(v)) for v in values))
    else:
        writer.add_time(event, name, values[0], zone)


def _original_start(item: CalendarItem) -> datetime | None:
    return item.original_start or getattr(item, "recurrence_id", None)


def to_ical(master: CalendarItem, exceptions: Sequence[CalendarItem] = ()) -> str:
    """One calendar object resource (RFC 4791 §4.1) for an item and its modified occurrences.

    ``master`` is a single item or a RecurringMaster (GetItem with :data:`READ_FIELDS`);
    ``exceptions`` are its Exception items (with ``original_start``). Deleted
    occurrences become EXDATE, exceptions RECURRENCE-ID VEVENTs (RFC 5545 §3.8.4.4).
    The text is written directly (:mod:`gateway.common.ical`), not through icalendar objects:
    this runs for every object of every month view.
    """
    writer = _Writer()
    uid = master.uid or ""
    main = _vevent(writer, master, uid)
    if master.recurrence is not None:
        _add_recurrence(writer, main, master)
    events = [main]
    for exception in sorted(exceptions, key=lambda e: _original_start(e) or datetime.min.replace(tzinfo=UTC)):
        original = _original_start(exception)
        if original is None:
            continue  # not addressable as an occurrence: nothing a client could match it to
        event = _vevent(writer, exception, uid)
        _add_occurrence_times(writer, event, "RECURRENCE-ID", master, [original])
        events.append(event)
    header = ical.line("VERSION", "2.0") + ical.line("PRODID", ical.escape_text(PRODID))
    return ical.component("VCALENDAR", [header, *writer.timezones(), *(event.render() for event in events)])


# ======================================================================================
# iCalendar → EWS
# ======================================================================================


def _invalid(message: str, precondition: str = VALID_OBJECT, status: int = 403) -> InvalidCalendarData:
    return InvalidCalendarData(message, precondition, status)


def _parse(text: str | bytes) -> Calendar:
    """The VCALENDAR of a body; only text that does not even parse is refused here (valid-calendar-data).

    The protocol layer has refused, before any backend sees it, what RFC 4791 §5.3.2.1 forbids
    for every store (gateway.caldav.validation): this reads a VCALENDAR of VEVENTs sharing one
    UID, each with a DTSTART, every property readable.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")  # a BOM is common in files exported on Windows
        except UnicodeDecodeError as exc:
            raise _invalid("The calendar data is not UTF-8 text.", VALID_DATA, 400) from exc
    try:
        return Calendar.from_ical(text)
    except Exception as exc:  # icalendar raises ValueError and friends for any syntax error
        raise _invalid(f"The calendar data is not valid iCalendar: {exc}", VALID_DATA, 400) from exc


class _Reader:
    """Reads one VCALENDAR's VEVENTs into exchangelib objects."""

    def __init__(self, calendar: Calendar, default_tz: str) -> None:
        # keyed by stripped TZID: parsers disagree on trailing spaces ("Mitteleuropäische Zeit ")
        self.vtimezones = {str(tz["TZID"]).strip(): tz for tz in calendar.walk("VTIMEZONE") if "TZID" in tz}
        try:
            self.default_zone = resolve_tzid(default_tz)
        except UnknownTimezoneError:
            self.default_zone = EWSTimeZone("UTC")
        self.zones: dict[str, EWSTimeZone] = {}

    def zone(self, tzid: str) -> EWSTimeZone:
        tzid = tzid.strip()
        if tzid not in self.zones:
            component = self.vtimezones.get(tzid)
            try:
                self.zones[tzid] = resolve_tzid(tzid, component)
            except UnknownTimezoneError as exc:
                if component is None:
                    raise _invalid(
                        f"TZID {tzid!r} has no VTIMEZONE and names no known zone.", VALID_DATA, 400
                    ) from exc
                raise _invalid(f"The VTIMEZONE {tzid!r} matches no time zone Exchange knows.") from exc
        return self.zones[tzid]

    def local(self, prop) -> tuple[date | datetime, EWSTimeZone | None]:
        """A DATE or DATE-TIME property as (wall-clock value, zone); zone None for a DATE."""
        value = prop.dt
        if isinstance(value, datetime):
            tzid = prop.params.get("TZID")
            if tzid:  # wall-clock in the resolved zone, even if a custom VTIMEZONE's rules were sloppy
                return value.replace(tzinfo=None), self.zone(str(tzid))
            if value.tzinfo is not None:
                return to_utc(value).replace(tzinfo=None), EWSTimeZone("UTC")
            return value, self.default_zone  # floating: the calendar's zone
        if isinstance(value, date):
            return value, None
        raise _invalid(f"{prop!r} is not a date or date-time.", VALID_DATA, 400)

    def in_zone(self, prop_value, zone: EWSTimeZone, all_day: bool, tzid: str | None) -> date | datetime:
        """An EXDATE/RECURRENCE-ID value as wall-clock in the series' zone (a date for all-day series)."""
        value = prop_value
        if isinstance(value, datetime):
            if all_day:
                return value.date()  # Exchange writes midnight DATE-TIMEs for all-day series
            if tzid is not None and self.zones.get(str(tzid).strip()) is zone:
                return value.replace(tzinfo=None)
            if value.tzinfo is None:
                return value  # floating: read in the series' zone
            return _wall(value, zone)
        return value  # a DATE against a timed series names that day's occurrence(s)


def _first(event: Event, name: str):
    value = event.get(name)
    return value[0] if isinstance(value, list) else value


def _text(event: Event, name: str) -> str | None:
    value = _first(event, name)
    return str(value) if value is not None and str(value) != "" else None


def _end_value(reader: _Reader, event: Event, start, zone, is_master: bool):
    if "DTEND" in event:
        end, end_zone = reader.local(event["DTEND"])
        return end, end_zone or zone
    if "DURATION" in event:
        return start + event["DURATION"].dt, zone
    if not isinstance(start, datetime):
        return start + timedelta(days=1), zone  # RFC 5545 §3.6.1: a one-day event
    if is_master:
        raise _invalid("A timed VEVENT needs DTEND or DURATION: Exchange has no appointments without an end.")
    return start, zone  # RFC 5545 §3.6.1: ends where it starts


def _set_period(reader: _Reader, event: Event, item: CalendarItem, is_master: bool) -> None:
    start, zone = reader.local(event["DTSTART"])
    end, end_zone = _end_value(reader, event, start, zone, is_master)
    if isinstance(start, datetime) != isinstance(end, datetime):
        raise _invalid("DTSTART and DTEND must both be dates or both date-times.")
    if end < start:
        raise _invalid("DTEND is before DTSTART.")
    if isinstance(start, datetime):
        item.is_all_day = False
        item.start, item.end = _aware(start, zone), _aware(end, end_zone)
        item._start_timezone, item._end_timezone = zone, end_zone
        return
    item.is_all_day = True
    item.start = EWSDate.from_date(start)
    # exchangelib's all-day end date is inclusive (it adds the day back on the wire)
    item.end = EWSDate.from_date(max(end - timedelta(days=1), start))
    item._start_timezone = item._end_timezone = reader.default_zone


def _mailto(address) -> str | None:
    value = str(address).strip()
    if value.lower().startswith("mailto:"):
        value = value[7:]
    return value if "@" in value else None


def _mailbox(address) -> Mailbox | None:
    email = _mailto(address)
    if email is None:
        return None
    name = address.params.get("CN") if hasattr(address, "params") else None
    return Mailbox(name=str(name) if name else None, email_address=email)


def _people(event: Event, item: CalendarItem) -> None:
    required, optional, resources = [], [], []
    attendees = event.get("ATTENDEE", [])
    for address in attendees if isinstance(attendees, list) else [attendees]:
        mailbox = _mailbox(address)
        if mailbox is None:
            continue  # EWS attendees are mailboxes: an address without email cannot be stored
        params = address.params
        partstat = str(params.get("PARTSTAT", "NEEDS-ACTION")).upper()
        attendee = Attendee(mailbox=mailbox, response_type=_PARTSTAT_TO_RESPONSE.get(partstat, "Unknown"))
        if str(params.get("CUTYPE", "")).upper() in {"RESOURCE", "ROOM"}:
            resources.append(attendee)
        elif str(params.get("ROLE", "")).upper() in {"OPT-PARTICIPANT", "NON-PARTICIPANT"}:
            optional.append(attendee)
        else:
            required.append(attendee)
    item.required_attendees = required or None
    item.optional_attendees = optional or None
    item.resources = resources or None
    organizer = event.get("ORGANIZER")
    item.organizer = _mailbox(organizer) if organizer is not None else None


def _reminder_minutes(alarm: Alarm, event: Event, item: CalendarItem) -> int | None:
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


def _as_dt(value, item: CalendarItem, end: bool = False) -> datetime:
    if isinstance(value, datetime):
        return to_utc(value)
    day = value + timedelta(days=1) if end else value
    return to_utc(datetime.combine(day, time.min).replace(tzinfo=item._start_timezone))


def _alarm(event: Event, item: CalendarItem) -> None:
    item.reminder_is_set, item.reminder_minutes_before_start = False, 0
    for alarm in event.walk("VALARM"):
        if str(alarm.get("ACTION", "")).upper() == "NONE":
            continue
        minutes = _reminder_minutes(alarm, event, item)
        if minutes is not None:
            item.reminder_is_set, item.reminder_minutes_before_start = True, minutes
            return


def _categories(event: Event) -> list[str] | None:
    values = event.get("CATEGORIES", [])
    found: list[str] = []
    for prop in values if isinstance(values, list) else [values]:
        found.extend(str(c) for c in prop.cats if str(c).strip())
    return found or None


def _free_busy(event: Event) -> str:
    busy = _text(event, "X-MICROSOFT-CDO-BUSYSTATUS")
    if busy and busy.upper() in _ICAL_TO_BUSY:
        return _ICAL_TO_BUSY[busy.upper()]
    if (_text(event, "TRANSP") or "").upper() == "TRANSPARENT":
        return "Free"
    return "Tentative" if (_text(event, "STATUS") or "").upper() == "TENTATIVE" else "Busy"


def _sensitivity(event: Event) -> str:
    value = (_text(event, "CLASS") or "PUBLIC").upper()
    return _ICAL_TO_CLASS.get(value, "Private")  # RFC 5545 §3.8.1.3: unknown classes count as PRIVATE


def _body(event: Event) -> Body | None:
    description = _text(event, "DESCRIPTION")
    alt = event.get("X-ALT-DESC")
    is_html = (
        alt is not None
        and not isinstance(alt, list)
        and str(alt.params.get("FMTTYPE", "")).lower() == "text/html"
    )
    html = ical.unescape_text(str(alt)) if is_html else ""  # icalendar leaves X- values escaped
    if is_html and html_to_text(html) == (description or ""):
        return HTMLBody(html)  # the client kept our text rendering: keep Exchange's HTML
    return Body(description) if description else None


def _item(reader: _Reader, event: Event, uid: str, is_master: bool) -> CalendarItem:
    item = CalendarItem(uid=uid)
    _set_period(reader, event, item, is_master)
    item.subject = _text(event, "SUMMARY")
    item.body = _body(event)
    item.location = _text(event, "LOCATION")
    item.categories = _categories(event)
    item.sensitivity = _sensitivity(event)
    item.legacy_free_busy_status = _free_busy(event)
    _people(event, item)
    _alarm(event, item)
    return item


def _split(events: list[Event]) -> tuple[Event, list[Event]]:
    masters = [e for e in events if "RECURRENCE-ID" not in e]
    if len(masters) != 1:
        raise _invalid(
            "The body needs exactly one VEVENT without RECURRENCE-ID: Exchange stores "
            "modified occurrences only together with their series."
        )
    overrides = [e for e in events if "RECURRENCE-ID" in e]
    for override in overrides:
        if str(override["RECURRENCE-ID"].params.get("RANGE", "")).upper() == "THISANDFUTURE":
            raise _invalid(
                "RECURRENCE-ID;RANGE=THISANDFUTURE has no Exchange equivalent: end the series "
                "(UNTIL) and create a new one from that occurrence instead."
            )
    return masters[0], overrides


def _recurrence(master_event: Event, item: CalendarItem):
    rules = master_event.get("RRULE")
    if "RDATE" in master_event:
        raise _invalid("RDATE (extra occurrences) has no Exchange equivalent.")
    if rules is None:
        return None
    if isinstance(rules, list):
        if len(rules) > 1:
            raise _invalid("Exchange stores one recurrence rule per series; this VEVENT has several RRULEs.")
        rules = rules[0]
    start = _local_start(item)
    zone = item._start_timezone
    try:
        recurrence = recurrence_map.rrule_to_recurrence(rules, start, zone)
    except recurrence_map.InvalidRule as exc:
        raise _invalid(f"The RRULE is not valid: {exc}.", VALID_DATA, 400) from exc
    except recurrence_map.InexpressibleRule as exc:
        raise _invalid(f"Exchange cannot store this RRULE exactly: {exc}.") from exc
    first = next(recurrence_map.expand(recurrence, start), None)
    if first != start:
        raise _invalid(
            "DTSTART is not an occurrence of the RRULE; Exchange series start on their "
            "first occurrence (RFC 5545 §3.8.5.3 leaves this case undefined)."
        )
    return recurrence


def _occurrence_values(reader: _Reader, event: Event, name: str, master: CalendarItem) -> list:
    props = event.get(name, [])
    zone = master._start_timezone
    values = []
    for prop in props if isinstance(props, list) else [props]:
        tzid = prop.params.get("TZID")
        if tzid:
            reader.zone(str(tzid))
        entries = [prop] if name == "RECURRENCE-ID" else prop.dts
        values.extend(reader.in_zone(entry.dt, zone, master.is_all_day, tzid) for entry in entries)
    return values


def _ews_occurrence(local: date | datetime, zone: EWSTimeZone) -> EWSDateTime | EWSDate:
    return _aware(local, zone) if isinstance(local, datetime) else EWSDate.from_date(local)


def _moment(value: date | datetime) -> datetime:
    """Orders dates among date-times: a DATE stands for its whole day."""
    return value if isinstance(value, datetime) else datetime.combine(value, time.max)


def _series_through(recurrence, start, last) -> list:
    """The series' local occurrence starts up to ``last``, at most MAX_SCAN of them
    (so an EXDATE or RECURRENCE-ID centuries away cannot make a request expand for long)."""
    found = []
    for occurrence in islice(recurrence_map.expand(recurrence, start), recurrence_map.MAX_SCAN):
        if _moment(occurrence) > _moment(last):
            break
        found.append(occurrence)
    return found


def _matching(recurrence, start, wanted: Iterable) -> set:
    """The occurrences that EXDATE values name: exact starts, and for a timed series
    every occurrence on an EXDATE;VALUE=DATE day (as common expanders read it)."""
    wanted = set(wanted)
    if not wanted:
        return set()
    series = _series_through(recurrence, start, max(wanted, key=_moment))
    return {o for o in series if o in wanted or (isinstance(o, datetime) and o.date() in wanted)}


def _resolve_rids(recurrence, start, overrides: list, cancelled: list) -> tuple[list, list]:
    """Each RECURRENCE-ID as the occurrence it names (RFC 5545 §3.8.4.4).

    Exchange 2010 writes some RECURRENCE-IDs of timed series as midnight of the
    occurrence's day, and some clients as a DATE: such a value names the series'
    only occurrence that day.
    """
    rids = [rid for rid, _ in overrides] + cancelled
    if not rids:
        return overrides, cancelled
    series = _series_through(recurrence, start, _moment(max(rids, key=_moment)) + timedelta(days=1))
    exact, by_day = set(series), {}
    for occurrence in series:
        if isinstance(occurrence, datetime):
            by_day.setdefault(occurrence.date(), []).append(occurrence)

    def resolve(rid):
        if rid in exact:
            return rid
        day = rid.date() if isinstance(rid, datetime) and rid.time() == time.min else rid
        same_day = by_day.get(day, []) if not isinstance(day, datetime) else []
        if len(same_day) == 1:
            return same_day[0]
        raise _invalid(f"RECURRENCE-ID {rid} is not an occurrence of the series.")

    return [(resolve(rid), item) for rid, item in overrides], [resolve(rid) for rid in cancelled]


def from_ical(text: str | bytes, *, default_tz: str = "UTC") -> EventResource:
    """Parse one calendar object resource (RFC 4791 §4.1) for CreateItem/UpdateItem.

    ``text`` passed the protocol layer's checks (gateway.caldav.validation: RFC 4791 §4.1 and
    §5.3.2.1 for every store). Raises :class:`InvalidCalendarData` naming the CalDAV precondition:
    ``valid-calendar-data`` (400) for text, rules or TZIDs that cannot be read,
    ``valid-calendar-object-resource`` for content Exchange cannot store exactly. Floating
    times are read in ``default_tz``.
    """
    calendar = _parse(text)
    reader = _Reader(calendar, default_tz)
    master_event, override_events = _split([c for c in calendar.subcomponents if c.name == "VEVENT"])
    uid = str(master_event["UID"]).strip()
    master = _item(reader, master_event, uid, is_master=True)
    master.recurrence = _recurrence(master_event, master)
    if override_events and master.recurrence is None:
        raise _invalid("RECURRENCE-ID VEVENTs need a recurring master (RRULE).")
    start = _local_start(master)
    exdates = _occurrence_values(reader, master_event, "EXDATE", master) if master.recurrence else []
    overrides, cancelled = _read_overrides(reader, override_events, master, uid)
    if master.recurrence is not None:
        overrides, cancelled = _resolve_rids(master.recurrence, start, overrides, cancelled)
        # EXDATEs that name no occurrence exclude nothing (RFC 5545 §3.8.5.1); EWS would reject them.
        exdates = sorted(_matching(master.recurrence, start, exdates) | set(cancelled), key=_moment)
        _check_overrides(overrides, cancelled, set(exdates))
    zone = master._start_timezone
    return EventResource(
        uid=uid,
        master=master,
        overrides=[Override(_ews_occurrence(rid, zone), item) for rid, item in sorted(overrides, key=_key)],
        exdates=[_ews_occurrence(d, zone) for d in exdates],
        organizer_email=master.organizer.email_address if master.organizer else None,
        attendee_emails=_attendee_emails(master),
    )


def _key(pair: tuple) -> tuple:
    value = pair[0]
    return (value if isinstance(value, datetime) else datetime.combine(value, time.min),)


def _read_overrides(reader: _Reader, events: list[Event], master: CalendarItem, uid: str):
    overrides, cancelled = [], []
    for event in events:
        (rid,) = _occurrence_values(reader, event, "RECURRENCE-ID", master)
        if (_text(event, "STATUS") or "").upper() == "CANCELLED":
            cancelled.append(rid)  # a cancelled occurrence is a deleted one for Exchange
            continue
        overrides.append((rid, _item(reader, event, uid, is_master=False)))
    return overrides, cancelled


def _check_overrides(overrides: list, cancelled: list, exdates: set) -> None:
    rids = [rid for rid, _ in overrides] + cancelled
    if len(set(rids)) != len(rids):
        raise _invalid("Two VEVENTs override the same occurrence.")
    both = {rid for rid, _ in overrides} & exdates
    if both:
        raise _invalid(f"The occurrence {min(both)} is both excluded (EXDATE) and overridden.")


def _attendee_emails(item: CalendarItem) -> list[str]:
    people = [*(item.required_attendees or ()), *(item.optional_attendees or ()), *(item.resources or ())]
    return [a.mailbox.email_address for a in people]


def occurrence_index(master: CalendarItem, recurrence_id: datetime | date) -> int | None:
    """1-based EWS instance index (OccurrenceItemId/InstanceIndex) of the occurrence
    whose original start is ``recurrence_id``; None when it is not an occurrence.

    Expands the master's EWS recurrence in its own zone, the way Exchange numbers
    occurrences (deleted ones keep their index).
    """
    if master.recurrence is None:
        return None
    start = _local_start(master)
    zone = _zone_of(master, "start")
    if master.is_all_day:
        target = _wall(recurrence_id, zone).date() if isinstance(recurrence_id, datetime) else recurrence_id
    elif isinstance(recurrence_id, datetime):
        target = _wall(recurrence_id, zone)
    else:
        return None
    occurrences = islice(recurrence_map.expand(master.recurrence, start), recurrence_map.MAX_SCAN)
    for index, occurrence in enumerate(occurrences, start=1):
        if occurrence == target:
            return index
        if occurrence > target:
            return None
    return None
