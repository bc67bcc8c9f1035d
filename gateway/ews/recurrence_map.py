"""RRULE (RFC 5545 §3.3.10) ⇄ EWS recurrence patterns (EWS ``RecurrenceType``).

EWS has six patterns (Daily, Weekly, Absolute/Relative Monthly, Absolute/Relative
Yearly) and three ranges (NoEnd, EndDate, Numbered). Only the RRULEs that one of
them reproduces *exactly* are accepted; everything else raises
:class:`InexpressibleRule` with a sentence naming the reason, never an approximation.

Dates and times handled here are *local wall-clock* values of the series' zone:
a naive :class:`datetime` for timed series, a :class:`date` for all-day series.
The same module expands a pattern (through ``dateutil.rrule``, from the RRULE the
pattern maps to), so the mapping and the expansion cannot disagree.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from dateutil import rrule as du
from exchangelib.fields import (
    DAY,
    LAST,
    MONTHS,
    WEEK_DAY,
    WEEK_NUMBERS,
    WEEKDAY_NAMES,
    WEEKDAYS,
    WEEKEND_DAY,
)
from exchangelib.recurrence import (
    AbsoluteMonthlyPattern,
    AbsoluteYearlyPattern,
    DailyPattern,
    EndDatePattern,
    NoEndPattern,
    NumberedPattern,
    Recurrence,
    RelativeMonthlyPattern,
    RelativeYearlyPattern,
    WeeklyPattern,
)

ICAL_DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")  # index 0 = Monday, as EWS WEEKDAY_NAMES
_DAY_SETS = {  # EWS DaysOfWeek "groups" of RelativeMonthly/Yearly patterns
    frozenset(ICAL_DAYS): DAY,
    frozenset(ICAL_DAYS[:5]): WEEK_DAY,
    frozenset(ICAL_DAYS[5:]): WEEKEND_DAY,
}
_SUPPORTED_PARTS = {
    "FREQ",
    "INTERVAL",
    "COUNT",
    "UNTIL",
    "BYDAY",
    "BYMONTHDAY",
    "BYMONTH",
    "BYSETPOS",
    "WKST",
}
_KNOWN_PARTS = _SUPPORTED_PARTS | {
    "BYSECOND",
    "BYMINUTE",
    "BYHOUR",
    "BYYEARDAY",
    "BYWEEKNO",
    "RSCALE",
    "SKIP",
}
_BYDAY_RE = re.compile(r"^([+-]?\d{1,2})?(MO|TU|WE|TH|FR|SA|SU)$")
_MAX_COUNT = 999  # EWS NumberOfOccurrences
MAX_SCAN = (
    20_000  # occurrences expanded at most when looking for a date (bounds the work a request can cause)
)
_MAX_MONTHLY_INTERVAL = 99
_MAX_DAILY_INTERVAL = 999
_MIN_MONTH_LENGTH = {m: min(calendar.monthrange(y, m)[1] for y in (2023, 2024)) for m in range(1, 13)}

LocalStart = date | datetime  # a naive local datetime, or a date for all-day series


class InexpressibleRule(ValueError):
    """A valid RRULE that no EWS recurrence pattern reproduces exactly."""


class InvalidRule(ValueError):
    """An RRULE that is not valid RFC 5545 (unknown part, bad value, COUNT with UNTIL)."""


# --- small helpers ----------------------------------------------------------------------


def _enum_index(value: int | str, enum: Sequence[str]) -> int:
    """exchangelib keeps enum fields as 1-based ints after parsing, names when built by hand."""
    return value if isinstance(value, int) else enum.index(value) + 1


def _ints(rule: Mapping[str, list], part: str) -> list[int]:
    try:
        return [int(v) for v in rule.get(part, [])]
    except (TypeError, ValueError) as exc:
        raise InvalidRule(f"RRULE {part} must hold integers") from exc


def _single(rule: Mapping[str, list], part: str, default: int | None = None) -> int | None:
    values = _ints(rule, part)
    if len(values) > 1:
        raise InvalidRule(f"RRULE {part} may appear once")
    return values[0] if values else default


def _byday(rule: Mapping[str, list]) -> list[tuple[int | None, str]]:
    """BYDAY values as (ordinal or None, two-letter day)."""
    result = []
    for raw in rule.get("BYDAY", []):
        match = _BYDAY_RE.match(str(raw).strip().upper())
        if not match or match.group(1) in {"0", "+0", "-0"}:
            raise InvalidRule(f"RRULE BYDAY value {raw!s} is not valid")
        result.append((int(match.group(1)) if match.group(1) else None, match.group(2)))
    return result


def _wkst(rule: Mapping[str, list]) -> str:
    values = [str(v).upper() for v in rule.get("WKST", [])]
    if values and values[0] not in ICAL_DAYS:
        raise InvalidRule(f"RRULE WKST value {values[0]} is not valid")
    return values[0] if values else "MO"


def _day_name(ical_day: str) -> str:
    return WEEKDAY_NAMES[ICAL_DAYS.index(ical_day)]


# --- RRULE → EWS ------------------------------------------------------------------------


def _check_parts(rule: Mapping[str, list]) -> str:
    unknown = sorted(set(rule) - _KNOWN_PARTS)
    if unknown:
        raise InvalidRule(f"RRULE has unknown part(s) {', '.join(unknown)}")
    if "FREQ" not in rule:
        raise InvalidRule("RRULE has no FREQ")
    if "COUNT" in rule and "UNTIL" in rule:
        raise InvalidRule("RRULE has both COUNT and UNTIL (RFC 5545 §3.3.10 allows one)")
    freq = str(rule["FREQ"][0]).upper()
    if freq in {"SECONDLY", "MINUTELY", "HOURLY"}:
        raise InexpressibleRule(
            f"Exchange cannot repeat an event {freq.lower()}; the shortest period is a day"
        )
    if freq not in {"DAILY", "WEEKLY", "MONTHLY", "YEARLY"}:
        raise InvalidRule(f"RRULE FREQ={freq} is not valid")
    unsupported = sorted(set(rule) - _SUPPORTED_PARTS)
    if unsupported:
        raise InexpressibleRule(f"Exchange recurrences cannot express RRULE part(s) {', '.join(unsupported)}")
    return freq


def _forbid(rule: Mapping[str, list], freq: str, *parts: str) -> None:
    present = [p for p in parts if p in rule]
    if present:
        raise InexpressibleRule(f"Exchange cannot express {', '.join(present)} in a {freq} rule")


def _plain_days(days: list[tuple[int | None, str]], freq: str) -> list[str]:
    if any(n is not None for n, _ in days):
        raise InexpressibleRule(f"Exchange cannot express numbered BYDAY values in a {freq} rule")
    return [d for _, d in days]


def _interval(rule: Mapping[str, list], maximum: int) -> int:
    interval = _single(rule, "INTERVAL", 1)
    if interval < 1:
        raise InvalidRule("RRULE INTERVAL must be positive")
    if interval > maximum:
        raise InexpressibleRule(f"Exchange allows an interval of at most {maximum} for this kind of rule")
    return interval


def _daily_or_weekly(rule: Mapping[str, list], freq: str, start: LocalStart):
    """DAILY → DailyRecurrence; WEEKLY (and DAILY;BYDAY=… every day) → WeeklyRecurrence."""
    _forbid(rule, freq, "BYMONTHDAY", "BYMONTH", "BYSETPOS")
    days = _plain_days(_byday(rule), freq)
    if freq == "DAILY" and not days:
        return DailyPattern(interval=_interval(rule, _MAX_DAILY_INTERVAL))
    interval = _interval(rule, _MAX_MONTHLY_INTERVAL)
    if freq == "DAILY" and interval != 1:
        raise InexpressibleRule("Exchange cannot combine a daily interval with BYDAY")
    days = days or [ICAL_DAYS[start.weekday()]]
    ordered = sorted(set(days), key=ICAL_DAYS.index)
    return WeeklyPattern(
        interval=interval,
        weekdays=[_day_name(d) for d in ordered],
        first_day_of_week=_day_name(_wkst(rule)),
    )


def _day_in_month(rule: Mapping[str, list], freq: str, start: LocalStart, month: int | None):
    """Which day of the month a MONTHLY/YEARLY rule picks: ("absolute", d) or ("relative", day, week)."""
    monthdays = _ints(rule, "BYMONTHDAY")
    days = _byday(rule)
    setpos = _ints(rule, "BYSETPOS")
    longest = _MIN_MONTH_LENGTH[month] if month else 28
    if monthdays and days:
        raise InexpressibleRule("Exchange cannot combine BYMONTHDAY with BYDAY")
    if len(setpos) > 1:
        raise InexpressibleRule("Exchange cannot express several BYSETPOS values")
    if monthdays:
        return _absolute_day(monthdays, setpos, longest)
    if days:
        return _relative_day(days, setpos, freq)
    if setpos:
        raise InexpressibleRule("BYSETPOS without BYDAY or BYMONTHDAY has no Exchange equivalent")
    return _absolute_day([start.day], [], longest)


def _absolute_day(monthdays: list[int], setpos: list[int], longest: int):
    if len(monthdays) == 1 and not setpos:
        day = monthdays[0]
        if day == -1:
            return ("relative", DAY, LAST)
        if 1 <= day <= longest:
            return ("absolute", day)
        raise InexpressibleRule(
            f"day {day} of the month: Exchange would move it to the last day of shorter months "
            "where iCalendar skips them"
        )
    # "The d-th, or the last day of shorter months" (how to_ical writes EWS days 29-31).
    top = max(monthdays)
    if setpos == [-1] and 29 <= top <= 31 and sorted(monthdays) == list(range(28, top + 1)):
        return ("absolute", top)
    raise InexpressibleRule("Exchange cannot express several BYMONTHDAY values")


def _relative_day(days: list[tuple[int | None, str]], setpos: list[int], freq: str):
    numbered = [n for n, _ in days if n is not None]
    if numbered:
        if len(days) > 1:
            raise InexpressibleRule("Exchange cannot express several numbered BYDAY values (like 1MO,3MO)")
        if setpos:
            raise InexpressibleRule("Exchange cannot combine a numbered BYDAY with BYSETPOS")
        return ("relative", _day_name(days[0][1]), _week_number(numbered[0]))
    if not setpos:
        raise InexpressibleRule(
            f"a {freq} rule on every {'/'.join(d for _, d in days)} has no Exchange pattern"
        )
    names = [d for _, d in days]
    weekday = _day_name(names[0]) if len(set(names)) == 1 else _DAY_SETS.get(frozenset(names))
    if weekday is None:
        raise InexpressibleRule(
            "Exchange can pick one day, any day, a weekday or a weekend day, not this BYDAY set"
        )
    return ("relative", weekday, _week_number(setpos[0]))


def _week_number(ordinal: int) -> str:
    if 1 <= ordinal <= 4:
        return WEEK_NUMBERS[ordinal - 1]
    if ordinal == -1:
        return LAST
    raise InexpressibleRule(f"Exchange knows the first to fourth and the last, not position {ordinal}")


def _monthly(rule: Mapping[str, list], start: LocalStart):
    _forbid(rule, "MONTHLY", "BYMONTH")
    return _month_pattern(_day_in_month(rule, "MONTHLY", start, None), _interval(rule, _MAX_MONTHLY_INTERVAL))


def _month_pattern(spec: tuple, interval: int):
    if spec[0] == "absolute":
        return AbsoluteMonthlyPattern(interval=interval, day_of_month=spec[1])
    return RelativeMonthlyPattern(interval=interval, weekday=spec[1], week_number=spec[2])


def _yearly(rule: Mapping[str, list], start: LocalStart):
    """YEARLY: Absolute/RelativeYearly; INTERVAL=n>1 as a monthly pattern of 12·n months."""
    months = _ints(rule, "BYMONTH")
    if len(months) > 1:
        raise InexpressibleRule("Exchange cannot express several BYMONTH values in a yearly rule")
    if not months and any(p in rule for p in ("BYDAY", "BYMONTHDAY", "BYSETPOS")):
        raise InexpressibleRule("a yearly rule with BYDAY/BYMONTHDAY but no BYMONTH has no Exchange pattern")
    month = months[0] if months else start.month
    if not 1 <= month <= 12:
        raise InvalidRule(f"RRULE BYMONTH value {month} is not valid")
    spec = _day_in_month(rule, "YEARLY", start, month)
    years = _interval(rule, _MAX_MONTHLY_INTERVAL // 12)
    if years > 1:
        if start.month != month:
            raise InexpressibleRule(
                "a yearly rule with INTERVAL>1 must start in its BYMONTH month for Exchange"
            )
        return _month_pattern(spec, 12 * years)
    if spec[0] == "absolute":
        return AbsoluteYearlyPattern(day_of_month=spec[1], month=MONTHS[month - 1])
    return RelativeYearlyPattern(weekday=spec[1], week_number=spec[2], month=MONTHS[month - 1])


def _until_local(until: date | datetime, tz: tzinfo | None, all_day: bool) -> datetime:
    """UNTIL as a naive local datetime comparable with the series' local starts."""
    if isinstance(until, datetime):
        if until.tzinfo is not None:
            # An all-day series has no zone: a (strictly invalid) UTC UNTIL is compared as
            # written, the way dateutil and other expanders read it.
            until = until.astimezone(UTC if all_day or tz is None else tz)
        return until.replace(tzinfo=None)
    # A DATE UNTIL with a timed DTSTART (strictly invalid) means its midnight, as
    # dateutil and other expanders read it.
    return datetime.combine(until, time.min)


def rrule_to_recurrence(rule: Mapping[str, list], start: LocalStart, tz: tzinfo | None = None) -> Recurrence:
    """Map a parsed RRULE (``icalendar.vRecur``) to an EWS ``Recurrence``.

    ``start`` is the series' local DTSTART (naive datetime, or date when all-day);
    ``tz`` converts a UTC/zoned UNTIL to local time. An UNTIL becomes the local date
    of the last occurrence it admits (EWS EndDate is an inclusive local date).
    """
    freq = _check_parts(rule)
    if freq in {"DAILY", "WEEKLY"}:
        pattern = _daily_or_weekly(rule, freq, start)
    elif freq == "MONTHLY":
        pattern = _monthly(rule, start)
    else:
        pattern = _yearly(rule, start)
    start_date = start.date() if isinstance(start, datetime) else start
    count = _single(rule, "COUNT")
    if count is not None:
        if count < 1:
            raise InvalidRule("RRULE COUNT must be positive")
        if count > _MAX_COUNT:
            raise InexpressibleRule(f"Exchange allows at most {_MAX_COUNT} occurrences (COUNT={count})")
        return Recurrence(pattern=pattern, boundary=NumberedPattern(start=start_date, number=count))
    if rule.get("UNTIL"):
        limit = _until_local(rule["UNTIL"][0], tz, not isinstance(start, datetime))
        return Recurrence(
            pattern=pattern, boundary=EndDatePattern(start=start_date, end=_end_date(pattern, start, limit))
        )
    return Recurrence(pattern=pattern, boundary=NoEndPattern(start=start_date))


def _end_date(pattern, start: LocalStart, limit: datetime) -> date:
    """The local date of the last occurrence at or before ``limit``.

    Past :data:`MAX_SCAN` occurrences (an UNTIL centuries away) it stops expanding and
    answers the last date whose start time is still within ``limit``: an inclusive
    EndDate that admits exactly the same occurrences.
    """
    open_ended = Recurrence(pattern=pattern, boundary=NoEndPattern(start=_date_of(start)))
    last = None
    for count, occurrence in enumerate(expand(open_ended, start)):
        if _as_datetime(occurrence) > limit:
            break
        if count >= MAX_SCAN:
            return (
                limit.date()
                if limit.time() >= _as_datetime(start).time()
                else limit.date() - timedelta(days=1)
            )
        last = occurrence
    if last is None:
        raise InexpressibleRule("the RRULE's UNTIL lies before its first occurrence")
    return _date_of(last)


# --- EWS → RRULE ------------------------------------------------------------------------


def _weekday_rule(weekday: int | str, week_number: int | str) -> dict[str, list]:
    name = WEEKDAYS[_enum_index(weekday, WEEKDAYS) - 1]
    week = _enum_index(week_number, WEEK_NUMBERS)
    ordinal = -1 if week == 5 else week
    if name in WEEKDAY_NAMES:
        return {"BYDAY": [f"{ordinal}{ICAL_DAYS[WEEKDAY_NAMES.index(name)]}"]}
    if name == DAY and ordinal == -1:
        return {"BYMONTHDAY": [-1]}
    group = next(days for days, group_name in _DAY_SETS.items() if group_name == name)
    return {"BYDAY": sorted(group, key=ICAL_DAYS.index), "BYSETPOS": [ordinal]}


def _monthday_rule(day: int) -> dict[str, list]:
    if day <= 28:
        return {"BYMONTHDAY": [day]}
    # EWS falls back to the last day of shorter months: "the last of 28..d".
    return {"BYMONTHDAY": list(range(28, day + 1)), "BYSETPOS": [-1]}


def _pattern_rule(pattern, start: LocalStart) -> dict[str, list]:
    if isinstance(pattern, DailyPattern):
        return {"FREQ": ["DAILY"], "INTERVAL": [pattern.interval]}
    if isinstance(pattern, WeeklyPattern):
        days = sorted(_enum_index(d, WEEKDAY_NAMES) for d in pattern.weekdays)
        first = _enum_index(pattern.first_day_of_week or 1, WEEKDAY_NAMES)
        return {
            "FREQ": ["WEEKLY"],
            "INTERVAL": [pattern.interval],
            "BYDAY": [ICAL_DAYS[d - 1] for d in days],
            "WKST": [ICAL_DAYS[first - 1]],
        }
    if isinstance(pattern, AbsoluteMonthlyPattern | RelativeMonthlyPattern):
        if pattern.interval % 12 == 0:  # a yearly rule stored as months (see _yearly)
            head = {"FREQ": ["YEARLY"], "INTERVAL": [pattern.interval // 12], "BYMONTH": [start.month]}
        else:
            head = {"FREQ": ["MONTHLY"], "INTERVAL": [pattern.interval]}
        if isinstance(pattern, AbsoluteMonthlyPattern):
            return head | _monthday_rule(pattern.day_of_month)
        return head | _weekday_rule(pattern.weekday, pattern.week_number)
    month = _enum_index(pattern.month, MONTHS)
    head = {"FREQ": ["YEARLY"], "BYMONTH": [month]}
    if isinstance(pattern, AbsoluteYearlyPattern):
        return head | _monthday_rule(pattern.day_of_month)
    if isinstance(pattern, RelativeYearlyPattern):
        return head | _weekday_rule(pattern.weekday, pattern.week_number)
    raise InexpressibleRule(f"the EWS pattern {type(pattern).__name__} (a task regeneration) has no RRULE")


def recurrence_to_rrule(recurrence: Recurrence, start: LocalStart) -> dict[str, list]:
    """The RRULE parts for an EWS ``Recurrence`` whose first instance starts at ``start`` (local).

    UNTIL comes back as a *local* value (naive datetime at the series' start time on
    the EndDate, or the EndDate itself for all-day series); the caller converts it
    to UTC for iCalendar output (RFC 5545 §3.3.10 requires UTC with a zoned DTSTART).
    """
    rule = _pattern_rule(recurrence.pattern, start)
    if rule.get("INTERVAL") == [1]:
        del rule["INTERVAL"]
    boundary = recurrence.boundary
    if isinstance(boundary, NumberedPattern):
        rule["COUNT"] = [boundary.number]
    elif isinstance(boundary, EndDatePattern):
        end = _date_of(boundary.end)
        rule["UNTIL"] = [datetime.combine(end, start.time()) if isinstance(start, datetime) else end]
    return rule


def _date_of(value: date | datetime) -> date:
    return value.date() if isinstance(value, datetime) else value


def _as_datetime(value: LocalStart) -> datetime:
    return value if isinstance(value, datetime) else datetime.combine(value, time.min)


_FREQS = {"DAILY": du.DAILY, "WEEKLY": du.WEEKLY, "MONTHLY": du.MONTHLY, "YEARLY": du.YEARLY}
_DU_DAYS = (du.MO, du.TU, du.WE, du.TH, du.FR, du.SA, du.SU)


def _dateutil_rule(rule: dict[str, list], start: LocalStart) -> du.rrule:
    byday = []
    for n, day in _byday(rule):
        weekday = _DU_DAYS[ICAL_DAYS.index(day)]
        byday.append(weekday(n) if n else weekday)
    until = rule.get("UNTIL", [None])[0]
    return du.rrule(
        _FREQS[rule["FREQ"][0]],
        dtstart=_as_datetime(start),
        interval=rule.get("INTERVAL", [1])[0],
        wkst=ICAL_DAYS.index(rule.get("WKST", ["MO"])[0]),
        count=rule.get("COUNT", [None])[0],
        until=_as_datetime(until) if until is not None else None,
        bysetpos=rule.get("BYSETPOS"),
        bymonth=rule.get("BYMONTH"),
        bymonthday=rule.get("BYMONTHDAY"),
        byweekday=byday or None,
    )


def expand(recurrence: Recurrence, start: LocalStart) -> Iterator[LocalStart]:
    """Local starts of a pattern's occurrences, in order, beginning at ``start``.

    As in EWS, an occurrence is a day the pattern selects on or after the range's
    StartDate, at the series' local start time; ``start`` itself is included only
    when the pattern selects it.
    """
    rule = recurrence_to_rrule(recurrence, start)
    begin = _as_datetime(start)
    pattern_start = _date_of(recurrence.boundary.start) if recurrence.boundary.start else begin.date()
    if pattern_start < begin.date():  # EWS counts from StartDate, at the item's time of day
        begin = datetime.combine(pattern_start, begin.time())
    for occurrence in _dateutil_rule(rule, begin):
        yield occurrence if isinstance(start, datetime) else occurrence.date()
