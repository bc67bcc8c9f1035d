"""The scheduling inbox collection (RFC 6638 §2.2) over the in-memory backend: its messages are listed,
read, synced and deleted as calendar object resources; nothing can be written into it."""

from __future__ import annotations

from tests.support.dav import Dav
from tests.support.memory_backend import MemoryBackend

DAV = "{DAV:}"
CAL = "{urn:ietf:params:xml:ns:caldav}"
CS = "{http://calendarserver.org/ns/}"
INBOX = "/dav/calendars/alice/inbox/"
REQUEST = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nUID:m-1\r\n"
    "DTSTAMP:20261101T090000Z\r\nDTSTART:20261105T090000Z\r\nDTEND:20261105T100000Z\r\nSUMMARY:Review\r\n"
    "ORGANIZER:mailto:bob@example.com\r\nATTENDEE:mailto:alice@example.com\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)
PROPS = (
    '<d:propfind xmlns:d="DAV:" xmlns:cs="http://calendarserver.org/ns/"><d:prop><d:getetag/><cs:getctag/>'
    "<d:sync-token/></d:prop></d:propfind>"
)


def _sync(token: str) -> str:
    return (
        f'<d:sync-collection xmlns:d="DAV:"><d:sync-token>{token}</d:sync-token><d:sync-level>1</d:sync-level>'
        "<d:prop><d:getetag/></d:prop></d:sync-collection>"
    )


async def test_messages_are_listed_read_and_deleted(dav: Dav, backend: MemoryBackend) -> None:
    empty = await dav("PROPFIND", INBOX, PROPS, depth="1")
    assert list(empty.responses()) == [INBOX]
    token = empty.prop(INBOX, f"{DAV}sync-token").text
    ctag = empty.prop(INBOX, f"{CS}getctag").text

    backend.deliver("alice", "m-1.ics", REQUEST)
    listed = await dav("PROPFIND", INBOX, PROPS, depth="1")
    assert sorted(listed.responses()) == [INBOX, INBOX + "m-1.ics"]
    assert listed.prop(INBOX, f"{CS}getctag").text != ctag
    etag = listed.prop(INBOX + "m-1.ics", f"{DAV}getetag").text

    got = await dav("GET", INBOX + "m-1.ics")
    assert got.status == 200 and got.text == REQUEST and got.headers["ETag"] == etag

    multiget = (
        '<c:calendar-multiget xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop><c:calendar-data/>'
        f"</d:prop><d:href>{INBOX}m-1.ics</d:href><d:href>/dav/calendars/alice/calendar/x.ics</d:href>"
        "</c:calendar-multiget>"
    )
    report = await dav("REPORT", INBOX, multiget, depth="1")
    assert report.prop(INBOX + "m-1.ics", f"{CAL}calendar-data").text == REQUEST
    assert "404" in report.responses()["/dav/calendars/alice/calendar/x.ics"].findtext(f"{DAV}status")

    changed = await dav("REPORT", INBOX, _sync(token))
    assert list(changed.responses()) == [INBOX + "m-1.ics"]
    after = changed.xml.findtext(f"{DAV}sync-token")

    assert (await dav("DELETE", INBOX + "m-1.ics", headers={"If-Match": '"other"'})).status == 412
    assert (await dav("DELETE", INBOX + "m-1.ics")).status == 204
    assert (await dav("GET", INBOX + "m-1.ics")).status == 404
    gone = await dav("REPORT", INBOX, _sync(after))
    assert "404" in gone.responses()[INBOX + "m-1.ics"].findtext(f"{DAV}status")


async def test_the_inbox_refuses_writes_and_unknown_tokens(dav: Dav, backend: MemoryBackend) -> None:
    event = REQUEST.replace("METHOD:REQUEST\r\n", "")
    put = await dav("PUT", INBOX + "mine.ics", event, content_type="text/calendar")
    assert put.status == 403 and "inbox" in put.text
    assert backend.inboxes.get("alice", {}) == {}
    refused = await dav("REPORT", INBOX, _sync("urn:x-gateway:inbox:0000"))
    assert refused.status == 403 and "valid-sync-token" in refused.text
    assert (await dav("DELETE", INBOX + "nothing.ics")).status == 404


async def test_one_users_messages_are_not_anothers(dav: Dav, backend: MemoryBackend) -> None:
    backend.deliver("bob", "b-1.ics", REQUEST)
    assert list((await dav("PROPFIND", INBOX, PROPS, depth="1")).responses()) == [INBOX]
    assert (await dav("GET", "/dav/calendars/bob/inbox/b-1.ics")).status in (403, 404)
    # a sync-token of bob's inbox tells alice nothing of it
    bob = Dav(dav.client, "bob", "bob-app-pw")
    bobs = (await bob("PROPFIND", "/dav/calendars/bob/inbox/", PROPS, depth="0")).xml.findtext(
        f".//{DAV}sync-token"
    )
    assert (await dav("REPORT", INBOX, _sync(bobs))).status == 403
