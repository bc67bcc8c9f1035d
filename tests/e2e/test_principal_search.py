"""Finding people and rooms (issue 14): a client's principal-property-search REPORT (RFC 3744 §9.4) on
the principal collection → one ResolveNames on the EWS emulator's directory, and the directory
principals it names answer PROPFIND, so the client can ask their free/busy through the outbox.

python-caldav's ``search_principals`` expects a calendar-home-set of every principal it finds, which a
directory principal has not (the gateway serves no one else's calendars), so the REPORTs here are the
raw bodies Apple Calendar and Evolution send."""

from __future__ import annotations

import datetime as dt

import requests
from lxml import etree

from tests.e2e.test_read_path import dav_client, delta, today_utc

DAV = "{DAV:}"
CAL = "{urn:ietf:params:xml:ns:caldav}"
CS = "{http://calendarserver.org/ns/}"
PRINCIPALS = "/dav/principals/"
# Apple Calendar's attendee look-up: any of name, e-mail and calendar user address starts with the text.
SEARCH = """<?xml version="1.0" encoding="UTF-8"?>
<A:principal-property-search xmlns:A="DAV:" xmlns:B="urn:ietf:params:xml:ns:caldav"
    xmlns:C="http://calendarserver.org/ns/" test="anyof">
  <A:property-search><A:prop><A:displayname/></A:prop><A:match match-type="starts-with">{text}</A:match></A:property-search>
  <A:property-search><A:prop><C:email-address-set/></A:prop><A:match match-type="starts-with">{text}</A:match></A:property-search>
  <A:property-search><A:prop><B:calendar-user-address-set/></A:prop><A:match match-type="starts-with">{text}</A:match></A:property-search>
  <A:prop><A:displayname/><B:calendar-user-address-set/><B:calendar-user-type/><A:principal-URL/></A:prop>
</A:principal-property-search>"""


def _dav(stack, method: str, path: str, body: str = "", **headers: str) -> requests.Response:
    return requests.request(
        method,
        stack.base_url + path,
        data=body.encode("utf-8"),
        headers={"Content-Type": "application/xml; charset=utf-8", **headers},
        auth=("alice", stack.password),
        timeout=30,
    )


def _found(response: requests.Response) -> dict[str, dict[str, etree._Element]]:
    """principal URL -> property name -> its element, of every 200 propstat."""
    assert response.status_code == 207, response.text
    found = {}
    for r in etree.fromstring(response.content).iter(f"{DAV}response"):
        props = {}
        for propstat in r.iter(f"{DAV}propstat"):
            if " 200 " in propstat.findtext(f"{DAV}status"):
                props.update({p.tag: p for p in propstat.find(f"{DAV}prop")})
        found[r.findtext(f"{DAV}href")] = props
    return found


def test_searching_car_finds_carol_with_one_resolvenames(stack):
    before = stack.ews_calls()
    found = _found(_dav(stack, "REPORT", PRINCIPALS, SEARCH.format(text="car"), Depth="0"))
    # The first search also learns the organisation's rooms (cached for an hour).
    assert delta(before, stack.ews_calls()) == {"ResolveNames": 1, "GetRoomLists": 1, "GetRooms": 1}
    url = "/dav/principals/directory/carol@example.com/"
    assert list(found) == [url]
    carol = found[url]
    assert carol[f"{DAV}displayname"].text == "Carol Clark"
    assert [h.text for h in carol[f"{CAL}calendar-user-address-set"]][0] == "mailto:carol@example.com"
    assert carol[f"{CAL}calendar-user-type"].text == "INDIVIDUAL"
    assert carol[f"{DAV}principal-URL"].findtext(f"{DAV}href") == url

    # The principal it names answers PROPFIND, and its address gets carol's free/busy from the outbox.
    props = (
        '<d:propfind xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop><d:displayname/>'
        "<d:resourcetype/><c:calendar-user-type/><c:calendar-user-address-set/></d:prop></d:propfind>"
    )
    profile = _found(_dav(stack, "PROPFIND", url, props, Depth="0"))[url]
    assert profile[f"{DAV}displayname"].text == "Carol Clark"
    assert profile[f"{CAL}calendar-user-type"].text == "INDIVIDUAL"
    assert f"{DAV}principal" in [c.tag for c in profile[f"{DAV}resourcetype"]]
    address = profile[f"{CAL}calendar-user-address-set"].findtext(f"{DAV}href")
    start, end = today_utc(), today_utc() + dt.timedelta(days=7)
    request = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nMETHOD:REQUEST\r\nBEGIN:VFREEBUSY\r\n"
        f"DTSTAMP:{start:%Y%m%dT%H%M%SZ}\r\nUID:search-1\r\nORGANIZER:mailto:alice@example.com\r\n"
        f"DTSTART:{start:%Y%m%dT%H%M%SZ}\r\nDTEND:{end:%Y%m%dT%H%M%SZ}\r\nATTENDEE:{address}\r\n"
        "END:VFREEBUSY\r\nEND:VCALENDAR\r\n"
    )
    answer = _dav(stack, "POST", "/dav/calendars/alice/outbox/", request, **{"Content-Type": "text/calendar"})
    assert answer.status_code == 200, answer.text
    (carol_answer,) = etree.fromstring(answer.content).iter(f"{CAL}response")
    assert carol_answer.findtext(f"{CAL}recipient/{DAV}href") == "mailto:carol@example.com"
    assert carol_answer.findtext(f"{CAL}request-status").startswith("2.0")
    assert "BEGIN:VFREEBUSY" in carol_answer.findtext(f"{CAL}calendar-data")


def test_an_unknown_directory_principal_is_404(stack):
    assert (
        _dav(stack, "PROPFIND", "/dav/principals/directory/nobody@example.com/", Depth="0").status_code == 404
    )


def test_a_search_without_text_is_refused_with_a_sentence(stack):
    response = _dav(stack, "REPORT", PRINCIPALS, SEARCH.format(text="  "), Depth="0")
    assert response.status_code == 400
    assert "empty" in response.text


def test_the_principal_collection_offers_the_search_reports(stack):
    body = '<?xml version="1.0"?><d:propfind xmlns:d="DAV:"><d:prop><d:supported-report-set/></d:prop></d:propfind>'
    found = _found(_dav(stack, "PROPFIND", PRINCIPALS, body, Depth="0"))[PRINCIPALS]
    reports = {
        r.tag for r in found[f"{DAV}supported-report-set"].iter() if r.getparent().tag == f"{DAV}report"
    }
    assert reports == {
        f"{DAV}principal-property-search",
        f"{DAV}principal-search-property-set",
        f"{CS}calendarserver-principal-search",
    }
    searchable = _dav(
        stack, "REPORT", PRINCIPALS, '<?xml version="1.0"?><d:principal-search-property-set xmlns:d="DAV:"/>'
    )
    assert searchable.status_code == 200
    names = {
        p.tag
        for p in etree.fromstring(searchable.content).iter()
        if p.getparent() is not None and p.getparent().tag == f"{DAV}prop"
    }
    assert names == {
        f"{DAV}displayname",
        f"{CAL}calendar-user-address-set",
        "{http://calendarserver.org/ns/}email-address-set",
    }


def test_a_room_is_found_as_a_room_and_a_later_search_is_one_resolvenames(stack):
    _found(_dav(stack, "REPORT", PRINCIPALS, SEARCH.format(text="bob"), Depth="0"))
    before = stack.ews_calls()
    found = _found(_dav(stack, "REPORT", PRINCIPALS, SEARCH.format(text="room"), Depth="0"))
    assert delta(before, stack.ews_calls()) == {"ResolveNames": 1}
    room = found["/dav/principals/directory/room-1@example.com/"]
    assert room[f"{DAV}displayname"].text == "Room 1"
    assert room[f"{CAL}calendar-user-type"].text == "ROOM"


def test_a_search_still_answers_when_exchange_cannot_list_the_rooms(stack, emulator):
    emulator.set_faults(rules=[{"kind": "http_500", "operation": "GetRoomLists"}])
    found = _found(_dav(stack, "REPORT", PRINCIPALS, SEARCH.format(text="room"), Depth="0"))
    room = found["/dav/principals/directory/room-1@example.com/"]
    assert room[f"{CAL}calendar-user-type"].text == "INDIVIDUAL"  # as ResolveNames says: no worse
    emulator.set_faults(rules=[])
    found = _found(_dav(stack, "REPORT", PRINCIPALS, SEARCH.format(text="room"), Depth="0"))
    assert found["/dav/principals/directory/room-1@example.com/"][f"{CAL}calendar-user-type"].text == "ROOM"


def test_python_caldavs_principal_search_still_works_against_exchange(stack):
    """python-caldav requires a calendar-home-set of every principal found: it finds the own principal
    and no directory principal (they have no calendar home here), instead of failing."""
    client = dav_client(stack)
    assert [str(p.url).split(stack.base_url)[-1] for p in client.search_principals(name="Alice")] == [
        "/dav/principals/alice/"
    ]
    assert client.search_principals(name="Carol") == []


# CalendarServer's search, as Evolution and Apple Calendar send it when the DAV header names it.
CS_SEARCH = """<?xml version="1.0" encoding="UTF-8"?>
<C:calendarserver-principal-search xmlns:A="DAV:" xmlns:B="urn:ietf:params:xml:ns:caldav"
    xmlns:C="http://calendarserver.org/ns/" context="{context}">
  {tokens}{limit}
  <A:prop><A:displayname/><B:calendar-user-address-set/><B:calendar-user-type/><A:principal-URL/></A:prop>
</C:calendarserver-principal-search>"""


def _cs_search(stack, *tokens: str, context: str = "attendee", limit: int | None = None) -> requests.Response:
    body = CS_SEARCH.format(
        context=context,
        tokens="".join(f"<C:search-token>{t}</C:search-token>" for t in tokens),
        limit=f"<C:limit><C:nresults>{limit}</C:nresults></C:limit>" if limit is not None else "",
    )
    return _dav(stack, "REPORT", PRINCIPALS, body, Depth="0")


def test_calendarserver_principal_search_finds_carol_with_one_resolvenames(stack):
    assert "calendarserver-principal-search" in _dav(stack, "OPTIONS", PRINCIPALS).headers["DAV"]
    _found(_cs_search(stack, "bob"))  # the first search also reads the rooms
    before = stack.ews_calls()
    found = _found(_cs_search(stack, "car", "clark"))
    assert delta(before, stack.ews_calls()) == {"ResolveNames": 1}
    carol = found["/dav/principals/directory/carol@example.com/"]
    assert list(found) == ["/dav/principals/directory/carol@example.com/"]
    assert carol[f"{DAV}displayname"].text == "Carol Clark"
    assert carol[f"{CAL}calendar-user-type"].text == "INDIVIDUAL"
    # every token must be found in the name or an address
    assert _found(_cs_search(stack, "car", "brown")) == {}


def test_calendarserver_search_context_picks_rooms_or_people(stack):
    rooms = _found(_cs_search(stack, "room", context="location"))
    assert list(rooms) == ["/dav/principals/directory/room-1@example.com/"]
    assert _found(_cs_search(stack, "room", context="user")) == {}
    assert _found(_cs_search(stack, "carol", context="location")) == {}


def test_searches_list_no_more_than_the_client_asks_for(stack):
    """alice's own name contains "c", and so does Carol's: a limit of one lists one, then says it cut."""
    both = _found(_cs_search(stack, "c"))
    assert set(both) == {"/dav/principals/alice/", "/dav/principals/directory/carol@example.com/"}
    cut = _cs_search(stack, "c", limit=1)
    responses = list(etree.fromstring(cut.content).iter(f"{DAV}response"))
    assert [r.findtext(f"{DAV}href") for r in responses] == ["/dav/principals/alice/", PRINCIPALS]
    assert "507" in responses[1].findtext(f"{DAV}status")
    assert responses[1].find(f"{DAV}error/{DAV}number-of-matches-within-limits") is not None

    rfc = SEARCH.format(text="c").replace(
        "<A:prop><A:displayname/><B:",
        "<A:limit><A:nresults>1</A:nresults></A:limit><A:prop><A:displayname/><B:",
    )
    rfc = rfc.replace('match-type="starts-with"', "")
    responses = list(
        etree.fromstring(_dav(stack, "REPORT", PRINCIPALS, rfc, Depth="0").content).iter(f"{DAV}response")
    )
    assert len(responses) == 2 and "507" in responses[1].findtext(f"{DAV}status")

    refused = _cs_search(stack, "c", limit=0)
    assert refused.status_code == 403 and "number-of-matches-within-limits" in refused.text
    assert _cs_search(stack, "  ").status_code == 400
