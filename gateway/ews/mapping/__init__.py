"""exchangelib ``CalendarItem`` ⇄ iCalendar (RFC 5545) for one calendar object resource.

One resource (RFC 4791 §4.1) is one UID: a single appointment, or a recurring
master (``RRULE``, ``EXDATE``) with its modified occurrences as ``RECURRENCE-ID``
VEVENTs. :func:`to_ical` renders what GetItem returned; :func:`from_ical` turns
a PUT body into unsaved items for CreateItem/UpdateItem, refusing (with the CalDAV
precondition of RFC 4791 §5.3.2.1) what Exchange cannot store faithfully.

Modules: :mod:`.reader` (PUT body → items), :mod:`.writer` (items → text), with
:mod:`.properties`, :mod:`.description`, :mod:`.people`, :mod:`.alarms` for the properties
both ways, :mod:`.occurrences` for RECURRENCE-ID/EXDATE and instance indexes, :mod:`.times`
and :mod:`.vevent` underneath, :mod:`.model` for the result types and field lists.
What Exchange has no field for is kept: :mod:`.residual` captures it from a PUT body (with the
digests of :mod:`.fingerprint`, the client's own lines read by :mod:`.content`), :mod:`.merge`
merges it back on read, Exchange winning for what was changed in Outlook (docs/MAPPING.md).

Choices worth knowing:
- Floating times (no TZID, no ``Z``) are read in ``default_tz``, the calendar's zone:
  Exchange has no floating time, and the calendar's zone is what the user sees.
- A TZID is kept as wall-clock time in the Exchange zone it resolves to
  (:mod:`gateway.ews.ical_tz`); a custom VTIMEZONE only picks that zone.
- Free/busy: ``X-MICROSOFT-CDO-BUSYSTATUS`` carries the exact LegacyFreeBusyStatus;
  TRANSP is TRANSPARENT for Free and WorkingElsewhere (which free/busy treats as
  free), OPAQUE otherwise. Without BUSYSTATUS: TRANSPARENT → Free,
  STATUS:TENTATIVE → Tentative, else Busy.
- Sensitivity Personal has no iCalendar class and is written as PRIVATE.
- Exchange has one reminder per item: the first VALARM that fires at or before the
  start is kept (VALARMs with ACTION:NONE, Apple's "no alarm", are ignored).
- An override with ``STATUS:CANCELLED`` is a deleted occurrence (EXDATE).
- ``RANGE=THISANDFUTURE``, RDATE, several RRULEs and rules no EWS pattern
  reproduces exactly are refused, never approximated.
"""

from gateway.ews.mapping.description import html_to_text
from gateway.ews.mapping.model import (
    OCCURRENCE_FIELDS,
    READ_FIELDS,
    VALID_DATA,
    VALID_OBJECT,
    WRITE_FIELDS,
    EventResource,
    Override,
)
from gateway.ews.mapping.occurrences import occurrence_index
from gateway.ews.mapping.people import show_own_response
from gateway.ews.mapping.reader import from_ical
from gateway.ews.mapping.writer import to_ical

# The backend, the benchmarks and the tests use these as ``gateway.ews.mapping.<name>``.
__all__ = [
    "OCCURRENCE_FIELDS",
    "READ_FIELDS",
    "VALID_DATA",
    "VALID_OBJECT",
    "WRITE_FIELDS",
    "EventResource",
    "Override",
    "from_ical",
    "html_to_text",
    "occurrence_index",
    "show_own_response",
    "to_ical",
]
