"""What tells a retried PUT from another: the body's fingerprint and the fields a user sees."""

from __future__ import annotations

from exchangelib import CalendarItem
from exchangelib.properties import Attendee, Mailbox

from gateway.ews.backend.replay import differences, fingerprint
from gateway.ews.exchange import register_item_fields
from gateway.ews.mapping import WRITE_FIELDS, from_ical

BODY = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//tests//EN\r\nBEGIN:VEVENT\r\nUID:u-1\r\n"
    "DTSTAMP:20261120T100000Z\r\nDTSTART;TZID=Europe/Berlin:20261125T100000\r\n"
    "DTEND;TZID=Europe/Berlin:20261125T110000\r\nSUMMARY:A long summary that a client might fold\r\n"
    "ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:bob@example.com\r\nORGANIZER:mailto:alice@example.com\r\n"
    "RRULE:FREQ=WEEKLY;COUNT=3\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


def test_the_fingerprint_ignores_a_fresh_dtstamp_folding_and_line_ends():
    restamped = BODY.replace("DTSTAMP:20261120T100000Z", "DTSTAMP:20270101T000000Z")
    folded = BODY.replace("client might fold", "client \r\n might fold").replace("\r\n", "\n")
    assert fingerprint(BODY) == fingerprint(restamped) == fingerprint(folded) == fingerprint(BODY.encode())


def test_the_fingerprint_changes_with_anything_else():
    assert fingerprint(BODY) != fingerprint(BODY.replace("SUMMARY:A long", "SUMMARY:A longer"))
    assert fingerprint(BODY) != fingerprint(BODY.replace("END:VEVENT", "COMMENT:x\r\nEND:VEVENT"))


def _as_exchange_holds_it() -> tuple[CalendarItem, CalendarItem]:
    """(what the body maps to, the same as GetItem gives it back: enums as numbers, names filled in)."""
    register_item_fields()
    target = from_ical(BODY, default_tz="Europe/Berlin").master
    current = from_ical(BODY, default_tz="Europe/Berlin").master
    current.recurrence.pattern.weekdays = [3]  # exchangelib reads Wednesday back as 3
    current.required_attendees = [
        Attendee(mailbox=Mailbox(name="Bob", email_address="BOB@example.com"), response_type="Accept")
    ]
    current.sensitivity = "Normal"
    return target, current


def test_an_item_as_exchange_gives_it_back_holds_the_body():
    target, current = _as_exchange_holds_it()
    assert differences(target, current, WRITE_FIELDS) == []


def test_a_change_a_user_would_see_is_a_difference():
    target, current = _as_exchange_holds_it()
    current.subject = "Changed in Outlook"
    current.optional_attendees = [Attendee(mailbox=Mailbox(email_address="carol@example.com"))]
    current.start = current.start.replace(hour=9)
    assert differences(target, current, WRITE_FIELDS) == ["subject", "start", "optional_attendees"]
