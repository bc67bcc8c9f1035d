"""principal-property-search (RFC 3744 §9.4) of the directory's people over the in-memory backend: how
several property-searches combine, the result limit, an empty text, directory principals."""

from __future__ import annotations

from gateway.caldav.backend import Person
from gateway.caldav.directory import SEARCH_LIMIT
from tests.support.dav import Dav
from tests.support.memory_backend import MemoryBackend

DAV = "{DAV:}"
PRINCIPALS = "/dav/principals/"
DIRECTORY = "/dav/principals/directory/"


def _search(*matches: tuple[str, str], test: str = "allof") -> str:
    searches = "".join(
        f"<d:property-search><d:prop><{p}/></d:prop><d:match>{text}</d:match></d:property-search>"
        for p, text in matches
    )
    return (
        '<d:principal-property-search xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"'
        f' test="{test}">{searches}<d:prop><d:displayname/></d:prop></d:principal-property-search>'
    )


def _people(backend: MemoryBackend) -> None:
    backend.directory = [Person("carol@example.com", "Carol Clark"), Person("carl@example.org", "Carl Jones")]


async def test_allof_narrows_the_directory_search_by_the_other_texts(
    dav: Dav, backend: MemoryBackend
) -> None:
    _people(backend)
    both = ("d:displayname", "car"), ("c:calendar-user-address-set", "example.org")
    response = await dav("REPORT", PRINCIPALS, _search(*both))
    assert response.status == 207
    assert backend.searches == ["car"]  # one directory search
    assert list(response.responses()) == [DIRECTORY + "carl@example.org/"]

    response = await dav("REPORT", PRINCIPALS, _search(*both, test="anyof"))
    assert sorted(response.responses()) == [DIRECTORY + "carl@example.org/", DIRECTORY + "carol@example.com/"]


async def test_more_matches_than_the_limit_are_cut_off_and_said(dav: Dav, backend: MemoryBackend) -> None:
    backend.directory = [Person(f"p{n}@example.com", f"Person {n}") for n in range(SEARCH_LIMIT + 10)]
    response = await dav("REPORT", PRINCIPALS, _search(("d:displayname", "person")))
    assert response.status == 207
    responses = response.responses()
    assert len(responses) == SEARCH_LIMIT + 1
    over = responses[PRINCIPALS]
    assert "507" in over.findtext(f"{DAV}status")
    assert over.find(f"{DAV}error/{DAV}number-of-matches-within-limits") is not None


async def test_an_empty_search_text_is_400_with_a_sentence(dav: Dav, backend: MemoryBackend) -> None:
    _people(backend)
    empty = await dav("REPORT", PRINCIPALS, _search(("d:displayname", "")))
    assert empty.status == 400 and "empty" in empty.text
    only_scheme = await dav("REPORT", PRINCIPALS, _search(("c:calendar-user-address-set", "mailto:")))
    assert only_scheme.status == 400 and "empty" in only_scheme.text
    assert backend.searches == []  # refused before the directory is asked


async def test_a_directory_principal_is_read_only_and_not_found_when_unknown(
    dav: Dav, backend: MemoryBackend
) -> None:
    _people(backend)
    found = await dav("PROPFIND", DIRECTORY + "carol@example.com/", depth="0")
    assert found.status == 207
    assert found.prop(DIRECTORY + "carol@example.com/", f"{DAV}displayname").text == "Carol Clark"
    assert (await dav("PROPFIND", DIRECTORY + "nobody@example.com/", depth="0")).status == 404
    assert (await dav("DELETE", DIRECTORY + "carol@example.com/")).status == 405


async def test_python_caldavs_search_lists_no_directory_principal(dav: Dav, backend: MemoryBackend) -> None:
    """It asks for calendar-home-set and requires one of every answer; directory principals have none."""
    _people(backend)
    body = _search(("d:displayname", "car")).replace(
        "<d:displayname/></d:prop></d:principal", "<c:calendar-home-set/></d:prop></d:principal"
    )
    response = await dav("REPORT", PRINCIPALS, body)
    assert response.status == 207 and response.responses() == {}


async def test_the_clients_limit_caps_the_answer_and_bad_limits_are_refused(
    dav: Dav, backend: MemoryBackend
) -> None:
    _people(backend)
    limited = _search(("d:displayname", "car")).replace(
        "<d:prop><d:displayname/></d:prop></d:principal",
        "<d:limit><d:nresults>1</d:nresults></d:limit><d:prop><d:displayname/></d:prop></d:principal",
    )
    response = await dav("REPORT", PRINCIPALS, limited)
    responses = response.responses()
    assert len(responses) == 2 and "507" in responses[PRINCIPALS].findtext(f"{DAV}status")
    assert "first 1 " in responses[PRINCIPALS].findtext(f"{DAV}responsedescription")
    assert response.xml.find(f".//{DAV}prop/{DAV}limit") is None  # not taken for a property asked for
    bad = await dav("REPORT", PRINCIPALS, limited.replace(">1<", ">many<"))
    assert bad.status == 400 and "whole number" in bad.text
    zero = await dav("REPORT", PRINCIPALS, limited.replace(">1<", ">0<"))
    assert zero.status == 403 and "number-of-matches-within-limits" in zero.text


async def test_calendarserver_search_by_tokens_and_context(dav: Dav, backend: MemoryBackend) -> None:
    backend.directory = [
        Person("carol@example.com", "Carol Clark"),
        Person("carl@example.org", "Carl Jones"),
        Person("cargo-room@example.com", "Cargo Room", "ROOM"),
    ]

    def search(*tokens: str, context: str = "") -> str:
        words = "".join(f"<cs:search-token>{t}</cs:search-token>" for t in tokens)
        kind = f' context="{context}"' if context else ""
        return (
            f'<cs:calendarserver-principal-search xmlns:d="DAV:" xmlns:cs="http://calendarserver.org/ns/"{kind}>'
            f"{words}<d:prop><d:displayname/></d:prop></cs:calendarserver-principal-search>"
        )

    every = await dav("REPORT", PRINCIPALS, search("car"))
    assert sorted(every.responses()) == [
        DIRECTORY + "cargo-room@example.com/",
        DIRECTORY + "carl@example.org/",
        DIRECTORY + "carol@example.com/",
    ]
    assert backend.searches == ["car"]
    both = await dav("REPORT", PRINCIPALS, search("car", "jones"))
    assert list(both.responses()) == [DIRECTORY + "carl@example.org/"]
    rooms = await dav("REPORT", PRINCIPALS, search("car", context="location"))
    assert list(rooms.responses()) == [DIRECTORY + "cargo-room@example.com/"]
    people = await dav("REPORT", PRINCIPALS, search("car", context="user"))
    assert DIRECTORY + "cargo-room@example.com/" not in people.responses()
    assert (await dav("REPORT", PRINCIPALS, search())).status == 400
