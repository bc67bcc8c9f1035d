"""RFC 3744 §9.4 principal-property-search and §9.5 principal-search-property-set: a client looks a
principal up by name or address (python-caldav's principals(name=…), Apple Calendar's people search)."""

from __future__ import annotations

import asyncio
from urllib.parse import urlparse

import pytest

from tests.caldav.test_python_caldav import client_for, server  # noqa: F401 (fixture)

D = "{DAV:}"
C = "{urn:ietf:params:xml:ns:caldav}"
ALICE = "/dav/principals/alice/"


def search(
    *criteria: tuple[str, str], prop: str = "<D:displayname/><C:calendar-home-set/>", test: str = ""
) -> str:
    searches = "".join(
        f"<D:property-search><D:prop>{names}</D:prop><D:match>{text}</D:match></D:property-search>"
        for names, text in criteria
    )
    return (
        '<D:principal-property-search xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"'
        f"{f' test={test!r}' if test else ''}>{searches}<D:prop>{prop}</D:prop>"
        "</D:principal-property-search>"
    )


@pytest.mark.parametrize("path", ["/dav/", "/dav/principals/", ALICE])
async def test_a_search_by_name_finds_the_own_principal(dav, path):
    r = await dav("REPORT", path, search(("<D:displayname/>", "alice")), depth="0")
    assert r.status == 207, r.text
    assert list(r.responses()) == [ALICE]
    assert r.prop(ALICE, D + "displayname").text == "Alice Adams"
    assert r.hrefs(C + "calendar-home-set") == ["/dav/calendars/alice/"]


async def test_the_match_is_a_caseless_substring_of_any_property_named(dav):
    """RFC 3744 §9.4: the preferred default semantics are caseless substring matches; several
    property-search elements must all match unless test="anyof" (CalendarServer's extension)."""
    address = ("<C:calendar-user-address-set/>", "OTHER.example")
    assert list((await dav("REPORT", "/dav/", search(address), depth="0")).responses()) == [ALICE]
    name_or_mail = ("<D:displayname/><C:calendar-user-address-set/>", "adams")
    assert list((await dav("REPORT", "/dav/", search(name_or_mail), depth="0")).responses()) == [ALICE]
    both = search(("<D:displayname/>", "alice"), ("<D:displayname/>", "bob"))
    assert (await dav("REPORT", "/dav/", both, depth="0")).responses() == {}
    either = search(("<D:displayname/>", "alice"), ("<D:displayname/>", "bob"), test="anyof")
    assert list((await dav("REPORT", "/dav/", either, depth="0")).responses()) == [ALICE]


async def test_other_users_are_not_listed(dav):
    """Gateway users see only their own principal, here as everywhere else."""
    r = await dav("REPORT", "/dav/principals/", search(("<D:displayname/>", "Bob")), depth="0")
    assert r.status == 207 and r.responses() == {}
    everyone = await dav("REPORT", "/dav/principals/", search(), depth="0")
    assert list(everyone.responses()) == [ALICE]


async def test_depth_other_than_zero_and_a_malformed_search_are_refused(dav):
    assert (await dav("REPORT", "/dav/", search(), depth="1")).status == 400
    malformed = search().replace(
        "<D:prop>", "<D:property-search><D:match>x</D:match></D:property-search><D:prop>"
    )
    r = await dav("REPORT", "/dav/", malformed, depth="0")
    assert r.status == 400 and "property-search" in r.text


async def test_the_searchable_properties_are_listed(dav):
    body = '<D:principal-search-property-set xmlns:D="DAV:"/>'
    r = await dav("REPORT", "/dav/principals/", body, depth="0")
    assert r.status == 200, r.text
    assert r.xml.tag == D + "principal-search-property-set"
    names = {p.tag for p in r.xml.iterfind(f"{D}principal-search-property/{D}prop/*")}
    assert {D + "displayname", C + "calendar-user-address-set"} <= names
    assert all(d.text for d in r.xml.iter(D + "description"))
    supported = await dav(
        "PROPFIND",
        "/dav/principals/",
        '<D:propfind xmlns:D="DAV:"><D:prop><D:supported-report-set/></D:prop></D:propfind>',
        depth="0",
    )
    reports = {
        r.tag for r in supported.xml.iter() if r.getparent() is not None and r.getparent().tag == D + "report"
    }
    assert D + "principal-property-search" in reports


async def test_python_caldav_finds_the_principal_by_name(server):  # noqa: F811
    """python-caldav's search_principals() (its test suite's testPrincipals) on the bare server URL."""

    def run() -> tuple[list[str], list[str]]:
        with client_for(server) as client:
            mine = client.principal()
            found = client.search_principals(name=mine.get_display_name())
            everyone = client.search_principals()
            return [urlparse(str(p.url)).path for p in found], [urlparse(str(p.url)).path for p in everyone]

    found, everyone = await asyncio.to_thread(run)
    assert found == everyone == [ALICE]
