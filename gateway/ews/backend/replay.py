"""Whether Exchange already holds what a PUT asks for: the retry of a write whose answer was lost.

RFC 9110 §13.1.1 lets a server answer 2xx to a request whose precondition fails "if the origin server
has verified that a state change is being requested and the final state is already reflected in the
current state of the target resource (i.e., the change requested by the user agent has already
succeeded, but the user agent might not be aware of it, perhaps because the prior response was lost)".
The gateway verifies it in two parts:

- **Fingerprint**: every write of a series master or single event (CreateItem, UpdateItem) stores
  :func:`fingerprint` of the PUT body in the item's ``CalDAVBodyFingerprint`` extended property. The
  same fingerprint on the item means the gateway last wrote it from this very body (so also whatever
  of the body the mapping does not compare below) — and, since every such write was conditional
  (CreateItem: the name was free; UpdateItem with If-Match: ``ConflictResolution=NeverOverwrite``),
  that the precondition held when it was written.
- **Content**: the item's fields as the body maps them (:func:`differences`), compared as a user would
  see them, so a change made since in Outlook (or by a meeting response that changed an attendee list)
  means the state is *not* reflected, and the client's precondition keeps protecting that change.

A series write is several EWS writes (the master, then its overrides and EXDATEs), and Exchange can
fail between them. When the master holds the fingerprint and the body's master fields, the retry
finishes the occurrences (:func:`occurrence_plan`): those that differ are written, the others left.
An occurrence changed in Outlook between the failed write and its retry is overwritten by the body's
version — the one case where the retry does not keep someone else's change; it needs a failure and a
change of the same occurrence within that window.

The fingerprint is a SHA-256 of the body with folded lines joined, line ends normalised and DTSTAMP
dropped: clients stamp a fresh DTSTAMP whenever they serialise, and Exchange does not keep it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime

from exchangelib import CalendarItem
from exchangelib.fields import MONTHS, WEEK_NUMBERS, WEEKDAYS
from exchangelib.recurrence import Recurrence

from gateway.common.timezones import to_utc
from gateway.ews.exchange import CALDAV_NO_END

_FOLD = re.compile(r"\r?\n[ \t]")
_DTSTAMP = re.compile(r"^DTSTAMP[;:]", re.IGNORECASE)
# Values Exchange gives a field the body left unset (EWS defaults: types.xsd).
_DEFAULTS = {"legacy_free_busy_status": "Busy", "sensitivity": "Normal"}
_PEOPLE = ("required_attendees", "optional_attendees", "resources")
_TIME_ZONES = ("_start_timezone", "_end_timezone")
# exchangelib's recurrence enums (1-based, as it numbers them itself)
_ENUM_NUMBERS = {name: n for enum in (WEEKDAYS, MONTHS, WEEK_NUMBERS) for n, name in enumerate(enum, 1)}


def fingerprint(ical: str | bytes) -> str:
    """SHA-256 (hex) of the normalised PUT body (module docstring)."""
    text = ical.decode("utf-8-sig", errors="replace") if isinstance(ical, bytes) else ical
    lines = _FOLD.sub("", text.replace("\r\n", "\n").replace("\r", "\n")).split("\n")
    kept = [line.rstrip() for line in lines if line.strip() and not _DTSTAMP.match(line)]
    return hashlib.sha256("\n".join(kept).encode()).hexdigest()


def differences(target: CalendarItem, current: CalendarItem, fields: Iterable[str]) -> list[str]:
    """The fields (of ``fields``) in which the item Exchange holds differs from what the body maps to."""
    all_day = bool(target.is_all_day)
    return [
        name
        for name in fields
        if not (all_day and name in _TIME_ZONES)  # an all-day item's zone is not shown to the client
        and not (name == "reminder_minutes_before_start" and not target.reminder_is_set)
        and _comparable(name, getattr(target, name, None)) != _comparable(name, getattr(current, name, None))
    ]


def _comparable(name: str, value: object) -> object:
    """A field's value as the user sees it: text without line-end noise, instants in UTC, attendees by
    address (their responses are Exchange's to keep), categories as a set, zones by Windows id."""
    if name in _PEOPLE:
        return sorted((a.mailbox.email_address or "").lower() for a in value or ())
    if name in _TIME_ZONES:
        return getattr(value, "ms_id", None) or getattr(value, "key", None)
    if name == "categories":
        return sorted(value or ())
    if name in _DEFAULTS:
        return value or _DEFAULTS[name]
    if name in ("is_all_day", "reminder_is_set", CALDAV_NO_END):  # unset (an item made in Outlook) is False
        return bool(value)
    if isinstance(value, datetime):
        return to_utc(value)
    if name == "recurrence":
        return _recurrence(value)
    if isinstance(value, date):
        return value
    if value is None or isinstance(value, str):
        return (value or "").replace("\r\n", "\n").strip()
    return value


def same_recurrence(first: Recurrence | None, second: Recurrence | None) -> bool:
    """Whether two recurrences describe the same series, however exchangelib holds their values."""
    return _recurrence(first) == _recurrence(second)


def _recurrence(value: Recurrence | None) -> tuple | None:
    """A recurrence by what it means: exchangelib keeps enum values as it got them (``"Wednesday"``
    when built, ``3`` when read), and dates as ``date`` or ``EWSDate``."""
    if value is None:
        return None

    def plain(v: object) -> object:
        if isinstance(v, str):
            return _ENUM_NUMBERS.get(v, v)
        if isinstance(v, list | tuple):
            return tuple(sorted((plain(x) for x in v), key=str))
        if isinstance(v, date) and not isinstance(v, datetime):
            return date(v.year, v.month, v.day)
        return v

    def element(e: object) -> tuple:
        return (type(e).__name__, tuple((f.name, plain(getattr(e, f.name, None))) for f in e.FIELDS))

    return element(value.pattern), element(value.boundary)


def occurrence_plan(
    current: CalendarItem,
    exceptions: dict[int, CalendarItem],
    overrides: Sequence[tuple[datetime | date, CalendarItem]],
    exdates: Sequence[datetime | date],
    index_of: Callable[[datetime | date], int | None],
    fields: Iterable[str],
) -> tuple[list[datetime | date], list[datetime | date]] | None:
    """What is left to write so the series holds the body's occurrences: (original starts of the
    overrides to write, EXDATEs to delete); None when the series holds occurrence changes the body does
    not ask for (an exception or a deleted occurrence too many), which only a full update can undo.

    Occurrences are matched by their instance index in the series (``index_of``), which is how
    Exchange numbers them whatever the form of the time (a date, or midnight in the item's zone, for
    an all-day series); ``exceptions`` are the series' modified occurrences by index, as fetched.
    """
    wanted = {index_of(rid): (rid, item) for rid, item in overrides}
    excluded = {index_of(d): d for d in exdates}
    modified = {index_of(o.original_start) for o in current.modified_occurrences or ()}
    deleted = {index_of(o.start) for o in current.deleted_occurrences or ()}
    if None in wanted or None in excluded or modified - set(wanted) or deleted - set(excluded):
        return None
    fields = list(fields)
    to_write = [
        rid
        for index, (rid, item) in wanted.items()
        if index not in exceptions or differences(item, exceptions[index], fields)
    ]
    return to_write, [d for index, d in excluded.items() if index not in deleted]
