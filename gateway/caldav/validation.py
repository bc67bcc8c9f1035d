"""The PUT body checks every calendar store shares (RFC 4791 §5.3.2.1 preconditions).

A body is stored only when it is valid iCalendar (``valid-calendar-data``), holds only the
components this gateway's calendars support (``supported-calendar-component``: VEVENT, with
the VTIMEZONEs it uses) and obeys RFC 4791 §4.1 (``valid-calendar-object-resource``: one UID,
every VEVENT with a DTSTART). A backend may still refuse what its store cannot represent
(the EWS mapping does, with the same preconditions); it can rely on these checks having passed.
"""

from __future__ import annotations

from collections.abc import Sequence

from icalendar import Calendar, Component

from . import filters
from .errors import DavError
from .xml import cal

VALID_DATA = cal("valid-calendar-data")
VALID_OBJECT = cal("valid-calendar-object-resource")
SUPPORTED_COMPONENT = cal("supported-calendar-component")


def calendar_object(data: bytes) -> str:
    """The body as text once it passed every check; else the :class:`DavError` naming the precondition."""
    text, calendar = _parse(data)
    kinds = {c.name for c in calendar.subcomponents} - {"VTIMEZONE"}
    if kinds != {"VEVENT"}:
        raise DavError(403, "This calendar stores events (VEVENT) only.", SUPPORTED_COMPONENT)
    events = [c for c in calendar.subcomponents if c.name == "VEVENT"]
    _check_uid(events)
    if any("DTSTART" not in event for event in events):
        # RFC 5545 §3.6.1: DTSTART is optional only with a METHOD, which RFC 4791 §4.1 forbids here.
        raise DavError(
            403, "Every VEVENT of a calendar object needs a DTSTART (RFC 5545 §3.6.1).", VALID_OBJECT
        )
    try:
        filters.check_recurrence(calendar)
    except ValueError as exc:
        raise DavError(
            400, f"The event's dates or recurrence rule cannot be read ({exc}).", VALID_DATA
        ) from None
    _check_properties(calendar)
    return text


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


def _check_uid(events: Sequence[Component]) -> None:
    """RFC 4791 §4.1: the VEVENTs of one resource share one UID (RFC 5545 §3.8.4.7: not empty)."""
    uids = {str(event.get("UID", "")) for event in events}
    if len(uids) != 1 or "" in uids:
        raise DavError(403, "A calendar object holds exactly one UID (one event series).", VALID_OBJECT)
    if not uids.pop().strip():
        raise DavError(403, "Every VEVENT needs a UID (RFC 5545 §3.8.4.7).", VALID_OBJECT)


def _check_properties(calendar: Calendar) -> None:
    """Every property's value parses as its type: icalendar keeps unparsable ones and records why."""
    for component in calendar.walk():
        for name, error in getattr(component, "errors", ()):
            raise DavError(400, f"{component.name} property {name} is not valid: {error}", VALID_DATA)
