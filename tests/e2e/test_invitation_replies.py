"""Answering an invitation through CalDAV (RFC 6638 §3.2.2): the attendee's client changes its own
PARTSTAT and PUTs the event; the gateway sends Exchange's AcceptItem, TentativelyAcceptItem or
DeclineItem, and the organizer's mailbox (another mailbox of the emulator, read through exchangelib)
records the answer."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import requests
from exchangelib import CalendarItem, EWSDateTime, EWSTimeZone
from exchangelib.items import SEND_TO_ALL_AND_SAVE_COPY
from exchangelib.properties import Attendee, Mailbox

from tests.e2e.test_read_path import dav_client, delta, exchange_account
from tests.e2e.test_write_path import ICS

ALICE, BOB = "alice@example.com", "bob@example.com"


def invite(emulator, subject: str = "Budget review", attendees: tuple[str, ...] = (ALICE,)) -> str:
    """Bob organises a meeting in Outlook (exchangelib) and invites Alice: Exchange delivers her copy."""
    bob = exchange_account(emulator, BOB)
    zone = EWSTimeZone("Europe/Berlin")
    start = EWSDateTime(2026, 12, 15, 10, 0, tzinfo=zone)
    item = CalendarItem(
        account=bob,
        folder=bob.calendar,
        subject=subject,
        start=start,
        end=start + dt.timedelta(hours=1),
        required_attendees=[
            Attendee(mailbox=Mailbox(email_address=a), response_type="Unknown") for a in attendees
        ],
    )
    item.save(send_meeting_invitations=SEND_TO_ALL_AND_SAVE_COPY)
    item.refresh()  # the UID Exchange gave it
    return item.uid


def organizer_sees(emulator, uid: str, attendee: str = ALICE) -> str | None:
    """The response the organizer's item records for ``attendee``."""
    bob = exchange_account(emulator, BOB)
    (item,) = [i for i in bob.calendar.all() if i.uid == uid]
    return next(a.response_type for a in item.required_attendees if a.mailbox.email_address == attendee)


def in_alices_calendar(emulator, uid: str) -> list:
    return [i for i in exchange_account(emulator).calendar.all() if i.uid == uid]


def resource_url(stack, uid: str) -> str:
    """The URL of Alice's copy of the meeting, found as a client finds it (a calendar-query by UID)."""
    calendar = dav_client(stack).principal().calendars()[0]
    return str(calendar.object_by_uid(uid).url)


def own_partstat(text: str, who: str = ALICE) -> str:
    unfolded = re.sub(r"\r?\n[ \t]", "", text)
    line = next(line for line in unfolded.splitlines() if line.startswith("ATTENDEE") and who in line.lower())
    return re.search(r"PARTSTAT=([A-Z-]+)", line).group(1)


def answered(text: str, partstat: str, who: str = ALICE) -> str:
    """The body with ``who``'s PARTSTAT changed (added when Exchange gave none), nothing else."""
    unfolded = re.sub(r"\r?\n[ \t]", "", text)
    lines = []
    for line in unfolded.split("\r\n"):
        if line.startswith("ATTENDEE") and who in line.lower():
            head, address = line.split(":", 1)
            head = re.sub(r";PARTSTAT=[A-Z-]+", "", head)
            line = f"{head};PARTSTAT={partstat}:{address}"
        lines.append(line)
    return "\r\n".join(lines)


def test_python_caldav_accepts_an_invitation_and_the_organizer_hears_it(stack, emulator):
    uid = invite(emulator)
    calendar = dav_client(stack).principal().calendars()[0]
    event = calendar.object_by_uid(uid)
    assert own_partstat(event.data) == "NEEDS-ACTION"
    # python-caldav finds Alice's ATTENDEE through her principal's calendar-user-address-set.
    event.change_attendee_status(partstat="ACCEPTED")
    event.save()
    assert organizer_sees(emulator, uid) == "Accept"
    assert [i.my_response_type for i in in_alices_calendar(emulator, uid)] == ["Accept"]
    # What the client reads back shows its answer, under a new ETag.
    again = calendar.object_by_uid(uid)
    assert own_partstat(again.data) == "ACCEPTED"
    sent = emulator.state.store.mailboxes[ALICE].sent
    assert [m.kind for m in sent if m.uid == uid] == ["Accept"]


def test_python_caldav_declines_and_the_meeting_leaves_the_calendar(stack, emulator):
    uid = invite(emulator, "Offsite planning")
    calendar = dav_client(stack).principal().calendars()[0]
    token = calendar.objects_by_sync_token(load_objects=False).sync_token
    event = calendar.object_by_uid(uid)
    url = str(event.url)
    event.change_attendee_status(partstat="DECLINED")
    event.save()
    assert organizer_sees(emulator, uid) == "Decline"
    assert in_alices_calendar(emulator, uid) == []
    assert requests.get(url, auth=("alice", stack.password)).status_code == 404
    report = requests.request(
        "REPORT",
        str(calendar.url),
        data=(
            '<D:sync-collection xmlns:D="DAV:"><D:sync-token>'
            f"{token}</D:sync-token><D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop>"
            "</D:sync-collection>"
        ),
        headers={"Content-Type": "application/xml"},
        auth=("alice", stack.password),
    )
    assert report.status_code == 207
    gone = re.search(
        r"<D:response><D:href>([^<]*)</D:href><D:status>HTTP/1.1 404", report.text.replace("\n", "")
    )
    assert gone is not None and url.endswith(gone.group(1).rsplit("/", 1)[1]), report.text


def test_an_answer_costs_one_ews_call_beyond_the_puts_look_ups(stack, emulator):
    uid = invite(emulator)
    url = resource_url(stack, uid)
    auth = ("alice", stack.password)
    # An ordinary update of the invitation (nothing answered): its look-ups and UpdateItem, nothing sent.
    read = requests.get(url, auth=auth)
    before = stack.ews_calls()
    plain = requests.put(url, data=answered(read.text, "NEEDS-ACTION").encode(), headers=ICS, auth=auth)
    assert plain.status_code == 204, plain.text
    looked_up = delta(before, stack.ews_calls())
    assert looked_up.pop("UpdateItem") == 1 and organizer_sees(emulator, uid) == "Unknown"
    read = requests.get(url, auth=auth)
    before = stack.ews_calls()
    answer = requests.put(
        url,
        data=answered(read.text, "TENTATIVE").encode(),
        headers={**ICS, "If-Match": read.headers["ETag"]},
        auth=auth,
    )
    assert answer.status_code == 204, answer.text
    # The same look-ups (the stored schedule tag and the item: two GetItems), then the response object.
    assert (
        delta(before, stack.ews_calls()) == {**looked_up, "CreateItem": 1} == {"GetItem": 2, "CreateItem": 1}
    )
    assert organizer_sees(emulator, uid) == "Tentative"
    back = requests.get(url, auth=auth)
    assert own_partstat(back.text) == "TENTATIVE" and back.headers["ETag"] != read.headers["ETag"]


def sent_answers(emulator, uid: str) -> list[str]:
    return [m.kind for m in emulator.state.store.mailboxes[ALICE].sent if m.uid == uid]


@pytest.mark.parametrize(
    ("kind", "partstat"),
    [
        ("drop", "ACCEPTED"),
        ("http_503", "DECLINED"),
        ("server_busy", "ACCEPTED"),
        ("server_busy", "DECLINED"),
        ("drop", "DECLINED"),
    ],
)
def test_an_answer_whose_reply_is_lost_is_sent_once(stack, emulator, kind, partstat):
    """Exchange does the CreateItem and the answer is lost: the client's retry (same body, same If-Match)
    succeeds, and the organizer hears once."""
    uid = invite(emulator)
    url = resource_url(stack, uid)
    auth = ("alice", stack.password)
    read = requests.get(url, auth=auth)
    request = {
        "data": answered(read.text, partstat).encode(),
        "headers": {**ICS, "If-Match": read.headers["ETag"]},
        "auth": auth,
    }
    emulator.set_faults(rules=[{"kind": kind, "operation": "CreateItem", "count": 1, "when": "after"}])
    first = requests.put(url, **request)
    # A lost answer is 503; Exchange's busy refusal makes the gateway look again itself and succeed.
    assert first.status_code in ((204,) if kind == "server_busy" else (502, 503, 504)), first.text
    emulator.set_faults(rules=[])
    retry = requests.put(url, **request)
    assert retry.status_code == 204, retry.text
    expected = {"ACCEPTED": "Accept", "DECLINED": "Decline"}[partstat]
    assert sent_answers(emulator, uid) == [expected]
    assert organizer_sees(emulator, uid) == expected
    if partstat == "DECLINED":
        assert in_alices_calendar(emulator, uid) == []  # not put back by the retry
        assert requests.get(url, auth=auth).status_code == 404
    else:
        assert own_partstat(requests.get(url, auth=auth).text) == "ACCEPTED"
