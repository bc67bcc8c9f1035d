"""Free/busy answers: VFREEBUSY bodies (RFC 5545 §3.6.4), the Internet Free/Busy URL and a JSON API.

``GET /freebusy/{email}.vfb`` (or ``.ifb``) returns a VFREEBUSY for one calendar user, over
``?start=..&end=..`` or by default from 7 days ago to 60 days ahead (midnight UTC).
``GET /api/v1/freebusy?attendee=a@x&attendee=b@y&start=..&end=..`` returns JSON with each
attendee's request status and busy periods, or ``no_data`` and no periods when they are not known.
Both require authentication (gateway user name and app password). ``gateway/web/openapi.json``
documents both.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

from aiohttp import web

from gateway.common import ical
from gateway.common.busy import merge_spans

from .backend import BusyPeriod, FreeBusyResult
from .errors import DavError
from .limits import MAX_DATE_TIME, MIN_DATE_TIME

DEFAULT_PAST = timedelta(days=7)
DEFAULT_FUTURE = timedelta(days=60)
PRODID = "-//exchange-caldav-gateway//CalDAV//EN"

STATUS_TEXT = {
    "2.0": "Success",
    "3.7": "Invalid calendar user",
    "3.8": "No authority",
    "5.1": "Could not complete delivery",
    "5.2": "Invalid calendar service",
    "5.3": "No scheduling support for user",
}
NO_DATA_COMMENT = "No free/busy information is available for this calendar user; this is not 'free'."


def request_status(result: FreeBusyResult) -> str:
    """The RFC 5545 §3.8.8.3 REQUEST-STATUS text, e.g. ``2.0;Success``."""
    return f"{result.status};{STATUS_TEXT.get(result.status, result.message or 'Failed')}"


def coalesce(periods: Iterable[BusyPeriod], start: datetime, end: datetime) -> list[BusyPeriod]:
    """Clip to [start, end), convert to UTC, drop FREE and merge overlapping periods of one FBTYPE
    (:func:`gateway.common.busy.merge_spans`)."""
    clipped = (
        (max(p.start.astimezone(UTC), start), min(p.end.astimezone(UTC), end), p.fbtype) for p in periods
    )
    return [BusyPeriod(*span) for span in merge_spans(s for s in clipped if s[0] < s[1] and s[2] != "FREE")]


def vfreebusy(
    start: datetime,
    end: datetime,
    periods: Sequence[BusyPeriod],
    *,
    method: str | None = None,
    organizer: str | None = None,
    attendee: str | None = None,
    uid: str | None = None,
    no_data: bool = False,
    status: str | None = None,
) -> str:
    """A VCALENDAR holding one VFREEBUSY (RFC 5545 §3.6.4); a no-data answer says so and is never 'free'.

    Written as text (one answer per attendee of a scheduling POST): DTSTART/DTEND and every
    FREEBUSY period in UTC, periods clipped and coalesced, one FBTYPE per line, properties in
    name order.
    """
    if no_data:
        periods = [BusyPeriod(start, end, "BUSY-UNAVAILABLE")]
    props: list[str] = []
    if attendee:
        props.append(ical.line("ATTENDEE", attendee))
    if no_data:
        props.append(ical.text_line("COMMENT", NO_DATA_COMMENT))
    props.append(ical.line("DTEND", ical.format_utc(end)))
    props.append(ical.line("DTSTAMP", ical.format_utc(datetime.now(UTC))))
    props.append(ical.line("DTSTART", ical.format_utc(start)))
    # VALUE=PERIOD is the default for FREEBUSY, and some clients choke on it spelled out.
    props.extend(
        ical.line("FREEBUSY", ical.format_period(p.start, p.end), (("FBTYPE", p.fbtype),))
        for p in coalesce(periods, start, end)
    )
    if organizer:
        props.append(ical.line("ORGANIZER", organizer))
    if status:
        props.append(ical.line("REQUEST-STATUS", _status_value(status)))
    props.append(ical.text_line("UID", uid or str(uuid.uuid4())))
    header = [ical.line("VERSION", "2.0"), ical.text_line("PRODID", PRODID)]
    if method:
        header.append(ical.text_line("METHOD", method))
    return ical.component("VCALENDAR", [*header, ical.component("VFREEBUSY", props)])


def _status_value(status: str) -> str:
    """REQUEST-STATUS (RFC 5545 §3.8.8.3): ``statcode;statdesc[;extdata]``, the text parts escaped."""
    code, _, rest = status.partition(";")
    description, _, extra = rest.partition(";")
    value = f"{code};{ical.escape_text(description)}"
    return f"{value};{ical.escape_text(extra)}" if extra else value


def parse_moment(value: str) -> datetime:
    """Accept ``20250101T000000Z``, ISO 8601 date-times (naive = UTC) and dates."""
    text = value.strip()
    for fmt in ("%Y%m%dT%H%M%SZ", "%Y%m%d"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise DavError(
            400, f"{value!r} is not a date or date-time (use e.g. 2025-01-31T09:00:00Z)."
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def window(query: dict[str, str] | web.Request, max_days: int) -> tuple[datetime, datetime]:
    """The [start, end) of a free/busy request: validated, defaulted, at most ``max_days`` long.

    Without both bounds the window is the default one around today; with only one, the other
    lies the default window's length away from it (``?start=`` alone far ahead is not "inverted").
    """
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    params = query.query if isinstance(query, web.Request) else query
    start = parse_moment(params["start"]) if params.get("start") else None
    end = parse_moment(params["end"]) if params.get("end") else None
    length = DEFAULT_PAST + DEFAULT_FUTURE
    try:
        if start is None:
            start = end - length if end is not None else today - DEFAULT_PAST
        if end is None:
            end = start + length
    except OverflowError:
        raise DavError(400, _OUTSIDE) from None
    check_window(start, end, max_days)
    return start, end


_OUTSIDE = (
    f"Free/busy time can be asked for between {MIN_DATE_TIME.date()} and {MAX_DATE_TIME.date()}, "
    "the dates calendars hold."
)


def check_window(start: datetime, end: datetime, max_days: int) -> None:
    """400 for an inverted range or one outside the dates calendars hold, 403 for one longer than the
    configured maximum."""
    if end <= start:
        raise DavError(400, "The free/busy range ends before it starts.")
    if start < MIN_DATE_TIME or end > MAX_DATE_TIME:
        raise DavError(400, _OUTSIDE)
    if end - start > timedelta(days=max_days):
        raise DavError(403, f"The free/busy range is longer than the allowed {max_days} days.")


def as_json(result: FreeBusyResult) -> dict[str, object]:
    """One attendee's JSON answer (documented in ``gateway/web/openapi.json``).

    ``busy`` lists the busy periods only when they are the whole truth: for an unknown calendar user,
    a refusal, a failed lookup or a mailbox Exchange has no data for, ``no_data`` is true and ``busy``
    is null, so a client reading only ``busy`` cannot take the time for free (as the VFREEBUSY form
    declares that window BUSY-UNAVAILABLE).
    """
    unknown = result.no_data or result.status != "2.0"
    return {
        "attendee": result.attendee.removeprefix("mailto:"),
        "status": result.status,
        "status_text": STATUS_TEXT.get(result.status, result.message),
        "no_data": unknown,
        "message": result.message or (NO_DATA_COMMENT if unknown else ""),
        "busy": None
        if unknown
        else [
            {"start": _iso(p.start), "end": _iso(p.end), "type": p.fbtype}
            for p in coalesce(
                result.periods, datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)
            )
        ],
    }


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
