"""People and rooms of the organisation's directory, as principal searches find them and as the
read-only directory principals (``/dav/principals/directory/{email}/``) those searches name.

A search asks the directory once (``Backend.search_principals``: one ResolveNames over Exchange), so it
finds what Exchange's directory finds: names and addresses by their start. At most
:data:`SEARCH_LIMIT` people are listed; more are cut off with a 507
``DAV:number-of-matches-within-limits`` response for the request URI (RFC 5323 §2.3.2 practice).
"""

from __future__ import annotations

from lxml import etree

from .backend import Person
from .call import Call
from .errors import DavError
from .properties import PropContext
from .reports import context
from .resources import Kind, Resource
from .xml import cal, cs, dav, element, sub

SEARCH_LIMIT = 50


async def search(call: Call, text: str) -> list[Person]:
    """Up to :data:`SEARCH_LIMIT` + 1 people for ``text`` (a ``mailto:`` prefix dropped: the directory
    knows addresses, not URIs); the one more tells that the limit cut some off."""
    return await call.backend.search_principals(call.principal, address(text), SEARCH_LIMIT + 1)


def address(text: str) -> str:
    return text[7:] if text.lower().startswith("mailto:") else text


def values(person: Person, name: str) -> list[str]:
    """The searchable values of a directory principal's property, as PROPFIND gives them."""
    if name == dav("displayname"):
        return [person.display_name]
    if name == cal("calendar-user-address-set"):
        return [f"mailto:{person.email}"]
    if name == cs("email-address-set"):
        return [person.email]
    return []


def person_context(call: Call, person: Person) -> PropContext:
    return context(call, Resource(Kind.DIRECTORY, name=person.email), person=person)


def over_limit(url: str, limit: int = SEARCH_LIMIT) -> etree._Element:
    """The response saying that only the first ``limit`` matches are listed."""
    response = element(dav("response"))
    sub(response, dav("href"), url)
    sub(response, dav("status"), "HTTP/1.1 507 Insufficient Storage")
    sub(sub(response, dav("error")), dav("number-of-matches-within-limits"))
    sub(response, dav("responsedescription"), f"Only the first {limit} matches are listed.")
    return response


async def load(call: Call) -> PropContext:
    """The addressed directory principal (a PROPFIND), found by its address; 404 when no one has it."""
    email = call.resource.name
    people = await call.backend.search_principals(call.principal, email, SEARCH_LIMIT)
    person = next((p for p in people if p.email.lower() == email.lower()), None)
    if person is None:
        raise DavError(404, f"No one in the directory has the address {email}.")
    return person_context(call, person)
