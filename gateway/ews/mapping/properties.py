"""Descriptive properties ⇄ CalendarItem fields: SUMMARY, LOCATION, CATEGORIES, CLASS (RFC 5545 §3.8.1.3)
and free/busy (TRANSP §3.8.2.7, X-MICROSOFT-CDO-BUSYSTATUS ⇄ LegacyFreeBusyStatus).
"""

from __future__ import annotations

from exchangelib import CalendarItem
from icalendar import Event

from gateway.common import ical
from gateway.ews.mapping.description import add_description
from gateway.ews.mapping.vevent import VEvent, text_value

_BUSY_TO_ICAL = {
    "Free": "FREE",
    "Tentative": "TENTATIVE",
    "Busy": "BUSY",
    "OOF": "OOF",
    "WorkingElsewhere": "WORKINGELSEWHERE",
}
_ICAL_TO_BUSY = {v: k for k, v in _BUSY_TO_ICAL.items()}
_TRANSPARENT = {"Free", "WorkingElsewhere"}
_CLASS_TO_ICAL = {
    "Normal": "PUBLIC",
    "Private": "PRIVATE",
    "Personal": "PRIVATE",
    "Confidential": "CONFIDENTIAL",
}
_ICAL_TO_CLASS = {"PUBLIC": "Normal", "PRIVATE": "Private", "CONFIDENTIAL": "Confidential"}


def add_text(event: VEvent, item: CalendarItem) -> None:
    """SUMMARY, DESCRIPTION, LOCATION, CATEGORIES, CLASS, TRANSP and X-MICROSOFT-CDO-BUSYSTATUS."""
    if item.subject:
        event.text("SUMMARY", item.subject)
    add_description(event, item.body)
    if item.location:
        event.text("LOCATION", item.location)
    categories = [c for c in item.categories or () if c]
    if categories:
        event.add("CATEGORIES", ",".join(ical.escape_text(c) for c in categories))
    if (item.sensitivity or "Normal") != "Normal":
        # PUBLIC is CLASS's default (RFC 5545 §3.8.1.3): writing it for every event would make a
        # calendar-query for events without CLASS (is-not-defined) match none of them.
        event.add("CLASS", _CLASS_TO_ICAL.get(item.sensitivity, "PRIVATE"))
    status = item.legacy_free_busy_status or "Busy"
    event.add("TRANSP", "TRANSPARENT" if status in _TRANSPARENT else "OPAQUE")
    if status in _BUSY_TO_ICAL:
        event.add("X-MICROSOFT-CDO-BUSYSTATUS", _BUSY_TO_ICAL[status])


def read_categories(event: Event) -> list[str] | None:
    """Categories from every CATEGORIES property (RFC 5545 §3.8.1.2), empty ones dropped."""
    values = event.get("CATEGORIES", [])
    found: list[str] = []
    for prop in values if isinstance(values, list) else [values]:
        found.extend(str(c) for c in prop.cats if str(c).strip())
    return found or None


def read_free_busy(event: Event) -> str:
    """LegacyFreeBusyStatus: X-MICROSOFT-CDO-BUSYSTATUS, else from TRANSP (§3.8.2.7) and STATUS (§3.8.1.11)."""
    busy = text_value(event, "X-MICROSOFT-CDO-BUSYSTATUS")
    if busy and busy.upper() in _ICAL_TO_BUSY:
        return _ICAL_TO_BUSY[busy.upper()]
    if (text_value(event, "TRANSP") or "").upper() == "TRANSPARENT":
        return "Free"
    return "Tentative" if (text_value(event, "STATUS") or "").upper() == "TENTATIVE" else "Busy"


def read_sensitivity(event: Event) -> str:
    """Sensitivity from CLASS (RFC 5545 §3.8.1.3)."""
    value = (text_value(event, "CLASS") or "PUBLIC").upper()
    return _ICAL_TO_CLASS.get(value, "Private")  # RFC 5545 §3.8.1.3: unknown classes count as PRIVATE
