"""Windows ⇄ IANA time zone names and EWS ``t:TimeZoneDefinition`` elements built from zoneinfo.

EWS names zones by Windows ids ("W. Europe Standard Time"); CLDR's windowsZones table (shipped
in ``exchangelib.winzone``) maps them to IANA names. A TimeZoneDefinition (types.xsd
``TimeZoneDefinitionType``; EWS operation GetServerTimeZones) describes a zone as periods
(offsets), transition groups (yearly rules) and transitions (which group applies when). We derive
the yearly rule from zoneinfo's actual transitions in a reference year, so the definition is
exact for that year and for every year sharing its rules (historical rule changes are not
reproduced: one transitions group is emitted).
"""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from exchangelib.winzone import IANA_TO_MS_TIMEZONE_MAP, MS_TIMEZONE_TO_IANA_MAP
from lxml import etree
from lxml.builder import ElementMaker

T_NS = "http://schemas.microsoft.com/exchange/services/2006/types"
_T = ElementMaker(namespace=T_NS, nsmap={"t": T_NS})
_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def windows_to_iana(windows_id: str) -> str:
    """The IANA name for a Windows zone id; ``KeyError`` when the id is unknown."""
    return MS_TIMEZONE_TO_IANA_MAP[windows_id]


def iana_to_windows(name: str) -> str:
    """The Windows zone id for an IANA name (aliases included); ``KeyError`` when unknown."""
    if name in ("UTC", "Etc/UTC", "Etc/GMT", "GMT", "Z"):
        return "UTC"
    return IANA_TO_MS_TIMEZONE_MAP[name][0]


def windows_zone_ids() -> list[str]:
    """Every Windows zone id this module can describe (sorted)."""
    return list(_zone_ids())


@lru_cache(maxsize=1)
def _zone_ids() -> tuple[str, ...]:
    return tuple(sorted(k for k in MS_TIMEZONE_TO_IANA_MAP if not k.startswith("tzone://") and _loadable(k)))


def _loadable(windows_id: str) -> bool:
    try:
        ZoneInfo(MS_TIMEZONE_TO_IANA_MAP[windows_id])
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def xs_duration(delta: timedelta) -> str:
    """An ``xs:duration`` for a whole number of minutes, e.g. ``-PT1H``, ``PT2H30M``, ``PT0M``."""
    minutes = int(delta.total_seconds()) // 60
    sign = "-" if minutes < 0 else ""
    hours, mins = divmod(abs(minutes), 60)
    text = (f"{hours}H" if hours else "") + (f"{mins}M" if mins or not hours else "")
    return f"{sign}PT{text}"


def display_name(windows_id: str) -> str:
    """A display name in Windows' style, "(UTC+01:00) Europe/Berlin" (standard offset)."""
    zone = ZoneInfo(windows_to_iana(windows_id))
    offset = _standard_offset(zone, datetime.now(UTC).year)
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    hours, mins = divmod(abs(minutes), 60)
    return f"(UTC{sign}{hours:02d}:{mins:02d}) {windows_to_iana(windows_id)}"


def _transitions_in(zone: ZoneInfo, year: int) -> list[tuple[datetime, timedelta, timedelta]]:
    """(UTC instant, offset before, offset after) of each offset change in ``year``."""
    found = []
    day = datetime(year, 1, 1, tzinfo=UTC)
    end = datetime(year + 1, 1, 1, tzinfo=UTC)
    previous = day.astimezone(zone).utcoffset()
    while day < end:
        nxt = day + timedelta(days=1)
        offset = nxt.astimezone(zone).utcoffset()
        if offset != previous:
            lo, hi = day, nxt  # bisect to the minute
            while hi - lo > timedelta(minutes=1):
                mid = lo + (hi - lo) / 2
                if mid.astimezone(zone).utcoffset() == previous:
                    lo = mid
                else:
                    hi = mid
            found.append((hi, previous, offset))
            previous = offset
        day = nxt
    return found


def _standard_offset(zone: ZoneInfo, year: int) -> timedelta:
    """The offset in effect when ``zone`` is not observing daylight saving time in ``year``."""
    for month in (1, 7):
        moment = datetime(year, month, 15, 12, tzinfo=UTC).astimezone(zone)
        if not moment.dst():
            return moment.utcoffset()
    return datetime(year, 1, 15, 12, tzinfo=UTC).astimezone(zone).utcoffset()


def _occurrence(local: date, zone: ZoneInfo, instant_next_year: datetime | None) -> int:
    """Which weekday of its month ``local`` is: 1..4, or -1 for "last" (if it is last every year)."""
    last_day = calendar.monthrange(local.year, local.month)[1]
    is_last = local.day + 7 > last_day
    if is_last and instant_next_year is not None:
        other = instant_next_year.astimezone(zone).date()
        is_last = other.day + 7 > calendar.monthrange(other.year, other.month)[1]
    return -1 if is_last else (local.day - 1) // 7 + 1


def _period_id(windows_id: str, year: int, name: str) -> str:
    return f"trule:Microsoft/Registry/{windows_id.replace(' ', '')}/{year}-{name}"


@lru_cache(maxsize=512)
def _definition_xml(windows_id: str, year: int) -> bytes:
    zone = ZoneInfo(windows_to_iana(windows_id))
    standard = _standard_offset(zone, year)
    changes = _transitions_in(zone, year)
    std_id = _period_id(windows_id, year, "Standard")
    dst_id = _period_id(windows_id, year, "Daylight")
    periods = _T.Periods(_T.Period(Bias=xs_duration(-standard), Name="Standard", Id=std_id))
    group = _T.TransitionsGroup(Id="0")
    if len(changes) == 2:
        next_year = {after: instant for instant, _, after in _transitions_in(zone, year + 1)}
        daylight = next(after for _, _, after in changes if after != standard)
        periods.append(_T.Period(Bias=xs_duration(-daylight), Name="Daylight", Id=dst_id))
        for instant, before, after in changes:
            local = (instant + before).replace(tzinfo=None)  # wall clock just before the change
            group.append(
                _T.RecurringDayTransition(
                    _T.To(dst_id if after == daylight else std_id, Kind="Period"),
                    _T.TimeOffset(xs_duration(timedelta(hours=local.hour, minutes=local.minute))),
                    _T.Month(str(local.month)),
                    _T.DayOfWeek(_DAY_NAMES[local.weekday()]),
                    _T.Occurrence(str(_occurrence(local.date(), zone, next_year.get(after)))),
                )
            )
    else:
        group.append(_T.Transition(_T.To(std_id, Kind="Period")))
    definition = _T.TimeZoneDefinition(
        periods,
        _T.TransitionsGroups(group),
        _T.Transitions(_T.Transition(_T.To("0", Kind="Group"))),
        Id=windows_id,
        Name=display_name(windows_id),
    )
    return etree.tostring(definition)


def time_zone_definition(windows_id: str, *, year: int | None = None) -> etree._Element:
    """A fresh ``t:TimeZoneDefinition`` element for ``windows_id`` (rules of ``year``, default this year).

    Raises ``KeyError`` for an unknown Windows id.
    """
    return etree.fromstring(_definition_xml(windows_id, year or datetime.now(UTC).year))


def serializable_time_zone(windows_id: str, *, year: int | None = None) -> etree._Element:
    """A ``t:TimeZone`` (types.xsd ``SerializableTimeZone``: bias plus yearly standard/daylight rules).

    GetUserAvailability uses this older form, e.g. for a mailbox's working-hours zone. Biases are
    minutes to add to local time to get UTC; ``DayOrder`` 5 means "last".
    """
    year = year or datetime.now(UTC).year
    zone = ZoneInfo(windows_to_iana(windows_id))
    standard = _standard_offset(zone, year)
    changes = _transitions_in(zone, year)
    base_bias = -int(standard.total_seconds()) // 60
    rules = {"StandardTime": (0, _no_dst_rule(1)), "DaylightTime": (0, _no_dst_rule(12))}
    if len(changes) == 2:
        next_year = {after: instant for instant, _, after in _transitions_in(zone, year + 1)}
        for instant, before, after in changes:
            local = (instant + before).replace(tzinfo=None)
            order = _occurrence(local.date(), zone, next_year.get(after))
            rule = (
                f"{local.hour:02d}:{local.minute:02d}:00",
                5 if order == -1 else order,
                local.month,
                _DAY_NAMES[local.weekday()],
            )
            name = "StandardTime" if after == standard else "DaylightTime"
            rules[name] = (-int((after - standard).total_seconds()) // 60, rule)
    result = _T.TimeZone(_T.Bias(str(base_bias)))
    for name in ("StandardTime", "DaylightTime"):
        bias, (clock, order, month, weekday) = rules[name]
        result.append(
            _T(
                name,
                _T.Bias(str(bias)),
                _T.Time(clock),
                _T.DayOrder(str(order)),
                _T.Month(str(month)),
                _T.DayOfWeek(weekday),
            )
        )
    return result


def _no_dst_rule(month: int) -> tuple[str, int, int, str]:
    """A placeholder rule for zones without daylight saving time (both biases stay 0)."""
    return ("00:00:00", 1 if month == 1 else 5, month, "Sunday" if month == 1 else "Saturday")


def to_utc(value: date | datetime) -> datetime:
    """An aware datetime in stdlib UTC: naive values are taken as UTC, dates as their midnight.

    Works for exchangelib's EWSDateTime too, whose ``astimezone`` refuses stdlib zones (the
    offset is applied by arithmetic, which also keeps microseconds exact).
    """
    if not isinstance(value, datetime):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    plain = datetime(*value.timetuple()[:6], value.microsecond)
    return (plain - (value.utcoffset() or timedelta(0))).replace(tzinfo=UTC)
