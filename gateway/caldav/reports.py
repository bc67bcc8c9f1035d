"""REPORT methods, in a registry from which ``supported-report-set`` is computed.

calendar-query (RFC 4791 §7.8), calendar-multiget (§7.9), free-busy-query (§7.10)
and sync-collection (RFC 6578 §3).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import unquote, urlsplit

from aiohttp import web
from icalendar import Calendar
from lxml import etree

from . import filters, freebusy
from .backend import CalendarInfo, CalendarObject
from .call import Call
from .errors import DavError
from .limits import clamp
from .properties import PropContext, add_response, needs_data
from .resources import Kind, Resource, resolve
from .xml import Multistatus, cal, dav, element

log = logging.getLogger(__name__)
ReportHandler = Callable[[Call, etree._Element], Awaitable[web.Response]]


@dataclass(frozen=True)
class Report:
    name: str
    kinds: frozenset[Kind]
    run: ReportHandler


REPORTS: dict[str, Report] = {}


def report(name: str, *kinds: Kind) -> Callable[[ReportHandler], ReportHandler]:
    """Register a REPORT handler for the resource kinds it applies to."""

    def register(run: ReportHandler) -> ReportHandler:
        REPORTS[name] = Report(name, frozenset(kinds), run)
        return run

    return register


def supported(kind: Kind) -> tuple[str, ...]:
    """The reports a resource of this kind answers: the value of ``supported-report-set``."""
    return tuple(r.name for r in REPORTS.values() if kind in r.kinds)


def context(call: Call, resource: Resource, **values: object) -> PropContext:
    """A property context for a resource of this call."""
    return PropContext(
        principal=call.principal,
        resource=resource,
        reports=supported(resource.kind),
        limits=call.config.limits,
        **values,  # type: ignore[arg-type]
    )


async def run_report(call: Call) -> web.Response:
    """REPORT: dispatch on the body's root element (RFC 3253 §3.6)."""
    root = await call.xml(required=True)
    assert root is not None
    entry = REPORTS.get(root.tag)
    if entry is None or call.resource.kind not in entry.kinds:
        raise DavError(403, f"The report {root.tag} is not supported here.", dav("supported-report"))
    return await entry.run(call, root)


@dataclass(frozen=True)
class PropRequest:
    """The ``DAV:prop`` of a report, with calendar-data's transformation (RFC 4791 §9.6)."""

    names: tuple[str, ...]
    expand: tuple[datetime, datetime] | None = None
    limit: tuple[datetime, datetime] | None = None

    @classmethod
    def parse(cls, root: etree._Element) -> PropRequest:
        prop = root.find(dav("prop"))
        if prop is None:
            # allprop / no prop: ETags, which every sync client needs.
            return cls((dav("getetag"),))
        names = tuple(child.tag for child in prop if isinstance(child.tag, str))
        data = prop.find(cal("calendar-data"))
        if data is None:
            return cls(names)
        return cls(
            names, _bounded(data.find(cal("expand"))), _bounded(data.find(cal("limit-recurrence-set")))
        )

    def render(self, obj: CalendarObject) -> str | None:
        """The transformed calendar-data, or None for the stored text as it is."""
        if obj.data is None:
            return None
        try:
            if self.expand:
                return filters.expand(obj.data, *self.expand)
            if self.limit:
                return filters.limit_recurrence_set(obj.data, *self.limit)
        except (ValueError, OverflowError) as exc:
            # Data stored by other Exchange clients may be beyond repair; the stored text is still useful.
            log.warning("Could not expand %s, returning it unexpanded: %s", obj.name, exc)
        return None


def _bounded(el: etree._Element | None) -> tuple[datetime, datetime] | None:
    if el is None:
        return None
    try:
        tr = filters.TimeRange.parse(el)
    except filters.FilterError as exc:
        raise DavError(400, str(exc), cal("valid-filter")) from None
    if tr is None or tr.start is None or tr.end is None:
        raise DavError(400, "expand and limit-recurrence-set need both start and end.", cal("valid-filter"))
    return tr.start, tr.end


def _respond(
    call: Call,
    info: CalendarInfo,
    objects: Iterable[CalendarObject],
    props: PropRequest,
    ms: Multistatus | None = None,
) -> Multistatus:
    ms = ms or Multistatus()
    user = call.principal.username
    for obj in objects:
        resource = Resource(Kind.OBJECT, user, info.calendar_id, obj.name)
        ctx = context(call, resource, calendar=info, obj=obj, calendar_data=props.render(obj))
        add_response(ms, ctx, props.names, minimal=call.minimal)
    return ms


@report(cal("calendar-query"), Kind.CALENDAR, Kind.INBOX)
async def calendar_query(call: Call, root: etree._Element) -> web.Response:
    """RFC 4791 §7.8: the backend narrows by the outer time range, the filter decides exactly."""
    props = PropRequest.parse(root)
    try:
        flt = filters.parse_filter(root.find(cal("filter")))
    except filters.FilterError as exc:
        raise DavError(400, str(exc), cal("valid-filter")) from None
    info = await call.backend.calendar(call.principal, call.resource.calendar_id, fresh=False)
    # The backend's time-range pre-filter decides a VEVENT query of an event calendar only; a task list's
    # backend lists every task, so the filter is evaluated (a VEVENT query of it matches nothing).
    exact = not flt.is_simple() or "VEVENT" not in info.components
    with_data = exact or needs_data(props.names)
    window = _backend_window(flt.outer_range())
    objects = (
        []
        if window is None
        else await call.backend.query(call.principal, info.calendar_id, *window, with_data)
    )

    def build() -> Multistatus:
        matching = [o for o in objects if o.data is not None and _matches(flt, o.data)] if exact else objects
        return _respond(call, info, matching, props)

    return await call.built_multistatus(build, len(objects), _data_size(objects))


def _backend_window(outer: filters.TimeRange | None) -> tuple[datetime | None, datetime | None] | None:
    """The range the backend narrows by: open bounds stay open, given ones are cut to the dates calendars
    hold (:func:`.limits.clamp`); None when no date of the range can hold an event."""
    if outer is None:
        return None, None
    bounds = clamp(outer.start, outer.end)
    if bounds is None:
        return None
    return (bounds[0] if outer.start else None), (bounds[1] if outer.end else None)


def _data_size(objects: Iterable[CalendarObject]) -> int:
    return sum(len(o.data) for o in objects if o.data is not None)


def _matches(flt: filters.CompFilter, data: str) -> bool:
    try:
        return flt.matches_calendar(Calendar.from_ical(data))
    except ValueError:
        return False  # unparseable stored data matches nothing rather than failing the query


@report(cal("calendar-multiget"), Kind.CALENDAR, Kind.INBOX)
async def calendar_multiget(call: Call, root: etree._Element) -> web.Response:
    """RFC 4791 §7.9: the named objects; hrefs outside this calendar or missing are 404."""
    props = PropRequest.parse(root)
    info = await call.backend.calendar(call.principal, call.resource.calendar_id, fresh=False)
    ms = Multistatus()
    wanted: dict[str, str] = {}
    for el in root.findall(dav("href")):
        raw = (el.text or "").strip()
        target = resolve(unquote(urlsplit(raw).path))
        if (
            target is None
            or target.kind is not Kind.OBJECT
            or target.user != call.principal.username
            or target.calendar_id != info.calendar_id
        ):
            ms.add_status(raw, 404)
            continue
        wanted[target.name] = raw
    found = await call.backend.get(call.principal, info.calendar_id, list(wanted)) if wanted else {}
    objects = []
    for name, raw in wanted.items():
        obj = found.get(name)
        if obj is None:
            ms.add_status(raw, 404)
        else:
            objects.append(obj)
    return await call.built_multistatus(
        lambda: _respond(call, info, objects, props, ms), len(objects), _data_size(objects)
    )


@report(dav("sync-collection"), Kind.CALENDAR, Kind.INBOX)
async def sync_collection(call: Call, root: etree._Element) -> web.Response:
    """RFC 6578 §3.2: changes since a token; deletions as 404; truncation as a 507 on the collection."""
    props = PropRequest.parse(root)
    token = (root.findtext(dav("sync-token")) or "").strip() or None
    limit = requested_limit(root)
    changes = await call.backend.changes(call.principal, call.resource.calendar_id, token, limit)
    info = changes.calendar or await call.backend.calendar(
        call.principal, call.resource.calendar_id, fresh=False
    )
    changed = changes.changed
    if changed and needs_data(props.names):
        loaded = await call.backend.get(call.principal, info.calendar_id, [o.name for o in changed])
        changed = [loaded.get(o.name) or o for o in changed]

    def build() -> Multistatus:
        ms = _respond(call, info, changed, props)
        for name in changes.deleted:
            ms.add_status(Resource(Kind.OBJECT, call.principal.username, info.calendar_id, name).url, 404)
        if changes.truncated:
            ms.add_status(call.resource.url, 507)
        ms.add(element(dav("sync-token"), changes.sync_token))
        return ms

    return await call.built_multistatus(build, len(changed) + len(changes.deleted), _data_size(changed))


def requested_limit(root: etree._Element, namespace: Callable[[str], str] = dav) -> int | None:
    """The client's ``limit/nresults`` (RFC 5323 §5.17; CalendarServer's search puts it in its own
    namespace), None when absent; not a whole number is 400, below 1 is 403 number-of-matches-within-limits."""
    text = root.findtext(f"{namespace('limit')}/{namespace('nresults')}")
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        raise DavError(400, "DAV:nresults must be a whole number.") from None
    if value < 1:
        raise DavError(403, "DAV:nresults must be at least 1.", dav("number-of-matches-within-limits"))
    return value


@report(cal("free-busy-query"), Kind.CALENDAR)
async def free_busy_query(call: Call, root: etree._Element) -> web.Response:
    """RFC 4791 §7.10: a VFREEBUSY of this collection over the time range, as text/calendar."""
    try:
        tr = filters.TimeRange.parse(root.find(cal("time-range")))
    except filters.FilterError as exc:
        raise DavError(400, str(exc)) from None
    if tr is None or tr.start is None or tr.end is None:
        raise DavError(400, "free-busy-query needs a time-range with start and end.")
    freebusy.check_window(tr.start, tr.end, call.config.freebusy_max_days)
    periods = await call.backend.calendar_free_busy(
        call.principal, call.resource.calendar_id, tr.start, tr.end
    )
    body = freebusy.vfreebusy(tr.start, tr.end, periods)
    return web.Response(body=body.encode("utf-8"), content_type="text/calendar", charset="utf-8")
