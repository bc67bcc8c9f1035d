"""CalendarItem ⇄ iCalendar through exchangelib's own objects.

Items "as Exchange returns them" are parsed by exchangelib from EWS XML
(CalendarItem.from_xml), so all-day dates, enum ints and time zones are in the
shapes the backend will really hand to to_ical. What from_ical builds is
serialised by exchangelib (to_xml) and validated against Microsoft's schema.
"""

from __future__ import annotations

import os
from datetime import date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from exchangelib import CalendarItem, EWSDate, EWSDateTime, EWSTimeZone
from exchangelib.properties import HTMLBody
from exchangelib.recurrence import EndDatePattern, WeeklyPattern
from exchangelib.version import EXCHANGE_2016, Version
from icalendar import Calendar
from lxml import etree

from gateway.caldav.backend import InvalidCalendarData
from gateway.ews.mapping import (
    OCCURRENCE_FIELDS,
    READ_FIELDS,
    VALID_DATA,
    VALID_OBJECT,
    WRITE_FIELDS,
    from_ical,
    html_to_text,
    occurrence_index,
    to_ical,
)

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("GATEWAY_SHARED_DIR", ROOT.parent / "shared"))
T_NS = "http://schemas.microsoft.com/exchange/services/2006/types"
M_NS = "http://schemas.microsoft.com/exchange/services/2006/messages"
BERLIN = EWSTimeZone("Europe/Berlin")


def ews_item(body: str) -> CalendarItem:
    """A CalendarItem parsed by exchangelib from a GetItem response's t:CalendarItem."""
    xml = f'<t:CalendarItem xmlns:t="{T_NS}"><t:ItemId Id="AAMk" ChangeKey="DwAA"/>{body}</t:CalendarItem>'
    return CalendarItem.from_xml(etree.fromstring(xml), account=None)


MASTER_XML = """
<t:Subject>Team sync</t:Subject>
<t:Body BodyType="HTML">&lt;html&gt;&lt;body&gt;&lt;p&gt;Agenda&lt;/p&gt;&lt;p&gt;1. caf&#233;&lt;/p&gt;&lt;/body&gt;&lt;/html&gt;</t:Body>
<t:Sensitivity>Private</t:Sensitivity>
<t:Categories><t:String>Work</t:String><t:String>Blue</t:String></t:Categories>
<t:DateTimeCreated>2024-01-02T10:00:00Z</t:DateTimeCreated>
<t:ReminderIsSet>true</t:ReminderIsSet>
<t:ReminderMinutesBeforeStart>15</t:ReminderMinutesBeforeStart>
<t:LastModifiedTime>2024-01-03T10:00:00Z</t:LastModifiedTime>
<t:UID>uid-1</t:UID>
<t:Start>2024-01-10T08:30:00Z</t:Start>
<t:End>2024-01-10T09:00:00Z</t:End>
<t:IsAllDayEvent>false</t:IsAllDayEvent>
<t:LegacyFreeBusyStatus>WorkingElsewhere</t:LegacyFreeBusyStatus>
<t:Location>Room 1</t:Location>
<t:CalendarItemType>RecurringMaster</t:CalendarItemType>
<t:Organizer><t:Mailbox><t:Name>Alice</t:Name><t:EmailAddress>alice@example.com</t:EmailAddress></t:Mailbox></t:Organizer>
<t:RequiredAttendees><t:Attendee><t:Mailbox><t:Name>Bob</t:Name><t:EmailAddress>bob@example.com</t:EmailAddress>
  </t:Mailbox><t:ResponseType>Accept</t:ResponseType></t:Attendee></t:RequiredAttendees>
<t:OptionalAttendees><t:Attendee><t:Mailbox><t:EmailAddress>carol@example.com</t:EmailAddress></t:Mailbox>
  <t:ResponseType>Tentative</t:ResponseType></t:Attendee></t:OptionalAttendees>
<t:Resources><t:Attendee><t:Mailbox><t:Name>Room 1</t:Name><t:EmailAddress>room1@example.com</t:EmailAddress>
  </t:Mailbox><t:ResponseType>Decline</t:ResponseType></t:Attendee></t:Resources>
<t:AppointmentSequenceNumber>2</t:AppointmentSequenceNumber>
<t:Recurrence><t:WeeklyRecurrence><t:Interval>1</t:Interval><t:DaysOfWeek>Wednesday Friday</t:DaysOfWeek>
  <t:FirstDayOfWeek>Monday</t:FirstDayOfWeek></t:WeeklyRecurrence>
  <t:EndDateRecurrence><t:StartDate>2024-01-10+01:00</t:StartDate><t:EndDate>2024-03-01+01:00</t:EndDate>
  </t:EndDateRecurrence></t:Recurrence>
<t:DeletedOccurrences><t:DeletedOccurrence><t:Start>2024-01-12T08:30:00Z</t:Start></t:DeletedOccurrence>
</t:DeletedOccurrences>
<t:StartTimeZone Id="W. Europe Standard Time"/>
<t:EndTimeZone Id="W. Europe Standard Time"/>
"""

EXCEPTION_XML = """
<t:Subject>Team sync (moved)</t:Subject>
<t:ReminderIsSet>false</t:ReminderIsSet>
<t:UID>uid-1</t:UID>
<t:Start>2024-01-17T13:00:00Z</t:Start>
<t:End>2024-01-17T14:00:00Z</t:End>
<t:OriginalStart>2024-01-17T08:30:00Z</t:OriginalStart>
<t:IsAllDayEvent>false</t:IsAllDayEvent>
<t:LegacyFreeBusyStatus>Busy</t:LegacyFreeBusyStatus>
<t:CalendarItemType>Exception</t:CalendarItemType>
<t:StartTimeZone Id="W. Europe Standard Time"/>
<t:EndTimeZone Id="W. Europe Standard Time"/>
"""

ALL_DAY_XML = """
<t:Subject>Conference</t:Subject>
<t:ReminderIsSet>true</t:ReminderIsSet>
<t:ReminderMinutesBeforeStart>1080</t:ReminderMinutesBeforeStart>
<t:UID>uid-allday</t:UID>
<t:Start>2024-05-06T22:00:00Z</t:Start>
<t:End>2024-05-08T22:00:00Z</t:End>
<t:IsAllDayEvent>true</t:IsAllDayEvent>
<t:LegacyFreeBusyStatus>OOF</t:LegacyFreeBusyStatus>
<t:CalendarItemType>Single</t:CalendarItemType>
<t:StartTimeZone Id="W. Europe Standard Time"/>
<t:EndTimeZone Id="W. Europe Standard Time"/>
"""

UTC_XML = """
<t:Subject>Deploy</t:Subject>
<t:Sensitivity>Confidential</t:Sensitivity>
<t:UID>uid-utc</t:UID>
<t:Start>2024-02-01T23:00:00Z</t:Start>
<t:End>2024-02-02T00:30:00Z</t:End>
<t:IsAllDayEvent>false</t:IsAllDayEvent>
<t:LegacyFreeBusyStatus>Free</t:LegacyFreeBusyStatus>
<t:CalendarItemType>Single</t:CalendarItemType>
<t:StartTimeZone Id="UTC"/>
<t:EndTimeZone Id="UTC"/>
"""


def vevents(text: str) -> list:
    return Calendar.from_ical(text).walk("VEVENT")


def without_stamps(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.startswith("DTSTAMP"))


# --- to_ical ----------------------------------------------------------------------------


def test_recurring_master_with_exception_renders_one_resource() -> None:
    text = to_ical(ews_item(MASTER_XML), [ews_item(EXCEPTION_XML)])
    calendar = Calendar.from_ical(text)
    assert calendar["VERSION"] == "2.0" and "PRODID" in calendar
    assert [tz["TZID"] for tz in calendar.walk("VTIMEZONE")] == ["Europe/Berlin"]
    master, moved = vevents(text)
    assert master["DTSTART"].params["TZID"] == "Europe/Berlin"
    assert master["DTSTART"].dt.replace(tzinfo=None) == datetime(2024, 1, 10, 9, 30)
    assert master["RRULE"].to_ical() == b"FREQ=WEEKLY;UNTIL=20240301T083000Z;BYDAY=WE,FR;WKST=MO"
    assert [d.dt.replace(tzinfo=None) for d in master["EXDATE"].dts] == [datetime(2024, 1, 12, 9, 30)]
    assert master["EXDATE"].params["TZID"] == "Europe/Berlin"
    assert master["SUMMARY"] == "Team sync" and master["LOCATION"] == "Room 1"
    assert master["DESCRIPTION"] == "Agenda\n\n1. café"
    assert master["CLASS"] == "PRIVATE"
    assert master["TRANSP"] == "TRANSPARENT" and master["X-MICROSOFT-CDO-BUSYSTATUS"] == "WORKINGELSEWHERE"
    assert master["SEQUENCE"] == 2 and master["UID"] == "uid-1"
    assert list(master["CATEGORIES"].cats) == ["Work", "Blue"]
    assert master["ORGANIZER"] == "mailto:alice@example.com" and master["ORGANIZER"].params["CN"] == "Alice"
    attendees = {str(a): a.params for a in master["ATTENDEE"]}
    assert attendees["mailto:bob@example.com"]["PARTSTAT"] == "ACCEPTED"
    assert attendees["mailto:bob@example.com"]["ROLE"] == "REQ-PARTICIPANT"
    assert attendees["mailto:carol@example.com"]["ROLE"] == "OPT-PARTICIPANT"
    assert attendees["mailto:carol@example.com"]["PARTSTAT"] == "TENTATIVE"
    assert attendees["mailto:room1@example.com"]["CUTYPE"] == "RESOURCE"
    assert attendees["mailto:room1@example.com"]["PARTSTAT"] == "DECLINED"
    (alarm,) = master.walk("VALARM")
    assert alarm["ACTION"] == "DISPLAY" and alarm["TRIGGER"].dt == timedelta(minutes=-15)
    assert moved["RECURRENCE-ID"].dt.replace(tzinfo=None) == datetime(2024, 1, 17, 9, 30)
    assert moved["RECURRENCE-ID"].params["TZID"] == "Europe/Berlin"
    assert moved["DTSTART"].dt.replace(tzinfo=None) == datetime(2024, 1, 17, 14, 0)
    assert moved["SUMMARY"] == "Team sync (moved)" and not moved.walk("VALARM")


def test_all_day_item_gets_dates_with_an_exclusive_end() -> None:
    item = ews_item(ALL_DAY_XML)
    assert item.end == EWSDate(2024, 5, 8)  # exchangelib: inclusive last day
    (event,) = vevents(to_ical(item))
    assert event["DTSTART"].dt == date(2024, 5, 7) and event["DTEND"].dt == date(2024, 5, 9)
    assert event["X-MICROSOFT-CDO-BUSYSTATUS"] == "OOF" and event["TRANSP"] == "OPAQUE"
    assert event.walk("VALARM")[0]["TRIGGER"].dt == timedelta(minutes=-1080)


def test_utc_item_is_written_in_utc_without_vtimezone() -> None:
    text = to_ical(ews_item(UTC_XML))
    assert "VTIMEZONE" not in text
    assert "DTSTART:20240201T230000Z" in text and "DTEND:20240202T003000Z" in text
    (event,) = vevents(text)
    assert event["CLASS"] == "CONFIDENTIAL" and event["TRANSP"] == "TRANSPARENT"


def test_organizer_is_left_out_of_an_appointment_without_attendees() -> None:
    """RFC 5545 §3.8.4.3: ORGANIZER belongs to group-scheduled components only."""
    item = ews_item(
        UTC_XML + "<t:Organizer><t:Mailbox><t:EmailAddress>me@example.com</t:EmailAddress>"
        "</t:Mailbox></t:Organizer>"
    )
    assert "ORGANIZER" not in to_ical(item)


# --- round trips --------------------------------------------------------------------------


@pytest.mark.parametrize("xml", [MASTER_XML, ALL_DAY_XML, UTC_XML], ids=["recurring", "all-day", "utc"])
def test_what_to_ical_writes_comes_back_as_the_same_item(xml: str) -> None:
    original = ews_item(xml)
    text = to_ical(original)
    resource = from_ical(text, default_tz="America/New_York")
    item = resource.master
    for name in (
        "subject",
        "location",
        "is_all_day",
        "legacy_free_busy_status",
        "sensitivity",
        "categories",
        "reminder_is_set",
        "start",
        "end",
        "body",
    ):
        if name == "reminder_is_set" or getattr(original, name) is not None:
            assert getattr(item, name) == getattr(original, name), name
    if original.reminder_is_set:
        assert item.reminder_minutes_before_start == original.reminder_minutes_before_start
    assert type(item.body) is type(original.body)
    if not original.is_all_day:
        assert item._start_timezone.ms_id == original._start_timezone.ms_id
    # and the text itself is stable: read → PUT the same body → read
    item.deleted_occurrences = original.deleted_occurrences
    item.datetime_created, item.last_modified_time = original.datetime_created, original.last_modified_time
    item.appointment_sequence_number = original.appointment_sequence_number
    assert without_stamps(to_ical(item)) == without_stamps(text)


def test_recurring_round_trip_keeps_pattern_range_exdates_and_overrides() -> None:
    text = to_ical(ews_item(MASTER_XML), [ews_item(EXCEPTION_XML)])
    resource = from_ical(text)
    recurrence = resource.master.recurrence
    assert isinstance(recurrence.pattern, WeeklyPattern)
    assert recurrence.boundary == EndDatePattern(start=date(2024, 1, 10), end=date(2024, 3, 1))
    assert resource.exdates == [EWSDateTime(2024, 1, 12, 9, 30, tzinfo=BERLIN)]
    (override,) = resource.overrides
    assert override.recurrence_id == EWSDateTime(2024, 1, 17, 9, 30, tzinfo=BERLIN)
    assert override.item.subject == "Team sync (moved)"
    assert override.item.start == EWSDateTime(2024, 1, 17, 13, tzinfo=UTC_ZONE)
    assert resource.organizer_email == "alice@example.com"
    assert resource.attendee_emails == ["bob@example.com", "carol@example.com", "room1@example.com"]
    assert [a.response_type for a in resource.master.required_attendees] == ["Accept"]
    assert [a.mailbox.email_address for a in resource.master.resources] == ["room1@example.com"]


UTC_ZONE = EWSTimeZone("UTC")


# --- from_ical details --------------------------------------------------------------------


def event_text(*lines: str, extra: str = "") -> str:
    body = "\r\n".join(lines)
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n"
        f"BEGIN:VEVENT\r\nUID:u1\r\nDTSTAMP:20240101T000000Z\r\n{body}\r\nEND:VEVENT\r\n{extra}END:VCALENDAR\r\n"
    )


TIMED = ("DTSTART;TZID=Europe/Berlin:20240110T093000", "DTEND;TZID=Europe/Berlin:20240110T100000")


def test_floating_times_are_read_in_the_calendar_zone() -> None:
    item = from_ical(event_text("DTSTART:20240110T093000", "DURATION:PT45M"), default_tz="Asia/Tokyo").master
    assert item._start_timezone.key == "Asia/Tokyo"
    assert item.start == EWSDateTime(2024, 1, 10, 0, 30, tzinfo=UTC_ZONE)
    assert item.end - item.start == timedelta(minutes=45)


def test_windows_tzid_without_vtimezone_is_understood() -> None:
    item = from_ical(
        event_text(
            "DTSTART;TZID=Eastern Standard Time:20240110T093000",
            "DTEND;TZID=Eastern Standard Time:20240110T100000",
        )
    ).master
    assert item._start_timezone.ms_id == "Eastern Standard Time"
    assert item.start == EWSDateTime(2024, 1, 10, 14, 30, tzinfo=UTC_ZONE)


def test_an_event_without_end_is_stored_with_the_end_rfc_5545_implies_and_marked() -> None:
    """RFC 5545 §3.6.1: a DATE-TIME DTSTART alone is an instant, a DATE alone one day. Exchange needs an
    end, so the item gets that one and ``caldav_no_end`` says it was not sent."""
    timed = from_ical(event_text("DTSTART;TZID=Europe/Berlin:20240110T093000")).master
    assert timed.end == timed.start and timed.caldav_no_end == 1
    day = from_ical(event_text("DTSTART;VALUE=DATE:20240110")).master
    assert (day.start, day.end, day.caldav_no_end) == (date(2024, 1, 10), date(2024, 1, 10), 1)
    assert from_ical(event_text(*TIMED)).master.caldav_no_end == 0


def test_all_day_event_gets_exchangelib_inclusive_end_date() -> None:
    item = from_ical(event_text("DTSTART;VALUE=DATE:20240110", "DTEND;VALUE=DATE:20240113")).master
    assert item.is_all_day and item.start == EWSDate(2024, 1, 10) and item.end == EWSDate(2024, 1, 12)
    one_day = from_ical(event_text("DTSTART;VALUE=DATE:20240110")).master
    assert one_day.start == one_day.end == EWSDate(2024, 1, 10)


@pytest.mark.parametrize(
    ("lines", "status"),
    [
        (("TRANSP:TRANSPARENT",), "Free"),
        (("TRANSP:OPAQUE",), "Busy"),
        ((), "Busy"),
        (("STATUS:TENTATIVE",), "Tentative"),
        (("TRANSP:TRANSPARENT", "X-MICROSOFT-CDO-BUSYSTATUS:WORKINGELSEWHERE"), "WorkingElsewhere"),
        (("TRANSP:OPAQUE", "X-MICROSOFT-CDO-BUSYSTATUS:OOF"), "OOF"),
        (("X-MICROSOFT-CDO-BUSYSTATUS:TENTATIVE",), "Tentative"),
    ],
)
def test_free_busy_status(lines: tuple, status: str) -> None:
    assert from_ical(event_text(*TIMED, *lines)).master.legacy_free_busy_status == status


@pytest.mark.parametrize(
    ("line", "sensitivity"),
    [
        ("CLASS:PUBLIC", "Normal"),
        ("CLASS:PRIVATE", "Private"),
        ("CLASS:CONFIDENTIAL", "Confidential"),
        ("CLASS:X-SECRET", "Private"),
        ("X-NOTHING:1", "Normal"),
    ],
)
def test_class_to_sensitivity(line: str, sensitivity: str) -> None:
    assert from_ical(event_text(*TIMED, line)).master.sensitivity == sensitivity


@pytest.mark.parametrize(
    ("alarm", "minutes"),
    [
        ("TRIGGER:-PT10M", 10),
        ("TRIGGER;RELATED=START:-P1D", 1440),
        ("TRIGGER;RELATED=END:-PT40M", 10),  # the event lasts 30 minutes
        ("TRIGGER;VALUE=DATE-TIME:20240110T080000Z", 30),
        ("TRIGGER:PT5M", None),  # after the start: Exchange cannot
    ],
)
def test_valarm_to_reminder(alarm: str, minutes: int | None) -> None:
    valarm = f"BEGIN:VALARM\r\nACTION:DISPLAY\r\nDESCRIPTION:x\r\n{alarm}\r\nEND:VALARM"
    item = from_ical(event_text(*TIMED, valarm)).master
    assert item.reminder_is_set is (minutes is not None)
    if minutes is not None:
        assert item.reminder_minutes_before_start == minutes


def test_apple_no_alarm_placeholder_is_ignored() -> None:
    placeholder = "BEGIN:VALARM\r\nACTION:NONE\r\nTRIGGER;VALUE=DATE-TIME:19760401T005545Z\r\nEND:VALARM"
    assert from_ical(event_text(*TIMED, placeholder)).master.reminder_is_set is False


def test_html_description_is_restored_only_when_the_client_left_it_unchanged() -> None:
    html = "X-ALT-DESC;FMTTYPE=text/html:<p>Hello <b>world</b></p>"
    assert from_ical(event_text(*TIMED, "DESCRIPTION:Hello world", html)).master.body == HTMLBody(
        "<p>Hello <b>world</b></p>"
    )
    edited = from_ical(event_text(*TIMED, "DESCRIPTION:Hello there", html)).master.body
    assert edited == "Hello there" and not isinstance(edited, HTMLBody)


def test_html_to_text_keeps_paragraphs_and_drops_markup() -> None:
    markup = "<html><head><style>p{}</style></head><body><p>One &amp; two</p><div>three<br>four</div></body></html>"
    assert html_to_text(markup) == "One & two\n\nthree\nfour"


def test_cancelled_override_becomes_a_deleted_occurrence_and_stray_exdates_are_dropped() -> None:
    text = event_text(
        *TIMED,
        "RRULE:FREQ=DAILY;COUNT=5",
        "EXDATE:20240111T083000Z,20240112T120000Z",  # the first names an occurrence, the second does not
        extra="BEGIN:VEVENT\r\nUID:u1\r\nDTSTAMP:20240101T000000Z\r\nRECURRENCE-ID;TZID=Europe/Berlin:20240113T093000"
        "\r\nDTSTART;TZID=Europe/Berlin:20240113T093000\r\nDTEND;TZID=Europe/Berlin:20240113T100000\r\n"
        "STATUS:CANCELLED\r\nEND:VEVENT\r\n",
    )
    resource = from_ical(text)
    assert resource.exdates == [
        EWSDateTime(2024, 1, 11, 9, 30, tzinfo=BERLIN),
        EWSDateTime(2024, 1, 13, 9, 30, tzinfo=BERLIN),
    ]
    assert resource.overrides == []


OVERRIDE = (
    "BEGIN:VEVENT\r\nUID:u1\r\nDTSTAMP:20240101T000000Z\r\nRECURRENCE-ID{rid}\r\n"
    "DTSTART;TZID=Europe/Berlin:20240111T150000\r\nDTEND;TZID=Europe/Berlin:20240111T160000\r\nEND:VEVENT\r\n"
)


@pytest.mark.parametrize(
    ("text", "precondition", "status", "words"),
    [
        ("not a calendar", VALID_DATA, 400, "not valid iCalendar"),
        (event_text(*TIMED, "RRULE:FREQ=HOURLY"), VALID_OBJECT, 403, "hourly"),
        (event_text(*TIMED, "RRULE:FREQ=MONTHLY;BYDAY=1MO,3MO"), VALID_OBJECT, 403, "numbered BYDAY"),
        (event_text(*TIMED, "RRULE:FREQ=DAILY", "RRULE:FREQ=WEEKLY"), VALID_OBJECT, 403, "several RRULEs"),
        (event_text(*TIMED, "RRULE:FREQ=DAILY", "RDATE:20240120T093000Z"), VALID_OBJECT, 403, "RDATE"),
        (event_text(*TIMED, "RRULE:FREQ=WEEKLY;UNTL=20240301"), VALID_DATA, 400, "UNTL"),
        (event_text(*TIMED, "RRULE:FREQ=WEEKLY;BYDAY=MO"), VALID_OBJECT, 403, "not an occurrence"),
        (
            event_text(
                *TIMED,
                "RRULE:FREQ=DAILY",
                extra=OVERRIDE.format(rid=";RANGE=THISANDFUTURE;TZID=Europe/Berlin:20240111T093000"),
            ),
            VALID_OBJECT,
            403,
            "THISANDFUTURE",
        ),
        (
            event_text(
                *TIMED, "RRULE:FREQ=DAILY", extra=OVERRIDE.format(rid=";TZID=Europe/Berlin:20240111T113000")
            ),
            VALID_OBJECT,
            403,
            "not an occurrence",
        ),
        (
            event_text(*TIMED, extra=OVERRIDE.format(rid=";TZID=Europe/Berlin:20240111T093000")),
            VALID_OBJECT,
            403,
            "recurring master",
        ),
        (
            event_text("DTSTART;TZID=Nowhere/Special:20240110T093000", "DURATION:PT1H"),
            VALID_DATA,
            400,
            "TZID",
        ),
        (
            event_text(
                "DTSTART;TZID=Odd:20240110T093000",
                "DURATION:PT1H",
                extra="BEGIN:VTIMEZONE\r\nTZID:Odd\r\nBEGIN:STANDARD\r\nDTSTART:19700101T000000\r\n"
                "TZOFFSETFROM:+0537\r\nTZOFFSETTO:+0537\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n",
            ),
            VALID_OBJECT,
            403,
            "matches no time zone",
        ),
    ],
)
def test_unstorable_input_is_refused_with_the_caldav_precondition(text, precondition, status, words) -> None:
    with pytest.raises(InvalidCalendarData) as refused:
        from_ical(text)
    assert refused.value.precondition == precondition
    assert refused.value.status == status
    assert words in str(refused.value)


def test_exchange_midnight_recurrence_id_names_that_days_occurrence() -> None:
    text = event_text(
        *TIMED, "RRULE:FREQ=DAILY;COUNT=3", extra=OVERRIDE.format(rid=";TZID=Europe/Berlin:20240111T000000")
    )
    (override,) = from_ical(text).overrides
    assert override.recurrence_id == EWSDateTime(2024, 1, 11, 9, 30, tzinfo=BERLIN)


def test_date_exdate_and_recurrence_id_on_a_timed_series_name_that_days_occurrence() -> None:
    text = event_text(
        *TIMED,
        "RRULE:FREQ=DAILY;COUNT=4",
        "EXDATE;VALUE=DATE:20240112",
        extra=OVERRIDE.format(rid=";VALUE=DATE:20240111"),
    )
    resource = from_ical(text)
    assert resource.exdates == [EWSDateTime(2024, 1, 12, 9, 30, tzinfo=BERLIN)]
    assert [o.recurrence_id for o in resource.overrides] == [EWSDateTime(2024, 1, 11, 9, 30, tzinfo=BERLIN)]


# --- occurrence_index ---------------------------------------------------------------------


def test_occurrence_index_counts_like_exchange() -> None:
    master = ews_item(MASTER_XML)  # Wed/Fri from Wed 10 Jan 2024, 09:30 Berlin
    assert occurrence_index(master, EWSDateTime(2024, 1, 10, 8, 30, tzinfo=UTC_ZONE)) == 1
    # the deleted Friday 12th keeps its number: Wednesday 17th is the third instance
    assert occurrence_index(master, EWSDateTime(2024, 1, 17, 8, 30, tzinfo=UTC_ZONE)) == 3
    assert occurrence_index(master, EWSDateTime(2024, 1, 17, 9, 30, tzinfo=UTC_ZONE)) is None
    assert occurrence_index(master, EWSDateTime(2024, 1, 16, 8, 30, tzinfo=UTC_ZONE)) is None
    assert occurrence_index(master, EWSDateTime(2024, 3, 6, 8, 30, tzinfo=UTC_ZONE)) is None  # after the end
    assert occurrence_index(ews_item(UTC_XML), EWSDateTime(2024, 2, 1, 23, tzinfo=UTC_ZONE)) is None


def test_occurrence_index_of_an_all_day_series_takes_dates() -> None:
    resource = from_ical(event_text("DTSTART;VALUE=DATE:20240101", "RRULE:FREQ=WEEKLY;BYDAY=MO,TH"))
    assert occurrence_index(resource.master, date(2024, 1, 11)) == 4  # Mon 1st, Thu 4th, Mon 8th, Thu 11th
    assert occurrence_index(resource.master, date(2024, 1, 4)) == 2
    assert occurrence_index(resource.master, date(2024, 1, 5)) is None


# --- what from_ical builds is what EWS accepts ----------------------------------------------


@pytest.fixture(scope="module")
def messages_schema() -> etree.XMLSchema:
    path = SHARED / "ews" / "schema" / "messages.xsd"
    if not path.exists():
        pytest.skip(f"EWS schema not found at {path} (set GATEWAY_SHARED_DIR)")
    return etree.XMLSchema(etree.parse(str(path)))


def create_item_request(items: list[CalendarItem]) -> etree._Element:
    """The CreateItem body exchangelib sends for these items (as Account.bulk_create does)."""
    version = Version(build=EXCHANGE_2016)
    # exchangelib reads the version and default zone from the account for all-day items
    account = SimpleNamespace(version=version, default_timezone=EWSTimeZone("UTC"))
    request = etree.Element(f"{{{M_NS}}}CreateItem", SendMeetingInvitations="SendToNone", nsmap={"m": M_NS})
    container = etree.SubElement(request, f"{{{M_NS}}}Items")
    for item in items:
        item.account = account
        item.clean(version=version)
        container.append(item.to_xml(version=version))
    return request


def test_created_items_validate_against_the_ews_schema(messages_schema: etree.XMLSchema) -> None:
    texts = [
        to_ical(ews_item(MASTER_XML), [ews_item(EXCEPTION_XML)]),
        to_ical(ews_item(ALL_DAY_XML)),
        to_ical(ews_item(UTC_XML)),
    ]
    items = [from_ical(text, default_tz="Europe/Berlin").master for text in texts]
    request = create_item_request(items)
    messages_schema.assertValid(request)
    all_day = request.find(f".//{{{T_NS}}}IsAllDayEvent/..")
    assert all_day is not None


def test_write_fields_are_calendar_item_fields() -> None:
    names = {f.name for f in CalendarItem.FIELDS}
    assert set(READ_FIELDS) <= names and set(WRITE_FIELDS) <= names
    assert "recurrence" not in OCCURRENCE_FIELDS
    writable = {f.name for f in CalendarItem.FIELDS if not f.is_read_only}
    assert set(WRITE_FIELDS) <= writable


def test_all_day_item_is_sent_as_midnight_to_midnight_in_its_zone(messages_schema: etree.XMLSchema) -> None:
    item = from_ical(
        event_text("DTSTART;VALUE=DATE:20240110", "DTEND;VALUE=DATE:20240112"), default_tz="Europe/Berlin"
    ).master
    request = create_item_request([item])
    messages_schema.assertValid(request)
    start = request.find(f".//{{{T_NS}}}Start").text
    end = request.find(f".//{{{T_NS}}}End").text
    assert (start, end) == ("2024-01-10T00:00:00+01:00", "2024-01-12T00:00:00+01:00")


# --- our client fixtures, field by field ------------------------------------------------------

FIXTURES = ROOT / "tests" / "fixtures" / "ics"
SYDNEY = EWSTimeZone("Australia/Sydney")


def fixture(name: str):
    return from_ical((FIXTURES / name).read_bytes(), default_tz="Europe/Berlin")


def test_outlook_meeting_fixture() -> None:
    resource = fixture("outlook-meeting-windows-tz-last-weekday-override.ics")
    master = resource.master
    assert master._start_timezone.ms_id == "Pacific Standard Time"
    assert (master.recurrence.pattern.weekday, master.recurrence.pattern.week_number) == ("Weekday", "Last")
    assert master.recurrence.boundary.number == 12
    assert master.reminder_minutes_before_start == 15  # an hour-long meeting, 75 minutes before its end
    assert master.body == "Numbers, plans and a short demo.\nBring your laptop."
    assert [a.mailbox.email_address for a in master.resources] == ["room12@example.com"]
    assert resource.exdates == [EWSDateTime(2024, 4, 30, 16, tzinfo=EWSTimeZone("America/Los_Angeles"))]
    (override,) = resource.overrides
    assert override.item.legacy_free_busy_status == "Tentative"
    assert [a.response_type for a in override.item.required_attendees] == ["Decline"]


def test_apple_weekday_fixture() -> None:
    resource = fixture("apple-weekdays-sydney-dst-date-exdate.ics")
    recurrence = resource.master.recurrence
    assert recurrence.pattern.weekdays == ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]
    assert recurrence.boundary.end == date(2024, 12, 31)
    assert resource.exdates == [EWSDateTime(2024, 4, 25, 8, 30, tzinfo=SYDNEY)]  # Anzac Day, a DATE EXDATE
    assert resource.master.reminder_minutes_before_start == 5


def test_nextcloud_month_end_fixture() -> None:
    master = fixture("nextcloud-allday-month-end-until.ics").master
    assert master.is_all_day and master.recurrence.pattern.day_of_month == 31
    assert master.categories == ["Home", "Money"]
    assert (master.sensitivity, master.legacy_free_busy_status) == ("Confidential", "Free")
    assert master.reminder_minutes_before_start == 900


def test_floating_biennial_fixture() -> None:
    master = fixture("thunderbird-floating-biennial-yearly.ics").master
    assert master._start_timezone.key == "Europe/Berlin"
    assert (master.recurrence.pattern.interval, master.recurrence.pattern.day_of_month) == (24, 15)
    assert master.legacy_free_busy_status == "Tentative"


def test_utc_cancelled_occurrence_fixture() -> None:
    resource = fixture("utc-second-tuesday-count-cancelled.ics")
    assert resource.exdates == [EWSDateTime(2024, 4, 9, 22, tzinfo=UTC_ZONE)] and resource.overrides == []
    master = resource.master
    assert (master.legacy_free_busy_status, master.sensitivity) == ("OOF", "Private")
    assert master.end - master.start == timedelta(hours=3)
    assert master.reminder_minutes_before_start == 1440


def test_far_away_exdates_and_recurrence_ids_do_not_expand_forever() -> None:
    text = event_text(*TIMED, "RRULE:FREQ=DAILY", "EXDATE:29991231T083000Z")
    # Past MAX_SCAN occurrences (55 years of a daily series) an EXDATE is not looked for: a
    # documented limit that keeps one PUT from expanding a series for seconds.
    assert from_ical(text).exdates == []
    far = EWSDateTime(2999, 12, 31, 8, 30, tzinfo=UTC_ZONE)
    assert occurrence_index(from_ical(text).master, far) is None
