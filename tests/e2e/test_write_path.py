"""The CalDAV write path end to end: PUT/DELETE/MKCALENDAR through the gateway into the EWS emulator."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import socket
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import caldav
import pytest
import requests
from lxml import etree

from gateway.ews.index import ItemIndex
from tests.e2e.test_read_path import dav_client, delta, exchange_account
from tests.ews.test_mapping_corpus import (
    DEFAULT_TZ,
    INEXPRESSIBLE,
    LEGAL,
    _corpus_params,
    assert_same_event,
    split_by_uid,
)
from tests.support.ical_compare import assert_same_properties
from tests.support.postgres import on_both_stores

CALDAV_NS = "{urn:ietf:params:xml:ns:caldav}"
ICS = {"Content-Type": "text/calendar; charset=utf-8"}


def event(uid: str, summary: str = "Planning", extra: str = "", start: str = "20261125T100000") -> str:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//tests//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20261120T100000Z\r\nDTSTART;TZID=Europe/Berlin:{start}\r\n"
        f"DTEND;TZID=Europe/Berlin:{start[:9]}{int(start[9:11]) + 1:02d}{start[11:]}\r\nSUMMARY:{summary}\r\n{extra}"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )


def primary_url(stack, user: str = "alice") -> str:
    return str(dav_client(stack, user).principal().calendars()[0].url)


def put(stack, url: str, body: str, headers: dict | None = None, user: str = "alice") -> requests.Response:
    return requests.put(
        url, data=body.encode(), headers={**ICS, **(headers or {})}, auth=(user, stack.password)
    )


def etag_of(stack, url: str) -> str:
    return requests.head(url, auth=("alice", stack.password)).headers["ETag"]


def exchange_subjects(emulator, uid: str) -> list[str]:
    account = exchange_account(emulator)
    return [i.subject for i in account.calendar.all().only("uid", "subject") if i.uid == uid]


def writes(calls: dict[str, int]) -> int:
    return sum(calls.get(op, 0) for op in ("CreateItem", "UpdateItem", "DeleteItem", "CreateFolder"))


@on_both_stores
def test_create_keeps_href_and_uid_and_costs_two_calls(stack, emulator):
    uid = str(uuid.uuid4())
    url = primary_url(stack) + "my-own-name.ics"
    before = stack.ews_calls()
    created = put(stack, url, event(uid), {"If-None-Match": "*"})
    used = delta(before, stack.ews_calls())
    # RFC 4791 §5.3.4: Exchange re-renders the event, so no strong ETag comes with the PUT answer
    assert created.status_code == 201 and "ETag" not in created.headers
    assert sum(used.values()) <= 2 and used.get("CreateItem") == 1, used
    assert exchange_subjects(emulator, uid) == ["Planning"]
    fetched = requests.get(url, auth=("alice", stack.password))
    assert fetched.status_code == 200 and f"UID:{uid}" in fetched.text
    assert fetched.headers["ETag"].startswith('"')
    # If-None-Match: * on an existing resource never overwrites
    again = put(stack, url, event(uid, "Overwritten?"), {"If-None-Match": "*"})
    assert again.status_code == 412
    assert exchange_subjects(emulator, uid) == ["Planning"]


@on_both_stores
def test_the_get_after_a_create_is_one_getitem_and_the_new_event_syncs_once(stack, emulator):
    """A PUT answer has no ETag, so clients GET what they created: the PUT indexed the new item,
    so that GET is one GetItem (no SyncFolderItems to find it). A sync then lists it once."""
    calendar = dav_client(stack).principal().calendars()[0]
    first = calendar.objects_by_sync_token(load_objects=False)
    uid = str(uuid.uuid4())
    url = str(calendar.url) + "created-then-read.ics"
    assert put(stack, url, event(uid)).status_code == 201
    before = stack.ews_calls()
    fetched = requests.get(url, auth=("alice", stack.password))
    assert fetched.status_code == 200 and f"UID:{uid}" in fetched.text
    assert delta(before, stack.ews_calls()) == {"GetItem": 1}
    changed = calendar.objects_by_sync_token(sync_token=first.sync_token, load_objects=False)
    assert [o.url.path for o in changed] == [requests.utils.urlparse(url).path]
    assert list(calendar.objects_by_sync_token(sync_token=changed.sync_token, load_objects=False)) == []


@on_both_stores
def test_a_get_waits_for_a_create_still_being_indexed(stack, emulator, monkeypatch):
    """The PUT is answered while its item is indexed; a GET that arrives before the index write is done
    waits for it instead of asking Exchange (one GetItem, no SyncFolderItems)."""
    real = ItemIndex.record_created

    async def slow(self, *args):
        await asyncio.sleep(0.5)
        return await real(self, *args)

    monkeypatch.setattr(ItemIndex, "record_created", slow)
    uid = str(uuid.uuid4())
    url = primary_url(stack) + "indexed-slowly.ics"
    assert put(stack, url, event(uid)).status_code == 201
    before = stack.ews_calls()
    fetched = requests.get(url, auth=("alice", stack.password))
    assert fetched.status_code == 200 and f"UID:{uid}" in fetched.text
    assert delta(before, stack.ews_calls()) == {"GetItem": 1}


def test_a_get_that_reads_the_index_just_before_the_create_is_written_finds_it(stack, emulator, monkeypatch):
    """The GET's first index read can miss a row whose write commits a moment later (the create was being
    indexed, then finished before the GET asked whether any was): it reads again instead of asking
    Exchange with a SyncFolderItems."""
    real = ItemIndex.by_names
    missed: list[bool] = []

    async def read_too_early(self, calendar_key, names):
        if names == ["just-before.ics"] and not missed:
            missed.append(True)
            await asyncio.sleep(0.5)  # the create's row is committed meanwhile
            return {}
        return await real(self, calendar_key, names)

    monkeypatch.setattr(ItemIndex, "by_names", read_too_early)
    uid = str(uuid.uuid4())
    url = primary_url(stack) + "just-before.ics"
    assert put(stack, url, event(uid)).status_code == 201
    before = stack.ews_calls()
    fetched = requests.get(url, auth=("alice", stack.password))
    assert fetched.status_code == 200 and f"UID:{uid}" in fetched.text
    assert missed and delta(before, stack.ews_calls()) == {"GetItem": 1}


@on_both_stores
def test_a_retried_create_does_not_duplicate(stack, emulator):
    uid = str(uuid.uuid4())
    url = primary_url(stack) + "retried.ics"
    assert put(stack, url, event(uid)).status_code == 201
    assert put(stack, url, event(uid)).status_code == 204  # the client lost our answer and sent it again
    assert exchange_subjects(emulator, uid) == ["Planning"]


@on_both_stores
def test_update_with_if_match_and_stale_etag(stack, emulator):
    uid = str(uuid.uuid4())
    url = primary_url(stack) + "update-me.ics"
    put(stack, url, event(uid))
    etag = etag_of(stack, url)
    before = stack.ews_calls()
    updated = put(stack, url, event(uid, "Planning v2"), {"If-Match": etag})
    used = delta(before, stack.ews_calls())
    assert updated.status_code == 204 and etag_of(stack, url) != etag
    assert sum(used.values()) <= 3, used
    assert exchange_subjects(emulator, uid) == ["Planning v2"]
    stale = put(stack, url, event(uid, "Planning v3"), {"If-Match": etag})
    assert stale.status_code == 412
    assert exchange_subjects(emulator, uid) == ["Planning v2"]


@on_both_stores
def test_an_outlook_change_between_read_and_put_gives_412_and_keeps_both(stack, emulator):
    uid = str(uuid.uuid4())
    url = primary_url(stack) + "concurrent.ics"
    put(stack, url, event(uid))
    read = requests.get(url, auth=("alice", stack.password))
    account = exchange_account(emulator)
    item = next(i for i in account.calendar.all() if i.uid == uid)
    item.subject = "Edited in Outlook"
    item.save(update_fields=["subject"])
    client_version = read.text.replace("SUMMARY:Planning", "SUMMARY:Edited in the CalDAV client")
    refused = put(stack, url, client_version, {"If-Match": read.headers["ETag"]})
    assert refused.status_code == 412
    assert exchange_subjects(emulator, uid) == ["Edited in Outlook"]  # Outlook's version is kept in Exchange
    assert "Edited in Outlook" in requests.get(url, auth=("alice", stack.password)).text
    # ... and the client still holds its own text, so it can merge and PUT again with the new ETag
    fresh_etag = requests.head(url, auth=("alice", stack.password)).headers["ETag"]
    assert put(stack, url, client_version, {"If-Match": fresh_etag}).status_code == 204
    assert exchange_subjects(emulator, uid) == ["Edited in the CalDAV client"]


@on_both_stores
def test_delete_with_if_match_costs_two_calls(stack, emulator):
    uid = str(uuid.uuid4())
    url = primary_url(stack) + "delete-me.ics"
    put(stack, url, event(uid))
    etag = etag_of(stack, url)
    assert (
        requests.delete(url, headers={"If-Match": '"stale"'}, auth=("alice", stack.password)).status_code
        == 412
    )
    assert exchange_subjects(emulator, uid) == ["Planning"]
    before = stack.ews_calls()
    assert requests.delete(url, headers={"If-Match": etag}, auth=("alice", stack.password)).status_code == 204
    assert sum(delta(before, stack.ews_calls()).values()) <= 2
    assert exchange_subjects(emulator, uid) == []
    assert requests.get(url, auth=("alice", stack.password)).status_code == 404


@on_both_stores
def test_recurring_series_with_exdate_and_override_round_trips(stack):
    uid = str(uuid.uuid4())
    body = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//tests//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20261120T100000Z\r\nDTSTART;TZID=Europe/Berlin:20261125T100000\r\n"
        "DTEND;TZID=Europe/Berlin:20261125T110000\r\nRRULE:FREQ=WEEKLY;COUNT=6\r\n"
        "EXDATE;TZID=Europe/Berlin:20261202T100000\r\nSUMMARY:Weekly\r\nEND:VEVENT\r\n"
        f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20261120T100000Z\r\nRECURRENCE-ID;TZID=Europe/Berlin:20261209T100000\r\n"
        "DTSTART;TZID=Europe/Berlin:20261209T140000\r\nDTEND;TZID=Europe/Berlin:20261209T150000\r\n"
        "SUMMARY:Weekly (moved)\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    url = primary_url(stack) + "weekly.ics"
    assert put(stack, url, body).status_code == 201
    stored = requests.get(url, auth=("alice", stack.password)).text
    assert_same_event(body, stored)
    # an override removed and a new EXDATE added in a later PUT are applied as such
    later = body.replace(
        "EXDATE;TZID=Europe/Berlin:20261202T100000\r\n",
        "EXDATE;TZID=Europe/Berlin:20261202T100000,20261216T100000\r\n",
    )
    assert put(stack, url, later).status_code == 204
    assert_same_event(later, requests.get(url, auth=("alice", stack.password)).text)


@pytest.mark.parametrize(
    ("name", "body", "content_type", "status", "precondition"),
    [
        ("garbage", "this is not iCalendar", "text/calendar", 400, "valid-calendar-data"),
        (
            "hourly",
            event("u-hourly", extra="RRULE:FREQ=HOURLY\r\n"),
            "text/calendar",
            403,
            "valid-calendar-object-resource",
        ),
        (
            "byhour",
            event("u-byhour", extra="RRULE:FREQ=DAILY;BYHOUR=9,10\r\n"),
            "text/calendar",
            403,
            "valid-calendar-object-resource",
        ),
        (
            "monthdays",
            event("u-md", extra="RRULE:FREQ=MONTHLY;BYMONTHDAY=1,15\r\n"),
            "text/calendar",
            403,
            "valid-calendar-object-resource",
        ),
        (
            "todo",
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VTODO\r\nUID:t1\r\nSUMMARY:x\r\n"
            "END:VTODO\r\nEND:VCALENDAR\r\n",
            "text/calendar",
            403,
            "supported-calendar-component",
        ),
        (
            "two-uids",
            event("u-a").replace("END:VCALENDAR\r\n", "")
            + event("u-b").split("VERSION:2.0\r\nPRODID:-//tests//EN\r\n")[1],
            "text/calendar",
            403,
            "valid-calendar-object-resource",
        ),
        ("json", '{"summary": "x"}', "application/json", 415, None),
    ],
)
@on_both_stores
def test_bad_input_is_refused_with_a_precondition_and_nothing_is_written(
    stack, emulator, name, body, content_type, status, precondition
):
    url = primary_url(stack) + f"{name}.ics"
    before = stack.ews_calls()
    answer = requests.put(
        url, data=body.encode(), headers={"Content-Type": content_type}, auth=("alice", stack.password)
    )
    assert answer.status_code == status, answer.text
    if precondition:
        assert etree.fromstring(answer.content).find(f"{CALDAV_NS}{precondition}") is not None
    assert "Traceback" not in answer.text
    assert writes(delta(before, stack.ews_calls())) == 0


@on_both_stores
def test_oversized_body_is_refused(stack):
    url = primary_url(stack) + "huge.ics"
    huge = event("u-huge", extra="DESCRIPTION:" + "x" * 2_000_000 + "\r\n")
    answer = put(stack, url, huge)
    assert answer.status_code == 413
    assert answer.headers["Connection"] == "close"  # the rest of the body is not wanted: stop sending


def test_a_refused_upload_does_not_hold_up_the_shutdown(stack):
    """A client that got its 413 before sending the whole body and closes a moment later: the gateway's
    read of the rest ends with the connection, so stopping the gateway does not wait for it."""
    url = urlsplit(primary_url(stack) + "huge.ics")
    credentials = base64.b64encode(f"alice:{stack.password}".encode()).decode()
    client = socket.create_connection((url.hostname, url.port))
    client.sendall(
        f"PUT {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\nAuthorization: Basic {credentials}\r\n"
        "Content-Type: text/calendar\r\nContent-Length: 2000000\r\n\r\n".encode()
        + b"BEGIN:VCALENDAR\r\n" * 1000
    )
    head = client.recv(65536).decode()
    assert head.startswith("HTTP/1.1 413 ") and "Connection: close" in head
    closing = threading.Timer(0.5, client.close)  # the client closes while the gateway is stopping
    closing.start()
    started = time.monotonic()
    stack.run(stack.stack.stop())
    stack.stack = None
    closing.join()
    assert time.monotonic() - started < 5  # aiohttp's lingering read alone would wait 10 s


@pytest.mark.parametrize("headers", [{}, {"If-None-Match": "*"}], ids=["plain", "if-none-match"])
@on_both_stores
def test_uid_used_by_another_resource_is_a_conflict(stack, emulator, headers):
    uid = str(uuid.uuid4())
    base = primary_url(stack)
    assert put(stack, base + "first.ics", event(uid)).status_code == 201
    conflict = put(stack, base + "second.ics", event(uid, "Duplicate"), headers)
    assert conflict.status_code == 403
    found = etree.fromstring(conflict.content).find(f"{CALDAV_NS}no-uid-conflict")
    assert found is not None and found.findtext("{DAV:}href").endswith("/first.ics")
    assert exchange_subjects(emulator, uid) == ["Planning"]


@on_both_stores
def test_python_caldav_save_modify_delete(stack, emulator):
    calendar = dav_client(stack).principal().calendars()[0]
    uid = str(uuid.uuid4())
    saved = calendar.save_event(event(uid, "From python-caldav"))
    assert exchange_subjects(emulator, uid) == ["From python-caldav"]
    saved.icalendar_component["SUMMARY"] = "Modified by python-caldav"
    saved.save()
    assert exchange_subjects(emulator, uid) == ["Modified by python-caldav"]
    saved.delete()
    assert exchange_subjects(emulator, uid) == []


@on_both_stores
def test_sub_calendars_can_be_created_renamed_and_deleted(stack, emulator):
    principal = dav_client(stack).principal()
    created = principal.make_calendar(name="Team offsite")
    names = [f.name for f in exchange_account(emulator).calendar.children]
    assert "Team offsite" in names
    created.set_properties([caldav.elements.dav.DisplayName("Offsite 2027")])
    assert "Offsite 2027" in [f.name for f in exchange_account(emulator).calendar.children]
    uid = str(uuid.uuid4())
    created.save_event(event(uid, "In the new calendar"))
    created.delete()
    assert "Offsite 2027" not in [f.name for f in exchange_account(emulator).calendar.children]
    primary = principal.calendars()[0]
    refused = requests.delete(str(primary.url), auth=("alice", stack.password))
    assert refused.status_code == 403 and "primary" in refused.text.lower()


@on_both_stores
def test_invitations_are_sent_when_the_owner_organises(stack, emulator):
    uid = str(uuid.uuid4())
    meeting = event(
        uid,
        "Design review",
        extra="ORGANIZER:mailto:alice@example.com\r\nATTENDEE;ROLE=REQ-PARTICIPANT:mailto:bob@example.com\r\n",
    )
    assert put(stack, primary_url(stack) + "meeting.ics", meeting).status_code == 201
    sent = emulator.state.store.mailboxes["alice@example.com"].sent
    assert any(m.uid == uid and "bob@example.com" in m.recipients for m in sent)
    # an event organised by someone else is stored without sending anything
    other = str(uuid.uuid4())
    foreign = event(
        other,
        "Their meeting",
        extra="ORGANIZER:mailto:carol@example.com\r\nATTENDEE:mailto:alice@example.com\r\n",
    )
    assert put(stack, primary_url(stack) + "foreign.ics", foreign).status_code == 201
    assert not any(m.uid == other for m in emulator.state.store.mailboxes["alice@example.com"].sent)


@pytest.mark.parametrize("path", _corpus_params())
def test_corpus_put_then_get_is_the_same_event(stack, emulator, path: Path):
    """Every valid corpus resource PUT then GET is the same event (occurrences, as before) with the same
    properties and parameters per component (VCALENDAR, each VEVENT, each VALARM), values equal; malformed
    ones write nothing. Normalisations, each where Exchange (or RFC 4791) has its own form (details in
    tests/support/ical_compare.py): PRODID is the gateway's, CALSCALE not written, METHOD dropped,
    VTIMEZONEs regenerated; DTSTART/DTEND/RECURRENCE-ID/EXDATE compared as instants with the gateway's
    TZID (zone named as Exchange names it, floating times in the calendar's zone) and VALUE, an Exchange
    2010 midnight RECURRENCE-ID as the occurrence it names, an EXDATE date of a timed series as that day's
    occurrences; other TZID parameter values renamed alike; SUMMARY/DESCRIPTION/LOCATION/UID/X-ALT-DESC
    equal as text (escaping may differ); SEQUENCE equal as a number."""
    data = path.read_bytes()
    base = primary_url(stack)
    before = stack.ews_calls()
    if (path.name.startswith("malformed-") and path.name not in LEGAL) or path.name in INEXPRESSIBLE:
        answer = requests.put(base + "bad.ics", data=data, headers=ICS, auth=("alice", stack.password))
        assert 400 <= answer.status_code < 500
        assert writes(delta(before, stack.ews_calls())) == 0
        return
    for number, text in enumerate(split_by_uid(data).values()):
        url = f"{base}corpus-{number}.ics"
        answer = put(stack, url, text)
        assert answer.status_code == 201, answer.text
        stored = requests.get(url, auth=("alice", stack.password))
        assert_same_event(text, stored.text)
        assert_same_properties(text, stored.text, DEFAULT_TZ)


def set_invitations(stack, policy: str) -> None:
    """Alice's account option ``invitations`` (docs/WRITES.md): who sends invitations and answers."""
    accounts = stack.stack.services.accounts

    async def change() -> None:
        user = await accounts.find_user("alice")
        (record,) = await accounts.list_accounts(user.user_id)
        await accounts.set_account_options(user.user_id, record.account_id, invitations=policy)

    stack.run(change())


@on_both_stores
def test_invitations_are_not_sent_when_the_account_says_never(stack, emulator):
    set_invitations(stack, "never")
    uid = str(uuid.uuid4())
    meeting = event(
        uid,
        "Quiet meeting",
        extra="ORGANIZER:mailto:alice@example.com\r\nATTENDEE:mailto:bob@example.com\r\n",
    )
    assert put(stack, primary_url(stack) + "quiet.ics", meeting).status_code == 201
    assert exchange_subjects(emulator, uid) == ["Quiet meeting"]
    assert not any(m.uid == uid for m in emulator.state.store.mailboxes["alice@example.com"].sent)


@on_both_stores
def test_collection_colour_order_and_description_are_kept(stack):
    principal = dav_client(stack).principal()
    created = principal.make_calendar(name="Colourful")
    body = (
        '<D:propertyupdate xmlns:D="DAV:" xmlns:A="http://apple.com/ns/ical/" '
        'xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop><A:calendar-color>#FF8800FF</A:calendar-color>'
        "<A:calendar-order>7</A:calendar-order><C:calendar-description>Team events</C:calendar-description>"
        "</D:prop></D:set></D:propertyupdate>"
    )
    answer = requests.request(
        "PROPPATCH",
        str(created.url),
        data=body,
        auth=("alice", stack.password),
        headers={"Content-Type": "application/xml"},
    )
    assert answer.status_code == 207 and "200 OK" in answer.text
    stack.restart()  # kept by the gateway, not only in memory
    found = requests.request(
        "PROPFIND",
        str(created.url).replace(str(created.url).split("/dav/")[0], stack.base_url),
        data='<D:propfind xmlns:D="DAV:" xmlns:A="http://apple.com/ns/ical/" xmlns:C="urn:ietf:params:xml:ns:caldav">'
        "<D:prop><A:calendar-color/><A:calendar-order/><C:calendar-description/></D:prop></D:propfind>",
        headers={"Depth": "0"},
        auth=("alice", stack.password),
    )
    tree = etree.fromstring(found.content)
    assert tree.findtext(".//{http://apple.com/ns/ical/}calendar-color") == "#FF8800FF"
    assert tree.findtext(".//{http://apple.com/ns/ical/}calendar-order") == "7"
    assert tree.findtext(f".//{CALDAV_NS}calendar-description") == "Team events"


@on_both_stores
def test_exchange_busy_is_retried_and_the_write_lands_once(stack, emulator):
    uid = str(uuid.uuid4())
    emulator.set_faults(
        rules=[{"kind": "server_busy", "operation": "CreateItem", "count": 1, "back_off_ms": 200}]
    )
    created = put(stack, primary_url(stack) + "busy.ics", event(uid), {"If-None-Match": "*"})
    assert created.status_code == 201
    assert exchange_subjects(emulator, uid) == ["Planning"]


@on_both_stores
def test_exchange_staying_busy_gives_503_and_writes_nothing(stack, emulator):
    uid = str(uuid.uuid4())
    emulator.set_faults(rules=[{"kind": "server_busy", "operation": "CreateItem", "back_off_ms": 500}])
    refused = put(stack, primary_url(stack) + "busy.ics", event(uid), {"If-None-Match": "*"})
    assert refused.status_code == 503 and int(refused.headers["Retry-After"]) >= 1
    emulator.set_faults(rules=[])
    assert exchange_subjects(emulator, uid) == []


@on_both_stores
def test_a_repeated_month_view_reads_only_single_events_that_changed(stack, emulator):
    """A single event's rendering is reused while Exchange reports the same ChangeKey for it in FindItem;
    an edit made in Outlook changes the key, so the next view fetches and shows the new version."""
    calendar = dav_client(stack).principal().make_calendar(name="Singles")
    for n in range(3):
        calendar.save_event(event(str(uuid.uuid4()), f"Single {n}", start=f"202612{10 + n:02d}T100000"))
    start, end = dt.datetime(2026, 12, 1, tzinfo=dt.UTC), dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    assert len(calendar.search(start=start, end=end, event=True)) == 3
    before = stack.ews_calls()
    summaries = sorted(
        str(e.icalendar_component["SUMMARY"]) for e in calendar.search(start=start, end=end, event=True)
    )
    assert summaries == ["Single 0", "Single 1", "Single 2"]
    assert delta(before, stack.ews_calls()) == {"FindItem": 1}  # nothing changed: no GetItem
    folder = next(f for f in exchange_account(emulator).calendar.children if f.name == "Singles")
    item = next(i for i in folder.all() if i.subject == "Single 1")
    item.subject = "Single 1 (moved in Outlook)"
    item.save(update_fields=["subject"])
    before = stack.ews_calls()
    summaries = sorted(
        str(e.icalendar_component["SUMMARY"]) for e in calendar.search(start=start, end=end, event=True)
    )
    assert summaries == ["Single 0", "Single 1 (moved in Outlook)", "Single 2"]
    assert delta(before, stack.ews_calls()) == {"FindItem": 1, "GetItem": 1}  # only the changed one is read
