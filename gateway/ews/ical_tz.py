"""Time zones between iCalendar (RFC 5545 §3.6.5 VTIMEZONE, §3.2.19 TZID) and EWS.

EWS names zones by Windows ids; iCalendar by free-form TZIDs, usually IANA names.
:func:`resolve_tzid` turns a TZID (IANA name, Windows id, a libical/Mozilla-style
path ending in an IANA name, or a custom VTIMEZONE) into an ``EWSTimeZone``;
a custom VTIMEZONE is matched to the Windows zone with the same UTC offsets.
:func:`vtimezone_text` writes a compact RRULE-based VTIMEZONE for an IANA zone.
"""

from __future__ import annotations

import calendar
import zoneinfo
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import cache, lru_cache

from exchangelib import EWSTimeZone
from exchangelib.errors import UnknownTimeZone
from exchangelib.winzone import MS_TIMEZONE_TO_IANA_MAP
from icalendar import Timezone, TimezoneDaylight, TimezoneStandard

from gateway.ews.recurrence_map import ICAL_DAYS

_MATCH_YEARS = 4  # compare offsets over this many years, starting last year
# A custom VTIMEZONE often carries outdated or sloppy rules (US rules before 2007, "4SU"
# for "last Sunday", transitions at another hour): accept the closest known zone when
# its offsets differ during at most this share of the time. Zones with another standard
# offset, or with DST against none, differ during about half of it or more.
_MAX_MISMATCH = 0.12

Steps = tuple[tuple[datetime, timedelta], ...]  # (from this UTC instant, this offset)


class UnknownTimezoneError(ValueError):
    """A TZID that names no zone Exchange knows and has no VTIMEZONE to match."""


def _ews_zone(name: str) -> EWSTimeZone | None:
    try:
        return EWSTimeZone(name)
    except (UnknownTimeZone, zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None


def _by_name(tzid: str) -> EWSTimeZone | None:
    """IANA name, Windows id, or a path whose tail is an IANA name (libical, Mozilla)."""
    if tzid in MS_TIMEZONE_TO_IANA_MAP:
        return EWSTimeZone.from_ms_id(tzid)
    if "/" in tzid or tzid.upper() == "UTC":
        parts = [p for p in tzid.split("/") if p]
        for first in range(len(parts)):  # longest suffix first: America/Argentina/Salta
            zone = _ews_zone("/".join(parts[first:]))
            if zone is not None:
                return zone
    return None


def _match_window() -> tuple[datetime, datetime]:
    first = datetime(datetime.now(UTC).year - 1, 1, 1, tzinfo=UTC)
    return first, first.replace(year=first.year + _MATCH_YEARS)


def _steps(zone: tzinfo) -> Steps:
    """The zone's UTC offset as a step function over the match window."""
    first, last = _match_window()
    steps = [(first, first.astimezone(zone).utcoffset())]
    for year in range(first.year, last.year):
        steps.extend((instant, after) for instant, _before, after in _transitions(zone, year))
    return tuple(steps)


def _mismatch(a: Steps, b: Steps) -> timedelta:
    """How long, within the match window, the two offset step functions differ."""
    _, last = _match_window()
    cuts = sorted({t for t, _ in a} | {t for t, _ in b} | {last})
    total = timedelta()
    ia = ib = 0
    for begin, end in zip(cuts, cuts[1:], strict=False):
        while ia + 1 < len(a) and a[ia + 1][0] <= begin:
            ia += 1
        while ib + 1 < len(b) and b[ib + 1][0] <= begin:
            ib += 1
        if a[ia][1] != b[ib][1]:
            total += end - begin
    return total


@cache
def _known_steps() -> dict[Steps, str]:
    """Offset steps → Windows id; the first id (alphabetically) wins among equal zones."""
    result: dict[Steps, str] = {}
    for ms_id in sorted(MS_TIMEZONE_TO_IANA_MAP):
        result.setdefault(_steps(zoneinfo.ZoneInfo(MS_TIMEZONE_TO_IANA_MAP[ms_id])), ms_id)
    return result


def _by_rules(component: Timezone) -> EWSTimeZone | None:
    location = str(component.get("X-LIC-LOCATION", "")).strip()
    if location and (zone := _by_name(location)):
        return zone
    ms_id = _closest_ms_id(component.to_ical())
    return EWSTimeZone.from_ms_id(ms_id) if ms_id else None


@lru_cache(maxsize=256)
def _closest_ms_id(vtimezone_text: bytes) -> str | None:
    """The Windows zone closest to a VTIMEZONE (cached: clients send the same ones again and again)."""
    try:
        custom = _steps(Timezone.from_ical(vtimezone_text).to_tz())
    except Exception:  # noqa: BLE001 - any defect in the VTIMEZONE means "cannot match"
        return None
    difference, ms_id = min((_mismatch(custom, known), ms_id) for known, ms_id in _known_steps().items())
    first, last = _match_window()
    return ms_id if difference <= _MAX_MISMATCH * (last - first) else None


def resolve_tzid(tzid: str, component: Timezone | None = None) -> EWSTimeZone:
    """The Exchange zone for an iCalendar TZID (RFC 5545 §3.2.19).

    Known names win over the VTIMEZONE's rules (clients copy VTIMEZONEs of varying
    quality); a custom TZID is matched by the UTC offsets its VTIMEZONE gives over
    the coming years (closest zone within a small tolerance). Raises :class:`UnknownTimezoneError` when nothing matches.
    """
    zone = _by_name(tzid.strip())
    if zone is None and component is not None:
        zone = _by_rules(component)
    if zone is None:
        raise UnknownTimezoneError(f"the time zone {tzid!r} is unknown and no usable VTIMEZONE defines it")
    return zone


def iana_name(zone: tzinfo) -> str:
    """The IANA name to use as TZID for a zone from exchangelib (Windows ids mapped via CLDR)."""
    key = getattr(zone, "key", None)
    if key:
        return key
    ms_id = getattr(zone, "ms_id", None)
    if ms_id in MS_TIMEZONE_TO_IANA_MAP:
        return MS_TIMEZONE_TO_IANA_MAP[ms_id]
    raise UnknownTimezoneError(f"the time zone {zone!r} has no IANA name")


# --- VTIMEZONE generation ---------------------------------------------------------------


def _transitions(zone: tzinfo, year: int) -> list[tuple[datetime, timedelta, timedelta]]:
    """(UTC instant, offset before, offset after) of each offset change in ``year``."""
    found = []
    day = datetime(year, 1, 1, tzinfo=UTC)
    previous = day.astimezone(zone).utcoffset()
    while day.year == year:
        following = day + timedelta(days=1)
        offset = following.astimezone(zone).utcoffset()
        if offset != previous:
            low, high = 0, 24 * 60  # bisect to the minute: offset at low == previous, at high == offset
            while high - low > 1:
                middle = (low + high) // 2
                if (day + timedelta(minutes=middle)).astimezone(zone).utcoffset() == previous:
                    low = middle
                else:
                    high = middle
            found.append((day + timedelta(minutes=high), previous, offset))
            previous = offset
        day = following
    return found


def _rule_of(instant: datetime, before: timedelta, after: timedelta) -> tuple:
    """A transition as (month, BYDAY, local time, offsets): "the last Sunday of March at 02:00"."""
    local = (instant + before).replace(tzinfo=None)
    last_day = calendar.monthrange(local.year, local.month)[1]
    ordinal = -1 if local.day + 7 > last_day else (local.day - 1) // 7 + 1
    return (local.month, f"{ordinal}{ICAL_DAYS[local.weekday()]}", local.time(), before, after)


def _plain(zone: tzinfo) -> tzinfo:
    """A zoneinfo zone for computing: EWSDateTime conversions lose the fold of the repeated hour."""
    key = getattr(zone, "key", None)
    return zoneinfo.ZoneInfo(key) if key else zone


def vtimezone_text(zone: tzinfo, tzid: str, year: int) -> str:
    """A VTIMEZONE (RFC 5545 §3.6.5) for ``zone`` named ``tzid``, valid from ``year`` on, as text
    (CRLF-terminated lines), cached per zone and year: what ``mapping.to_ical`` pastes into every
    calendar object that uses the zone."""
    return _vtimezone_str(_plain(zone), tzid, year)


@lru_cache(maxsize=512)
def _vtimezone_str(zone: tzinfo, tzid: str, year: int) -> str:
    return _build_vtimezone(zone, tzid, year).to_ical().decode("utf-8")


def _build_vtimezone(zone: tzinfo, tzid: str, year: int) -> Timezone:
    """Build the VTIMEZONE: when the zone's transitions of ``year`` follow the same yearly rules for the
    next years, each becomes an observance with an RRULE (what Outlook and most
    clients write); otherwise an exact RDATE list for a few decades is written.
    """
    year -= 1  # observances start a year early: no local time of ``year`` precedes them
    this_year = _transitions(zone, year)
    rules = [_rule_of(*t) for t in this_year]
    stable = all([_rule_of(*t) for t in _transitions(zone, year + k)] == rules for k in (1, 2, 5))
    if not this_year:
        offset = datetime(year, 1, 1, tzinfo=UTC).astimezone(zone).utcoffset()
        if all(
            datetime(year + k, 7, 1, tzinfo=UTC).astimezone(zone).utcoffset() == offset for k in (0, 1, 5)
        ):
            return _fixed(tzid, offset, year)
    elif stable:
        return _with_rules(tzid, this_year, rules)
    return Timezone.from_tzinfo(zone, tzid, first_date=date(year, 1, 1), last_date=date(year + 30, 1, 1))


def _fixed(tzid: str, offset: timedelta, year: int) -> Timezone:
    component = Timezone()
    component.add("TZID", tzid)
    standard = TimezoneStandard()
    standard.add("DTSTART", datetime(year, 1, 1))
    standard.add("TZOFFSETFROM", offset)
    standard.add("TZOFFSETTO", offset)
    component.add_component(standard)
    return component


def _with_rules(tzid: str, transitions: list, rules: list) -> Timezone:
    component = Timezone()
    component.add("TZID", tzid)
    for (instant, before, after), (month, byday, _local_time, _b, _a) in zip(transitions, rules, strict=True):
        observance = TimezoneDaylight() if after > before else TimezoneStandard()
        observance.add("DTSTART", (instant + before).replace(tzinfo=None))
        observance.add("TZOFFSETFROM", before)
        observance.add("TZOFFSETTO", after)
        observance.add("RRULE", {"FREQ": "YEARLY", "BYMONTH": month, "BYDAY": byday})
        component.add_component(observance)
    return component
