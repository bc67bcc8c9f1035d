"""Recurring series as Exchange stores them: a master whose occurrences are generated on demand.

The pattern expansion itself is in ``recurrence.py``; here are the store's rules on top of it:
a master starts on its first occurrence, an unmodified occurrence is a copy of the master at
its instance's times, and a modified one (an exception) may not cross its neighbours' days.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from gateway.ews.emulator.ids import occurrence_id
from gateway.ews.emulator.model import CalendarItem, StoreError
from gateway.ews.emulator.recurrence import Instance, instances


def normalise_series(item: CalendarItem) -> None:
    """Make a recurring item a RecurringMaster whose Start/End is its first occurrence (as Exchange does)."""
    if item.recurrence is None:
        item.item_type = "Single"
        return
    item.item_type = "RecurringMaster"
    first = next(instances(item.recurrence, _on_date(item), _on_date(item, end=True), item.zone), None)
    if first is None:
        raise StoreError("ErrorRecurrenceHasNoOccurrence", "The recurrence pattern has no occurrence.")
    item.start, item.end = first.start, first.end


def _on_date(item: CalendarItem, end: bool = False) -> datetime:
    """The item's start (or end) moved to the series' StartDate, keeping its local wall-clock time."""
    assert item.recurrence is not None
    zone = item.zone
    local_start = item.start.astimezone(zone)
    shift = item.recurrence.start_date - local_start.date()
    value = item.end if end else item.start
    naive = value.astimezone(zone).replace(tzinfo=None) + shift
    return naive.replace(tzinfo=zone).astimezone(UTC)


def check_boundaries(master: CalendarItem, occurrence: CalendarItem) -> None:
    """An occurrence must stay strictly between the days of its neighbours (ErrorOccurrenceCrossingBoundary).

    Outlook and Exchange refuse a move onto or past the day of the previous or next occurrence.
    """
    assert master.recurrence is not None and occurrence.instance_index is not None
    zone = master.zone
    day = occurrence.start.astimezone(zone).date()
    before = after = None
    for inst in instances(master.recurrence, master.start, master.end, zone):
        if inst.index in master.deleted or inst.index == occurrence.instance_index:
            continue
        current = master.exceptions[inst.index].start if inst.index in master.exceptions else inst.start
        if inst.index < occurrence.instance_index:
            before = current.astimezone(zone).date()
        else:
            after = current.astimezone(zone).date()
            break
    if (before is not None and day <= before) or (after is not None and day >= after):
        raise StoreError(
            "ErrorOccurrenceCrossingBoundary",
            "An occurrence cannot be moved onto or past the day of another occurrence.",
        )


def make_occurrence(master: CalendarItem, inst: Instance) -> CalendarItem:
    """A generated (unmodified) occurrence of a series."""
    occ = copy.copy(master)
    occ.item_id = occurrence_id(master.item_id, inst.index)
    occ.item_type = "Occurrence"
    occ.start, occ.end = inst.start, inst.end
    occ.original_start = inst.start
    occ.instance_index = inst.index
    occ.master_id = master.item_id
    occ.exceptions, occ.deleted = {}, {}
    # Copies of mutable fields, so that editing the occurrence never edits the master.
    occ.categories = list(master.categories)
    occ.required = copy.deepcopy(master.required)
    occ.optional = copy.deepcopy(master.optional)
    occ.resources = copy.deepcopy(master.resources)
    occ.extended = copy.deepcopy(master.extended)
    return occ


def expand_item(item: CalendarItem, start: datetime, end: datetime) -> Iterator[CalendarItem]:
    """The parts of one stored item overlapping [start, end): itself, or its occurrences and exceptions."""
    if item.recurrence is None:
        if overlaps(item.start, item.end, start, end):
            yield item
        return
    for exc in item.exceptions.values():
        if overlaps(exc.start, exc.end, start, end):
            yield exc
    # A DST-safe bound: no occurrence starting a day after the window can overlap it.
    for inst in instances(item.recurrence, item.start, item.end, item.zone, until=end + timedelta(days=1)):
        if inst.index in item.deleted or inst.index in item.exceptions:
            continue
        if overlaps(inst.start, inst.end, start, end):
            yield make_occurrence(item, inst)


def overlaps(a_start: datetime, a_end: datetime, b_start: datetime, b_end: datetime) -> bool:
    """Half-open overlap; a zero-length item overlaps a window that contains its instant."""
    if a_start == a_end:
        return b_start <= a_start < b_end
    return a_start < b_end and a_end > b_start
