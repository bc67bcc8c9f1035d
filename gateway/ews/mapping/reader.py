"""A PUT body (one calendar object resource, RFC 4791 §4.1) → unsaved CalendarItems for CreateItem/UpdateItem.

Refuses, with the CalDAV precondition (RFC 4791 §5.3.2.1), what Exchange cannot store exactly;
what no store accepts was refused by the protocol layer before (gateway.caldav.validation).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from exchangelib import CalendarItem, EWSDate, EWSTimeZone
from icalendar import Calendar, Event

from gateway.common.timezones import to_utc
from gateway.ews import recurrence_map
from gateway.ews.ical_tz import UnknownTimezoneError, resolve_tzid
from gateway.ews.mapping.alarms import read_alarm
from gateway.ews.mapping.description import read_body
from gateway.ews.mapping.model import (
    VALID_DATA,
    EventResource,
    Override,
    exchange_recurrence,
    invalid,
    only_rrule,
)
from gateway.ews.mapping.occurrences import (
    check_overrides,
    ews_occurrence,
    matching,
    moment,
    override_key,
    resolve_rids,
)
from gateway.ews.mapping.people import attendee_emails, read_people
from gateway.ews.mapping.properties import read_categories, read_free_busy, read_sensitivity
from gateway.ews.mapping.residual import capture
from gateway.ews.mapping.times import aware, local_start, wall
from gateway.ews.mapping.vevent import text_value


def _parse(text: str | bytes) -> Calendar:
    """The body's VCALENDAR; text that does not parse at all is refused as valid-calendar-data."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")  # a BOM is common in files exported on Windows
        except UnicodeDecodeError as exc:
            raise invalid("The calendar data is not UTF-8 text.", VALID_DATA, 400) from exc
    try:
        return Calendar.from_ical(text)
    except Exception as exc:  # icalendar raises ValueError and friends for any syntax error
        raise invalid(f"The calendar data is not valid iCalendar: {exc}", VALID_DATA, 400) from exc


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
        """The Exchange zone a TZID (RFC 5545 §3.2.19) and its VTIMEZONE stand for (:mod:`gateway.ews.ical_tz`)."""
        tzid = tzid.strip()
        if tzid not in self.zones:
            component = self.vtimezones.get(tzid)
            try:
                self.zones[tzid] = resolve_tzid(tzid, component)
            except UnknownTimezoneError as exc:
                if component is None:
                    raise invalid(
                        f"TZID {tzid!r} has no VTIMEZONE and names no known zone.", VALID_DATA, 400
                    ) from exc
                raise invalid(f"The VTIMEZONE {tzid!r} matches no time zone Exchange knows.") from exc
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
        raise invalid(f"{prop!r} is not a date or date-time.", VALID_DATA, 400)

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
            return wall(value, zone)
        return value  # a DATE against a timed series names that day's occurrence(s)


def _end_value(reader: _Reader, event: Event, start, zone):
    """(end, zone) from DTEND or DURATION, or the RFC 5545 §3.6.1 default when a VEVENT has neither
    (the item is then marked, ``caldav_no_end``, so that it is served back without an end)."""
    if "DTEND" in event:
        end, end_zone = reader.local(event["DTEND"])
        return end, end_zone or zone
    if "DURATION" in event:
        return start + event["DURATION"].dt, zone
    if not isinstance(start, datetime):
        return start + timedelta(days=1), zone  # RFC 5545 §3.6.1: a one-day event
    return start, zone  # RFC 5545 §3.6.1: ends where it starts


def _set_period(reader: _Reader, event: Event, item: CalendarItem) -> None:
    """Start, end, IsAllDayEvent and the start/end time zones of the item."""
    start, zone = reader.local(event["DTSTART"])
    end, end_zone = _end_value(reader, event, start, zone)
    item.caldav_no_end = int("DTEND" not in event and "DURATION" not in event)
    if isinstance(start, datetime) != isinstance(end, datetime):
        raise invalid("DTSTART and DTEND must both be dates or both date-times.")
    if end < start:
        raise invalid("DTEND is before DTSTART.")
    if isinstance(start, datetime):
        item.is_all_day = False
        item.start, item.end = aware(start, zone), aware(end, end_zone)
        item._start_timezone, item._end_timezone = zone, end_zone
        return
    item.is_all_day = True
    item.start = EWSDate.from_date(start)
    # exchangelib's all-day end date is inclusive (it adds the day back on the wire)
    item.end = EWSDate.from_date(max(end - timedelta(days=1), start))
    item._start_timezone = item._end_timezone = reader.default_zone


def _item(reader: _Reader, event: Event, uid: str) -> CalendarItem:
    """The CalendarItem (every field of WRITE_FIELDS but Recurrence) one VEVENT describes."""
    item = CalendarItem(uid=uid)
    _set_period(reader, event, item)
    item.subject = text_value(event, "SUMMARY")
    item.body = read_body(event)
    item.location = text_value(event, "LOCATION")
    item.categories = read_categories(event)
    item.sensitivity = read_sensitivity(event)
    item.legacy_free_busy_status = read_free_busy(event)
    read_people(event, item)
    read_alarm(event, item)
    return item


def _split(events: list[Event]) -> tuple[Event, list[Event]]:
    """(master, overrides): Exchange stores one series with its modified occurrences (RFC 5545 §3.8.4.4)."""
    masters = [e for e in events if "RECURRENCE-ID" not in e]
    if len(masters) != 1:
        raise invalid(
            "The body needs exactly one VEVENT without RECURRENCE-ID: Exchange stores "
            "modified occurrences only together with their series."
        )
    overrides = [e for e in events if "RECURRENCE-ID" in e]
    for override in overrides:
        if str(override["RECURRENCE-ID"].params.get("RANGE", "")).upper() == "THISANDFUTURE":
            raise invalid(
                "RECURRENCE-ID;RANGE=THISANDFUTURE has no Exchange equivalent: end the series "
                "(UNTIL) and create a new one from that occurrence instead."
            )
    return masters[0], overrides


def _recurrence(master_event: Event, item: CalendarItem):
    """The EWS recurrence of the master's one RRULE (:mod:`gateway.ews.recurrence_map`), or None."""
    if "RDATE" in master_event:
        raise invalid("RDATE (extra occurrences) has no Exchange equivalent.")
    rules = only_rrule(master_event, "series")
    if rules is None:
        return None
    start = local_start(item)
    recurrence = exchange_recurrence(rules, start, item._start_timezone)
    first = next(recurrence_map.expand(recurrence, start), None)
    if first != start:
        raise invalid(
            "DTSTART is not an occurrence of the RRULE; Exchange series start on their "
            "first occurrence (RFC 5545 §3.8.5.3 leaves this case undefined)."
        )
    return recurrence


def _occurrence_values(reader: _Reader, event: Event, name: str, master: CalendarItem) -> list:
    """EXDATE or RECURRENCE-ID values as wall-clock times in the series' zone (dates for all-day)."""
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


def _read_overrides(reader: _Reader, events: list[Event], master: CalendarItem, uid: str):
    """(overrides as (RECURRENCE-ID, item), cancelled RECURRENCE-IDs) of the RECURRENCE-ID VEVENTs."""
    overrides, cancelled = [], []
    for event in events:
        (rid,) = _occurrence_values(reader, event, "RECURRENCE-ID", master)
        if (text_value(event, "STATUS") or "").upper() == "CANCELLED":
            cancelled.append(rid)  # a cancelled occurrence is a deleted one for Exchange
            continue
        overrides.append((rid, _item(reader, event, uid)))
    return overrides, cancelled


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
    master = _item(reader, master_event, uid)
    master.recurrence = _recurrence(master_event, master)
    if override_events and master.recurrence is None:
        raise invalid("RECURRENCE-ID VEVENTs need a recurring master (RRULE).")
    start = local_start(master)
    exdates = _occurrence_values(reader, master_event, "EXDATE", master) if master.recurrence else []
    overrides, cancelled = _read_overrides(reader, override_events, master, uid)
    if master.recurrence is not None:
        overrides, cancelled = resolve_rids(master.recurrence, start, overrides, cancelled)
        # EXDATEs that name no occurrence exclude nothing (RFC 5545 §3.8.5.1); EWS would reject them.
        exdates = sorted(matching(master.recurrence, start, exdates) | set(cancelled), key=moment)
        check_overrides(overrides, cancelled, set(exdates))
    zone = master._start_timezone
    resource = EventResource(
        uid=uid,
        master=master,
        overrides=[
            Override(ews_occurrence(rid, zone), item) for rid, item in sorted(overrides, key=override_key)
        ],
        exdates=[ews_occurrence(d, zone) for d in exdates],
        organizer_email=master.organizer.email_address if master.organizer else None,
        attendee_emails=attendee_emails(master),
    )
    events = [c for c in calendar.subcomponents if c.name == "VEVENT"]
    resource.residual = capture(text, reader, resource, events, overrides, cancelled)
    return resource
