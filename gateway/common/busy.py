"""Merging busy time: the one implementation behind every FREEBUSY answer (RFC 5545 §3.8.2.6).

The protocol layer merges what a backend returns before it writes a VFREEBUSY or the JSON
free/busy answer; the EWS backend merges what GetUserAvailability and its own calendars
found. Both merge the same way: periods of one FBTYPE (RFC 5545 §3.2.9) that overlap or
touch become one; periods of different FBTYPEs are kept apart.

It works on plain ``(start, end, fbtype)`` tuples rather than the interface's ``BusyPeriod``:
``gateway/common`` must not import ``gateway.caldav`` (the EWS emulator may use it), and each
caller converts its own values in one comprehension.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TypeVar

FbType = TypeVar("FbType", bound=str)
Span = tuple[datetime, datetime, FbType]


def merge_spans(spans: Iterable[Span[FbType]]) -> list[Span[FbType]]:
    """Merge overlapping or touching spans of the same FBTYPE; sorted by (start, end, fbtype).

    The start and end are compared as given: callers pass aware datetimes (UTC or not).
    """
    by_type: dict[FbType, list[tuple[datetime, datetime]]] = {}
    for start, end, fbtype in spans:
        by_type.setdefault(fbtype, []).append((start, end))
    merged: list[Span[FbType]] = []
    for fbtype, group in by_type.items():
        group.sort()
        current_start, current_end = group[0]
        for start, end in group[1:]:
            if start <= current_end:
                current_end = max(current_end, end)
            else:
                merged.append((current_start, current_end, fbtype))
                current_start, current_end = start, end
        merged.append((current_start, current_end, fbtype))
    merged.sort()
    return merged
