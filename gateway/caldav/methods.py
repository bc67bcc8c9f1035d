"""HTTP methods on DAV resources, in a registry from which ``Allow`` and ``DAV`` are computed.

OPTIONS/PROPFIND/PROPPATCH/MKCOL/DELETE (RFC 4918 §9), MKCALENDAR and PUT/GET (RFC 4791 §5.3),
extended MKCOL (RFC 5689), REPORT (RFC 3253 §3.6), POST to the outbox (RFC 6638 §3.2).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from lxml import etree

from . import directory, principal_search, properties, reports, schedule_tag, scheduling, validation
from .backend import BackendError, CalendarInfo, CalendarObject, NotFound, PutResult
from .call import Call, read_limited, strip_etag
from .errors import DavError
from .properties import REGISTRY, PropContext, add_response, writable
from .resources import Kind, Resource
from .schedule_tag import schedule_tag_off_loop
from .xml import Multistatus, cal, cs, dav, element, serialize, status_line, sub

log = logging.getLogger(__name__)
MethodHandler = Callable[[Call], Awaitable[web.Response]]
CALENDAR_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._~@+-]{0,127}$")


@dataclass(frozen=True)
class Method:
    name: str
    kinds: frozenset[Kind]
    run: MethodHandler


METHODS: dict[str, Method] = {}


def method(name: str, *kinds: Kind) -> Callable[[MethodHandler], MethodHandler]:
    """Register the handler of an HTTP method for the resource kinds it applies to."""

    def register(run: MethodHandler) -> MethodHandler:
        METHODS[name] = Method(name, frozenset(kinds), run)
        return run

    return register


def allowed(kind: Kind) -> list[str]:
    """The ``Allow`` header's methods for a resource kind."""
    return [m.name for m in METHODS.values() if kind in m.kinds]


def dav_header() -> str:
    """The ``DAV`` compliance classes, derived from what the registries implement."""
    features = {
        "1": "PROPFIND" in METHODS,
        "3": "PROPPATCH" in METHODS,
        "access-control": dav("current-user-privilege-set") in REGISTRY,
        "calendar-access": cal("calendar-query") in reports.REPORTS and "MKCALENDAR" in METHODS,
        "calendar-schedule": "POST" in METHODS and cal("schedule-outbox-URL") in REGISTRY,
        "calendar-auto-schedule": "POST" in METHODS and cal("schedule-outbox-URL") in REGISTRY,
        "sync-collection": dav("sync-collection") in reports.REPORTS,
        "extended-mkcol": "MKCOL" in METHODS,
        # CalendarServer's token: clients that see it search people with its report (principal_search).
        "calendarserver-principal-search": cs("calendarserver-principal-search") in reports.REPORTS,
    }
    return ", ".join(token for token, on in features.items() if on)


ALL = tuple(Kind)


@method("OPTIONS", *ALL)
async def options(call: Call) -> web.Response:
    """RFC 4918 §10.1: compliance classes and allowed methods."""
    return options_response(call.resource.kind)


def options_response(kind: Kind) -> web.Response:
    return web.Response(
        headers={"DAV": dav_header(), "Allow": ", ".join(allowed(kind)), "Content-Length": "0"}
    )


# --- PROPFIND ---------------------------------------------------------------------------------


@method("PROPFIND", *ALL)
async def propfind(call: Call) -> web.Response:
    """RFC 4918 §9.1 with Depth 0 or 1; ``infinity`` is refused (propfind-finite-depth)."""
    depth = call.request.headers.get("Depth", "0").strip().lower()  # lenient: absent = 0
    if depth == "infinity":
        raise DavError(403, "Depth: infinity is not supported; use 0 or 1.", dav("propfind-finite-depth"))
    if depth not in ("0", "1"):
        raise DavError(400, "The Depth header must be 0, 1 or infinity.")
    mode, names = _propfind_request(await call.xml())
    # A Depth-1 listing of a calendar brings the backend up to date itself: the collection's
    # ctag/sync-token are read after it, so the store is asked for changes once, not twice.
    targets = [await _load(call, fresh=depth == "0")]
    if depth == "1":
        targets += await _members(call, targets[0])
        if targets[0].resource.kind in (Kind.CALENDAR, Kind.INBOX):
            targets[0].calendar = await _calendar(call, fresh=False)
    if mode != "propname" and properties.needs_data(_names_for(Kind.OBJECT, mode, names)):
        await _load_data(call, targets)

    def build() -> Multistatus:
        ms = Multistatus()
        for ctx in targets:
            wanted = _names_for(ctx.resource.kind, mode, names)
            add_response(ms, ctx, wanted, minimal=call.minimal, values=mode != "propname")
        return ms

    size = sum(len(t.obj.data) for t in targets if t.obj is not None and t.obj.data is not None)
    return await call.built_multistatus(build, len(targets), size)


def _propfind_request(root: etree._Element | None) -> tuple[str, list[str]]:
    """(mode, names): mode is ``prop``, ``allprop`` (names = include) or ``propname``."""
    if root is None:
        return "allprop", []
    if root.tag != dav("propfind"):
        raise DavError(400, "The PROPFIND body must be a DAV:propfind element.")
    if root.find(dav("propname")) is not None:
        return "propname", []
    prop = root.find(dav("prop"))
    if prop is not None:
        return "prop", [c.tag for c in prop if isinstance(c.tag, str)]
    include = root.find(dav("include"))
    return "allprop", [c.tag for c in include if isinstance(c.tag, str)] if include is not None else []


def _names_for(kind: Kind, mode: str, names: list[str]) -> list[str]:
    if mode == "prop":
        return names
    if mode == "propname":
        return [p.name for p in properties.applicable(kind)]
    return properties.allprop_names(kind) + [n for n in names if n not in properties.allprop_names(kind)]


async def _load(call: Call, fresh: bool = True) -> PropContext:
    """The addressed resource's context; 404 when it does not exist."""
    res = call.resource
    if res.kind is Kind.DIRECTORY:
        return await directory.load(call)
    if res.kind in (Kind.CALENDAR, Kind.INBOX):
        return reports.context(call, res, calendar=await _calendar(call, fresh=fresh))
    if res.kind is Kind.OBJECT:
        info = await _calendar(call, fresh=False)
        obj = (await call.backend.get(call.principal, res.calendar_id, [res.name])).get(res.name)
        if obj is None:
            raise DavError(404, "No such calendar object.")
        return reports.context(call, res, calendar=info, obj=obj)
    return reports.context(call, res)


async def _calendar(call: Call, fresh: bool = True) -> CalendarInfo:
    return await call.backend.calendar(call.principal, call.resource.calendar_id, fresh=fresh)


async def _members(call: Call, parent: PropContext) -> list[PropContext]:
    """Depth-1 members of a collection."""
    user = call.principal.username
    match parent.resource.kind:
        case Kind.PRINCIPALS:
            return [reports.context(call, Resource(Kind.PRINCIPAL, user))]
        case Kind.HOME:
            calendars = await call.backend.calendars(call.principal)
            members = [
                reports.context(call, Resource(Kind.CALENDAR, user, c.calendar_id), calendar=c)
                for c in calendars
            ]
            scheduling = [Resource(Kind.INBOX, user, "inbox"), Resource(Kind.OUTBOX, user)]
            return members + [reports.context(call, r) for r in scheduling]
        case Kind.CALENDAR | Kind.INBOX:
            info = parent.calendar
            assert info is not None
            objects = await call.backend.list_objects(call.principal, info.calendar_id)
            return [
                reports.context(
                    call, Resource(Kind.OBJECT, user, info.calendar_id, o.name), calendar=info, obj=o
                )
                for o in objects
            ]
    return []


async def _load_data(call: Call, targets: list[PropContext]) -> None:
    """Load the objects' iCalendar texts in one batch (getcontentlength, calendar-data need them)."""
    lacking = [t for t in targets if t.obj is not None and t.obj.data is None]
    if not lacking:
        return
    calendar_id = lacking[0].resource.calendar_id
    loaded = await call.backend.get(call.principal, calendar_id, [t.obj.name for t in lacking if t.obj])
    for t in lacking:
        assert t.obj is not None
        t.obj = loaded.get(t.obj.name) or t.obj


# --- PROPPATCH, MKCALENDAR, MKCOL ----------------------------------------------------------------

PropValues = dict[str, str | None]


def _prop_value(el: etree._Element) -> str:
    if len(el) == 0:
        return (el.text or "").strip()
    return serialize(el).decode("utf-8")


def _check_settable(el: etree._Element, creating: bool) -> int:
    """200 when this property may be set on a calendar, else the status to report."""
    if el.tag == dav("resourcetype") and creating:
        return 200
    if el.tag == cal("supported-calendar-component-set") and creating:
        return 200 if validation.component_set(el) is not None else 403
    if el.tag == cal("calendar-timezone") and creating:
        return 200  # accepted as clients send it (RFC 4791 §5.3.1), not stored: events carry their zones
    return 200 if el.tag in writable(Kind.CALENDAR) else 403


def _prop_failure(url: str, statuses: dict[str, int], root_tag: str) -> web.Response:
    """All-or-nothing failure (RFC 4918 §9.2): the refused props 403, the others 424."""
    root = element(root_tag)
    target = root
    if root_tag == dav("multistatus"):
        target = sub(root, dav("response"))
        sub(target, dav("href"), url)
    by_code: dict[int, list[str]] = {}
    for name, code in statuses.items():
        by_code.setdefault(code if code != 200 else 424, []).append(name)
    for code, names in sorted(by_code.items()):
        propstat = sub(target, dav("propstat"))
        prop = sub(propstat, dav("prop"))
        for name in names:
            prop.append(etree.Element(name))
        sub(propstat, dav("status"), status_line(code))
    status = 207 if root_tag == dav("multistatus") else 403
    return web.Response(status=status, body=serialize(root), content_type="application/xml", charset="utf-8")


def _collect(root: etree._Element, creating: bool) -> tuple[PropValues, dict[str, int]]:
    """Values of the writable properties to set (None = remove) and each property's status."""
    values: PropValues = {}
    statuses: dict[str, int] = {}
    stored = writable(Kind.CALENDAR)
    for action in root:
        if action.tag not in (dav("set"), dav("remove")):
            continue
        for prop in action.iterfind(dav("prop")):
            for el in prop:
                if not isinstance(el.tag, str):
                    continue
                statuses[el.tag] = _check_settable(el, creating)
                if el.tag in stored:
                    values[el.tag] = _prop_value(el) if action.tag == dav("set") else None
    return values, statuses


@method("PROPPATCH", Kind.CALENDAR)
async def proppatch(call: Call) -> web.Response:
    """RFC 4918 §9.2 on a calendar: displayname, color, order, description → backend.update_calendar."""
    root = await call.xml(required=True)
    assert root is not None
    if root.tag != dav("propertyupdate"):
        raise DavError(400, "The PROPPATCH body must be a DAV:propertyupdate element.")
    await _calendar(call)
    values, statuses = _collect(root, creating=False)
    if any(code != 200 for code in statuses.values()):
        return _prop_failure(call.resource.url, statuses, dav("multistatus"))
    await call.backend.update_calendar(call.principal, call.resource.calendar_id, values)
    ms = Multistatus()
    ms.add_propstat(call.resource.url, [etree.Element(n) for n in statuses], {})
    return call.multistatus(ms)


@method("MKCALENDAR", Kind.CALENDAR)
async def mkcalendar(call: Call) -> web.Response:
    """RFC 4791 §5.3.1: create a calendar collection with the given properties."""
    root = await call.xml()
    if root is not None and root.tag != cal("mkcalendar"):
        raise DavError(400, "The MKCALENDAR body must be a CALDAV:mkcalendar element.")
    return await _create(call, root, cal("mkcalendar-response"))


@method("MKCOL", Kind.CALENDAR)
async def mkcol(call: Call) -> web.Response:
    """RFC 5689 extended MKCOL: only calendar collections can be made here."""
    root = await call.xml()
    if root is None or root.tag != dav("mkcol"):
        raise DavError(
            403,
            "Only calendar collections can be created: use MKCALENDAR or an extended MKCOL.",
            dav("valid-resourcetype"),
        )
    types = {el.tag for el in root.iterfind(f"{dav('set')}/{dav('prop')}/{dav('resourcetype')}/*")}
    if cal("calendar") not in types:
        raise DavError(
            403, "The new collection must have the CALDAV:calendar resource type.", dav("valid-resourcetype")
        )
    return await _create(call, root, dav("mkcol-response"))


async def _create(call: Call, root: etree._Element | None, failure_tag: str) -> web.Response:
    calendar_id = call.resource.calendar_id
    if not CALENDAR_ID.match(calendar_id):
        raise DavError(
            403,
            "Calendar names may use letters, digits and . _ ~ @ + - only.",
            cal("calendar-collection-location-ok"),
        )
    values, statuses = _collect(root, creating=True) if root is not None else ({}, {})
    if any(code != 200 for code in statuses.values()):
        return _prop_failure(call.resource.url, statuses, failure_tag)
    if await _exists(call):
        raise DavError(
            405,
            "A collection with this name already exists.",
            dav("resource-must-be-null"),
            headers={"Allow": ", ".join(allowed(Kind.CALENDAR))},
        )
    display_name = values.pop(dav("displayname"), None) or calendar_id
    props = {k: v for k, v in values.items() if v is not None}
    components = validation.requested_components(root)
    await call.backend.create_calendar(
        call.principal, calendar_id, display_name, props, components=components
    )
    return web.Response(status=201, headers={"Location": call.resource.url})


async def _exists(call: Call) -> bool:
    try:
        await _calendar(call)
    except NotFound:
        return False
    return True


# --- objects: GET, HEAD, PUT, DELETE ------------------------------------------------------------


async def _object(call: Call) -> CalendarObject:
    obj = await _object_or_none(call)
    if obj is None or obj.data is None:
        raise DavError(404, "No such calendar object.")
    return obj


@method("GET", Kind.OBJECT)
async def get(call: Call) -> web.Response:
    """RFC 4791 §5.3.4 GET with a strong ETag; ``If-None-Match`` answers 304. A scheduling object also
    carries its ``Schedule-Tag`` (RFC 6638 §3.3)."""
    obj = await _object(call)
    etag = f'"{obj.etag}"'
    inm = call.request.headers.get("If-None-Match")
    if inm and (inm.strip() == "*" or obj.etag in {strip_etag(v) for v in inm.split(",")}):
        return web.Response(status=304, headers={"ETag": etag})
    assert obj.data is not None
    headers = {"ETag": etag, "Content-Type": properties.object_content_type(obj.data)}
    tag = await schedule_tag_off_loop(obj.data)
    if tag:
        headers["Schedule-Tag"] = f'"{tag}"'
    return web.Response(body=obj.data.encode("utf-8"), headers=headers)


@method("HEAD", Kind.OBJECT)
async def head(call: Call) -> web.Response:
    """HEAD: GET's headers (aiohttp drops the body)."""
    return await get(call)


@method("PUT", Kind.OBJECT)
async def put(call: Call) -> web.Response:
    """RFC 4791 §5.3.2: store an iCalendar object, honouring If-Match / If-None-Match: * and RFC 6638 §8.3
    If-Schedule-Tag-Match. The body is checked (:mod:`.validation`) off the event loop when large."""
    ctype = call.request.headers.get("Content-Type", "")
    if ctype.split(";")[0].strip().lower() != "text/calendar":
        raise DavError(415, "Calendar objects must be sent as text/calendar.", cal("supported-calendar-data"))
    data = await read_limited(call.request, call.config.max_resource_size, cal("max-resource-size"))
    # the collection's identity only (no round trip to the store): which components it holds
    components = (await _calendar(call, fresh=False)).components
    checked = await validation.check_off_loop(data, call.config.limits, components)
    if_match = call.request.headers.get("If-Match")
    if_none_match = call.request.headers.get("If-None-Match", "").strip() == "*"
    res = call.resource
    if "If-Schedule-Tag-Match" in call.request.headers:
        if_match = await _schedule_tag_condition(call, if_match)
    elif if_match is not None and if_match.strip() == "*":
        # "*" means "only if it exists": check here, the backend takes concrete ETags only.
        existing = await call.backend.get(call.principal, res.calendar_id, [res.name])
        if existing.get(res.name) is None:
            raise DavError(412, "The object does not exist (If-Match: *).")
        if_match = None
    result = await call.backend.put(
        call.principal,
        res.calendar_id,
        res.name,
        checked.text,
        strip_etag(if_match) if if_match else None,
        if_none_match,
    )
    # RFC 4791 §5.3.4: no strong ETag when the stored object differs from the request; the
    # client then fetches the object (and its ETag) before it changes it again.
    headers = {"ETag": f'"{result.etag}"'} if result.etag and not checked.altered else {}
    tag = await _stored_schedule_tag(call, checked.text, result)
    if tag:
        headers["Schedule-Tag"] = f'"{tag}"'
    return web.Response(status=201 if result.created else 204, headers=headers)


async def _stored_schedule_tag(call: Call, text: str, result: PutResult) -> str | None:
    """RFC 6638 §3.2.10: the answer to a PUT of a scheduling object MUST carry the schedule tag of the
    stored resource. A store that kept the text it was handed (it gave an ETag) has the text's tag; one
    that re-renders the event (Exchange) is read back, for scheduling objects only. The write is done:
    should that read fail, the answer goes without the tag rather than report a failure."""
    if not schedule_tag.is_scheduling_object(text):
        return None
    if result.etag:
        return await schedule_tag_off_loop(text)
    try:
        stored = await _object_or_none(call)
    except BackendError as exc:
        log.warning("PUT stored, but reading it back for its Schedule-Tag failed: %s", exc)
        return None
    return await schedule_tag_off_loop(stored.data if stored else None)


async def _schedule_tag_condition(call: Call, if_match: str | None) -> str:
    """RFC 6638 §8.3 If-Schedule-Tag-Match: 412 unless the object's schedule tag is the one named.

    Returns the ETag of the version read here, for the store's own If-Match check: a change made after
    this read (in Outlook, say) then fails the write instead of being overwritten. An ``If-Match`` sent
    as well must hold too."""
    header = call.request.headers.get("If-Schedule-Tag-Match")
    obj = await _object_or_none(call)
    if obj is None:
        raise DavError(412, "The object does not exist (If-Schedule-Tag-Match).")
    if not schedule_tag.matches(header, await schedule_tag_off_loop(obj.data)):
        raise DavError(
            412,
            "The event was changed since you read it (If-Schedule-Tag-Match does not hold); read it again.",
        )
    if if_match is not None and if_match.strip() != "*" and strip_etag(if_match) != obj.etag:
        raise DavError(412, "The resource was changed since you read it (ETag mismatch).")
    return obj.etag


async def _object_or_none(call: Call) -> CalendarObject | None:
    res = call.resource
    return (await call.backend.get(call.principal, res.calendar_id, [res.name])).get(res.name)


@method("DELETE", Kind.OBJECT, Kind.CALENDAR)
async def delete(call: Call) -> web.Response:
    """RFC 4918 §9.6: an object (If-Match and If-Schedule-Tag-Match honoured) or a whole calendar."""
    res = call.resource
    if res.kind is Kind.CALENDAR:
        # RFC 6638 §9.2 default-calendar-needed; a primary calendar is refused by the backend as such.
        default = res.calendar_id == call.principal.default_calendar_id
        if default and not (await _calendar(call, fresh=False)).primary:
            raise DavError(
                403,
                "This is the calendar new events go to: choose another one in the settings first.",
                cal("default-calendar-needed"),
            )
        await call.backend.delete_calendar(call.principal, res.calendar_id)
        return web.Response(status=204)
    if_match = call.request.headers.get("If-Match")
    if "If-Schedule-Tag-Match" in call.request.headers:
        if_match = await _schedule_tag_condition(call, if_match)
    elif if_match is not None and if_match.strip() == "*":
        await _object(call)
        if_match = None
    await call.backend.delete(
        call.principal, res.calendar_id, res.name, strip_etag(if_match) if if_match else None
    )
    return web.Response(status=204)


# --- REPORT, POST --------------------------------------------------------------------------------


@method("REPORT", Kind.CALENDAR, Kind.INBOX, *principal_search.PRINCIPAL_SPACE)
async def report(call: Call) -> web.Response:
    """RFC 3253 §3.6 REPORT, dispatched through the report registry (calendar reports on calendars and
    the inbox, principal searches on the base, the principal collection and the principal)."""
    return await reports.run_report(call)


@method("POST", Kind.OUTBOX)
async def post(call: Call) -> web.Response:
    """RFC 6638 §3.2: free/busy request to the scheduling outbox."""
    return await scheduling.outbox_post(call)
