"""The PUT body checks every calendar store shares (RFC 4791 §5.3.2.1 preconditions).

A body is stored only when it is valid iCalendar (``valid-calendar-data``), holds only the
components the collection supports (``supported-calendar-component``: VEVENT in a calendar, VTODO
in a task list, with the VTIMEZONEs they use), obeys RFC 4791 §4.1 (``valid-calendar-object-resource``: one UID,
every VEVENT with a DTSTART, no METHOD) and stays within the limits of :mod:`.limits` (sizes,
counts, ``min-date-time``/``max-date-time``). A backend may still refuse what its store cannot
represent (the EWS mapping does, with the same preconditions); it can rely on these checks having
passed.

``METHOD:PUBLISH`` is the one exception to RFC 4791 §4.1's "no METHOD": Outlook and Google put it
in every exported file, and a client uploading such a file means the event, not a scheduling
message, so it is removed and the rest stored (the answer then carries no ETag: the stored object
differs from the request, RFC 4791 §5.3.4). Any other METHOD (REQUEST, REPLY, CANCEL, …) is an iTIP
message, which belongs in a scheduling outbox, and is refused.

Parsing is CPU work proportional to the body: :func:`check_off_loop` runs it in a worker thread for
bodies larger than :data:`INLINE_BODY_BYTES`, so one large PUT never stalls other clients.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass

from icalendar import Calendar, Component
from lxml import etree

from . import filters
from .errors import DavError
from .limits import Limits, check_counts, check_dates, precheck
from .xml import cal, dav

VALID_DATA = cal("valid-calendar-data")
VALID_OBJECT = cal("valid-calendar-object-resource")
SUPPORTED_COMPONENT = cal("supported-calendar-component")
DEFAULT_LIMITS = Limits()
EVENTS = ("VEVENT",)  # an event calendar's component set
TASKS = ("VTODO",)  # a task list's
# A typical event (2-5 KB) validates in ~0.3 ms, less than a hop to a worker thread and back costs
# under load; from this size on the parse runs in a thread (an 800 KB body takes ~100 ms).
INLINE_BODY_BYTES = 16_384
# The METHOD property with its folded continuation lines (RFC 5545 §3.1).
_METHOD_LINE = re.compile(r"^METHOD[;:][^\r\n]*(?:\r?\n[ \t][^\r\n]*)*(?:\r?\n|$)", re.I | re.M)


@dataclass(frozen=True)
class Checked:
    """A body that passed every check: the text to store, and whether it differs from the request."""

    text: str
    altered: bool = False  # METHOD:PUBLISH was removed


def calendar_object(data: bytes, limits: Limits = DEFAULT_LIMITS, components: Sequence[str] = EVENTS) -> str:
    """The text to store once the body passed every check; else the :class:`DavError` naming the precondition."""
    return check(data, limits, components).text


async def check_off_loop(
    data: bytes, limits: Limits = DEFAULT_LIMITS, components: Sequence[str] = EVENTS
) -> Checked:
    """:func:`check`, in a worker thread for a body larger than :data:`INLINE_BODY_BYTES`."""
    if len(data) <= INLINE_BODY_BYTES:
        return check(data, limits, components)
    return await asyncio.to_thread(check, data, limits, components)


def check(data: bytes, limits: Limits = DEFAULT_LIMITS, components: Sequence[str] = EVENTS) -> Checked:
    """Every check of a PUT body (RFC 4791 §4.1, §5.3.2.1), cheapest first. ``components`` is the
    collection's supported-calendar-component-set: a body of another kind is refused (RFC 4791 §5.3.2.1
    supported-calendar-component), so a task goes only to a task list and an event only to a calendar."""
    precheck(data, limits)
    text, calendar = _parse(data)
    altered = _check_method(calendar)
    kinds = {c.name for c in calendar.subcomponents} - {"VTIMEZONE"}
    if len(kinds) != 1 or not kinds <= set(components):
        raise DavError(403, _kinds_sentence(components), SUPPORTED_COMPONENT)
    kind = kinds.pop()
    events = [c for c in calendar.subcomponents if c.name == kind]
    _check_uid(events)
    if kind == "VEVENT" and any("DTSTART" not in event for event in events):
        # RFC 5545 §3.6.1: DTSTART is optional only with a METHOD, which RFC 4791 §4.1 forbids here.
        raise DavError(
            403, "Every VEVENT of a calendar object needs a DTSTART (RFC 5545 §3.6.1).", VALID_OBJECT
        )
    _check_properties(calendar)
    check_counts(calendar, limits)
    check_dates(calendar)  # before any date arithmetic: year 1 or 9999 would overflow it
    try:
        filters.check_recurrence(calendar)
    except (ValueError, OverflowError) as exc:
        raise DavError(
            400, f"The event's dates or recurrence rule cannot be read ({exc}).", VALID_DATA
        ) from None
    return Checked(_METHOD_LINE.sub("", text), True) if altered else Checked(text)


def component_set(el: etree._Element) -> tuple[str, ...] | None:
    """What a new collection holds by its supported-calendar-component-set (RFC 4791 §5.2.3): events
    when VEVENT is named (a VTODO beside it is not kept: Exchange keeps tasks apart), tasks when VTODO
    alone is; None for a set with neither, which no collection here can honour."""
    names = {c.get("name", "").upper() for c in el.findall(cal("comp"))}
    if "VEVENT" in names:
        return EVENTS
    if "VTODO" in names and not names - {"VTODO", "VTIMEZONE"}:
        return TASKS
    return None


def requested_components(root: etree._Element | None) -> tuple[str, ...]:
    if root is None:
        return EVENTS
    found = root.find(f"{dav('set')}/{dav('prop')}/{cal('supported-calendar-component-set')}")
    return (component_set(found) if found is not None else None) or EVENTS


def _kinds_sentence(components: Sequence[str]) -> str:
    if tuple(components) == TASKS:
        return "This is a task list: it stores tasks (VTODO) only."
    return "This calendar stores events (VEVENT) only. Tasks (VTODO) go to a task list."


def _parse(data: bytes) -> tuple[str, Calendar]:
    """The text and its one VCALENDAR; the text must be UTF-8 (RFC 4791 §5.3.2.1 valid-calendar-data)."""
    try:
        text = data.decode("utf-8")
        calendar = Calendar.from_ical(text)
    except (UnicodeDecodeError, ValueError) as exc:
        reason = "is not UTF-8" if isinstance(exc, UnicodeDecodeError) else "is not valid iCalendar"
        raise DavError(400, f"The request body {reason}.", VALID_DATA) from None
    if calendar.name != "VCALENDAR":
        raise DavError(400, "The request body is not a VCALENDAR.", VALID_DATA)
    return text, calendar


def _check_method(calendar: Calendar) -> bool:
    """RFC 4791 §4.1 forbids METHOD in a stored object: True when it is PUBLISH (to remove), else refused."""
    values = calendar.get("METHOD")
    if values is None:
        return False
    methods = {str(v).strip().upper() for v in (values if isinstance(values, list) else [values])}
    if methods == {"PUBLISH"}:
        return True
    named = ", ".join(sorted(methods))
    raise DavError(
        403,
        f"METHOD:{named} makes this a scheduling message (iTIP), not a calendar object: store the event "
        "without METHOD (files with METHOD:PUBLISH are accepted and stored without it).",
        VALID_OBJECT,
    )


def _check_uid(events: Sequence[Component]) -> None:
    """RFC 4791 §4.1: the VEVENTs (VTODOs) of one resource share one UID (RFC 5545 §3.8.4.7: not empty)."""
    uids = {str(event.get("UID", "")) for event in events}
    if len(uids) != 1 or "" in uids:
        raise DavError(403, "A calendar object holds exactly one UID (one event series).", VALID_OBJECT)
    if not uids.pop().strip():
        raise DavError(403, f"Every {events[0].name} needs a UID (RFC 5545 §3.8.4.7).", VALID_OBJECT)


def _check_properties(calendar: Calendar) -> None:
    """Every property's value parses as its type: icalendar keeps unparsable ones and records why."""
    for component in calendar.walk():
        for name, error in getattr(component, "errors", ()):
            raise DavError(400, f"{component.name} property {name} is not valid: {error}", VALID_DATA)
