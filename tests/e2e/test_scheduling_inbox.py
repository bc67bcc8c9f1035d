"""The scheduling inbox (RFC 6638 §2.2, §4; issue 14): meeting requests and cancellations waiting in the
attendee's Exchange Inbox appear in /dav/calendars/{user}/inbox/ as iTIP objects; DELETE removes the
message, not the meeting. Alice organises through the gateway (PUT with an ATTENDEE), bob reads his inbox
over HTTP; the EWS calls of each request are counted."""

from __future__ import annotations

import uuid

import requests
from lxml import etree

from tests.e2e.test_read_path import delta
from tests.e2e.test_write_path import dav_client, event, primary_url, put

DAV = "{DAV:}"
CAL = "{urn:ietf:params:xml:ns:caldav}"
CS = "{http://calendarserver.org/ns/}"
INBOX = "/dav/calendars/bob/inbox/"
LISTING = (
    '<d:propfind xmlns:d="DAV:" xmlns:cs="http://calendarserver.org/ns/"><d:prop><d:getetag/><cs:getctag/>'
    "<d:sync-token/><d:resourcetype/></d:prop></d:propfind>"
)


def _bob(stack, method: str, path: str, body: str = "", **headers: str) -> requests.Response:
    return requests.request(
        method,
        stack.base_url + path,
        data=body.encode("utf-8"),
        headers={"Content-Type": "application/xml; charset=utf-8", **headers},
        auth=("bob", stack.password),
        timeout=30,
    )


def _responses(answer: requests.Response) -> dict[str, dict[str, etree._Element]]:
    """href -> property -> element of the 200 propstats."""
    assert answer.status_code == 207, answer.text
    found = {}
    for r in etree.fromstring(answer.content).iter(f"{DAV}response"):
        props = {}
        for propstat in r.iter(f"{DAV}propstat"):
            if " 200 " in propstat.findtext(f"{DAV}status"):
                props.update({p.tag: p for p in propstat.find(f"{DAV}prop")})
        found[r.findtext(f"{DAV}href")] = props
    return found


def _multiget(stack, hrefs: list[str]) -> dict[str, str]:
    body = (
        '<c:calendar-multiget xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav">'
        "<d:prop><d:getetag/><c:calendar-data/></d:prop>"
        + "".join(f"<d:href>{h}</d:href>" for h in hrefs)
        + "</c:calendar-multiget>"
    )
    found = _responses(_bob(stack, "REPORT", INBOX, body, Depth="1"))
    return {h: p[f"{CAL}calendar-data"].text for h, p in found.items() if f"{CAL}calendar-data" in p}


def _message_of(stack, uid: str) -> tuple[str, str]:
    """(href, iTIP text) of the inbox message about meeting ``uid`` (the demo seed has others)."""
    listing = _responses(_bob(stack, "PROPFIND", INBOX, LISTING, Depth="1"))
    texts = _multiget(stack, [h for h in listing if h != INBOX])
    (found,) = [(h, t) for h, t in texts.items() if f"UID:{uid}" in t]
    return found


def _invite(stack, uid: str) -> str:
    url = primary_url(stack) + f"{uid}.ics"
    meeting = event(
        uid,
        "Inbox review",
        extra="ORGANIZER:mailto:alice@example.com\r\nATTENDEE;ROLE=REQ-PARTICIPANT:mailto:bob@example.com\r\n",
    )
    assert put(stack, url, meeting).status_code == 201
    return url


def test_an_invitation_is_a_request_in_the_inbox_and_a_cancellation_replaces_it(stack, emulator):
    uid = str(uuid.uuid4())
    before = _responses(_bob(stack, "PROPFIND", INBOX, LISTING, Depth="0"))[INBOX]
    alice_event = _invite(stack, uid)

    calls = stack.ews_calls()
    listing = _responses(_bob(stack, "PROPFIND", INBOX, LISTING, Depth="1"))
    # one listing for the collection and members; a new message is read with it (its meeting must
    # exist for it to be listed): one GetItem of the messages, one of their meetings
    assert delta(calls, stack.ews_calls()) == {"FindItem": 1, "GetItem": 2}
    inbox = listing.pop(INBOX)
    assert f"{CAL}schedule-inbox" in [c.tag for c in inbox[f"{DAV}resourcetype"]]
    assert inbox[f"{CS}getctag"].text != before[f"{CS}getctag"].text
    assert inbox[f"{DAV}sync-token"].text != before[f"{DAV}sync-token"].text
    assert listing and all(f"{DAV}getetag" in props for props in listing.values())

    href, text = _message_of(stack, uid)
    assert "METHOD:REQUEST" in text and "SUMMARY:Inbox review" in text
    unfolded = text.replace("\r\n ", "")
    assert 'ORGANIZER;CN="Alice Adams":mailto:alice@example.com' in unfolded
    assert "ROLE=REQ-PARTICIPANT:mailto:bob@example.com" in unfolded
    calls = stack.ews_calls()
    got = _bob(stack, "GET", href)
    assert got.status_code == 200 and got.text == text and got.headers["ETag"]
    # the rendering is kept for the message's version: a second read is the listing only
    assert delta(calls, stack.ews_calls()) == {"FindItem": 1}

    assert requests.delete(alice_event, auth=("alice", stack.password)).status_code == 204
    assert _bob(stack, "GET", href).status_code == 404  # the cancellation replaced the request
    cancel_href, cancel = _message_of(stack, uid)
    assert cancel_href != href
    assert "METHOD:CANCEL" in cancel and "STATUS:CANCELLED" in cancel


def test_deleting_a_message_keeps_the_meeting_in_the_calendar(stack, emulator):
    uid = str(uuid.uuid4())
    _invite(stack, uid)
    href, _ = _message_of(stack, uid)
    start = _responses(_bob(stack, "PROPFIND", INBOX, LISTING, Depth="0"))[INBOX][f"{DAV}sync-token"].text

    assert _bob(stack, "DELETE", href, **{"If-Match": '"not-the-etag"'}).status_code == 412
    calls = stack.ews_calls()
    assert _bob(stack, "DELETE", href).status_code == 204
    assert delta(calls, stack.ews_calls()) == {"FindItem": 1, "DeleteItem": 1}
    assert _bob(stack, "GET", href).status_code == 404
    assert href not in _responses(_bob(stack, "PROPFIND", INBOX, LISTING, Depth="1"))

    # the meeting stays in bob's calendar, and the message is in his Deleted Items
    bob = emulator.state.store.mailboxes["bob@example.com"]
    assert [i.uid for i in bob.calendar.items.values() if i.uid == uid] == [uid]
    trash = bob.folders[bob.distinguished["deleteditems"]]
    assert [m.uid for m in trash.items.values()] == [uid]

    # a client syncing the inbox from before learns that the message left
    sync = (
        f'<d:sync-collection xmlns:d="DAV:"><d:sync-token>{start}</d:sync-token><d:sync-level>1</d:sync-level>'
        "<d:prop><d:getetag/></d:prop></d:sync-collection>"
    )
    answer = _bob(stack, "REPORT", INBOX, sync)
    assert answer.status_code == 207, answer.text
    root = etree.fromstring(answer.content)
    gone = [
        r.findtext(f"{DAV}href")
        for r in root.iter(f"{DAV}response")
        if "404" in (r.findtext(f"{DAV}status") or "")
    ]
    assert gone == [href]


def test_the_inbox_cannot_be_written_to(stack):
    meeting = event(str(uuid.uuid4()), "Sneaked in")
    answer = requests.put(
        stack.base_url + INBOX + "sneaked.ics",
        data=meeting.encode(),
        headers={"Content-Type": "text/calendar"},
        auth=("bob", stack.password),
    )
    assert answer.status_code == 403
    assert _bob(stack, "GET", INBOX + "no-such-message.ics").status_code == 404
    assert _bob(stack, "DELETE", INBOX + "no-such-message.ics").status_code == 404
    old = '<d:sync-collection xmlns:d="DAV:"><d:sync-token>urn:x-gateway:inbox:unknown</d:sync-token><d:sync-level>1</d:sync-level><d:prop/></d:sync-collection>'
    refused = _bob(stack, "REPORT", INBOX, old)
    assert refused.status_code == 403 and "valid-sync-token" in refused.text


def test_a_recurring_invitation_carries_its_rule_and_its_moved_occurrence(stack, emulator):
    uid = str(uuid.uuid4())
    people = "ORGANIZER:mailto:alice@example.com\r\nATTENDEE;ROLE=REQ-PARTICIPANT:mailto:bob@example.com\r\n"
    series = event(
        uid, "Weekly sync", extra=people + "RRULE:FREQ=WEEKLY;COUNT=4\r\n", start="20261102T100000"
    )
    moved = (
        "BEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20261120T100000Z\r\nRECURRENCE-ID;TZID=Europe/Berlin:20261109T100000\r\n"
        "DTSTART;TZID=Europe/Berlin:20261109T150000\r\nDTEND;TZID=Europe/Berlin:20261109T160000\r\n"
        f"SUMMARY:Weekly sync (moved)\r\n{people}END:VEVENT\r\n"
    )
    body = series.replace("END:VCALENDAR", moved + "END:VCALENDAR")
    assert put(stack, primary_url(stack) + f"{uid}.ics", body).status_code == 201
    calls = stack.ews_calls()
    listing = _responses(_bob(stack, "PROPFIND", INBOX, LISTING, Depth="1"))
    # the listing reads the new message: the messages, their meetings, and the moved occurrence (one
    # GetItem each); reading the members then costs the listing only
    assert delta(calls, stack.ews_calls()) == {"FindItem": 1, "GetItem": 3}
    calls = stack.ews_calls()
    texts = _multiget(stack, [h for h in listing if h != INBOX])
    assert delta(calls, stack.ews_calls()) == {"FindItem": 1}
    (text,) = [t for t in texts.values() if f"UID:{uid}" in t]
    assert "METHOD:REQUEST" in text and "RRULE:FREQ=WEEKLY;COUNT=4" in text
    assert "RECURRENCE-ID;TZID=Europe/Berlin:20261109T100000" in text
    assert "SUMMARY:Weekly sync (moved)" in text


def test_a_message_whose_meeting_left_the_calendar_is_not_listed(stack, emulator):
    """python-caldav's scheduling tests clean up the way a user does: the organizer deletes the meeting
    (bob gets a cancellation), then bob deletes his copy. The cancellation stays in his Exchange Inbox,
    but there is nothing left to render it from: it must not be listed (RFC 4918 §9.1: a member a
    PROPFIND names can be retrieved), and every member listed answers GET."""
    uid = str(uuid.uuid4())
    alice_event = _invite(stack, uid)
    assert requests.delete(alice_event, auth=("alice", stack.password)).status_code == 204
    bobs_copy = dav_client(stack, "bob").principal().calendars()[0].event_by_uid(uid)
    bobs_copy.delete()
    pending = str(uuid.uuid4())
    _invite(stack, pending)  # a request bob has not answered yet: listed as before

    listing = _responses(_bob(stack, "PROPFIND", INBOX, LISTING, Depth="1"))
    members = [h for h in listing if h != INBOX]
    assert {h: _bob(stack, "GET", h).status_code for h in members} == {h: 200 for h in members}
    texts = _multiget(stack, members)
    assert sorted(texts) == sorted(members)
    assert [t for t in texts.values() if f"UID:{pending}" in t]
    assert not [t for t in texts.values() if f"UID:{uid}" in t]
