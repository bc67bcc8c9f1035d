"""Principal searches: RFC 3744 §9.4 ``DAV:principal-property-search`` and §9.5
``DAV:principal-search-property-set`` (RFC 4791 §2 makes CalDAV servers WebDAV ACL servers).

Clients look principals up by name or address: python-caldav's ``search_principals(name=…)``, Apple
Calendar's people search. A gateway user sees their own principal (no answer lists other gateway
users) and the people and rooms of their organisation's directory (:mod:`.directory`): a search with a
text asks the directory once, for the first property-search's text, and lists the directory
principals that match every criterion (or any, with ``anyof``). A search asking for
``calendar-home-set`` (python-caldav's, which requires one of every answer) lists no directory
principals: they have no calendar home here. The criteria are matched as RFC 3744
§9.4 prefers when no user directory decides otherwise, as caseless substrings; CalendarServer's
extensions ``test="anyof"`` (any criterion instead of all) and ``match-type`` (``starts-with``,
``equals``) are honoured. A search without criteria lists the principal.

CalendarServer's ``calendarserver-principal-search`` (its caldav-principal-search extension, the search
Apple Calendar and Evolution make when the DAV header names it) is answered by the same one directory
search: the principals whose name or address contains every ``search-token``, of the kind its
``context`` names. Both searches list at most what the client's ``limit/nresults`` asks for (and never
more than :data:`.directory.SEARCH_LIMIT`); a cut-off answer ends with a 507
``number-of-matches-within-limits`` response for the request URI.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from lxml import etree

from . import directory
from .backend import CalendarUserType, Person, Principal
from .call import Call
from .errors import DavError
from .properties import add_response
from .reports import context, report, requested_limit
from .resources import Kind, Resource, principal_url
from .xml import Multistatus, cal, cs, dav, element, serialize, sub

PRINCIPAL_SPACE = (Kind.ROOT, Kind.PRINCIPALS, Kind.PRINCIPAL)
# What may be searched, with the description principal-search-property-set gives each.
SEARCHABLE = {
    dav("displayname"): "Name",
    cal("calendar-user-address-set"): "Calendar user addresses (mailto:)",
    cs("email-address-set"): "E-mail addresses",
}
Criterion = tuple[tuple[str, ...], str, str]  # property names, text, match-type
_STRUCTURE = frozenset(
    {dav("property-search"), dav("prop"), dav("apply-to-principal-collection-set"), dav("limit")}
)
# calendarserver-principal-search's context: which calendar-user-types it looks for (none: every one).
_CONTEXTS: dict[str, frozenset[CalendarUserType]] = {
    "user": frozenset({"INDIVIDUAL"}),
    "group": frozenset({"GROUP"}),
    "location": frozenset({"ROOM"}),
    "resource": frozenset({"RESOURCE", "ROOM"}),
    "attendee": frozenset({"INDIVIDUAL", "GROUP", "RESOURCE", "UNKNOWN"}),
}


@report(dav("principal-property-search"), *PRINCIPAL_SPACE)
async def principal_property_search(call: Call, root: etree._Element) -> web.Response:
    """RFC 3744 §9.4: the principals (the user's own, the directory's people) whose properties match
    every criterion."""
    _depth_zero(call)
    criteria = [_criterion(search) for search in root.iterfind(dav("property-search"))]
    combine = any if root.get("test", "allof").lower() == "anyof" else all
    names = _requested(root) or [dav("displayname")]
    limit = requested_limit(root)
    own = combine(_matches(lambda n: _values(call.principal, n), c) for c in criteria)
    people: list[Person] = []
    if criteria and cal("calendar-home-set") not in names:
        people = [
            p
            for p in await _others(call, criteria[0][1])
            if combine(_matches(lambda n, p=p: directory.values(p, n), c) for c in criteria)
        ]
    return _answer(call, names, own, people, limit)


@report(cs("calendarserver-principal-search"), *PRINCIPAL_SPACE)
async def calendarserver_principal_search(call: Call, root: etree._Element) -> web.Response:
    """CalendarServer's principal search: every ``search-token`` is contained, caselessly, in the name or
    an address of each principal listed; ``context`` (user, group, location, resource, attendee) picks
    the kinds of calendar user; ``limit/nresults`` caps the answer."""
    tokens = [t.casefold() for el in root.iterfind(cs("search-token")) if (t := (el.text or "").strip())]
    if not tokens or not all(directory.address(t).strip() for t in tokens):
        raise DavError(400, "The search has no text (CS:search-token): say whom to look for.")
    kinds = _CONTEXTS.get(root.get("context", ""))
    prop = root.find(dav("prop"))
    names = [el.tag for el in prop if isinstance(el.tag, str)] if prop is not None else []
    limit = requested_limit(root, cs)

    def found(values: Callable[[str], list[str]]) -> bool:
        texts = [v.casefold() for n in (dav("displayname"), cs("email-address-set")) for v in values(n)]
        return all(any(directory.address(t) in text for text in texts) for t in tokens)

    own = (kinds is None or "INDIVIDUAL" in kinds) and found(lambda n: _values(call.principal, n))
    people = [
        p
        for p in await _others(call, tokens[0])
        if (kinds is None or p.user_type in kinds) and found(lambda n, p=p: directory.values(p, n))
    ]
    return _answer(call, names or [dav("displayname")], own, people, limit)


async def _others(call: Call, text: str) -> list[Person]:
    """The directory's people for ``text`` (one search), the user's own addresses left out."""
    own = {email.lower() for email in call.principal.emails}
    return [p for p in await directory.search(call, text) if p.email.lower() not in own]


def _answer(call: Call, names: list[str], own: bool, people: list[Person], limit: int | None) -> web.Response:
    """The multistatus of a search: the user's principal (if it matched) and the people, at most
    ``limit`` (the client's, within the directory's), a cut-off said by a 507 for the request URI."""
    cap = min(limit or directory.SEARCH_LIMIT, directory.SEARCH_LIMIT)
    contexts = [context(call, Resource(Kind.PRINCIPAL, call.principal.username))] if own else []
    contexts += [directory.person_context(call, person) for person in people]
    ms = Multistatus()
    for ctx in contexts[:cap]:
        add_response(ms, ctx, names, minimal=call.minimal)
    if len(contexts) > cap:
        ms.add(directory.over_limit(call.resource.url, cap))
    return call.multistatus(ms)


@report(dav("principal-search-property-set"), *PRINCIPAL_SPACE)
async def principal_search_property_set(call: Call, root: etree._Element) -> web.Response:
    """RFC 3744 §9.5: the properties principal-property-search matches, each with a description."""
    _depth_zero(call)
    answer = element(dav("principal-search-property-set"))
    for name, description in SEARCHABLE.items():
        entry = sub(answer, dav("principal-search-property"))
        sub(entry, dav("prop")).append(etree.Element(name))
        sub(entry, dav("description"), description).set("{http://www.w3.org/XML/1998/namespace}lang", "en")
    return web.Response(body=serialize(answer), content_type="application/xml", charset="utf-8")


def _depth_zero(call: Call) -> None:
    """RFC 3744 §9.4/§9.5: only defined for Depth 0; other values are a 400 (no header means 0)."""
    if call.request.headers.get("Depth", "0").strip() != "0":
        raise DavError(400, "Principal searches are only defined with Depth: 0 (RFC 3744 §9.4).")


def _requested(root: etree._Element) -> list[str]:
    """The properties to report: DAV:prop's children. python-caldav (3.x) puts them beside an empty
    DAV:prop instead, so other children of the request are taken as asked for too."""
    names = []
    for child in root:
        if not isinstance(child.tag, str) or child.tag in _STRUCTURE:
            if child.tag == dav("prop"):
                names += [el.tag for el in child if isinstance(el.tag, str)]
            continue
        names.append(child.tag)
    return names


def _criterion(search: etree._Element) -> Criterion:
    prop, match = search.find(dav("prop")), search.find(dav("match"))
    names = tuple(el.tag for el in prop if isinstance(el.tag, str)) if prop is not None else ()
    if not names or match is None:
        raise DavError(400, "Each DAV:property-search needs a DAV:prop naming properties and a DAV:match.")
    text = (match.text or "").strip()
    if not directory.address(text).strip():
        raise DavError(400, "The search text (DAV:match) is empty: say whom to look for.")
    return names, text.casefold(), match.get("match-type", "contains").lower()


def _matches(values: Callable[[str], list[str]], criterion: Criterion) -> bool:
    """Whether any of the named properties (``values`` gives each one's values) matches the text."""
    names, text, how = criterion
    for name in names:
        for value in values(name):
            value = value.casefold()
            if how == "equals" and value == text:
                return True
            if how == "starts-with" and value.startswith(text):
                return True
            if how not in ("equals", "starts-with") and text in value:
                return True
    return False


def _values(principal: Principal, name: str) -> list[str]:
    """The searchable values of a principal property (as PROPFIND gives them); none for others."""
    if name == dav("displayname"):
        return [principal.display_name]
    if name == cal("calendar-user-address-set"):
        return [f"mailto:{email}" for email in principal.emails] + [principal_url(principal.username)]
    if name == cs("email-address-set"):
        return list(principal.emails)
    return []
