"""The one registry of live properties (RFC 4918 §15, RFC 4791 §5.2/§6.2, RFC 6638 §2, RFC 3744 §5).

PROPFIND (prop, allprop, propname), REPORT answers and PROPPATCH all read this table,
so a property is defined once: which resource kinds carry it, how its value is built,
whether ``allprop`` includes it and whether PROPPATCH may set it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime

from lxml import etree

from .backend import CalendarInfo, CalendarObject, Person, Principal
from .limits import MAX_DATE_TIME, MIN_DATE_TIME, Limits, utc_text
from .resources import (
    COLLECTIONS,
    Kind,
    Resource,
    calendar_url,
    directory_url,
    home_url,
    inbox_url,
    outbox_url,
    principal_url,
)
from .schedule_tag import schedule_tag
from .xml import Multistatus, cal, cs, dav, element, href, ical

OBJECT_CONTENT_TYPE = "text/calendar; charset=utf-8; component=VEVENT"
TASK_CONTENT_TYPE = "text/calendar; charset=utf-8; component=VTODO"


def object_content_type(data: str | None) -> str:
    """An object's media type with its component (RFC 4791 §5.3.4 ``component``): a task's is VTODO."""
    return TASK_CONTENT_TYPE if data and "BEGIN:VTODO" in data else OBJECT_CONTENT_TYPE


@dataclass
class PropContext:
    """Everything a property value may be built from, for one resource."""

    principal: Principal
    resource: Resource
    reports: tuple[str, ...] = ()  # Clark names of reports this resource supports
    limits: Limits = field(default_factory=Limits)
    calendar: CalendarInfo | None = None
    obj: CalendarObject | None = None
    calendar_data: str | None = None  # a REPORT's transformed calendar-data (expand), else obj.data
    person: Person | None = None  # a directory principal's person (Kind.DIRECTORY)


Value = list[etree._Element] | str | None  # children, text, or None when the resource lacks it


@dataclass(frozen=True)
class LiveProperty:
    name: str
    kinds: frozenset[Kind]
    render: Callable[[PropContext], Value]
    allprop: bool = False
    needs_data: bool = False  # the object's iCalendar text must be loaded
    writable: bool = False  # PROPPATCH / MKCALENDAR may set it (calendar collections)


REGISTRY: dict[str, LiveProperty] = {}


def live(
    name: str, kinds: Iterable[Kind], **flags: bool
) -> Callable[[Callable[[PropContext], Value]], Callable]:
    """Register a property renderer."""

    def register(render: Callable[[PropContext], Value]) -> Callable[[PropContext], Value]:
        REGISTRY[name] = LiveProperty(name, frozenset(kinds), render, **flags)
        return render

    return register


ALL = frozenset(Kind)


def _privileges(names: Iterable[str]) -> list[etree._Element]:
    return [element(dav("privilege"), children=[element(n)]) for n in names]


# --- RFC 4918 core ---------------------------------------------------------------------


@live(dav("resourcetype"), ALL, allprop=True)
def _resourcetype(ctx: PropContext) -> Value:
    extra = {
        Kind.PRINCIPAL: [dav("principal")],
        Kind.DIRECTORY: [dav("principal")],
        Kind.CALENDAR: [cal("calendar")],
        Kind.INBOX: [cal("schedule-inbox")],
        Kind.OUTBOX: [cal("schedule-outbox")],
    }.get(ctx.resource.kind, [])
    if ctx.resource.kind is Kind.OBJECT:
        return []
    return [element(dav("collection"))] + [element(n) for n in extra]


@live(dav("displayname"), COLLECTIONS, allprop=True, writable=True)
def _displayname(ctx: PropContext) -> Value:
    match ctx.resource.kind:
        case Kind.CALENDAR:
            return ctx.calendar.display_name if ctx.calendar else None
        case Kind.PRINCIPAL:
            return ctx.principal.display_name
        case Kind.DIRECTORY:
            return ctx.person.display_name if ctx.person else None
        case Kind.INBOX:
            return "Inbox"
        case Kind.OUTBOX:
            return "Outbox"
        case Kind.HOME:
            return f"Calendars of {ctx.principal.display_name}"
    return None


@live(dav("getetag"), [Kind.OBJECT], allprop=True)
def _getetag(ctx: PropContext) -> Value:
    return f'"{ctx.obj.etag}"' if ctx.obj else None


@live(dav("getcontenttype"), [Kind.OBJECT, Kind.CALENDAR], allprop=True)
def _getcontenttype(ctx: PropContext) -> Value:
    if ctx.resource.kind is not Kind.OBJECT:
        return "text/calendar; charset=utf-8"
    if ctx.calendar is not None and ctx.calendar.components == ("VTODO",):
        return TASK_CONTENT_TYPE
    return object_content_type(ctx.obj.data if ctx.obj else None)


@live(dav("getcontentlength"), [Kind.OBJECT], allprop=True, needs_data=True)
def _getcontentlength(ctx: PropContext) -> Value:
    data = ctx.obj.data if ctx.obj else None
    return str(len(data.encode("utf-8"))) if data is not None else None


@live(dav("getlastmodified"), [Kind.OBJECT], allprop=True, needs_data=True)
def _getlastmodified(ctx: PropContext) -> Value:
    """From the first VEVENT's LAST-MODIFIED (RFC 5545 §3.8.7.3), when it has one.

    Found by scanning the lines rather than parsing the object: a PROPFIND of a large event must not
    cost a full iCalendar parse on the event loop."""
    data = ctx.obj.data if ctx.obj else None
    if not data:
        return None
    stack: list[str] = []
    for match in _COMPONENT_OR_STAMP.finditer(data):
        keyword, name, stamp = (match.group(1) or "").upper(), (match.group(2) or "").upper(), match.group(4)
        if keyword == "BEGIN":
            stack.append(name)
        elif keyword == "END":
            if stack:
                stack.pop()
        elif stack[-1:] == ["VEVENT"]:
            try:
                moment = datetime.strptime(stamp, "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
            except ValueError:
                return None
            return format_datetime(moment, usegmt=True)  # usegmt wants datetime.timezone.utc itself
    return None


# BEGIN/END of a component, or a LAST-MODIFIED (RFC 5545 §3.8.7.3: a UTC DATE-TIME) at a line start.
_COMPONENT_OR_STAMP = re.compile(
    r"^(?:(BEGIN|END):([A-Za-z0-9-]+)|(LAST-MODIFIED)(?:;[^:\r\n]*)?:(\d{8}T\d{6})Z?)", re.I | re.M
)


@live(dav("supportedlock"), [Kind.OBJECT, Kind.CALENDAR])
def _supportedlock(ctx: PropContext) -> Value:
    return []  # no LOCK support: an empty set says so (RFC 4918 §15.10)


# --- RFC 3744 / RFC 5397 ACL ---------------------------------------------------------------


@live(dav("current-user-principal"), ALL)
def _current_user_principal(ctx: PropContext) -> Value:
    return [href(principal_url(ctx.principal.username))]


@live(dav("principal-collection-set"), ALL)
def _principal_collection_set(ctx: PropContext) -> Value:
    return [href("/dav/principals/")]


@live(dav("owner"), COLLECTIONS - {Kind.ROOT, Kind.PRINCIPALS, Kind.DIRECTORY} | {Kind.OBJECT})
def _owner(ctx: PropContext) -> Value:
    return [href(principal_url(ctx.principal.username))]


def _writable(ctx: PropContext) -> bool:
    if ctx.resource.kind in (Kind.CALENDAR, Kind.OBJECT):
        return ctx.calendar is None or ctx.calendar.writable
    return ctx.resource.kind is Kind.HOME


@live(dav("current-user-privilege-set"), ALL)
def _current_user_privilege_set(ctx: PropContext) -> Value:
    """Thunderbird and DAVx5 decide read-only vs read-write from this (CLIENTS.md)."""
    names = [dav("read"), dav("read-current-user-privilege-set"), cal("read-free-busy")]
    if ctx.resource.kind is Kind.OUTBOX:
        names += [cal("schedule-send"), cal("schedule-query-freebusy")]
    elif ctx.resource.kind is Kind.INBOX:
        names += [cal("schedule-deliver"), dav("unbind")]  # its messages may be deleted (RFC 6638 §2.2)
    elif _writable(ctx):
        names += [
            dav("all"),
            dav("write"),
            dav("write-content"),
            dav("write-properties"),
            dav("bind"),
            dav("unbind"),
        ]
    return _privileges(names)


# --- principals (RFC 3744 §4, RFC 4791 §6.2, RFC 6638 §2) -------------------------------------
# A directory principal (Kind.DIRECTORY) carries the properties a search matches and answers with
# (gateway.caldav.directory): its name, addresses and calendar-user-type, no calendars of its own.

PRINCIPALS = [Kind.PRINCIPAL, Kind.DIRECTORY]


def _addresses(ctx: PropContext) -> tuple[str, ...]:
    if ctx.resource.kind is Kind.DIRECTORY:
        return (ctx.person.email,) if ctx.person else ()
    return ctx.principal.emails


def _own_url(ctx: PropContext) -> str:
    if ctx.resource.kind is Kind.DIRECTORY:
        return directory_url(ctx.resource.name)
    return principal_url(ctx.principal.username)


@live(dav("principal-URL"), PRINCIPALS)
def _principal_url(ctx: PropContext) -> Value:
    return [href(_own_url(ctx))]


@live(dav("group-membership"), [Kind.PRINCIPAL])
def _group_membership(ctx: PropContext) -> Value:
    return []


@live(cal("calendar-home-set"), [Kind.PRINCIPAL])
def _calendar_home_set(ctx: PropContext) -> Value:
    return [href(home_url(ctx.principal.username))]


@live(cal("calendar-user-address-set"), PRINCIPALS)
def _calendar_user_address_set(ctx: PropContext) -> Value:
    urls = [f"mailto:{email}" for email in _addresses(ctx)]
    return [href(u) for u in urls + [_own_url(ctx)]]


@live(cal("schedule-inbox-URL"), [Kind.PRINCIPAL])
def _schedule_inbox(ctx: PropContext) -> Value:
    return [href(inbox_url(ctx.principal.username))]


@live(cal("schedule-outbox-URL"), [Kind.PRINCIPAL])
def _schedule_outbox(ctx: PropContext) -> Value:
    return [href(outbox_url(ctx.principal.username))]


@live(cal("calendar-user-type"), PRINCIPALS)
def _calendar_user_type(ctx: PropContext) -> Value:
    """RFC 6638 §2.4.2: a room is a ROOM, so clients offer it as a location."""
    if ctx.resource.kind is Kind.DIRECTORY:
        return ctx.person.user_type if ctx.person else None
    return "INDIVIDUAL"


@live(cs("email-address-set"), PRINCIPALS)
def _email_address_set(ctx: PropContext) -> Value:
    return [element(cs("email-address"), email) for email in _addresses(ctx)]


# --- collections ---------------------------------------------------------------------------


@live(dav("supported-report-set"), COLLECTIONS | {Kind.OBJECT})
def _supported_report_set(ctx: PropContext) -> Value:
    """Computed from the report registry (RFC 3253 §3.1.5)."""
    return [
        element(dav("supported-report"), children=[element(dav("report"), children=[element(name)])])
        for name in ctx.reports
    ]


@live(cal("schedule-default-calendar-URL"), [Kind.INBOX])
def _schedule_default_calendar(ctx: PropContext) -> Value:
    """RFC 6638 §9.2: where the user's new events go, as chosen on the settings page, the CLI or the
    admin API (by default the first account's primary calendar); absent while the user has none."""
    calendar_id = ctx.principal.default_calendar_id
    return [href(calendar_url(ctx.principal.username, calendar_id))] if calendar_id else None


@live(dav("sync-token"), [Kind.CALENDAR, Kind.INBOX])
def _sync_token(ctx: PropContext) -> Value:
    return ctx.calendar.sync_token if ctx.calendar else None


@live(cs("getctag"), [Kind.CALENDAR, Kind.INBOX])
def _getctag(ctx: PropContext) -> Value:
    return ctx.calendar.ctag if ctx.calendar else None


@live(cal("calendar-description"), [Kind.CALENDAR], writable=True)
def _calendar_description(ctx: PropContext) -> Value:
    return ctx.calendar.description if ctx.calendar and ctx.calendar.description else None


@live(ical("calendar-color"), [Kind.CALENDAR], writable=True)
def _calendar_color(ctx: PropContext) -> Value:
    return ctx.calendar.color if ctx.calendar and ctx.calendar.color else None


@live(ical("calendar-order"), [Kind.CALENDAR], writable=True)
def _calendar_order(ctx: PropContext) -> Value:
    return str(ctx.calendar.order) if ctx.calendar else None


@live(cal("calendar-timezone"), [Kind.CALENDAR])
def _calendar_timezone(ctx: PropContext) -> Value:
    return ctx.calendar.timezone if ctx.calendar and ctx.calendar.timezone else None


@live(cal("supported-calendar-component-set"), [Kind.CALENDAR, Kind.INBOX, Kind.OUTBOX])
def _supported_components(ctx: PropContext) -> Value:
    components = ctx.calendar.components if ctx.calendar else ("VEVENT", "VFREEBUSY")
    return [_comp(name) for name in components]


def _comp(name: str) -> etree._Element:
    el = element(cal("comp"))
    el.set("name", name)
    return el


@live(cal("supported-calendar-data"), [Kind.CALENDAR])
def _supported_calendar_data(ctx: PropContext) -> Value:
    el = element(cal("calendar-data"))
    el.set("content-type", "text/calendar")
    el.set("version", "2.0")
    return [el]


@live(cal("max-resource-size"), [Kind.CALENDAR])
def _max_resource_size(ctx: PropContext) -> Value:
    """RFC 4791 §5.2.5: the largest PUT body, in octets (refused beyond with 413 max-resource-size)."""
    return str(ctx.limits.max_resource_size)


@live(cal("max-attendees-per-instance"), [Kind.CALENDAR])
def _max_attendees(ctx: PropContext) -> Value:
    """RFC 4791 §5.2.9: the most ATTENDEEs one event may have (Exchange invites each of them)."""
    return str(ctx.limits.max_attendees)


@live(cal("min-date-time"), [Kind.CALENDAR])
def _min_date_time(ctx: PropContext) -> Value:
    """RFC 4791 §5.2.6: the earliest date a calendar object may use."""
    return utc_text(MIN_DATE_TIME)


@live(cal("max-date-time"), [Kind.CALENDAR])
def _max_date_time(ctx: PropContext) -> Value:
    """RFC 4791 §5.2.7: the latest date a calendar object may use."""
    return utc_text(MAX_DATE_TIME)


@live(cal("schedule-calendar-transp"), [Kind.CALENDAR])
def _schedule_calendar_transp(ctx: PropContext) -> Value:
    """RFC 6638 §9.1: the calendar's events count for free/busy."""
    return [element(cal("opaque"))]


# --- calendar objects ----------------------------------------------------------------------


@live(cal("calendar-data"), [Kind.OBJECT], needs_data=True)
def _calendar_data(ctx: PropContext) -> Value:
    if ctx.calendar_data is not None:
        return ctx.calendar_data
    return ctx.obj.data if ctx.obj else None


@live(cal("schedule-tag"), [Kind.OBJECT], needs_data=True)
def _schedule_tag(ctx: PropContext) -> Value:
    """RFC 6638 §9.3 (see :mod:`.schedule_tag`): only scheduling objects (with an ORGANIZER) have one."""
    tag = schedule_tag(ctx.obj.data if ctx.obj else None)
    return f'"{tag}"' if tag else None


@dataclass
class PropAnswer:
    """Properties split by outcome, ready for a ``DAV:propstat`` group each."""

    found: list[etree._Element] = field(default_factory=list)
    missing: dict[int, list[str]] = field(default_factory=dict)


def applicable(kind: Kind) -> list[LiveProperty]:
    """Every live property a resource of this kind carries (propname)."""
    return [p for p in REGISTRY.values() if kind in p.kinds]


def allprop_names(kind: Kind) -> list[str]:
    """The properties ``allprop`` returns (RFC 4918 §9.1: not the expensive or RFC 3253/3744 ones)."""
    return [p.name for p in applicable(kind) if p.allprop]


def writable(kind: Kind) -> frozenset[str]:
    """The properties PROPPATCH (RFC 4918 §9.2) and MKCALENDAR (RFC 4791 §5.3.1) may set on a resource of
    this kind: what ``Backend.update_calendar``/``create_calendar`` are handed and a backend stores."""
    return frozenset(p.name for p in REGISTRY.values() if p.writable and kind in p.kinds)


def needs_data(names: Iterable[str]) -> bool:
    """Whether answering these properties needs the objects' iCalendar text."""
    return any(REGISTRY[n].needs_data for n in names if n in REGISTRY)


def answer(ctx: PropContext, names: Iterable[str], *, values: bool = True) -> PropAnswer:
    """Render the named properties of one resource; unknown or absent ones go to 404."""
    result = PropAnswer()
    for name in names:
        prop = REGISTRY.get(name)
        value = prop.render(ctx) if prop and ctx.resource.kind in prop.kinds else None
        if value is None:
            result.missing.setdefault(404, []).append(name)
            continue
        el = element(name)
        if values:
            if isinstance(value, str):
                el.text = value
            else:
                el.extend(value)
        result.found.append(el)
    return result


def add_response(
    ms: Multistatus, ctx: PropContext, names: Iterable[str], *, minimal: bool, values: bool = True
) -> None:
    """Append one resource's ``DAV:response``; ``minimal`` drops the 404 group (RFC 7240 §4.2)."""
    result = answer(ctx, names, values=values)
    missing = {} if minimal else result.missing
    ms.add_propstat(ctx.resource.url, result.found, missing)
