"""What a calendar object resource becomes for EWS, and the CalendarItem fields read and written.

The CalDAV preconditions (RFC 4791 §5.3.2.1) the mapping refuses bodies with are named here too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import tzinfo

from exchangelib import CalendarItem, EWSDate, EWSDateTime
from exchangelib.recurrence import Recurrence
from icalendar import Component, vRecur

from gateway.caldav.backend import InvalidCalendarData
from gateway.ews import recurrence_map
from gateway.ews.exchange import CALDAV_NO_END, register_item_fields
from gateway.ews.recurrence_map import LocalStart

# The mapping reads and writes the gateway's own item fields (``caldav_no_end``): they exist on
# CalendarItem only once registered, for the whole process, so the mapping makes sure they are.
register_item_fields()

CALDAV = "{urn:ietf:params:xml:ns:caldav}"
VALID_DATA = f"{CALDAV}valid-calendar-data"
VALID_OBJECT = f"{CALDAV}valid-calendar-object-resource"
PRODID = "-//Exchange CalDAV Gateway//EN"

WRITE_FIELDS: tuple[str, ...] = (
    "subject",
    "body",
    "location",
    "start",
    "end",
    "is_all_day",
    "legacy_free_busy_status",
    "sensitivity",
    "categories",
    "reminder_is_set",
    "reminder_minutes_before_start",
    "required_attendees",
    "optional_attendees",
    "resources",
    "recurrence",
    "_start_timezone",
    "_end_timezone",
    CALDAV_NO_END,
)
"""Fields from_ical sets, for UpdateItem. ``uid`` is set too but belongs to CreateItem only."""

READ_FIELDS: tuple[str, ...] = (
    *WRITE_FIELDS,
    "uid",
    "organizer",
    "modified_occurrences",
    "deleted_occurrences",
    "type",
    "original_start",
    "datetime_created",
    "last_modified_time",
    "appointment_sequence_number",
    "my_response_type",
)
"""CalendarItem fields to_ical reads: what a PUT writes plus what Exchange keeps (ItemId and ChangeKey always
come with an item)."""

OCCURRENCE_FIELDS: tuple[str, ...] = tuple(f for f in WRITE_FIELDS if f != "recurrence")
"""update_fields for an occurrence (an override): EWS forbids Recurrence there."""


@dataclass
class Override:
    """A RECURRENCE-ID VEVENT: the occurrence that originally started at ``recurrence_id``."""

    recurrence_id: EWSDateTime | EWSDate
    item: CalendarItem


@dataclass
class EventResource:
    """One parsed calendar object resource, ready for CreateItem/UpdateItem."""

    uid: str
    master: CalendarItem
    overrides: list[Override] = field(default_factory=list)
    exdates: list[EWSDateTime | EWSDate] = field(default_factory=list)
    organizer_email: str | None = None
    attendee_emails: list[str] = field(default_factory=list)
    residual: str | None = None  # what Exchange has no field for, kept with the master (mapping.residual)


def invalid(message: str, precondition: str = VALID_OBJECT, status: int = 403) -> InvalidCalendarData:
    """The refusal of a body, naming its RFC 4791 §5.3.2.1 precondition (by default: Exchange cannot store it)."""
    return InvalidCalendarData(message, precondition, status)


def only_rrule(component: Component, per: str) -> vRecur | None:
    """The component's one RRULE, or None; several are refused: Exchange stores one pattern per ``per``."""
    rules = component.get("RRULE")
    if isinstance(rules, list):
        if len(rules) > 1:
            raise invalid(
                f"Exchange stores one recurrence rule per {per}; this {component.name} has several RRULEs."
            )
        rules = rules[0]
    return rules


def exchange_recurrence(rule: Mapping[str, list], start: LocalStart, zone: tzinfo | None) -> Recurrence:
    """An RRULE as the EWS pattern and boundary (:func:`recurrence_map.rrule_to_recurrence`); a rule that
    is not valid is a 400, one Exchange cannot store exactly a 403 (RFC 4791 §5.3.2.1)."""
    try:
        return recurrence_map.rrule_to_recurrence(rule, start, zone)
    except recurrence_map.InvalidRule as exc:
        raise invalid(f"The RRULE is not valid: {exc}.", VALID_DATA, 400) from exc
    except recurrence_map.InexpressibleRule as exc:
        raise invalid(f"Exchange cannot store this RRULE exactly: {exc}.") from exc
