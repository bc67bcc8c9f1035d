"""What the gateway keeps for a client (mapping.residual) and how it is merged back (mapping.merge).

Each test PUTs a body (from_ical), stores the items as Exchange would (the mapping corpus test's
``store_like_exchange``), changes a field the way Outlook would, and reads the resource back
(to_ical with the residual): the rules of gateway/ews/mapping/merge.py, one by one.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from exchangelib import EWSDateTime, EWSTimeZone
from exchangelib.properties import Body
from icalendar import Calendar

from gateway.caldav.backend import InvalidCalendarData
from gateway.ews.mapping import VALID_OBJECT, from_ical, to_ical
from gateway.ews.mapping.residual import MAX_BYTES
from tests.ews.test_mapping_corpus import store_like_exchange

BERLIN = EWSTimeZone("Europe/Berlin")
THUNDERBIRD = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//Mozilla.org/NONSGML Mozilla Calendar V1.1//EN
X-WR-CALNAME:Work
BEGIN:VEVENT
UID:tb-1
DTSTAMP:20260101T090000Z
CREATED:20260101T085000Z
LAST-MODIFIED:20260101T090000Z
SEQUENCE:3
DTSTART;TZID=Europe/Berlin:20260112T100000
DURATION:PT1H30M
SUMMARY;LANGUAGE=de-DE:Planung
DESCRIPTION;ALTREP="cid:part1@example.com":Agenda
X-ALT-DESC;FMTTYPE=text/html:<p>Something else</p>
LOCATION;LANGUAGE=de-DE:Raum 1
X-APPLE-STRUCTURED-LOCATION;VALUE=URI;X-TITLE=Raum 1:geo:52.5,13.4
GEO:52.5;13.4
URL:https://example.com/meeting
RELATED-TO;RELTYPE=PARENT:parent-uid
CONTACT:Jane Doe\\, +49 30 1234
COMMENT:kept as written
ATTACH;FMTTYPE=application/pdf:https://example.com/agenda.pdf
X-MOZ-LASTACK:20260112T084500Z
X-MOZ-SNOOZE-TIME:20260112T093000Z
X-MOZ-GENERATION:7
X-MICROSOFT-CDO-ALLDAYEVENT:FALSE
ATTENDEE;CN=Bob;PARTSTAT=NEEDS-ACTION;ROLE=REQ-PARTICIPANT;RSVP=TRUE;X-NUM-GUESTS=0:mailto:bob@example.com
ORGANIZER;CN=Alice;SCHEDULE-AGENT=CLIENT:mailto:alice@example.com
BEGIN:VALARM
ACTION:DISPLAY
DESCRIPTION:Mozilla Standardbeschreibung
TRIGGER:-PT15M
X-MOZ-LASTACK:20260112T084500Z
END:VALARM
BEGIN:VALARM
ACTION:AUDIO
TRIGGER;RELATED=END:PT5M
END:VALARM
END:VEVENT
END:VCALENDAR
"""

SERIES = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//tests//EN
BEGIN:VEVENT
UID:series-1
DTSTAMP:20260101T090000Z
DTSTART;TZID=Europe/Berlin:20260105T100000
DTEND;TZID=Europe/Berlin:20260105T110000
RRULE:FREQ=WEEKLY;COUNT=6
EXDATE:20260106T090000Z
SUMMARY:Weekly
X-SERIES:master
END:VEVENT
BEGIN:VEVENT
UID:series-1
DTSTAMP:20260101T090000Z
RECURRENCE-ID;TZID=Europe/Berlin:20260112T100000
DTSTART;TZID=Europe/Berlin:20260112T140000
DTEND;TZID=Europe/Berlin:20260112T150000
SUMMARY:Moved
X-OVERRIDE:moved
SEQUENCE:1
END:VEVENT
BEGIN:VEVENT
UID:series-1
DTSTAMP:20260101T090000Z
RECURRENCE-ID;TZID=Europe/Berlin:20260119T100000
DTSTART;TZID=Europe/Berlin:20260119T100000
DTEND;TZID=Europe/Berlin:20260119T110000
STATUS:CANCELLED
SUMMARY:Weekly
X-CANCELLED:yes
END:VEVENT
END:VCALENDAR
"""


def stored(text: str):
    """(master, exceptions, residual) as GetItem would return them after the PUT of ``text``."""
    resource = from_ical(text, default_tz="Europe/Berlin")
    master, exceptions = store_like_exchange(resource)
    master.last_modified_time = EWSDateTime(2026, 2, 1, 12, 0, tzinfo=EWSTimeZone("UTC"))
    return master, exceptions, resource.residual


def read(master, exceptions, residual: str | None) -> Calendar:
    return Calendar.from_ical(to_ical(master, exceptions, residual=residual))


def only_event(calendar: Calendar):
    (event,) = [c for c in calendar.subcomponents if c.name == "VEVENT"]
    return event


def test_unchanged_event_comes_back_as_written() -> None:
    event = only_event(read(*stored(THUNDERBIRD)))
    assert event["SUMMARY"].params["LANGUAGE"] == "de-DE"
    assert str(event["DURATION"].to_ical().decode()) == "PT1H30M" and "DTEND" not in event
    assert str(event["X-MOZ-LASTACK"]) == "20260112T084500Z" and int(event["SEQUENCE"]) == 3
    assert str(event["DTSTAMP"].to_ical().decode()) == "20260101T090000Z"
    assert "CLASS" not in event and "TRANSP" not in event  # the client wrote neither
    assert "X-MICROSOFT-CDO-BUSYSTATUS" not in event
    assert str(event["ATTENDEE"].params["X-NUM-GUESTS"]) == "0"
    assert str(event["ORGANIZER"].params["SCHEDULE-AGENT"]) == "CLIENT"
    alarms = event.walk("VALARM")
    assert sorted(str(a["ACTION"]) for a in alarms) == ["AUDIO", "DISPLAY"]
    assert all(str(a.get("DESCRIPTION", "")) != "Reminder" for a in alarms)  # the client's own VALARM


def test_an_outlook_subject_change_keeps_everything_else() -> None:
    master, exceptions, residual = stored(THUNDERBIRD)
    master.subject = "Renamed in Outlook"
    event = only_event(read(master, exceptions, residual))
    assert str(event["SUMMARY"]) == "Renamed in Outlook" and not event["SUMMARY"].params
    for name in ("X-MOZ-LASTACK", "X-MOZ-SNOOZE-TIME", "URL", "RELATED-TO", "CONTACT", "ATTACH", "GEO"):
        assert name in event, name
    assert int(event["SEQUENCE"]) == 3  # not a significant change (RFC 5546 §2.1.4)
    assert str(event["DTSTAMP"].to_ical().decode()) == "20260201T120000Z"  # Exchange's
    assert len(event.walk("VALARM")) == 2


def test_a_location_change_drops_what_described_the_old_location() -> None:
    master, exceptions, residual = stored(THUNDERBIRD)
    master.location = "Room 2"
    event = only_event(read(master, exceptions, residual))
    assert str(event["LOCATION"]) == "Room 2" and not event["LOCATION"].params
    assert "X-APPLE-STRUCTURED-LOCATION" not in event and "GEO" not in event
    assert event["SUMMARY"].params["LANGUAGE"] == "de-DE"


def test_a_body_change_drops_the_alternative_html_and_altrep() -> None:
    master, exceptions, residual = stored(THUNDERBIRD)
    master.body = Body("New agenda")
    event = only_event(read(master, exceptions, residual))
    assert str(event["DESCRIPTION"]) == "New agenda" and "ALTREP" not in event["DESCRIPTION"].params
    assert "X-ALT-DESC" not in event


def test_a_move_in_outlook_counts_sequence_up_and_writes_dtend() -> None:
    master, exceptions, residual = stored(THUNDERBIRD)
    master.start += timedelta(days=1)
    master.end += timedelta(days=1)
    event = only_event(read(master, exceptions, residual))
    assert int(event["SEQUENCE"]) == 4
    assert "DURATION" not in event and event["DTEND"].dt - event["DTSTART"].dt == timedelta(
        hours=1, minutes=30
    )
    assert "X-MICROSOFT-CDO-ALLDAYEVENT" not in event
    assert "X-MOZ-LASTACK" in event  # the reminder did not change


def test_a_moved_series_gets_exchanges_rule_not_the_clients_until() -> None:
    """The UTC UNTIL a client computed for the old start would cut the last occurrence off."""
    body = SERIES.replace("RRULE:FREQ=WEEKLY;COUNT=6", "RRULE:FREQ=WEEKLY;UNTIL=20260209T090000Z")
    master, exceptions, residual = stored(body)
    rules = [
        e["RRULE"].to_ical().decode()
        for e in read(master, exceptions, residual).walk("VEVENT")
        if "RRULE" in e
    ]
    assert rules == ["FREQ=WEEKLY;UNTIL=20260209T090000Z"]  # as the client wrote it
    master.start += timedelta(hours=3)
    master.end += timedelta(hours=3)
    (event,) = [e for e in read(master, exceptions, residual).walk("VEVENT") if "RRULE" in e]
    until = event["RRULE"]["UNTIL"][0]
    assert until >= event["DTSTART"].dt + timedelta(weeks=5)  # the last occurrence is still in the series


def test_a_move_without_a_client_sequence_gives_sequence_one() -> None:
    body = THUNDERBIRD.replace("SEQUENCE:3\n", "")
    master, exceptions, residual = stored(body)
    assert "SEQUENCE" not in only_event(read(master, exceptions, residual))
    master.end += timedelta(minutes=30)
    assert int(only_event(read(master, exceptions, residual))["SEQUENCE"]) == 1


def test_reminder_switched_off_drops_every_alarm_and_acknowledgement() -> None:
    master, exceptions, residual = stored(THUNDERBIRD)
    master.reminder_is_set = False
    event = only_event(read(master, exceptions, residual))
    assert event.walk("VALARM") == []
    assert "X-MOZ-LASTACK" not in event and "X-MOZ-SNOOZE-TIME" not in event
    assert "X-MOZ-GENERATION" in event


def test_reminder_moved_replaces_the_clients_alarm_and_keeps_the_others() -> None:
    master, exceptions, residual = stored(THUNDERBIRD)
    master.reminder_minutes_before_start = 60
    event = only_event(read(master, exceptions, residual))
    triggers = sorted(a["TRIGGER"].to_ical().decode() for a in event.walk("VALARM"))
    assert triggers == ["-PT1H", "PT5M"]
    assert "X-MOZ-LASTACK" not in event and "X-MOZ-SNOOZE-TIME" not in event


def test_an_attendee_change_keeps_the_clients_parameters_of_who_is_still_invited() -> None:
    master, exceptions, residual = stored(THUNDERBIRD)
    master.required_attendees[0].response_type = "Accept"
    event = only_event(read(master, exceptions, residual))
    bob = event["ATTENDEE"]
    assert str(bob.params["PARTSTAT"]) == "ACCEPTED" and str(bob.params["RSVP"]) == "TRUE"
    assert str(bob.params["X-NUM-GUESTS"]) == "0"


def test_mapped_properties_the_client_left_out_appear_once_outlook_sets_them() -> None:
    master, exceptions, residual = stored(THUNDERBIRD)
    master.sensitivity = "Private"
    master.legacy_free_busy_status = "Free"
    event = only_event(read(master, exceptions, residual))
    assert str(event["CLASS"]) == "PRIVATE" and str(event["TRANSP"]) == "TRANSPARENT"


def test_overrides_cancelled_ones_and_unmatched_exdates() -> None:
    master, exceptions, residual = stored(SERIES)
    calendar = read(master, exceptions, residual)
    events = {
        str(e.get("RECURRENCE-ID").to_ical().decode()) if "RECURRENCE-ID" in e else "": e
        for e in calendar.walk("VEVENT")
    }
    assert set(events) == {"", "20260112T100000", "20260119T100000"}
    assert str(events["20260112T100000"]["X-OVERRIDE"]) == "moved"
    assert str(events["20260119T100000"]["STATUS"]) == "CANCELLED"  # kept as the client wrote it
    assert str(events[""]["EXDATE"].to_ical().decode()) == "20260106T090000Z"  # names no occurrence: kept
    assert str(events[""]["X-SERIES"]) == "master"


def test_an_override_whose_exception_is_gone_is_dropped() -> None:
    master, exceptions, residual = stored(SERIES)
    master.recurrence.boundary.number = 5  # Outlook changed the series: Exchange drops exceptions
    master.deleted_occurrences = None
    calendar = read(master, [], residual)
    (event,) = calendar.walk("VEVENT")
    assert str(event["X-SERIES"]) == "master" and "EXDATE" not in event
    assert str(event["RRULE"].to_ical().decode()).startswith("FREQ=WEEKLY;COUNT=5")  # Exchange's rule
    assert int(event["SEQUENCE"]) == 1  # the recurrence changed: RFC 5546 §2.1.4


def test_a_kept_tzid_names_a_zone_with_a_vtimezone() -> None:
    body = THUNDERBIRD.replace(
        "COMMENT:kept as written\n", "X-EXTRA;TZID=W. Europe Standard Time:20260112T100000\n"
    )
    calendar = read(*stored(body))
    extra = only_event(calendar)["X-EXTRA"]
    tzids = {str(tz["TZID"]) for tz in calendar.walk("VTIMEZONE")}
    assert extra.params["TZID"] == "Europe/Berlin" and "Europe/Berlin" in tzids


def test_a_residual_from_elsewhere_is_ignored() -> None:
    master, exceptions, _ = stored(THUNDERBIRD)
    assert only_event(read(master, exceptions, "not iCalendar at all"))["SUMMARY"] == "Planung"


def test_a_huge_attendee_list_is_shown_as_exchange_has_it() -> None:
    people = "".join(
        f"ATTENDEE;CN=Person {n};PARTSTAT=NEEDS-ACTION;RSVP=TRUE;X-EXTRA=padding-{'x' * 40}:mailto:p{n}@example.com\n"
        for n in range(600)
    )
    body = THUNDERBIRD.replace("COMMENT:kept as written\n", people)
    master, exceptions, residual = stored(body)
    assert len(residual.encode()) <= MAX_BYTES and "X-EXTRA=padding" not in residual
    event = only_event(read(master, exceptions, residual))
    assert len(event["ATTENDEE"]) == 601 and "URL" in event


def test_a_residual_beyond_the_cap_is_refused_with_a_reason() -> None:
    body = THUNDERBIRD.replace("COMMENT:kept as written\n", f"X-BLOB:{'y' * (MAX_BYTES + 10)}\n")
    with pytest.raises(InvalidCalendarData) as refused:
        from_ical(body, default_tz="Europe/Berlin")
    assert refused.value.precondition == VALID_OBJECT and refused.value.status == 403
    assert "X-BLOB" in str(refused.value) and "KB" in str(refused.value)


def test_a_floating_start_is_still_read_in_the_calendars_zone() -> None:
    """A floating start is read in the calendar's zone; the residual does not change that."""
    body = THUNDERBIRD.replace("DTSTART;TZID=Europe/Berlin:20260112T100000", "DTSTART:20260112T100000")
    event = only_event(read(*stored(body)))
    assert event["DTSTART"].dt == datetime(2026, 1, 12, 10, tzinfo=event["DTSTART"].dt.tzinfo)
    assert event["DTSTART"].params["TZID"] == "Europe/Berlin"
