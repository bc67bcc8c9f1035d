"""Occurrences of a series: which one a RECURRENCE-ID or EXDATE names (RFC 5545 §3.8.4.4, §3.8.5.1),
and its EWS instance index (OccurrenceItemId).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from itertools import islice

from exchangelib import CalendarItem, EWSDate, EWSDateTime, EWSTimeZone

from gateway.ews import recurrence_map
from gateway.ews.mapping.model import invalid
from gateway.ews.mapping.times import aware, local_start, wall, zone_of


def ews_occurrence(local: date | datetime, zone: EWSTimeZone) -> EWSDateTime | EWSDate:
    """An occurrence's original start as exchangelib sends it (a date for an all-day series)."""
    return aware(local, zone) if isinstance(local, datetime) else EWSDate.from_date(local)


def moment(value: date | datetime) -> datetime:
    """Orders dates among date-times: a DATE stands for its whole day."""
    return value if isinstance(value, datetime) else datetime.combine(value, time.max)


def _series_through(recurrence, start, last) -> list:
    """The series' local occurrence starts up to ``last``, at most MAX_SCAN of them
    (so an EXDATE or RECURRENCE-ID centuries away cannot make a request expand for long)."""
    found = []
    for occurrence in islice(recurrence_map.expand(recurrence, start), recurrence_map.MAX_SCAN):
        if moment(occurrence) > moment(last):
            break
        found.append(occurrence)
    return found


def matching(recurrence, start, wanted: Iterable) -> set:
    """The occurrences that EXDATE values name: exact starts, and for a timed series
    every occurrence on an EXDATE;VALUE=DATE day (as common expanders read it)."""
    wanted = set(wanted)
    if not wanted:
        return set()
    series = _series_through(recurrence, start, max(wanted, key=moment))
    return {o for o in series if o in wanted or (isinstance(o, datetime) and o.date() in wanted)}


def resolve_rids(recurrence, start, overrides: list, cancelled: list) -> tuple[list, list]:
    """Each RECURRENCE-ID as the occurrence it names (RFC 5545 §3.8.4.4).

    Exchange 2010 writes some RECURRENCE-IDs of timed series as midnight of the
    occurrence's day, and some clients as a DATE: such a value names the series'
    only occurrence that day.
    """
    rids = [rid for rid, _ in overrides] + cancelled
    if not rids:
        return overrides, cancelled
    series = _series_through(recurrence, start, moment(max(rids, key=moment)) + timedelta(days=1))
    exact, by_day = set(series), {}
    for occurrence in series:
        if isinstance(occurrence, datetime):
            by_day.setdefault(occurrence.date(), []).append(occurrence)

    def resolve(rid):
        if rid in exact:
            return rid
        day = rid.date() if isinstance(rid, datetime) and rid.time() == time.min else rid
        same_day = by_day.get(day, []) if not isinstance(day, datetime) else []
        if len(same_day) == 1:
            return same_day[0]
        raise invalid(f"RECURRENCE-ID {rid} is not an occurrence of the series.")

    return [(resolve(rid), item) for rid, item in overrides], [resolve(rid) for rid in cancelled]


def override_key(pair: tuple) -> tuple:
    """Sort key of an (original start, item) pair: overrides in series order."""
    value = pair[0]
    return (value if isinstance(value, datetime) else datetime.combine(value, time.min),)


def check_overrides(overrides: list, cancelled: list, exdates: set) -> None:
    """Refuse an occurrence overridden twice, or both overridden and excluded: EWS holds one state each."""
    rids = [rid for rid, _ in overrides] + cancelled
    if len(set(rids)) != len(rids):
        raise invalid("Two VEVENTs override the same occurrence.")
    both = {rid for rid, _ in overrides} & exdates
    if both:
        raise invalid(f"The occurrence {min(both)} is both excluded (EXDATE) and overridden.")


def occurrence_index(master: CalendarItem, recurrence_id: datetime | date) -> int | None:
    """1-based EWS instance index (OccurrenceItemId/InstanceIndex) of the occurrence
    whose original start is ``recurrence_id``; None when it is not an occurrence.

    Expands the master's EWS recurrence in its own zone, the way Exchange numbers
    occurrences (deleted ones keep their index).
    """
    if master.recurrence is None:
        return None
    start = local_start(master)
    zone = zone_of(master, "start")
    if master.is_all_day:
        target = wall(recurrence_id, zone).date() if isinstance(recurrence_id, datetime) else recurrence_id
    elif isinstance(recurrence_id, datetime):
        target = wall(recurrence_id, zone)
    else:
        return None
    occurrences = islice(recurrence_map.expand(master.recurrence, start), recurrence_map.MAX_SCAN)
    for index, occurrence in enumerate(occurrences, start=1):
        if occurrence == target:
            return index
        if occurrence > target:
            return None
    return None
