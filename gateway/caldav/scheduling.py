"""RFC 6638 §3.2 free/busy through the scheduling outbox (POST of a VFREEBUSY request).

Thunderbird, Evolution, Apple Calendar and python-caldav POST a ``METHOD:REQUEST``
VFREEBUSY naming ORGANIZER, ATTENDEEs and DTSTART/DTEND; the answer is a
``CALDAV:schedule-response`` with one ``CALDAV:response`` per recipient (§3.2.10).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime

from aiohttp import web
from icalendar import Calendar, Component
from lxml import etree

from .backend import FreeBusyResult
from .call import Call, read_limited
from .errors import DavError
from .freebusy import check_window, request_status, vfreebusy
from .xml import cal, element, href, serialize, sub

MAX_REQUEST = 256_000
INLINE_REQUEST = 16_384


async def outbox_post(call: Call) -> web.Response:
    """Answer a VFREEBUSY request with each attendee's busy time, in request order."""
    ctype = call.request.headers.get("Content-Type", "")
    if ctype.split(";")[0].strip().lower() != "text/calendar":
        raise DavError(415, "The outbox accepts text/calendar scheduling messages only.")
    data = await read_limited(call.request, MAX_REQUEST)
    # Parsing is CPU work proportional to the body: a large one is parsed off the event loop.
    request = _parse(data) if len(data) <= INLINE_REQUEST else await asyncio.to_thread(_parse, data)
    organizer = str(request.get("ORGANIZER", ""))
    own = {f"mailto:{e}".lower() for e in call.principal.emails}
    if not organizer or organizer.lower() not in own:
        raise DavError(
            403, "The ORGANIZER must be one of your own calendar user addresses.", cal("organizer-allowed")
        )
    start, end = _moment(request, "DTSTART"), _moment(request, "DTEND")
    check_window(start, end, call.config.freebusy_max_days)
    attendees = _attendees(request)
    if len(attendees) > call.config.limits.max_attendees:
        # Each attendee costs Exchange a look-up (100 per GetUserAvailability): bounded like an event's.
        raise DavError(
            403, f"A free/busy request may name at most {call.config.limits.max_attendees} attendees."
        )
    # Backends see one spelling ("mailto:" lower-case); the answer echoes the client's own.
    results = await call.backend.free_busy(call.principal, [_mailto(a) for a in attendees], start, end)
    uid = str(request.get("UID", "")) or None

    def build() -> bytes:
        root = element(cal("schedule-response"))
        for index, attendee in enumerate(attendees):
            result = (
                results[index]
                if index < len(results)
                else FreeBusyResult(attendee, "5.1", message="No answer.")
            )
            _add_response(root, attendee, result, start, end, organizer, uid)
        return serialize(root)

    # A VFREEBUSY per attendee is CPU work (a month of busy periods each): off the event loop.
    body = await asyncio.to_thread(build)
    return web.Response(body=body, content_type="application/xml", charset="utf-8")


def _parse(data: bytes) -> Component:
    try:
        calendar = Calendar.from_ical(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise DavError(400, "The request body is not valid iCalendar.", cal("valid-calendar-data")) from None
    if str(calendar.get("METHOD", "")).upper() != "REQUEST":
        raise DavError(400, "A free/busy request needs METHOD:REQUEST.", cal("valid-scheduling-message"))
    requests = [c for c in calendar.subcomponents if c.name == "VFREEBUSY"]
    if len(requests) != 1:
        raise DavError(
            400, "The outbox answers exactly one VFREEBUSY request per POST.", cal("valid-scheduling-message")
        )
    return requests[0]


def _moment(component: Component, prop: str) -> datetime:
    if prop not in component:
        raise DavError(400, f"The VFREEBUSY request lacks {prop}.", cal("valid-scheduling-message"))
    value = component.decoded(prop)
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day) if isinstance(value, date) else value
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _attendees(component: Component) -> list[str]:
    values = component.get("ATTENDEE", [])
    values = values if isinstance(values, list) else [values]
    attendees = [str(v) for v in values]
    if not attendees:
        raise DavError(400, "The VFREEBUSY request names no ATTENDEE.", cal("valid-scheduling-message"))
    return attendees


def _mailto(address: str) -> str:
    scheme, sep, rest = address.partition(":")
    return f"mailto:{rest}" if sep and scheme.lower() == "mailto" else address


def _add_response(
    root: etree._Element,
    attendee: str,
    result: FreeBusyResult,
    start: datetime,
    end: datetime,
    organizer: str,
    uid: str | None,
) -> None:
    response = sub(root, cal("response"))
    recipient = sub(response, cal("recipient"))
    recipient.append(href(attendee))
    sub(response, cal("request-status"), _status_with_reason(result))
    if result.status.startswith("2") or result.no_data:
        text = vfreebusy(
            start,
            end,
            result.periods,
            method="REPLY",
            organizer=organizer,
            attendee=attendee,
            uid=uid,
            no_data=result.no_data,
            status=request_status(result),
        )
        sub(response, cal("calendar-data"), text)


def _status_with_reason(result: FreeBusyResult) -> str:
    """REQUEST-STATUS with the reason of a failure as its exception data (RFC 5545 §3.8.8.3).

    The reason travels here rather than in a DAV:responsedescription: RFC 6638 allows that
    element, but python-caldav rejects a schedule-response that carries it. A no-data answer
    explains itself in its VFREEBUSY COMMENT instead.
    """
    status = request_status(result)
    if result.status.startswith("2") or not result.message:
        return status
    return f"{status};{' '.join(result.message.split())}"
