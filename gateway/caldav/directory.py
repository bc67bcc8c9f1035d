"""Finding people and rooms (RFC 3744 §9.4-9.5) on the principal collection, and the read-only
directory principals the searches name (``/dav/principals/directory/{email}/``).

A search is one ``Backend.search_principals`` (one ResolveNames over Exchange), so it matches as
Exchange's directory does: by the start of a name or an address. The searchable properties are
``DAV:displayname``, ``CALDAV:calendar-user-address-set`` and CalendarServer's ``email-address-set``;
a match is case-insensitive ``contains`` (a client's ``match-type`` is not needed). At most
:data:`SEARCH_LIMIT` people are returned; more are cut off with a 507
``DAV:number-of-matches-within-limits`` response for the request URI (RFC 5323 §2.3.2 practice).
"""

from __future__ import annotations

from aiohttp import web
from lxml import etree

from .backend import Person
from .call import Call
from .errors import DavError
from .properties import PropContext, add_response
from .reports import context, report
from .resources import Kind, Resource
from .xml import Multistatus, cal, cs, dav, element, serialize, sub

SEARCH_LIMIT = 50
# Searchable property -> the words a client may show for it (principal-search-property-set).
SEARCHABLE = {
    dav("displayname"): "Name",
    cal("calendar-user-address-set"): "Calendar user address",
    cs("email-address-set"): "Email address",
}
# What a search answers when the request names no DAV:prop.
DEFAULT_PROPS = (dav("displayname"), cal("calendar-user-address-set"), dav("principal-URL"))


@report(dav("principal-search-property-set"), Kind.PRINCIPALS)
async def search_property_set(call: Call, root: etree._Element) -> web.Response:
    """RFC 3744 §9.5: the properties principal-property-search can match, each with a description."""
    body = element(dav("principal-search-property-set"))
    for name, words in SEARCHABLE.items():
        entry = sub(body, dav("principal-search-property"))
        sub(entry, dav("prop")).append(element(name))
        sub(entry, dav("description"), words).set("{http://www.w3.org/XML/1998/namespace}lang", "en")
    return web.Response(body=serialize(body), content_type="application/xml", charset="utf-8")


@report(dav("principal-property-search"), Kind.PRINCIPALS)
async def principal_property_search(call: Call, root: etree._Element) -> web.Response:
    """RFC 3744 §9.4: the directory's people matching every (``test="allof"``, the default) or any
    (``anyof``) property-search; one search of the directory, for the first property-search's text
    (clients send one text; with ``allof`` the others narrow what the directory found)."""
    searches = [_property_search(el) for el in root.findall(dav("property-search"))]
    if not searches:
        raise DavError(400, "principal-property-search needs at least one DAV:property-search.")
    any_of = root.get("test", "allof") == "anyof"
    text = searches[0][1]
    people = await call.backend.search_principals(call.principal, _address(text), SEARCH_LIMIT + 1)
    if not any_of:  # the other texts narrow what the directory found
        people = [p for p in people if all(_matches(p, names, t) for names, t in searches)]
    prop = root.find(dav("prop"))
    names = [c.tag for c in prop if isinstance(c.tag, str)] if prop is not None else list(DEFAULT_PROPS)
    ms = Multistatus()
    for person in people[:SEARCH_LIMIT]:
        add_response(ms, directory_context(call, person), names, minimal=call.minimal)
    if len(people) > SEARCH_LIMIT:
        ms.add(_over_limit(call.resource.url))
    return call.multistatus(ms)


def _property_search(el: etree._Element) -> tuple[list[str], str]:
    """(property names, match text) of one DAV:property-search; an empty text is a 400."""
    prop = el.find(dav("prop"))
    names = [c.tag for c in prop if isinstance(c.tag, str)] if prop is not None else []
    unknown = [n for n in names if n not in SEARCHABLE]
    if not names or unknown:
        raise DavError(
            400,
            "Each DAV:property-search must name properties the principal-search-property-set lists.",
        )
    text = (el.findtext(dav("match")) or "").strip()
    if not _address(text).strip():
        raise DavError(400, "The search text (DAV:match) is empty: say whom to look for.")
    return names, text


def _address(text: str) -> str:
    """The text without a ``mailto:`` prefix: the directory knows addresses, not URIs."""
    return text[7:] if text.lower().startswith("mailto:") else text


def _matches(person: Person, names: list[str], text: str) -> bool:
    """Whether any of the named properties of ``person`` contains ``text`` (case-insensitive)."""
    needle = text.lower()
    for name in names:
        if name == dav("displayname"):
            values = [person.display_name]
        elif name == cal("calendar-user-address-set"):
            values = [f"mailto:{person.email}"]
        else:
            values = [person.email]
        if any(needle in v.lower() for v in values):
            return True
    return False


def _over_limit(url: str) -> etree._Element:
    response = element(dav("response"))
    sub(response, dav("href"), url)
    sub(response, dav("status"), "HTTP/1.1 507 Insufficient Storage")
    sub(sub(response, dav("error")), dav("number-of-matches-within-limits"))
    sub(response, dav("responsedescription"), f"Only the first {SEARCH_LIMIT} matches are listed.")
    return response


def directory_context(call: Call, person: Person) -> PropContext:
    return context(call, Resource(Kind.DIRECTORY, name=person.email), person=person)


async def load(call: Call) -> PropContext:
    """The addressed directory principal (a PROPFIND), found by its address; 404 when no one has it."""
    email = call.resource.name
    people = await call.backend.search_principals(call.principal, email, SEARCH_LIMIT)
    person = next((p for p in people if p.email.lower() == email.lower()), None)
    if person is None:
        raise DavError(404, f"No one in the directory has the address {email}.")
    return directory_context(call, person)
