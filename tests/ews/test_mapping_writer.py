"""to_ical writes iCalendar text directly: every property kind must read back with icalendar unchanged."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from xml.sax.saxutils import escape

from exchangelib.properties import HTMLBody
from icalendar import Calendar

from gateway.ews.mapping import from_ical, to_ical
from tests.ews.test_mapping import EXCEPTION_XML, MASTER_XML, ews_item

SUBJECT = "Quartalsplanung Süd/Ost, Teil 2; Budget & Räume — 会議 🎉 " * 3
TEXT_BODY = "Agenda:\n1. Zahlen, Pläne; Demo\r\n2. Pfad C:\\temp\\N\nEnde"
HTML_BODY = (
    '<html>\n<body>\n<p class="x">Agenda, part 1; café</p>\r\n<p>C:\\temp</p>\n'
    + "<p>"
    + "long line " * 20
    + "</p>\n</body>\n</html>"
)
EVERYTHING_XML = f"""
<t:Subject>{escape(SUBJECT)}</t:Subject>
<t:Body BodyType="Text">{escape(TEXT_BODY)}</t:Body>
<t:Sensitivity>Personal</t:Sensitivity>
<t:Categories><t:String>Work, urgent</t:String><t:String>Grün;Blau</t:String><t:String>Back\\slash</t:String></t:Categories>
<t:DateTimeCreated>2024-01-02T10:00:00Z</t:DateTimeCreated>
<t:ReminderIsSet>true</t:ReminderIsSet>
<t:ReminderMinutesBeforeStart>2895</t:ReminderMinutesBeforeStart>
<t:LastModifiedTime>2024-01-03T10:00:00Z</t:LastModifiedTime>
<t:UID>uid,with;specials\\and-a-very-long-tail-{"x" * 80}</t:UID>
<t:Start>2024-07-10T08:30:00Z</t:Start>
<t:End>2024-07-10T19:00:00Z</t:End>
<t:IsAllDayEvent>false</t:IsAllDayEvent>
<t:LegacyFreeBusyStatus>Tentative</t:LegacyFreeBusyStatus>
<t:Location>Gebäude 3, Raum 1.17; "Alpha"</t:Location>
<t:CalendarItemType>Single</t:CalendarItemType>
<t:Organizer><t:Mailbox><t:Name>O'Brien, Pat: Sales</t:Name><t:EmailAddress>pat@example.com</t:EmailAddress>
  </t:Mailbox></t:Organizer>
<t:RequiredAttendees>
  <t:Attendee><t:Mailbox><t:Name>Zoë "Z" Ünal ^ Co</t:Name><t:EmailAddress>zoe@example.com</t:EmailAddress></t:Mailbox>
    <t:ResponseType>NoResponseReceived</t:ResponseType></t:Attendee>
  <t:Attendee><t:Mailbox><t:EmailAddress>anon@example.com</t:EmailAddress></t:Mailbox></t:Attendee>
</t:RequiredAttendees>
<t:OptionalAttendees><t:Attendee><t:Mailbox><t:Name>Carol</t:Name><t:EmailAddress>carol@example.com</t:EmailAddress>
  </t:Mailbox><t:ResponseType>Decline</t:ResponseType></t:Attendee></t:OptionalAttendees>
<t:Resources><t:Attendee><t:Mailbox><t:Name>Raum 1.17 (Beamer, 12 Plätze)</t:Name>
  <t:EmailAddress>room117@example.com</t:EmailAddress></t:Mailbox><t:ResponseType>Accept</t:ResponseType></t:Attendee>
</t:Resources>
<t:AppointmentSequenceNumber>12</t:AppointmentSequenceNumber>
<t:StartTimeZone Id="W. Europe Standard Time"/>
<t:EndTimeZone Id="Pacific Standard Time"/>
"""

ALL_DAY_SERIES_XML = """
<t:Subject>Holiday</t:Subject>
<t:UID>uid-all-day-series</t:UID>
<t:Start>2024-05-05T22:00:00Z</t:Start>
<t:End>2024-05-06T22:00:00Z</t:End>
<t:IsAllDayEvent>true</t:IsAllDayEvent>
<t:LegacyFreeBusyStatus>Free</t:LegacyFreeBusyStatus>
<t:CalendarItemType>RecurringMaster</t:CalendarItemType>
<t:Recurrence><t:WeeklyRecurrence><t:Interval>1</t:Interval><t:DaysOfWeek>Monday</t:DaysOfWeek>
  <t:FirstDayOfWeek>Monday</t:FirstDayOfWeek></t:WeeklyRecurrence>
  <t:NumberedRecurrence><t:StartDate>2024-05-06+02:00</t:StartDate><t:NumberOfOccurrences>6</t:NumberOfOccurrences>
  </t:NumberedRecurrence></t:Recurrence>
<t:DeletedOccurrences><t:DeletedOccurrence><t:Start>2024-05-12T22:00:00Z</t:Start></t:DeletedOccurrence>
  <t:DeletedOccurrence><t:Start>2024-05-26T22:00:00Z</t:Start></t:DeletedOccurrence></t:DeletedOccurrences>
<t:StartTimeZone Id="W. Europe Standard Time"/>
<t:EndTimeZone Id="W. Europe Standard Time"/>
"""

ALL_DAY_EXCEPTION_XML = """
<t:Subject>Holiday (moved)</t:Subject>
<t:UID>uid-all-day-series</t:UID>
<t:Start>2024-05-20T22:00:00Z</t:Start>
<t:End>2024-05-21T22:00:00Z</t:End>
<t:OriginalStart>2024-05-19T22:00:00Z</t:OriginalStart>
<t:IsAllDayEvent>true</t:IsAllDayEvent>
<t:LegacyFreeBusyStatus>Free</t:LegacyFreeBusyStatus>
<t:CalendarItemType>Exception</t:CalendarItemType>
<t:StartTimeZone Id="W. Europe Standard Time"/>
<t:EndTimeZone Id="W. Europe Standard Time"/>
"""

UTC_SERIES_XML = """
<t:Subject>Nightly deploy</t:Subject>
<t:UID>uid-utc-series</t:UID>
<t:Start>2024-02-01T23:00:00Z</t:Start>
<t:End>2024-02-02T00:30:00Z</t:End>
<t:IsAllDayEvent>false</t:IsAllDayEvent>
<t:CalendarItemType>RecurringMaster</t:CalendarItemType>
<t:Recurrence><t:DailyRecurrence><t:Interval>1</t:Interval></t:DailyRecurrence>
  <t:NoEndRecurrence><t:StartDate>2024-02-01Z</t:StartDate></t:NoEndRecurrence></t:Recurrence>
<t:DeletedOccurrences><t:DeletedOccurrence><t:Start>2024-02-03T23:00:00Z</t:Start></t:DeletedOccurrence>
  <t:DeletedOccurrence><t:Start>2024-02-02T23:00:00Z</t:Start></t:DeletedOccurrence></t:DeletedOccurrences>
<t:StartTimeZone Id="UTC"/>
<t:EndTimeZone Id="UTC"/>
"""


def parsed(text: str) -> Calendar:
    """The text as icalendar reads it, after checking the framing every client relies on."""
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")
    for line in text.split("\r\n"):
        assert len(line.encode("utf-8")) <= 75, line
    return Calendar.from_ical(text)


def test_every_property_kind_reads_back_unchanged() -> None:
    calendar = parsed(to_ical(ews_item(EVERYTHING_XML)))
    assert [str(tz["TZID"]) for tz in calendar.walk("VTIMEZONE")] == ["America/Los_Angeles", "Europe/Berlin"]
    (event,) = calendar.walk("VEVENT")
    assert str(event["UID"]) == f"uid,with;specials\\and-a-very-long-tail-{'x' * 80}"
    assert str(event["SUMMARY"]) == SUBJECT
    assert str(event["DESCRIPTION"]) == TEXT_BODY.replace("\\N", "\n").replace("\r\n", "\n")
    assert str(event["LOCATION"]) == 'Gebäude 3, Raum 1.17; "Alpha"'
    assert list(event["CATEGORIES"].cats) == ["Work, urgent", "Grün;Blau", "Back\\slash"]
    assert (str(event["CLASS"]), str(event["TRANSP"])) == ("PRIVATE", "OPAQUE")
    assert str(event["X-MICROSOFT-CDO-BUSYSTATUS"]) == "TENTATIVE"
    assert event["SEQUENCE"] == 12
    assert event["DTSTAMP"].dt == event["LAST-MODIFIED"].dt == datetime(2024, 1, 3, 10, tzinfo=UTC)
    assert event["CREATED"].dt == datetime(2024, 1, 2, 10, tzinfo=UTC)
    assert event["DTSTART"].params["TZID"] == "Europe/Berlin"
    assert event["DTSTART"].dt.replace(tzinfo=None) == datetime(2024, 7, 10, 10, 30)
    assert event["DTEND"].params["TZID"] == "America/Los_Angeles"
    assert event["DTEND"].dt.replace(tzinfo=None) == datetime(2024, 7, 10, 12, 0)
    assert str(event["ORGANIZER"]) == "mailto:pat@example.com"
    assert event["ORGANIZER"].params["CN"] == "O'Brien, Pat: Sales"
    people = {str(a): dict(a.params) for a in event["ATTENDEE"]}
    assert people == {
        "mailto:zoe@example.com": {
            "CN": 'Zoë "Z" Ünal ^ Co',
            "CUTYPE": "INDIVIDUAL",
            "PARTSTAT": "NEEDS-ACTION",
            "ROLE": "REQ-PARTICIPANT",
        },
        "mailto:anon@example.com": {
            "CUTYPE": "INDIVIDUAL",
            "PARTSTAT": "NEEDS-ACTION",
            "ROLE": "REQ-PARTICIPANT",
        },
        "mailto:carol@example.com": {
            "CN": "Carol",
            "CUTYPE": "INDIVIDUAL",
            "PARTSTAT": "DECLINED",
            "ROLE": "OPT-PARTICIPANT",
        },
        "mailto:room117@example.com": {
            "CN": "Raum 1.17 (Beamer, 12 Plätze)",
            "CUTYPE": "RESOURCE",
            "PARTSTAT": "ACCEPTED",
            "ROLE": "NON-PARTICIPANT",
        },
    }
    (alarm,) = event.walk("VALARM")
    assert (str(alarm["ACTION"]), str(alarm["DESCRIPTION"])) == ("DISPLAY", "Reminder")
    assert alarm["TRIGGER"].dt == -timedelta(minutes=2895)


def test_every_property_kind_survives_a_put_of_the_same_text() -> None:
    """Read → PUT the same body: the item Exchange would store carries the same values."""
    original = ews_item(EVERYTHING_XML)
    item = from_ical(to_ical(original), default_tz="Europe/Berlin").master
    for name in (
        "subject",
        "location",
        "categories",
        "start",
        "end",
        "legacy_free_busy_status",
        "reminder_minutes_before_start",
    ):
        assert getattr(item, name) == getattr(original, name), name
    assert item.body == TEXT_BODY.replace("\\N", "\n").replace("\r\n", "\n")
    assert item.organizer.name == "O'Brien, Pat: Sales"
    assert [a.mailbox.name for a in item.required_attendees] == ['Zoë "Z" Ünal ^ Co', None]
    assert [a.mailbox.email_address for a in item.resources] == ["room117@example.com"]


def test_html_body_with_line_breaks_and_commas_round_trips() -> None:
    """X-ALT-DESC is TEXT (RFC 5545 §3.8.8.2): escaped on the way out, so HTML with newlines is writable."""
    item = ews_item(
        UTC_SERIES_XML.replace(
            "<t:Subject>", f'<t:Body BodyType="HTML">{escape(HTML_BODY)}</t:Body><t:Subject>'
        )
    )
    text = to_ical(item)
    (event,) = parsed(text).walk("VEVENT")
    assert str(event["DESCRIPTION"]).startswith("Agenda, part 1; café\n\nC:\\temp")
    assert event["X-ALT-DESC"].params["FMTTYPE"] == "text/html"
    body = from_ical(text).master.body
    assert isinstance(body, HTMLBody) and str(body) == HTML_BODY.replace("\r\n", "\n")


def test_all_day_series_writes_dates_for_exdate_and_recurrence_id() -> None:
    text = to_ical(ews_item(ALL_DAY_SERIES_XML), [ews_item(ALL_DAY_EXCEPTION_XML)])
    assert "EXDATE;VALUE=DATE:20240513,20240527\r\n" in text
    assert "RECURRENCE-ID;VALUE=DATE:20240520\r\n" in text
    master, moved = parsed(text).walk("VEVENT")
    assert master["DTSTART"].dt == date(2024, 5, 6) and master["DTEND"].dt == date(2024, 5, 7)
    assert [d.dt for d in master["EXDATE"].dts] == [date(2024, 5, 13), date(2024, 5, 27)]
    assert str(master["RRULE"].to_ical().decode()) == "FREQ=WEEKLY;COUNT=6;BYDAY=MO;WKST=MO"
    assert moved["RECURRENCE-ID"].dt == date(2024, 5, 20) and moved["DTSTART"].dt == date(2024, 5, 21)
    assert "VTIMEZONE" not in text
    resource = from_ical(text, default_tz="Europe/Berlin")
    assert [d for d in resource.exdates] == [date(2024, 5, 13), date(2024, 5, 27)]
    assert [o.recurrence_id for o in resource.overrides] == [date(2024, 5, 20)]


def test_utc_series_writes_sorted_utc_exdates_without_vtimezone() -> None:
    text = to_ical(ews_item(UTC_SERIES_XML))
    assert "EXDATE:20240202T230000Z,20240203T230000Z\r\n" in text and "VTIMEZONE" not in text
    (event,) = parsed(text).walk("VEVENT")
    assert event["DTSTART"].dt == datetime(2024, 2, 1, 23, tzinfo=UTC)
    assert "DESCRIPTION" not in event and "SEQUENCE" not in event and not event.walk("VALARM")


def test_zoned_series_keeps_one_vtimezone_for_all_its_values() -> None:
    text = to_ical(ews_item(MASTER_XML), [ews_item(EXCEPTION_XML)])
    assert text.count("BEGIN:VTIMEZONE") == 1
    calendar = parsed(text)
    assert [c.name for c in calendar.subcomponents] == ["VTIMEZONE", "VEVENT", "VEVENT"]
    master, moved = calendar.walk("VEVENT")
    assert master["EXDATE"].params["TZID"] == moved["RECURRENCE-ID"].params["TZID"] == "Europe/Berlin"
