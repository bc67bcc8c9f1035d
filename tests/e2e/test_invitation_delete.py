"""An attendee deleting an invitation through CalDAV (RFC 6638 §3.2.2.4): the organizer is told the
attendee declines. The gateway sends Exchange's DeclineItem instead of DeleteItem, which also takes the
meeting out of the attendee's calendar; the organizer's mailbox (read through exchangelib) records it."""

from __future__ import annotations

import re

import pytest
import requests
from exchangelib.items import SEND_TO_ALL_AND_SAVE_COPY

from tests.e2e.test_invitation_replies import (
    ALICE,
    BOB,
    answered,
    in_alices_calendar,
    invite,
    organizer_sees,
    removed_since,
    resource_url,
    sent_answers,
    weekly_invitation,
)
from tests.e2e.test_read_path import dav_client, delta, exchange_account
from tests.e2e.test_write_path import ICS, set_invitations

MEETING = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\n"
    "DTSTAMP:20261201T090000Z\r\nDTSTART:20261216T090000Z\r\nDTEND:20261216T100000Z\r\n"
    "SUMMARY:Alice's own meeting\r\nORGANIZER:mailto:alice@example.com\r\n"
    "ATTENDEE;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:bob@example.com\r\n"
    "END:VEVENT\r\nEND:VCALENDAR\r\n"
)


def test_python_caldav_deleting_an_invitation_declines_it(stack, emulator):
    uid = invite(emulator)
    calendar = dav_client(stack).principal().calendars()[0]
    token = calendar.objects_by_sync_token(load_objects=False).sync_token
    event = calendar.object_by_uid(uid)
    url = str(event.url)
    event.delete()
    assert organizer_sees(emulator, uid) == "Decline"
    assert sent_answers(emulator, uid) == ["Decline"]
    assert in_alices_calendar(emulator, uid) == []
    assert requests.get(url, auth=("alice", stack.password)).status_code == 404
    assert url.rsplit("/", 1)[1] in removed_since(stack, str(calendar.url), token)


def test_deleting_an_invitation_costs_what_deleting_an_own_meeting_costs(stack, emulator):
    auth = ("alice", stack.password)
    calendar_url = str(dav_client(stack).principal().calendars()[0].url).rstrip("/")
    own = f"{calendar_url}/own-meeting.ics"
    assert (
        requests.put(own, data=MEETING.format(uid="own-1").encode(), headers=ICS, auth=auth).status_code
        == 201
    )
    before = stack.ews_calls()
    assert requests.delete(own, auth=auth).status_code == 204
    cancelling = delta(before, stack.ews_calls())
    assert cancelling == {"GetItem": 1, "DeleteItem": 1}
    assert [m.kind for m in emulator.state.store.mailboxes[ALICE].sent if m.uid == "own-1"] == [
        "Invitation",
        "Cancellation",
    ]

    uid = invite(emulator)
    url = resource_url(stack, uid)
    before = stack.ews_calls()
    assert requests.delete(url, auth=auth).status_code == 204
    declining = delta(before, stack.ews_calls())
    assert declining == {"GetItem": 1, "CreateItem": 1}
    assert sum(declining.values()) <= sum(cancelling.values())
    assert sent_answers(emulator, uid) == ["Decline"]


def test_deleting_a_series_invitation_declines_the_whole_series(stack, emulator):
    series = weekly_invitation(emulator, "Weekly review")
    url = resource_url(stack, series.uid)
    assert requests.delete(url, auth=("alice", stack.password)).status_code == 204
    assert organizer_sees(emulator, series.uid) == "Decline"
    assert sent_answers(emulator, series.uid) == ["Decline"]
    assert in_alices_calendar(emulator, series.uid) == []


def test_an_account_that_never_sends_deletes_the_invitation_silently(stack, emulator):
    set_invitations(stack, "never")
    uid = invite(emulator)
    url = resource_url(stack, uid)
    assert requests.delete(url, auth=("alice", stack.password)).status_code == 204
    assert in_alices_calendar(emulator, uid) == []
    assert sent_answers(emulator, uid) == [] and organizer_sees(emulator, uid) == "Unknown"


def test_deleting_a_cancelled_meeting_sends_nothing(stack, emulator):
    uid = invite(emulator)
    url = resource_url(stack, uid)
    bob = exchange_account(emulator, BOB)
    (meeting,) = [i for i in bob.calendar.all() if i.uid == uid]
    meeting.delete(send_meeting_cancellations=SEND_TO_ALL_AND_SAVE_COPY)
    assert [i.is_cancelled for i in in_alices_calendar(emulator, uid)] == [True]
    assert requests.delete(url, auth=("alice", stack.password)).status_code == 204
    assert in_alices_calendar(emulator, uid) == []
    assert sent_answers(emulator, uid) == []


def test_an_invitation_the_client_schedules_itself_is_deleted_silently(stack, emulator):
    """SCHEDULE-AGENT=CLIENT on Alice's own ATTENDEE, kept from her client's last PUT (RFC 6638 §7.1):
    her client sends its own iTIP REPLY, so the gateway only deletes."""
    uid = invite(emulator)
    url = resource_url(stack, uid)
    auth = ("alice", stack.password)
    text = answered(requests.get(url, auth=auth).text, "NEEDS-ACTION")
    text = re.sub(r"(?m)^ATTENDEE;(.*alice@example\.com)", r"ATTENDEE;SCHEDULE-AGENT=CLIENT;\1", text)
    assert "SCHEDULE-AGENT=CLIENT" in text
    assert requests.put(url, data=text.encode(), headers=ICS, auth=auth).status_code == 204
    assert requests.delete(url, auth=auth).status_code == 204
    assert in_alices_calendar(emulator, uid) == []
    assert sent_answers(emulator, uid) == [] and organizer_sees(emulator, uid) == "Unknown"


def test_if_match_is_honoured_before_declining(stack, emulator):
    uid = invite(emulator)
    url = resource_url(stack, uid)
    auth = ("alice", stack.password)
    etag = requests.get(url, auth=auth).headers["ETag"]
    stale = requests.delete(url, headers={"If-Match": '"not-the-etag"'}, auth=auth)
    assert stale.status_code == 412
    assert sent_answers(emulator, uid) == [] and len(in_alices_calendar(emulator, uid)) == 1
    assert requests.delete(url, headers={"If-Match": etag}, auth=auth).status_code == 204
    assert sent_answers(emulator, uid) == ["Decline"]


@pytest.mark.parametrize("kind", ["drop", "http_503", "server_busy"])
def test_a_decline_whose_answer_is_lost_is_sent_once(stack, emulator, kind):
    """Exchange does the DeclineItem and the answer is lost: the client's retry of the DELETE is 204 and
    the organizer hears once."""
    uid = invite(emulator)
    url = resource_url(stack, uid)
    auth = ("alice", stack.password)
    emulator.set_faults(rules=[{"kind": kind, "operation": "CreateItem", "count": 1, "when": "after"}])
    first = requests.delete(url, auth=auth)
    assert first.status_code in ((204,) if kind == "server_busy" else (502, 503, 504)), first.text
    emulator.set_faults(rules=[])
    assert requests.delete(url, auth=auth).status_code == 204
    assert sent_answers(emulator, uid) == ["Decline"]
    assert organizer_sees(emulator, uid) == "Decline"
    assert in_alices_calendar(emulator, uid) == []
