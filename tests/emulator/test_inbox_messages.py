"""Meeting requests and cancellations in the attendee's Inbox, as real exchangelib reads them.

Every SOAP message is validated against the EWS schema by the ``emulator`` fixture, so the
``t:MeetingRequest`` / ``t:MeetingCancellation`` elements are checked against types.xsd too.
"""

from __future__ import annotations

import datetime as dt

from exchangelib import (
    BASIC,
    DELEGATE,
    Account,
    Attendee,
    CalendarItem,
    Configuration,
    Credentials,
    EWSDateTime,
    EWSTimeZone,
    Mailbox,
)
from exchangelib.items import MeetingCancellation, MeetingRequest
from exchangelib.version import Build, Version

from tests.support.emulator import EmulatorServer

BERLIN = EWSTimeZone("Europe/Berlin")
MESSAGE_CLASSES = ["IPM.Schedule.Meeting.Request", "IPM.Schedule.Meeting.Canceled"]


def _account(emulator: EmulatorServer, user: str) -> Account:
    config = Configuration(
        service_endpoint=emulator.ews_url,
        credentials=Credentials(f"{user}@example.com", f"{user}-pw"),
        auth_type=BASIC,
        version=Version(build=Build(15, 1, 2507, 6)),
    )
    return Account(
        f"{user}@example.com",
        config=config,
        autodiscover=False,
        access_type=DELEGATE,
        default_timezone=BERLIN,
    )


def _at(hour: int) -> EWSDateTime:
    return EWSDateTime(2026, 11, 3, hour, tzinfo=BERLIN)


def _meeting(alice: Account, uid: str) -> CalendarItem:
    meeting = CalendarItem(
        account=alice,
        folder=alice.calendar,
        subject=uid,
        start=_at(10),
        end=_at(11),
        location="Room 2",
        uid=uid,
        required_attendees=[Attendee(mailbox=Mailbox(email_address="bob@example.com"))],
    )
    meeting.save(send_meeting_invitations="SendToAllAndSaveCopy")
    return meeting


def _messages(account: Account, subject: str) -> list[MeetingRequest | MeetingCancellation]:
    """The Inbox's meeting messages of one meeting (the demo seed has invitations of its own)."""
    return [m for m in account.inbox.filter(item_class__in=MESSAGE_CLASSES) if m.subject == subject]


def test_an_invitation_puts_a_meeting_request_in_the_inbox(emulator: EmulatorServer) -> None:
    alice, bob = _account(emulator, "alice"), _account(emulator, "bob")
    _meeting(alice, "planning@inbox")
    (request,) = _messages(bob, "planning@inbox")
    assert isinstance(request, MeetingRequest)
    assert request.item_class == "IPM.Schedule.Meeting.Request"
    assert request.subject == "planning@inbox" and request.location == "Room 2"
    assert request.start == _at(10) and request.end == _at(11)
    assert request.organizer.email_address == "alice@example.com"
    assert request.author.email_address == "alice@example.com"
    assert request.meeting_request_type == "NewMeetingRequest"
    assert [a.mailbox.email_address for a in request.required_attendees] == ["bob@example.com"]
    copy = bob.calendar.get(id=request.associated_calendar_item_id.id)
    assert copy.uid == "planning@inbox"
    # the organizer's own Inbox gets nothing
    assert _messages(alice, "planning@inbox") == []


def test_an_update_replaces_the_request_and_a_cancellation_follows(emulator: EmulatorServer) -> None:
    alice, bob = _account(emulator, "alice"), _account(emulator, "bob")
    meeting = _meeting(alice, "moved@inbox")
    meeting.start, meeting.end = _at(14), _at(15)
    meeting.save(update_fields=["start", "end"], send_meeting_invitations="SendToAllAndSaveCopy")
    (update,) = _messages(bob, "moved@inbox")
    assert update.meeting_request_type == "FullUpdate" and update.start == _at(14)
    meeting.delete(send_meeting_cancellations="SendToAllAndSaveCopy")
    (cancellation,) = _messages(bob, "moved@inbox")
    assert isinstance(cancellation, MeetingCancellation)
    assert cancellation.item_class == "IPM.Schedule.Meeting.Canceled"
    copy = bob.calendar.get(id=cancellation.associated_calendar_item_id.id)
    assert copy.is_cancelled
    # the replaced messages went to Deleted Items
    assert [m.subject for m in bob.trash.all()] == ["moved@inbox", "moved@inbox"]


def test_deleting_the_message_keeps_the_meeting_and_answering_removes_it(emulator: EmulatorServer) -> None:
    alice, bob = _account(emulator, "alice"), _account(emulator, "bob")
    _meeting(alice, "kept@inbox")
    (request,) = _messages(bob, "kept@inbox")
    copy_id = request.associated_calendar_item_id.id
    request.move_to_trash()
    assert _messages(bob, "kept@inbox") == []
    assert bob.calendar.get(id=copy_id).uid == "kept@inbox"
    assert [m.subject for m in bob.trash.all()] == ["kept@inbox"]

    _meeting(alice, "answered@inbox")
    (request,) = _messages(bob, "answered@inbox")
    copy = bob.calendar.get(id=request.associated_calendar_item_id.id)
    copy.accept()
    assert _messages(bob, "answered@inbox") == []


def test_sync_folder_items_of_the_inbox(emulator: EmulatorServer) -> None:
    alice, bob = _account(emulator, "alice"), _account(emulator, "bob")
    _meeting(alice, "synced@inbox")
    changes = [c for c in bob.inbox.sync_items() if c[1].subject == "synced@inbox"]
    assert [(kind, type(item).__name__) for kind, item in changes] == [("create", "MeetingRequest")]
    assert dt.datetime.now(dt.UTC) - changes[0][1].datetime_received < dt.timedelta(minutes=5)
