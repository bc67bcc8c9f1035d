"""Free slots: a window, less busy time, within working hours, cut into meetings of one duration.

Pure functions over aware datetimes (UTC inside); the booking API parses the question and formats the
answer in the caller's time zone. Working hours are periods of local time on some weekdays in a zone
(the mailbox's, from GetUserAvailability, or the caller's when they override them); a period that a
daylight-saving change makes ambiguous is taken as the zone's ``fold=0`` reading.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo
from typing import Literal

from gateway.caldav.backend import BusyPeriod, WorkingHours, WorkingPeriod

Span = tuple[datetime, datetime]
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")


class BadQuestion(ValueError):
    """A question that cannot be answered as asked; ``str()`` is the sentence, ``status`` 400 or 422."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def merged(spans: Iterable[Span]) -> list[Span]:
    """Sorted, with overlapping or touching spans joined."""
    out: list[Span] = []
    for start, end in sorted(s for s in spans if s[0] < s[1]):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def subtract(spans: Sequence[Span], holes: Sequence[Span]) -> list[Span]:
    """``spans`` less every instant of ``holes`` (both merged first)."""
    out: list[Span] = []
    holes = merged(holes)
    for start, end in merged(spans):
        cursor = start
        for hole_start, hole_end in holes:
            if hole_end <= cursor or hole_start >= end:
                continue
            if hole_start > cursor:
                out.append((cursor, hole_start))
            cursor = max(cursor, hole_end)
        if cursor < end:
            out.append((cursor, end))
    return out


def working_spans(hours: WorkingHours, start: datetime, end: datetime) -> list[Span]:
    """The working time within [start, end), in UTC: each period on each of its weekdays, local to the zone.

    A period whose end is not after its start covers nothing (Exchange keeps one period per day set).
    """
    zone = hours.zone
    day = start.astimezone(zone).date() - timedelta(days=1)
    last = end.astimezone(zone).date() + timedelta(days=1)
    spans: list[Span] = []
    while day <= last:
        midnight = datetime.combine(day, time())
        for period in hours.periods:
            if day.weekday() in period.weekdays and period.end_minute > period.start_minute:
                begin = _utc(midnight + timedelta(minutes=period.start_minute), zone)
                finish = _utc(midnight + timedelta(minutes=period.end_minute), zone)
                spans.append((max(begin, start), min(finish, end)))
        day += timedelta(days=1)
    return merged(spans)


def _utc(local: datetime, zone: tzinfo) -> datetime:
    return local.replace(tzinfo=zone).astimezone(UTC)


def busy_spans(periods: Iterable[BusyPeriod]) -> list[Span]:
    """Every busy period, tentative and out-of-office too: a booking page offers only time known to be free."""
    return merged((p.start.astimezone(UTC), p.end.astimezone(UTC)) for p in periods if p.fbtype != "FREE")


@dataclass(frozen=True)
class SlotQuestion:
    start: datetime  # aware
    end: datetime
    duration: timedelta
    step: timedelta
    zone: tzinfo  # the caller's: slots start at multiples of ``step`` after local midnight


def free_slots(question: SlotQuestion, busy: Sequence[Span], working: Sequence[Span] | None) -> list[Span]:
    """Every slot of ``duration`` starting on the ``step`` grid of the caller's day that fits within
    working time (the whole window when ``working`` is None) and overlaps no busy time."""
    window = [(question.start, question.end)]
    free = subtract(window if working is None else subtract(window, subtract(window, working)), busy)
    slots: list[Span] = []
    for free_start, free_end in free:
        moment = _aligned(free_start, question.step, question.zone)
        while moment + question.duration <= free_end:
            slots.append((moment, moment + question.duration))
            moment += question.step
    return slots


def _aligned(moment: datetime, step: timedelta, zone: tzinfo) -> datetime:
    """The first instant at or after ``moment`` that lies a whole number of steps after local midnight."""
    local = moment.astimezone(zone)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)
    steps = -(-(moment - midnight) // step)
    return midnight + steps * step


def within(start: datetime, end: datetime, spans: Sequence[Span]) -> bool:
    """Whether [start, end) lies inside one of ``spans``."""
    return any(s <= start and end <= e for s, e in merged(spans))


def overlaps(start: datetime, end: datetime, spans: Sequence[Span]) -> bool:
    return any(s < end and start < e for s, e in spans)


def override(hours: str | None, days: str | None, zone: tzinfo) -> WorkingHours | Literal[False] | None:
    """The caller's working hours: ``hours=HH:MM-HH:MM`` and ``days=mon,tue,…`` (or ``mon-fri``) in
    their time zone; ``hours=any`` drops working hours altogether (None); False when neither is given
    (the mailbox's own apply)."""
    if not hours and not days:
        return False
    if (hours or "").strip().lower() == "any":
        return None
    start_minute, end_minute = _hours(hours or "09:00-17:00")
    weekdays = _days(days or "mon-fri")
    return WorkingHours(zone, (WorkingPeriod(weekdays, start_minute, end_minute),))


def _hours(text: str) -> tuple[int, int]:
    match = _HOURS.match(text.strip())
    if not match:
        raise BadQuestion(f"hours={text!r} is not HH:MM-HH:MM (e.g. 09:00-17:00) or 'any'.")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    first, last = h1 * 60 + m1, h2 * 60 + m2
    if h1 > 24 or h2 > 24 or m1 > 59 or m2 > 59 or last > 1440 or first >= last:
        raise BadQuestion(f"hours={text!r}: the working day must start before it ends, within 00:00-24:00.")
    return first, last


def _days(text: str) -> tuple[int, ...]:
    chosen: set[int] = set()
    for part in text.lower().replace(" ", "").split(","):
        first, _, last = part.partition("-")
        try:
            a = DAY_NAMES.index(first[:3])
            b = DAY_NAMES.index(last[:3]) if last else a
        except ValueError:
            raise BadQuestion(f"days={text!r}: name days as mon,tue,… or a range such as mon-fri.") from None
        chosen.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
    return tuple(sorted(chosen))


def describe(hours: WorkingHours | None) -> list[dict[str, object]] | None:
    """Working hours for the JSON answer: the periods, in the zone they are kept in."""
    if hours is None:
        return None
    return [
        {
            "days": [DAY_NAMES[d] for d in p.weekdays],
            "start": f"{p.start_minute // 60:02d}:{p.start_minute % 60:02d}",
            "end": f"{p.end_minute // 60:02d}:{p.end_minute % 60:02d}",
        }
        for p in hours.periods
    ]
