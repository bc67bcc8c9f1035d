"""What a kept property depends on: a short digest of each group of mapped CalendarItem fields.

The residual (:mod:`.residual`) records, for every VEVENT it keeps properties of, the digest of each
group below as the item was written. Read back, a group whose digest differs was changed in Exchange
(Outlook, OWA, a phone): its fields win, and what the client wrote about them is dropped
(:mod:`.merge`). The same functions run on the item a PUT builds and on the item GetItem returns,
so only values Exchange stores are compared, normalised where it legitimately re-expresses them
(instants in UTC, "no response" spelled two ways).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import date, datetime

from exchangelib import CalendarItem
from exchangelib.properties import HTMLBody

from gateway.common import ical
from gateway.common.timezones import to_utc
from gateway.ews import recurrence_map
from gateway.ews.mapping.description import html_to_text
from gateway.ews.mapping.times import all_day_dates, local_start, wall, zone_of

SIGNIFICANT = ("TIME", "RRULE", "EXDATE")
"""Groups whose change is one RFC 5546 §2.1.4 counts (start, end, recurrence): SEQUENCE goes up."""

_NO_RESPONSE = {"NoResponseReceived", "Unknown", None}


def _digest(value: object) -> str:
    return hashlib.blake2s(repr(value).encode("utf-8"), digest_size=6).hexdigest()


def occurrence_key(value: date | datetime, master: CalendarItem) -> str:
    """An occurrence's original start as text: its UTC instant, or its day in an all-day series."""
    if master.is_all_day:
        day = wall(value, zone_of(master, "start")).date() if isinstance(value, datetime) else value
        return ical.format_date(day)
    if not isinstance(value, datetime):
        return ical.format_date(value)
    return ical.format_utc(to_utc(value))


def _body_text(item: CalendarItem) -> str:
    body = item.body
    if not body:
        return ""
    text = html_to_text(body) if isinstance(body, HTMLBody) else str(body)
    return text.replace("\r\n", "\n")


def _times(item: CalendarItem) -> tuple:
    if item.is_all_day:
        return ("date", *all_day_dates(item))
    return ("time", to_utc(item.start), to_utc(item.end))


def _rule(item: CalendarItem) -> str:
    if item.recurrence is None:
        return ""
    rule = recurrence_map.recurrence_to_rrule(item.recurrence, local_start(item))
    return repr(sorted((part, [str(v) for v in values]) for part, values in rule.items()))  # EWSDate == date


def _people(item: CalendarItem) -> list:
    groups = (
        ("required", item.required_attendees),
        ("optional", item.optional_attendees),
        ("resource", item.resources),
    )
    return sorted(
        (
            (attendee.mailbox.email_address or "").lower(),
            kind,
            "none" if attendee.response_type in _NO_RESPONSE else attendee.response_type,
        )
        for kind, people in groups
        for attendee in people or ()
    )


def fingerprints(item: CalendarItem, deleted: Iterable[str] | None = None) -> dict[str, str]:
    """The digest of each group of ``item``'s mapped fields.

    ``deleted`` are a series' deleted occurrences (:func:`occurrence_key`); RRULE and EXDATE are
    only given for a series master, whose recurrence they describe.
    """
    groups: dict[str, object] = {
        "SUMMARY": item.subject or "",
        "DESCRIPTION": _body_text(item),
        "LOCATION": item.location or "",
        "TIME": _times(item),
        "CLASS": item.sensitivity or "Normal",
        "BUSY": item.legacy_free_busy_status or "Busy",
        "CATEGORIES": [c for c in item.categories or () if c],
        "PEOPLE": _people(item),
        "ALARM": (True, item.reminder_minutes_before_start) if item.reminder_is_set else (False,),
    }
    if deleted is not None:
        groups["RRULE"] = _rule(item)
        groups["EXDATE"] = sorted(deleted)
    return {name: _digest(value) for name, value in groups.items()}
