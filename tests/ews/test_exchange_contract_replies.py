"""Contract of the exchangelib internals ``send_meeting_response`` (gateway/ews/exchange.py) relies on:
a response object sent in one CreateItem, its Sent Items or Drafts folder addressed by distinguished id
without looking the folder up."""

from __future__ import annotations

import inspect

from exchangelib import CalendarItem, EWSDateTime, EWSTimeZone
from exchangelib.folders import Drafts, Root, SentItems
from exchangelib.items import SEND_TO_ALL_AND_SAVE_COPY, AcceptItem, DeclineItem
from exchangelib.properties import Attendee, Body, DistinguishedFolderId, Mailbox, ReferenceItemId
from exchangelib.services import CreateItem

from gateway.ews.exchange import new_account, send_meeting_response
from tests.ews.test_exchange_contract import _account, _classes, _config, relies_on
from tests.support.emulator import EmulatorServer


def _invitation(emulator: EmulatorServer) -> CalendarItem:
    """Bob invites Alice; Alice's copy, as her account reads it (Id and ChangeKey)."""
    bob = new_account("bob@example.com", _classes().ews(config=_config(emulator, who="bob")))
    zone = EWSTimeZone("Europe/Berlin")
    start = EWSDateTime(2026, 12, 15, 10, 0, tzinfo=zone)
    meeting = CalendarItem(
        account=bob,
        folder=bob.calendar,
        subject="Contract meeting",
        start=start,
        end=start.replace(hour=11),
        required_attendees=[
            Attendee(mailbox=Mailbox(email_address="alice@example.com"), response_type="Unknown")
        ],
    )
    meeting.save(send_meeting_invitations=SEND_TO_ALL_AND_SAVE_COPY)
    alice = _account(emulator, _classes().ews)
    (copy,) = [i for i in alice.calendar.all() if i.subject == "Contract meeting"]
    return copy


def _organizers_item(emulator: EmulatorServer):
    box = emulator.state.store.mailboxes["bob@example.com"]
    return next(i for i in box.calendar.items.values() if i.subject == "Contract meeting")


def test_create_item_call_takes_the_arguments_send_meeting_response_passes() -> None:
    with relies_on("CreateItem.call(items, folder, message_disposition, send_meeting_invitations)"):
        expected = ["self", "items", "folder", "message_disposition", "send_meeting_invitations"]
        assert list(inspect.signature(CreateItem.call).parameters) == expected


def test_a_folder_known_by_its_distinguished_id_is_addressed_by_it(emulator) -> None:
    account = _account(emulator, _classes().ews)
    mailbox = Mailbox(email_address="alice@example.com")
    with relies_on("Folder(_distinguished_id=...): to_id() gives that id, with its Mailbox"):
        for cls, name in ((SentItems, "sentitems"), (Drafts, "drafts")):
            folder = cls(
                root=Root(account=account),
                _distinguished_id=DistinguishedFolderId(id=cls.DISTINGUISHED_FOLDER_ID, mailbox=mailbox),
            )
            folder_id = folder.to_id()
            assert isinstance(folder_id, DistinguishedFolderId) and folder_id.id == name
            assert folder_id.mailbox.email_address == "alice@example.com" and folder.account is account
        assert emulator.stats()["operations"] == {}


def test_an_answer_is_one_create_item_and_the_organizer_records_it(emulator) -> None:
    copy = _invitation(emulator)
    before = dict(emulator.stats()["operations"])
    accept = AcceptItem(
        account=copy.account,
        reference_item_id=ReferenceItemId(id=copy.id, changekey=copy.changekey),
        body=Body("See you there"),
    )
    with relies_on("CreateItem of a response object with a SavedItemFolderId of Sent Items"):
        assert send_meeting_response(copy.account, [accept], send=True) == [True]
    after = emulator.stats()["operations"]
    assert {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)} == {
        "CreateItem": 1
    }
    organizer = _organizers_item(emulator)
    assert [a.response_type for a in organizer.attendees() if a.email == "alice@example.com"] == ["Accept"]


def test_an_unsent_answer_is_saved_only(emulator) -> None:
    copy = _invitation(emulator)
    decline = DeclineItem(
        account=copy.account, reference_item_id=ReferenceItemId(id=copy.id, changekey=copy.changekey)
    )
    with relies_on("CreateItem of a response object with MessageDisposition SaveOnly in Drafts"):
        assert send_meeting_response(copy.account, [decline], send=False) == [True]
    organizer = _organizers_item(emulator)
    assert [a.response_type for a in organizer.attendees() if a.email == "alice@example.com"] != ["Decline"]
    assert not [
        i
        for i in emulator.state.store.mailboxes["alice@example.com"].calendar.items.values()
        if i.subject == "Contract meeting"
    ]
