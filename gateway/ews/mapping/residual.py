"""The residual: what a PUT body says that Exchange has no field for, kept with the item.

What EWS has a field for is mapped (:mod:`.reader`). Everything else a client wrote is kept, as the
client wrote it, in one iCalendar text stored on the series master (or single item) in the named
property ``CalDAVResidual`` (:mod:`gateway.ews.exchange`), and merged back on read (:mod:`.merge`),
so a GET returns what the client PUT:

- of the VCALENDAR: every property but PRODID, VERSION, CALSCALE (the gateway writes its own) and
  METHOD (RFC 4791 §4.1 forbids it in a stored resource); VTIMEZONEs are regenerated;
- of each VEVENT (master and overrides): every property EWS has no field for (X- properties,
  RELATED-TO, URL, GEO, COMMENT, CONTACT, RESOURCES, ATTACH, COLOR, CONFERENCE, STATUS, PRIORITY, …),
  every VALARM (with the one Exchange holds as its reminder marked) and any other sub-component;
  SEQUENCE; the parameters of SUMMARY, DESCRIPTION and LOCATION (LANGUAGE, ALTREP); how the mapped
  ones were written (CLASS, TRANSP, X-MICROSOFT-CDO-BUSYSTATUS, CATEGORIES, RRULE, ORGANIZER and
  ATTENDEE with all their parameters, DTSTAMP, CREATED, LAST-MODIFIED, DURATION instead of DTEND,
  or their absence); EXDATE values that name no occurrence (Exchange cannot delete those);
- overrides with STATUS:CANCELLED, which Exchange stores as deleted occurrences, whole.

Each kept VEVENT records the digests of the mapped fields it was written with (:mod:`.fingerprint`),
so that a change made in Outlook is recognised on read. The rules for that case are :mod:`.merge`'s.
A TZID parameter of a kept property is renamed to the name the gateway gives the zone it resolves
to, whose VTIMEZONE the gateway writes. A second SUMMARY, DESCRIPTION or LOCATION in one VEVENT
(RFC 5545 §3.6.1 allows one) is not kept. The residual is capped at :data:`MAX_BYTES`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import date, datetime

from exchangelib import CalendarItem, EWSTimeZone
from exchangelib.properties import HTMLBody
from icalendar import Event

from gateway.caldav.backend import InvalidCalendarData
from gateway.ews.ical_tz import iana_name
from gateway.ews.mapping import content
from gateway.ews.mapping.alarms import mapped_alarm
from gateway.ews.mapping.content import Block, Line
from gateway.ews.mapping.fingerprint import fingerprints, occurrence_key
from gateway.ews.mapping.model import EventResource, invalid
from gateway.ews.mapping.occurrences import ews_occurrence, matching
from gateway.ews.mapping.times import local_start
from gateway.ews.mapping.vevent import text_value

STATE = "X-CALDAV-GATEWAY-STATE"  # the digests and markers of one kept VEVENT; never shown to clients
FORMAT = "1"
MAX_BYTES = 64 * 1024
"""The largest residual kept (UTF-8). Beyond it the client's ORGANIZER/ATTENDEE lines are given up
(Exchange's are shown); a body whose unmapped properties alone exceed it is refused."""

_NOT_KEPT_IN_CALENDAR = {"PRODID", "VERSION", "CALSCALE", "METHOD"}
_RENDERED = {"UID", "DTSTART", "DTEND", "RECURRENCE-ID", "RDATE"}  # always written from Exchange
TEXT_GROUPS = ("SUMMARY", "DESCRIPTION", "LOCATION")

GROUP_OF = {
    "SUMMARY": "SUMMARY",
    "DESCRIPTION": "DESCRIPTION",
    "LOCATION": "LOCATION",
    "DURATION": "TIME",
    "RRULE": "RRULE",
    "CLASS": "CLASS",
    "TRANSP": "BUSY",
    "X-MICROSOFT-CDO-BUSYSTATUS": "BUSY",
    "CATEGORIES": "CATEGORIES",
    "ORGANIZER": "PEOPLE",
    "ATTENDEE": "PEOPLE",
    "DTSTAMP": "STAMPS",
    "CREATED": "STAMPS",
    "LAST-MODIFIED": "STAMPS",
}
"""Kept lines that say how a mapped property was written: shown only while its fields are unchanged."""

_TIED = {
    "X-ALT-DESC": ("DESCRIPTION",),
    "X-APPLE-STRUCTURED-LOCATION": ("LOCATION",),
    "GEO": ("LOCATION",),
    "X-MICROSOFT-LOCATIONDISPLAYNAME": ("LOCATION",),
    "X-MICROSOFT-LOCATIONS": ("LOCATION",),
    "X-MICROSOFT-CDO-ALLDAYEVENT": ("TIME",),
    "EXDATE": ("TIME", "RRULE"),
    "X-MOZ-LASTACK": ("ALARM",),
}
_ALARM_PREFIX = "X-MOZ-SNOOZE-TIME"  # Thunderbird: X-MOZ-SNOOZE-TIME, X-MOZ-SNOOZE-TIME-<occurrence>


def tied_groups(key: str) -> tuple[str, ...]:
    """The mapped groups a kept property describes: it is dropped when Outlook changed one of them."""
    if key.startswith(_ALARM_PREFIX):
        return ("ALARM",)
    return _TIED.get(key, ())


def exchange_tzid(zone: EWSTimeZone) -> str:
    """The TZID the gateway writes for ``zone`` once Exchange stored it (a Windows id read back)."""
    try:
        return EWSTimeZone.from_ms_id(zone.ms_id).key
    except Exception:  # noqa: BLE001 - a zone without a Windows id keeps its own name
        return iana_name(zone)


def is_cancelled(event: Event) -> bool:
    """An override with STATUS:CANCELLED: a deleted occurrence for Exchange (RFC 5545 §3.8.1.11)."""
    return (text_value(event, "STATUS") or "").upper() == "CANCELLED"


class _Capture:
    """Builds the residual of one body from its raw text and what the reader made of it."""

    def __init__(self, reader, resource: EventResource) -> None:
        self.reader = reader
        self.master = resource.master
        self.zone = resource.master._start_timezone

    def renamed(self, line: Line) -> Line:
        tzid = line.param("TZID")
        if tzid is None:
            return line
        try:
            zone = self.reader.zone(tzid)
        except InvalidCalendarData:
            return line  # a kept property naming a zone nobody knows keeps its name
        return line.with_param("TZID", exchange_tzid(zone))

    def renamed_block(self, block: Block) -> Block:
        return Block(
            block.name,
            [self.renamed(line) for line in block.lines],
            [self.renamed_block(b) for b in block.blocks],
        )

    def key(self, rid: date | datetime) -> str:
        return occurrence_key(ews_occurrence(rid, self.zone), self.master)

    def unmatched_exdates(self, lines: list[Line], event: Event) -> Iterator[Line]:
        """EXDATE values that name no occurrence (RFC 5545 §3.8.5.1: they exclude nothing), as written."""
        props = event.get("EXDATE", [])
        props = props if isinstance(props, list) else [props]
        recurrence = self.master.recurrence
        if recurrence is None or len(props) != len(lines):
            yield from (self.renamed(line) for line in lines)  # no series: nothing is excluded
            return
        parsed = []
        for line, prop in zip(lines, props, strict=True):
            tzid = prop.params.get("TZID")
            if tzid:
                self.reader.zone(str(tzid))
            values = [self.reader.in_zone(d.dt, self.zone, self.master.is_all_day, tzid) for d in prop.dts]
            parsed.append((line, values))
        hit = matching(recurrence, local_start(self.master), [v for _, values in parsed for v in values])
        days = {o.date() for o in hit if isinstance(o, datetime)}
        for line, values in parsed:
            raw = line.value.split(",")
            if len(raw) != len(values):
                continue
            left = [text for text, v in zip(raw, values, strict=True) if not _named(v, hit, days)]
            if left:
                yield self.renamed(Line(line.name, line.params, ",".join(left)))

    def event(self, raw: Block, event: Event, item: CalendarItem, deleted: list[str] | None, rid: str | None):
        """The kept part of one mapped VEVENT: its state line, kept lines and sub-components."""
        state = [f"{name}={digest}" for name, digest in fingerprints(item, deleted).items()]
        kept: list[Line] = []
        exdates: list[Line] = []
        seen: set[str] = set()
        for line in raw.lines:
            key = line.key
            if key in ("DTEND", "DURATION"):
                seen.add(key)
            if key in _RENDERED:
                continue
            if key == "SEQUENCE":
                if line.value.strip().isdigit():
                    state.append(f"SEQ={int(line.value)}")
            elif key in TEXT_GROUPS:
                if key not in seen and (line.params or not line.value):
                    kept.append(Line(line.name, line.params, ""))  # the value is Exchange's
                seen.add(key)
            elif key == "EXDATE" and rid is None:
                exdates.append(line)  # (in an override EXDATE means nothing to Exchange: kept as it is)
            elif not (key == "X-ALT-DESC" and isinstance(item.body, HTMLBody)):  # else it is the body
                kept.append(self.renamed(line))
        kept.extend(self.unmatched_exdates(exdates, event))
        if "DTEND" not in seen:
            state.append("END=DURATION" if "DURATION" in seen else "END=NONE")
        if rid is not None:
            state.append(f"RID={rid}")
        reminder = mapped_alarm(event, item)
        if reminder is not None:
            state.append(f"REMINDER={reminder}")
        lines = [Line(STATE, tuple(state), FORMAT), *kept]
        return Block(raw.name, lines, [self.renamed_block(b) for b in raw.blocks])

    def cancelled(self, raw: Block, rid: str) -> Block:
        """A cancelled override, kept whole: Exchange only knows the occurrence is gone."""
        kept = self.renamed_block(raw)
        return Block(raw.name, [Line(STATE, (f"CANCELLED={rid}",), FORMAT), *kept.lines], kept.blocks)


def _named(value: date | datetime, hit: set, days: set) -> bool:
    return value in hit or (not isinstance(value, datetime) and value in days)


def capture(
    text: str | bytes,
    reader,
    resource: EventResource,
    events: list[Event],
    overrides: Iterable[tuple[date | datetime, CalendarItem]],
    cancelled: Iterable[date | datetime],
) -> str | None:
    """The residual of a body :func:`.reader.from_ical` read (None when its text cannot be matched up).

    ``events`` are the body's VEVENTs in order, ``resource.master`` built from the one without
    RECURRENCE-ID; ``overrides`` and ``cancelled`` are the other VEVENTs' resolved occurrences, in
    their order. Raises :class:`InvalidCalendarData` when the kept part exceeds :data:`MAX_BYTES`.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8-sig")
    top = content.parse(text)
    raws = top.children("VEVENT") if top is not None else []
    if len(raws) != len(events):
        return None
    capture = _Capture(reader, resource)
    master = resource.master
    deleted = [occurrence_key(d, master) for d in resource.exdates]
    overrides, cancelled = iter(overrides), iter(cancelled)
    blocks = []
    for raw, event in zip(raws, events, strict=True):
        if "RECURRENCE-ID" not in event:
            blocks.append(capture.event(raw, event, master, deleted, None))
        elif is_cancelled(event):
            blocks.append(capture.cancelled(raw, capture.key(next(cancelled))))
        else:
            rid, item = next(overrides)
            blocks.append(capture.event(raw, event, item, None, capture.key(rid)))
    calendar = [capture.renamed(line) for line in top.lines if line.key not in _NOT_KEPT_IN_CALENDAR]
    return _bounded(Block(top.name, calendar, blocks))


def _bounded(residual: Block) -> str:
    """The residual's text; without the client's ORGANIZER/ATTENDEE lines if it is too large with them."""
    text = "\n".join(residual.unfolded())
    if len(text.encode("utf-8")) <= MAX_BYTES:
        return text
    for block in residual.blocks:
        block.lines = [
            _without_people(line) if line.key == STATE else line
            for line in block.lines
            if GROUP_OF.get(line.key) != "PEOPLE"
        ]
    text = "\n".join(residual.unfolded())
    size = len(text.encode("utf-8"))
    if size <= MAX_BYTES:
        return text
    raise invalid(
        f"The event carries {size // 1024} KB of properties Exchange has no field for (mostly "
        f"{_largest(residual)}); the gateway keeps at most {MAX_BYTES // 1024} KB of them with the event."
    )


def _without_people(state: Line) -> Line:
    return Line(
        state.name, tuple(p for p in state.params if not p.upper().startswith("PEOPLE=")), state.value
    )


def _largest(residual: Block) -> str:
    """The two kinds of kept properties (or sub-components) that take the most room."""
    sizes: Counter[str] = Counter()
    for line in residual.lines:
        sizes[line.key] += len(line.text().encode("utf-8"))
    for event in residual.blocks:
        for line in event.lines:
            sizes[line.key] += len(line.text().encode("utf-8"))
        for child in event.blocks:
            sizes[child.name.upper()] += sum(len(t.encode("utf-8")) for t in child.unfolded())
    return ", ".join(name for name, _ in sizes.most_common(2))
