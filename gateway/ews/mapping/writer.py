"""CalendarItem (GetItem) → one calendar object resource's iCalendar text (RFC 5545, RFC 4791 §4.1)."""

from __future__ import annotations

from collections.abc import Container, Sequence
from datetime import UTC, datetime, timedelta, tzinfo

from exchangelib import CalendarItem, EWSTimeZone
from icalendar import vRecur

from gateway.common import ical
from gateway.common.timezones import to_utc
from gateway.ews import recurrence_map
from gateway.ews.ical_tz import iana_name, vtimezone_text
from gateway.ews.mapping.alarms import add_alarm
from gateway.ews.mapping.fingerprint import fingerprints, occurrence_key
from gateway.ews.mapping.merge import block_text, calendar_text, load, merge_event
from gateway.ews.mapping.model import PRODID
from gateway.ews.mapping.people import add_people
from gateway.ews.mapping.properties import add_text
from gateway.ews.mapping.times import all_day_dates, aware, is_utc, local_start, wall, zone_of
from gateway.ews.mapping.vevent import VALUE_DATE, VEvent


class _Writer:
    """Writes one VCALENDAR as text, collecting the VTIMEZONEs its values need."""

    def __init__(self) -> None:
        self.zones: dict[str, tuple[tzinfo, int]] = {}

    def add_time(self, event: VEvent, name: str, value: datetime, zone: tzinfo) -> None:
        """A DATE-TIME in UTC when Exchange has UTC, else local with TZID (RFC 5545 §3.3.5 forms 2/3)."""
        if is_utc(zone):
            event.add(name, ical.format_utc(to_utc(value)))
            return
        local = wall(value, zone)
        event.add(name, ical.format_local(local), (("TZID", self.tzid(zone, local.year)),))

    def tzid(self, zone: tzinfo, year: int) -> str:
        """The TZID for ``zone``; its VTIMEZONE will cover ``year`` on."""
        tzid = iana_name(zone)
        known = self.zones.get(tzid)
        self.zones[tzid] = (zone, min(year, known[1]) if known else year)
        return tzid

    def kept_tzid(self, name: str, year: int) -> str | None:
        """The TZID to write for a kept property's TZID (:mod:`.merge`), its VTIMEZONE included; None if unknown."""
        try:
            zone = EWSTimeZone(name)
        except Exception:  # noqa: BLE001 - exchangelib raises several kinds for an unknown name
            return None
        return self.tzid(zone, year)

    def timezones(self) -> list[str]:
        """The VTIMEZONE texts (cached per zone and first year), sorted by TZID."""
        return [vtimezone_text(zone, tzid, year) for tzid, (zone, year) in sorted(self.zones.items())]


def _add_period(writer: _Writer, event: VEvent, item: CalendarItem) -> None:
    """DTSTART and DTEND: DATEs for an all-day item (RFC 5545 §3.6.1), else DATE-TIMEs in its zones.

    No DTEND when the client sent none (``caldav_no_end``) and the end is still the one RFC 5545 §3.6.1
    implies; an end changed since (in Outlook) is shown."""
    open_end = bool(getattr(item, "caldav_no_end", None))
    if item.is_all_day:
        start, end = all_day_dates(item)
        event.add("DTSTART", ical.format_date(start), VALUE_DATE)
        if not (open_end and end == start + timedelta(days=1)):
            event.add("DTEND", ical.format_date(end), VALUE_DATE)
        return
    writer.add_time(event, "DTSTART", item.start, zone_of(item, "start"))
    if not (open_end and item.end == item.start):
        writer.add_time(event, "DTEND", item.end, zone_of(item, "end"))


def _add_stamps(event: VEvent, item: CalendarItem) -> None:
    """DTSTAMP, CREATED, LAST-MODIFIED (RFC 5545 §3.8.7) and SEQUENCE (§3.8.7.4) from the item's times."""
    modified = item.last_modified_time or item.datetime_created
    event.add("DTSTAMP", ical.format_utc(to_utc(modified or datetime.now(UTC))))
    if item.datetime_created:
        event.add("CREATED", ical.format_utc(to_utc(item.datetime_created)))
    if item.last_modified_time:
        event.add("LAST-MODIFIED", ical.format_utc(to_utc(item.last_modified_time)))
    if item.appointment_sequence_number is not None:
        event.add("SEQUENCE", str(int(item.appointment_sequence_number)))


def _vevent(writer: _Writer, item: CalendarItem, uid: str) -> VEvent:
    """The VEVENT of one item: a single appointment, a RecurringMaster or an Exception."""
    event = VEvent()
    event.text("UID", uid)
    _add_stamps(event, item)
    _add_period(writer, event, item)
    add_text(event, item)
    add_people(event, item)
    add_alarm(event, item)
    return event


def _add_recurrence(writer: _Writer, event: VEvent, master: CalendarItem, shown: Container[str]) -> None:
    """RRULE from the EWS recurrence (:mod:`gateway.ews.recurrence_map`) and EXDATE from its deleted
    occurrences, but those ``shown`` as the client's cancelled overrides."""
    zone = zone_of(master, "start")
    start = local_start(master)
    rule = recurrence_map.recurrence_to_rrule(master.recurrence, start)
    if "UNTIL" in rule and isinstance(start, datetime):
        rule["UNTIL"] = [to_utc(aware(rule["UNTIL"][0], zone))]  # RFC 5545 §3.3.10: UTC
    event.add("RRULE", vRecur(rule).to_ical().decode("utf-8"))
    deleted = [
        o.start
        for o in master.deleted_occurrences or ()
        if o.start is not None and occurrence_key(o.start, master) not in shown
    ]
    _add_occurrence_times(writer, event, "EXDATE", master, sorted(deleted))


def _add_occurrence_times(
    writer: _Writer, event: VEvent, name: str, master: CalendarItem, values: list
) -> None:
    """EXDATE / RECURRENCE-ID in the master's zone: dates for an all-day series."""
    if not values:
        return
    zone = zone_of(master, "start")
    if master.is_all_day:
        days = [wall(v, zone).date() if isinstance(v, datetime) else v for v in values]
        shown = days if name == "EXDATE" else days[:1]
        event.add(name, ",".join(ical.format_date(d) for d in shown), VALUE_DATE)
    elif name == "EXDATE" and not is_utc(zone):
        local = [wall(v, zone) for v in values]
        tzid = writer.tzid(zone, local[0].year)
        event.add(name, ",".join(ical.format_local(v) for v in local), (("TZID", tzid),))
    elif name == "EXDATE":
        event.add(name, ",".join(ical.format_utc(to_utc(v)) for v in values))
    else:
        writer.add_time(event, name, values[0], zone)


def _original_start(item: CalendarItem) -> datetime | None:
    """The start an Exception had in the series (its RECURRENCE-ID)."""
    return item.original_start or getattr(item, "recurrence_id", None)


def _deleted_keys(master: CalendarItem) -> list[str]:
    return [occurrence_key(o.start, master) for o in master.deleted_occurrences or () if o.start is not None]


def to_ical(
    master: CalendarItem, exceptions: Sequence[CalendarItem] = (), residual: str | None = None
) -> str:
    """One calendar object resource (RFC 4791 §4.1) for an item and its modified occurrences.

    ``master`` is a single item or a RecurringMaster (GetItem with :data:`READ_FIELDS`);
    ``exceptions`` are its Exception items (with ``original_start``). Deleted
    occurrences become EXDATE, exceptions RECURRENCE-ID VEVENTs (RFC 5545 §3.8.4.4).
    ``residual`` is what the client wrote that Exchange has no field for (:mod:`.residual`),
    merged in by :mod:`.merge`'s rules.
    The text is written directly (:mod:`gateway.common.ical`), not through icalendar objects:
    this runs for every object of every month view.
    """
    writer = _Writer()
    kept = load(residual)
    deleted = _deleted_keys(master) if kept is not None else []
    cancelled = {k: b for k, b in kept.cancelled.items() if k in deleted} if kept is not None else {}
    uid = master.uid or ""
    main = _vevent(writer, master, uid)
    if master.recurrence is not None:
        _add_recurrence(writer, main, master, cancelled)
    if kept is not None and kept.master is not None:
        merge_event(kept.master, main, master, fingerprints(master, deleted), writer.kept_tzid)
    events = [main]
    for exception in sorted(exceptions, key=lambda e: _original_start(e) or datetime.min.replace(tzinfo=UTC)):
        original = _original_start(exception)
        if original is None:
            continue  # not addressable as an occurrence: nothing a client could match it to
        event = _vevent(writer, exception, uid)
        _add_occurrence_times(writer, event, "RECURRENCE-ID", master, [original])
        block = kept.overrides.get(occurrence_key(original, master)) if kept is not None else None
        if block is not None:
            merge_event(block, event, exception, fingerprints(exception), writer.kept_tzid)
        events.append(event)
    header = ical.line("VERSION", "2.0") + ical.line("PRODID", ical.escape_text(PRODID))
    calendar = calendar_text(kept, writer.kept_tzid) if kept is not None else []
    texts = [event.render() for event in events] + [
        block_text(b, writer.kept_tzid) for b in cancelled.values()
    ]
    return ical.component("VCALENDAR", [header, *calendar, *writer.timezones(), *texts])
