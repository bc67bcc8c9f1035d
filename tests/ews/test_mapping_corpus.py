"""Every file of the shared iCalendar corpus through from_ical → (what Exchange stores) → to_ical.

Each VCALENDAR is split into one resource per UID (as a CalDAV client PUTs them).
Valid resources must come back as the *same event*: the same occurrences over two
years, computed by an independent expander (recurring_ical_events) on the original
and on our output, with the same summary, description, location, attendees,
transparency, class and alarm; and with what the gateway keeps for the client, the
same properties and parameters (:mod:`tests.support.ical_compare`). Malformed files must be refused on the write path
(the protocol layer's checks for every store, then from_ical); rules Exchange cannot
express must be refused by from_ical with InvalidCalendarData.
"""

from __future__ import annotations

import os
import zoneinfo
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import recurring_ical_events
from exchangelib import EWSDateTime, EWSTimeZone
from exchangelib.recurrence import DeletedOccurrence
from icalendar import Calendar

from gateway.caldav import validation
from gateway.caldav.backend import InvalidCalendarData
from gateway.caldav.errors import DavError
from gateway.ews.mapping import VALID_DATA, VALID_OBJECT, EventResource, from_ical, to_ical
from tests.support.ical_compare import assert_same_properties

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("GATEWAY_SHARED_DIR", ROOT.parent / "shared"))
CORPUS = SHARED / "ics-corpus"
FIXTURES = ROOT / "tests" / "fixtures" / "ics"
DEFAULT_TZ = "Europe/Berlin"  # the calendar's zone: floating times are read in it

# Valid iCalendar that Exchange cannot store exactly: refused, with the reason named.
INEXPRESSIBLE = {
    "reservas-thisandfuture-range-overrides.ics": "THISANDFUTURE",
    "zimbra-monthly-first-tuesday-rdate-exdate-override-attendees.ics": "RDATE",
    "thunderbird-monthly-bysetpos-second-last-weekday.ics": "position -2",
}

# Named "malformed" in the corpus, but legal: RFC 5545 §3.6.1 defines a VEVENT with DTSTART alone.
LEGAL = {"malformed-thunderbird-missing-dtend.ics"}


def _corpus_params() -> list:
    """The shared corpus plus our own fixtures (client bodies the corpus lacks)."""
    fixtures = [pytest.param(path, id=f"fixture:{path.name}") for path in sorted(FIXTURES.glob("*.ics"))]
    if not CORPUS.is_dir():
        reason = f"shared iCalendar corpus not found at {CORPUS} (set GATEWAY_SHARED_DIR)"
        return [pytest.param(None, marks=pytest.mark.skip(reason=reason), id="corpus-missing"), *fixtures]
    return [pytest.param(path, id=path.name) for path in sorted(CORPUS.glob("*.ics"))] + fixtures


def split_by_uid(data: bytes) -> dict[str, str]:
    """One iCalendar text per UID, each with every VTIMEZONE of the file."""
    calendar = Calendar.from_ical(data)
    timezones = [c for c in calendar.subcomponents if c.name == "VTIMEZONE"]
    groups: dict[str, list] = {}
    for event in calendar.walk("VEVENT"):
        groups.setdefault(str(event.get("UID", "")), []).append(event)
    texts = {}
    for uid, events in groups.items():
        resource = Calendar()
        for name in ("PRODID", "VERSION"):
            if name in calendar:
                resource.add(name, calendar[name])
        for component in timezones + events:
            resource.add_component(component)
        texts[uid] = resource.to_ical().decode()
    return texts


def _midnight(day: date, zone) -> EWSDateTime:
    return EWSDateTime(day.year, day.month, day.day, tzinfo=zone)


def store_like_exchange(resource: EventResource) -> tuple:
    """What a GetItem of the created series returns: deleted and modified occurrences
    recorded on the master, overrides as Exception items with their original start."""
    master = resource.master
    zone = master._start_timezone
    master.type = "RecurringMaster" if master.recurrence else "Single"
    starts = [d if isinstance(d, datetime) else _midnight(d, zone) for d in resource.exdates]
    master.deleted_occurrences = [DeletedOccurrence(start=s) for s in starts] or None
    exceptions = []
    for override in resource.overrides:
        rid = override.recurrence_id
        override.item.original_start = rid if isinstance(rid, datetime) else _midnight(rid, zone)
        override.item.type = "Exception"
        exceptions.append(override.item)
    return master, exceptions


# --- the independent view of an event ---------------------------------------------------


def _instant(value, zone: zoneinfo.ZoneInfo):
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=zone)).astimezone(UTC)
    return value


def _lead_minutes(event, start) -> set[int]:
    """Minutes before the start of each alarm Exchange could hold (fires at or before the start)."""
    leads = set()
    for alarm in event.walk("VALARM"):
        if str(alarm.get("ACTION", "")).upper() == "NONE" or "TRIGGER" not in alarm:
            continue
        trigger = alarm["TRIGGER"]
        if isinstance(trigger.dt, timedelta):
            offset = trigger.dt
            if str(trigger.params.get("RELATED", "START")).upper() == "END":
                offset += event["DTEND"].dt - event["DTSTART"].dt if "DTEND" in event else timedelta(0)
            lead = -offset
        else:
            lead = start - trigger.dt if isinstance(start, datetime) else None
        if lead is not None and lead >= timedelta(0):
            leads.add(int(lead.total_seconds() // 60))
    return leads


def _transparency(event) -> str:
    busy = str(event.get("X-MICROSOFT-CDO-BUSYSTATUS", "")).upper()
    if busy:
        return "TRANSPARENT" if busy in {"FREE", "WORKINGELSEWHERE"} else "OPAQUE"
    return str(event.get("TRANSP", "OPAQUE")).upper()


def _class(event) -> str:
    value = str(event.get("CLASS", "")).upper() or "PUBLIC"
    return value if value in {"PUBLIC", "CONFIDENTIAL"} else "PRIVATE"


def _attendees(event) -> set[tuple[str, str]]:
    values = event.get("ATTENDEE", [])
    result = set()
    for value in values if isinstance(values, list) else [values]:
        email = str(value).split(":", 1)[-1].lower()
        partstat = str(value.params.get("PARTSTAT", "NEEDS-ACTION")).upper()
        if "@" in email:
            result.add(
                (email, partstat if partstat in {"ACCEPTED", "DECLINED", "TENTATIVE"} else "NEEDS-ACTION")
            )
    return result


def _text(event, name: str) -> str:
    return str(event.get(name, "") or "")


def _is_floating(text: str) -> bool:
    masters = [e for e in Calendar.from_ical(text).walk("VEVENT") if "RECURRENCE-ID" not in e]
    start = masters[0]["DTSTART"].dt if masters else None
    return isinstance(start, datetime) and start.tzinfo is None


def occurrences(text: str, window_start, window_end) -> dict:
    """Occurrence (start, end) → what a user sees of it, by recurring_ical_events."""
    zone = zoneinfo.ZoneInfo(DEFAULT_TZ)
    floating = _is_floating(text)
    found = {}
    for event in recurring_ical_events.of(Calendar.from_ical(text)).between(window_start, window_end):
        if str(event.get("STATUS", "")).upper() == "CANCELLED":
            continue  # a cancelled occurrence is not there for the user (and EWS deletes it)
        start = event["DTSTART"].dt
        end = event["DTEND"].dt if "DTEND" in event else start
        if floating:  # the expander may hand floating times back as UTC: keep the wall clock
            start, end = (v.replace(tzinfo=None) if isinstance(v, datetime) else v for v in (start, end))
        key = (_instant(start, zone), _instant(end, zone))
        found[key] = {
            "summary": _text(event, "SUMMARY"),
            "description": _text(event, "DESCRIPTION"),
            "location": _text(event, "LOCATION"),
            "attendees": _attendees(event),
            "transparency": _transparency(event),
            "class": _class(event),
            "alarms": _lead_minutes(event, _instant(start, zone)),
        }
    return found


def _window(text: str) -> tuple[date, date]:
    """Two years from the series' first start."""
    starts = [e["DTSTART"].dt for e in Calendar.from_ical(text).walk("VEVENT") if "RECURRENCE-ID" not in e]
    first = starts[0] if starts else Calendar.from_ical(text).walk("VEVENT")[0]["DTSTART"].dt
    day = first.date() if isinstance(first, datetime) else first
    return day - timedelta(days=1), day + timedelta(days=731)


def assert_same_event(original: str, mapped: str) -> None:
    window = _window(original)
    before, after = occurrences(original, *window), occurrences(mapped, *window)
    assert sorted(after, key=str) == sorted(before, key=str)
    for key, seen in before.items():
        ours = after[key]
        kept_alarms, original_alarms = ours.pop("alarms"), seen.pop("alarms")
        assert ours == seen, key
        # Exchange holds one reminder: it must be one of the original alarms (all when there is one).
        assert kept_alarms <= original_alarms and len(kept_alarms) == min(1, len(original_alarms)), key


def roundtrip(text: str, *, kept: bool = True) -> str:
    """PUT then GET without Exchange: the items as written, with (or without) the residual."""
    resource = from_ical(text, default_tz=DEFAULT_TZ)
    master, exceptions = store_like_exchange(resource)
    return to_ical(master, exceptions, residual=resource.residual if kept else None)


# --- the tests ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", _corpus_params())
def test_corpus_file(path: Path) -> None:
    data = path.read_bytes()
    if path.name.startswith("malformed-") and path.name not in LEGAL:
        with pytest.raises((DavError, InvalidCalendarData)) as refused:
            for text in split_by_uid_or_whole(data):
                put_body(text)
        assert refused.value.precondition in {VALID_DATA, VALID_OBJECT}
        assert str(refused.value)
        return
    resources = split_by_uid(data)
    if path.name in INEXPRESSIBLE:
        refusals = []
        for text in resources.values():
            with pytest.raises(InvalidCalendarData) as refused:
                from_ical(text, default_tz=DEFAULT_TZ)
            refusals.append(refused.value)
        assert any(INEXPRESSIBLE[path.name] in str(error) for error in refusals), refusals
        assert {error.precondition for error in refusals} == {VALID_OBJECT}
        return
    for text in resources.values():
        mapped = roundtrip(text)
        assert_same_event(text, mapped)
        assert_same_properties(text, mapped, DEFAULT_TZ)
        # Issue 5: what we emit comes back identical (read → PUT the same body → read).
        assert _without_stamps(roundtrip(mapped)) == _without_stamps(mapped)
        # Without what was kept (an item from Outlook), the mapped fields alone are the same event.
        bare = roundtrip(text, kept=False)
        assert_same_event(text, bare)
        assert _without_stamps(roundtrip(bare, kept=False)) == _without_stamps(bare)


def put_body(text: str | bytes) -> EventResource:
    """What a PUT does with a body: the protocol layer's checks for every store, then the mapping."""
    checked = validation.calendar_object(text if isinstance(text, bytes) else text.encode("utf-8"))
    return from_ical(checked, default_tz=DEFAULT_TZ)


def split_by_uid_or_whole(data: bytes) -> list[bytes | str]:
    """Malformed files may not even parse: then the whole file is the one resource."""
    try:
        return list(split_by_uid(data).values())
    except Exception:  # noqa: BLE001 - unparseable: let from_ical judge the raw bytes
        return [data]


def _without_stamps(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.startswith("DTSTAMP"))


def test_corpus_time_zones_resolve_to_exchange_zones() -> None:
    """Windows, libical-path and custom TZIDs of the corpus land in a zone Exchange knows."""
    if not CORPUS.is_dir():
        pytest.skip(f"shared iCalendar corpus not found at {CORPUS}")
    cases = {
        "office365-windows-tzid-without-vtimezone.ics": "W. Europe Standard Time",
        "evolution-freeassociation-tzid-vienna-non-ascii.ics": "W. Europe Standard Time",
        "thunderbird-groupwise-invite-non-ascii-tzid-chair.ics": "Europe",  # a CET/CEST zone
    }
    for name, expected in cases.items():
        (text,) = split_by_uid((CORPUS / name).read_bytes()).values()
        zone = from_ical(text, default_tz=DEFAULT_TZ).master._start_timezone
        assert isinstance(zone, EWSTimeZone)
        assert expected in (zone.ms_id, zone.key.split("/")[0]), (name, zone)
