"""Wall-clock times of EWS items in their own zones (RFC 5545 §3.3.5 local time)."""

from __future__ import annotations

import zoneinfo
from datetime import date, datetime, time, timedelta, tzinfo

from exchangelib import CalendarItem, EWSDateTime, EWSTimeZone

_UTC_NAMES = {"UTC", "Etc/UTC", "Etc/GMT", "GMT"}


def zone_of(item: CalendarItem, field_name: str) -> tzinfo:
    """The zone of ``start`` or ``end``: the item's StartTimeZone/EndTimeZone, else the value's own, else UTC."""
    zone = getattr(item, f"_{field_name}_timezone", None)
    value = getattr(item, field_name)
    if zone is None and isinstance(value, datetime):
        zone = value.tzinfo
    return zone or EWSTimeZone("UTC")


def wall(value: datetime, zone: tzinfo) -> datetime:
    """Naive wall-clock time of an instant in ``zone``, computed with zoneinfo:
    EWSDateTime.astimezone loses the fold of the repeated hour when DST ends."""
    key = getattr(zone, "key", None)
    plain = zoneinfo.ZoneInfo(key) if key else zone
    return datetime.fromtimestamp(value.timestamp(), tz=plain).replace(tzinfo=None)


def is_utc(zone: tzinfo) -> bool:
    """Whether times in ``zone`` are written in UTC form (RFC 5545 §3.3.5 form 2) rather than with a TZID."""
    return getattr(zone, "key", None) in _UTC_NAMES or getattr(zone, "ms_id", None) == "UTC"


def aware(local: datetime, zone: tzinfo) -> EWSDateTime:
    """A wall-clock time in ``zone`` as the EWSDateTime exchangelib sends."""
    return EWSDateTime.from_datetime(local.replace(tzinfo=zone))


def all_day_dates(item: CalendarItem) -> tuple[date, date]:
    """(DTSTART, exclusive DTEND) of an all-day item; exchangelib's end date is inclusive."""
    start, end = item.start, item.end
    if isinstance(start, datetime):  # not converted by exchangelib (e.g. built by hand)
        start_day = wall(start, zone_of(item, "start")).date()
        end_local = wall(end, zone_of(item, "end"))
        end_day = end_local.date() if end_local.time() == time.min else end_local.date() + timedelta(days=1)
        return start_day, max(end_day, start_day + timedelta(days=1))
    return start, max(end, start) + timedelta(days=1)


def local_start(item: CalendarItem) -> date | datetime:
    """The master's first start as local wall-clock (date for all-day)."""
    if item.is_all_day:
        return all_day_dates(item)[0]
    return wall(item.start, zone_of(item, "start"))
