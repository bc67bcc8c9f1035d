"""Expansion of EWS recurrence patterns (types.xsd ``RecurrenceType``) into occurrences.

Exchange stores a recurring series as one master item with a pattern, a range, and the
exceptions (modified and deleted occurrences) inside it. Occurrences are numbered from 1 in
pattern order, deleted ones included: that number is the ``InstanceIndex`` of an
``OccurrenceItemId``. Wall-clock times are kept in the item's own time zone, so a 09:00
meeting stays at 09:00 local across a DST change while its UTC time moves.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

PATTERNS = ("Daily", "Weekly", "AbsoluteMonthly", "RelativeMonthly", "AbsoluteYearly", "RelativeYearly")
RANGES = ("NoEnd", "EndDate", "Numbered")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = tuple(calendar.month_name[1:])
DAY_INDEXES = ("First", "Second", "Third", "Fourth", "Last")
# Relative patterns accept these pseudo-days besides a weekday (types.xsd DayOfWeekType).
PSEUDO_DAYS = {"Day": set(range(7)), "Weekday": set(range(5)), "WeekendDay": {5, 6}}
# Hard stop for open-ended series so that a bad window can never loop forever.
MAX_INSTANCES = 100_000


@dataclass
class Recurrence:
    """One EWS recurrence: a pattern (``<Pattern>Recurrence``) plus a range (``<Range>Recurrence``)."""

    pattern: str
    start_date: date
    interval: int = 1
    days_of_week: list[str] = field(default_factory=list)
    first_day_of_week: str = "Sunday"
    day_of_month: int | None = None
    day_of_week_index: str | None = None
    month: str | None = None
    range_type: str = "NoEnd"
    end_date: date | None = None
    number_of_occurrences: int | None = None

    def validate(self) -> None:
        """Raise ``ValueError`` for a pattern Exchange would refuse (ErrorInvalidRecurrence)."""
        if self.pattern not in PATTERNS or self.range_type not in RANGES:
            raise ValueError("unknown recurrence pattern or range")
        if self.interval < 1:
            raise ValueError("interval must be at least 1")
        if self.pattern == "Weekly" and not self.days_of_week:
            raise ValueError("a weekly pattern needs DaysOfWeek")
        if self.pattern.startswith("Absolute") and not 1 <= (self.day_of_month or 0) <= 31:
            raise ValueError("DayOfMonth must be 1..31")
        if self.pattern.startswith("Relative") and (
            self.day_of_week_index not in DAY_INDEXES or len(self.days_of_week) != 1
        ):
            raise ValueError("a relative pattern needs one DaysOfWeek and a DayOfWeekIndex")
        if self.pattern.endswith("Yearly") and self.month not in MONTHS:
            raise ValueError("a yearly pattern needs a Month")
        if self.range_type == "EndDate" and (self.end_date is None or self.end_date < self.start_date):
            raise ValueError("EndDate must not be before StartDate")
        if self.range_type == "Numbered" and (self.number_of_occurrences or 0) < 1:
            raise ValueError("NumberOfOccurrences must be at least 1")

    def dates(self) -> Iterator[date]:
        """Yield the local dates of every occurrence in order, honouring the range."""
        for count, day in enumerate(_pattern_dates(self), start=1):
            if self.range_type == "EndDate" and self.end_date is not None and day > self.end_date:
                return
            if self.range_type == "Numbered" and count > (self.number_of_occurrences or 0):
                return
            if count > MAX_INSTANCES:
                return
            yield day


def _pattern_dates(rec: Recurrence) -> Iterator[date]:
    """All pattern dates on or after ``rec.start_date`` (unbounded)."""
    generators = {
        "Daily": _daily,
        "Weekly": _weekly,
        "AbsoluteMonthly": _absolute_monthly,
        "RelativeMonthly": _relative_monthly,
        "AbsoluteYearly": _absolute_yearly,
        "RelativeYearly": _relative_yearly,
    }
    for day in generators[rec.pattern](rec):
        if day >= rec.start_date:
            yield day


def _daily(rec: Recurrence) -> Iterator[date]:
    day = rec.start_date
    while True:
        yield day
        day += timedelta(days=rec.interval)


def _weekly(rec: Recurrence) -> Iterator[date]:
    # Weeks are counted from the week (starting on FirstDayOfWeek) that holds StartDate.
    first = WEEKDAYS.index(rec.first_day_of_week)
    week_start = rec.start_date - timedelta(days=(rec.start_date.weekday() - first) % 7)
    wanted = {WEEKDAYS.index(d) for d in rec.days_of_week}
    while True:
        for offset in range(7):
            day = week_start + timedelta(days=offset)
            if day.weekday() in wanted:
                yield day
        week_start += timedelta(weeks=rec.interval)


def _months(rec: Recurrence, step: int) -> Iterator[tuple[int, int]]:
    year, month = rec.start_date.year, rec.start_date.month
    if rec.month is not None and rec.pattern.endswith("Yearly"):
        month = MONTHS.index(rec.month) + 1
        if month < rec.start_date.month:
            year += 1
    while year <= 9999:
        yield year, month
        month += step
        year, month = year + (month - 1) // 12, (month - 1) % 12 + 1


def _clamped(year: int, month: int, day: int) -> date:
    # Exchange puts "the 31st" on the last day of shorter months.
    return date(year, month, min(day, calendar.monthrange(year, month)[1]))


def _absolute_monthly(rec: Recurrence) -> Iterator[date]:
    for year, month in _months(rec, rec.interval):
        yield _clamped(year, month, rec.day_of_month or 1)


def _absolute_yearly(rec: Recurrence) -> Iterator[date]:
    for year, month in _months(rec, 12):
        yield _clamped(year, month, rec.day_of_month or 1)


def relative_day(year: int, month: int, day_name: str, index: str) -> date:
    """The ``index`` (First…Fourth, Last) ``day_name`` (weekday, Day, Weekday, WeekendDay) of a month."""
    wanted = PSEUDO_DAYS.get(day_name) or {WEEKDAYS.index(day_name)}
    last = calendar.monthrange(year, month)[1]
    days = [date(year, month, d) for d in range(1, last + 1) if date(year, month, d).weekday() in wanted]
    return days[-1] if index == "Last" else days[DAY_INDEXES.index(index)]


def _relative_monthly(rec: Recurrence) -> Iterator[date]:
    for year, month in _months(rec, rec.interval):
        yield relative_day(year, month, rec.days_of_week[0], rec.day_of_week_index or "First")


def _relative_yearly(rec: Recurrence) -> Iterator[date]:
    for year, month in _months(rec, 12):
        yield relative_day(year, month, rec.days_of_week[0], rec.day_of_week_index or "First")


@dataclass(frozen=True)
class Instance:
    """One generated occurrence: its 1-based index and its original (pattern) start and end, aware UTC."""

    index: int
    start: datetime
    end: datetime


def local_datetime(naive: datetime, zone: ZoneInfo) -> datetime:
    """Wall-clock ``naive`` in ``zone`` as aware UTC (a time skipped by DST moves forward)."""
    # Round-trip through UTC so that a non-existent local time (spring forward) is normalised.
    return naive.replace(tzinfo=zone).astimezone(UTC)


def instances(
    rec: Recurrence, first_start: datetime, first_end: datetime, zone: ZoneInfo, until: datetime | None = None
) -> Iterator[Instance]:
    """Occurrences of a series whose first occurrence is [first_start, first_end), in time zone ``zone``.

    Start and duration are kept in wall-clock time, so they survive DST changes. Stops after
    the range ends or once an occurrence starts at or after ``until``.
    """
    local_start = first_start.astimezone(zone).replace(tzinfo=None)
    local_length = first_end.astimezone(zone).replace(tzinfo=None) - local_start
    for index, day in enumerate(rec.dates(), start=1):
        naive = datetime.combine(day, local_start.time())
        start = local_datetime(naive, zone)
        if until is not None and start >= until:
            return
        yield Instance(index, start, local_datetime(naive + local_length, zone))
