"""GetUserAvailability of the EWS emulator through exchangelib's ``protocol.get_free_busy_info``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
import requests
from exchangelib import BASIC, Configuration, Credentials, EWSDateTime, EWSTimeZone
from exchangelib.errors import ErrorMailRecipientNotFound, ErrorTimeIntervalTooBig
from exchangelib.properties import FreeBusyView
from exchangelib.protocol import Protocol
from lxml import etree

from tests.support.emulator import EmulatorServer
from tests.support.schema import observe_message

BERLIN = EWSTimeZone("Europe/Berlin")
DAY = "2030-03-04"  # a Monday; Berlin is on UTC+1, New York on UTC-5 (before its DST change)


def _event(subject: str, clock: str, busy: str, **extra) -> dict:
    return {"subject": subject, "date": DAY, "time": clock, "duration": 60, "free_busy": busy, **extra}


SEED = {
    "mailboxes": [
        {
            "email": "alice@example.com",
            "display_name": "Alice Adams",
            "password": "alice-pw",
            "time_zone": "W. Europe Standard Time",
            "delegates": ["carol@example.com"],
            "working_hours": {
                "days": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"],
                "start": "08:30",
                "end": "17:00",
            },
            "calendars": [
                {
                    "name": "Calendar",
                    "primary": True,
                    "events": [
                        _event("Stand-up", "09:00", "Busy", location="Room 1", reminder=10),
                        _event("Maybe: demo", "10:00", "Tentative"),
                        _event("At the Lyon office", "11:00", "WorkingElsewhere"),
                        _event("Dentist", "13:00", "OOF"),
                        _event("Lunch walk", "14:00", "Free"),
                        _event("Doctor", "15:00", "Busy", sensitivity="Private"),
                    ],
                }
            ],
        },
        {
            "email": "bob@example.com",
            "display_name": "Bob Brown",
            "password": "bob-pw",
            "time_zone": "Pacific Standard Time",
            "calendars": [
                {
                    "name": "Calendar",
                    "primary": True,
                    "events": [
                        {
                            "subject": "Early call",
                            "date": DAY,
                            "time": "07:00",
                            "duration": 30,
                            "free_busy": "Busy",
                        },
                    ],
                }
            ],
        },
        {
            "email": "carol@example.com",
            "display_name": "Carol Clark",
            "password": "carol-pw",
            "calendars": [{"name": "Calendar", "primary": True, "events": []}],
        },
    ],
}


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorServer]:
    with EmulatorServer(SEED, message_observer=observe_message) as server:
        yield server


def protocol(emu: EmulatorServer, user: str, password: str) -> Protocol:
    Protocol.clear_cache()
    config = Configuration(
        service_endpoint=emu.ews_url, credentials=Credentials(user, password), auth_type=BASIC
    )
    return Protocol(config=config)


def free_busy(
    proto: Protocol,
    emails: list[str],
    tz=BERLIN,
    days: int = 1,
    view: str = "DetailedMerged",
    interval: int = 60,
) -> list:
    start = EWSDateTime(2030, 3, 4, tzinfo=tz)
    accounts = [(email, "Required", False) for email in emails]
    return list(
        proto.get_free_busy_info(
            accounts=accounts,
            start=start,
            end=start + timedelta(days=days),
            merged_free_busy_interval=interval,
            requested_view=view,
        )
    )


def berlin(hour: int) -> datetime:
    return datetime(2030, 3, 4, hour, tzinfo=BERLIN)


def test_detailed_merged_view_for_several_mailboxes_with_an_unknown_one(emu):
    alice, bob, unknown = free_busy(
        protocol(emu, "alice@example.com", "alice-pw"),
        ["alice@example.com", "bob@example.com", "nobody@example.com"],
    )
    assert isinstance(alice, FreeBusyView) and isinstance(bob, FreeBusyView)
    assert isinstance(unknown, ErrorMailRecipientNotFound)  # an error beside successes
    assert alice.view_type == "DetailedMerged"
    got = [
        (e.start, e.end, e.busy_type, e.details.subject if e.details else None) for e in alice.calendar_events
    ]
    assert got == [
        (berlin(9), berlin(10), "Busy", "Stand-up"),
        (berlin(10), berlin(11), "Tentative", "Maybe: demo"),
        (berlin(11), berlin(12), "WorkingElsewhere", "At the Lyon office"),
        (berlin(13), berlin(14), "OOF", "Dentist"),
        (berlin(15), berlin(16), "Busy", None),  # private: times and flags only
    ]
    standup, private = alice.calendar_events[0].details, alice.calendar_events[-1].details
    assert standup.location == "Room 1" and standup.is_reminder_set and not standup.is_private
    assert private.is_private
    # One digit per hour from midnight Berlin: 2 Busy, 1 Tentative, WorkingElsewhere as 0, 3 OOF. The
    # merged stream has Exchange 2007's alphabet (0-4, 4 = NoData): working elsewhere is written as free
    # (Microsoft Graph's scheduleInformation.availabilityView documents the same for the same data).
    assert alice.merged == "000000000" + "210030" + "2" + "0" * 8
    # Bob's 07:00 Pacific call is 16:00 in Berlin.
    assert [(e.start, e.busy_type) for e in bob.calendar_events] == [(berlin(16), "Busy")]


def test_working_hours_come_with_their_time_zone(emu):
    (alice,) = free_busy(protocol(emu, "alice@example.com", "alice-pw"), ["alice@example.com"])
    (period,) = alice.working_hours
    assert period.weekdays == [1, 2, 3, 4, 5]  # exchangelib's ISO weekdays, Monday..Friday
    assert (period.start.hour, period.start.minute, period.end.hour) == (8, 30, 17)
    zone = alice.working_hours_timezone
    assert zone.bias == -60 and zone.daylight_time.bias == -60
    assert (zone.daylight_time.iso_month, zone.daylight_time.occurrence) == (3, 5)  # last Sunday of March


def test_times_follow_the_requesters_time_zone(emu):
    new_york = EWSTimeZone("America/New_York")
    (alice,) = free_busy(protocol(emu, "alice@example.com", "alice-pw"), ["alice@example.com"], tz=new_york)
    first = alice.calendar_events[0]
    assert first.start == datetime(2030, 3, 4, 3, tzinfo=new_york)  # 09:00 Berlin
    assert first.start.astimezone(BERLIN).hour == 9


def test_details_only_for_callers_with_access(emu):
    # Bob has no rights on Alice's calendar: Exchange's default is free/busy time only.
    (for_bob,) = free_busy(protocol(emu, "bob@example.com", "bob-pw"), ["alice@example.com"])
    assert for_bob.view_type == "FreeBusyMerged"
    assert all(e.details is None for e in for_bob.calendar_events)
    assert {e.busy_type for e in for_bob.calendar_events} == {"Busy", "Tentative", "WorkingElsewhere", "OOF"}
    # Carol is Alice's delegate.
    (for_carol,) = free_busy(
        protocol(emu, "carol@example.com", "carol-pw"), ["alice@example.com"], view="Detailed"
    )
    assert for_carol.view_type == "Detailed" and for_carol.merged is None
    assert for_carol.calendar_events[0].details.subject == "Stand-up"


def test_free_busy_view_has_no_merged_string(emu):
    (alice,) = free_busy(
        protocol(emu, "alice@example.com", "alice-pw"), ["alice@example.com"], view="FreeBusy"
    )
    assert alice.view_type == "FreeBusy" and alice.merged is None
    assert len(alice.calendar_events) == 5


def test_window_longer_than_42_days_is_refused(emu):
    proto = protocol(emu, "alice@example.com", "alice-pw")
    with pytest.raises(ErrorTimeIntervalTooBig):
        free_busy(proto, ["alice@example.com"], days=43)
    assert len(free_busy(proto, ["alice@example.com"], days=42)) == 1


def test_more_than_100_mailboxes_is_refused(emu):
    mailbox = (
        "<t:MailboxData><t:Email><t:Address>alice@example.com</t:Address></t:Email>"
        "<t:AttendeeType>Required</t:AttendeeType></t:MailboxData>"
    )
    body = f"""<?xml version="1.0" encoding="utf-8"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"
  xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"
  xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages">
<s:Header><t:RequestServerVersion Version="Exchange2016"/></s:Header>
<s:Body><m:GetUserAvailabilityRequest>
  <t:TimeZone><t:Bias>0</t:Bias>
    <t:StandardTime><t:Bias>0</t:Bias><t:Time>00:00:00</t:Time><t:DayOrder>1</t:DayOrder><t:Month>1</t:Month><t:DayOfWeek>Sunday</t:DayOfWeek></t:StandardTime>
    <t:DaylightTime><t:Bias>0</t:Bias><t:Time>00:00:00</t:Time><t:DayOrder>5</t:DayOrder><t:Month>12</t:Month><t:DayOfWeek>Saturday</t:DayOfWeek></t:DaylightTime>
  </t:TimeZone>
  <m:MailboxDataArray>{mailbox * 101}</m:MailboxDataArray>
  <t:FreeBusyViewOptions><t:TimeWindow><t:StartTime>2030-03-04T00:00:00</t:StartTime><t:EndTime>2030-03-05T00:00:00</t:EndTime></t:TimeWindow>
    <t:MergedFreeBusyIntervalInMinutes>30</t:MergedFreeBusyIntervalInMinutes><t:RequestedView>FreeBusy</t:RequestedView>
  </t:FreeBusyViewOptions>
</m:GetUserAvailabilityRequest></s:Body></s:Envelope>"""
    response = requests.post(
        emu.ews_url,
        data=body.encode(),
        auth=("alice@example.com", "alice-pw"),
        headers={"Content-Type": "text/xml; charset=utf-8"},
    )
    assert response.status_code == 500
    code = etree.fromstring(response.content).findtext(
        ".//{http://schemas.microsoft.com/exchange/services/2006/errors}ResponseCode"
    )
    assert code == "ErrorMailboxDataArrayTooBig"
    ok = requests.post(
        emu.ews_url,
        data=body.replace(mailbox * 101, mailbox * 100).encode(),
        auth=("alice@example.com", "alice-pw"),
        headers={"Content-Type": "text/xml; charset=utf-8"},
    )
    assert ok.status_code == 200 and ok.content.count(b"<m:FreeBusyResponse>") == 100
