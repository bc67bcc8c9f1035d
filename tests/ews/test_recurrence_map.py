"""RRULE ⇄ EWS recurrence patterns: exact mappings, refusals, expansion."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from itertools import islice
from zoneinfo import ZoneInfo

import pytest
from dateutil.rrule import rrulestr
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
from icalendar import vRecur

from gateway.ews.recurrence_map import (
    InexpressibleRule,
    InvalidRule,
    expand,
    recurrence_to_rrule,
    rrule_to_recurrence,
)

START = datetime(2024, 1, 10, 9, 30)  # a Wednesday, local wall-clock
BERLIN = ZoneInfo("Europe/Berlin")


def rule(text: str) -> vRecur:
    return vRecur.from_ical(text)


@pytest.mark.parametrize(
    ("text", "pattern_cls", "fields"),
    [
        ("FREQ=DAILY", DailyPattern, {"interval": 1}),
        ("FREQ=DAILY;INTERVAL=3", DailyPattern, {"interval": 3}),
        ("FREQ=WEEKLY", WeeklyPattern, {"interval": 1, "weekdays": ["Wednesday"]}),
        (
            "FREQ=WEEKLY;INTERVAL=2;BYDAY=WE,MO;WKST=SU",
            WeeklyPattern,
            {"interval": 2, "weekdays": ["Monday", "Wednesday"], "first_day_of_week": "Sunday"},
        ),
        (
            "FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR",
            WeeklyPattern,
            {"interval": 1, "weekdays": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]},
        ),
        ("FREQ=MONTHLY", AbsoluteMonthlyPattern, {"interval": 1, "day_of_month": 10}),
        (
            "FREQ=MONTHLY;INTERVAL=3;BYMONTHDAY=10",
            AbsoluteMonthlyPattern,
            {"interval": 3, "day_of_month": 10},
        ),
        ("FREQ=MONTHLY;BYDAY=2WE", RelativeMonthlyPattern, {"weekday": "Wednesday", "week_number": "Second"}),
        ("FREQ=MONTHLY;BYDAY=-1WE", RelativeMonthlyPattern, {"weekday": "Wednesday", "week_number": "Last"}),
        ("FREQ=MONTHLY;BYMONTHDAY=-1", RelativeMonthlyPattern, {"weekday": "Day", "week_number": "Last"}),
        (
            "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=1",
            RelativeMonthlyPattern,
            {"weekday": "Weekday", "week_number": "First"},
        ),
        (
            "FREQ=MONTHLY;BYDAY=SA,SU;BYSETPOS=-1",
            RelativeMonthlyPattern,
            {"weekday": "WeekendDay", "week_number": "Last"},
        ),
        ("FREQ=MONTHLY;BYMONTHDAY=28,29,30,31;BYSETPOS=-1", AbsoluteMonthlyPattern, {"day_of_month": 31}),
        ("FREQ=YEARLY", AbsoluteYearlyPattern, {"day_of_month": 10, "month": "January"}),
        (
            "FREQ=YEARLY;BYMONTH=1;BYMONTHDAY=10",
            AbsoluteYearlyPattern,
            {"day_of_month": 10, "month": "January"},
        ),
        (
            "FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU",
            RelativeYearlyPattern,
            {"weekday": "Sunday", "week_number": "Last", "month": "March"},
        ),
        ("FREQ=YEARLY;INTERVAL=2", AbsoluteMonthlyPattern, {"interval": 24, "day_of_month": 10}),
        (
            "FREQ=YEARLY;INTERVAL=3;BYMONTH=1;BYDAY=2WE",
            RelativeMonthlyPattern,
            {"interval": 36, "weekday": "Wednesday", "week_number": "Second"},
        ),
    ],
)
def test_rrule_maps_to_the_exact_pattern(text: str, pattern_cls: type, fields: dict) -> None:
    recurrence = rrule_to_recurrence(rule(text), START, BERLIN)
    assert type(recurrence.pattern) is pattern_cls
    for name, expected in fields.items():
        assert getattr(recurrence.pattern, name) == expected, name
    assert recurrence.boundary == NoEndPattern(start=START.date())


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("FREQ=HOURLY", "hourly"),
        ("FREQ=MINUTELY", "minutely"),
        ("FREQ=SECONDLY", "secondly"),
        ("FREQ=DAILY;BYHOUR=9,17", "BYHOUR"),
        ("FREQ=DAILY;BYMINUTE=15", "BYMINUTE"),
        ("FREQ=DAILY;BYSECOND=15", "BYSECOND"),
        ("FREQ=YEARLY;BYYEARDAY=100", "BYYEARDAY"),
        ("FREQ=YEARLY;BYWEEKNO=20", "BYWEEKNO"),
        ("FREQ=MONTHLY;BYMONTHDAY=1,15", "several BYMONTHDAY"),
        ("FREQ=MONTHLY;BYDAY=1MO,3MO", "several numbered BYDAY"),
        ("FREQ=MONTHLY;BYDAY=5MO", "position 5"),
        ("FREQ=MONTHLY;BYDAY=-2MO", "position -2"),
        ("FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-2", "position -2"),
        ("FREQ=MONTHLY;BYDAY=MO,WE;BYSETPOS=1", "BYDAY set"),
        ("FREQ=MONTHLY;BYDAY=TU", "every TU"),
        ("FREQ=MONTHLY;BYMONTHDAY=31", "last day of shorter months"),
        ("FREQ=YEARLY;BYMONTH=1,7", "several BYMONTH"),
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29", "last day of shorter months"),
        ("FREQ=YEARLY;BYDAY=1SU", "no BYMONTH"),
        ("FREQ=YEARLY;INTERVAL=9", "interval"),
        ("FREQ=DAILY;COUNT=1000", "at most 999"),
        ("FREQ=DAILY;INTERVAL=2;BYDAY=MO", "daily interval"),
        ("FREQ=WEEKLY;BYMONTH=3", "BYMONTH"),
        ("FREQ=WEEKLY;BYDAY=1MO", "numbered BYDAY"),
        ("FREQ=WEEKLY;UNTIL=20240101T000000Z", "before its first occurrence"),
    ],
)
def test_rules_exchange_cannot_express_are_refused_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(InexpressibleRule, match=reason):
        rrule_to_recurrence(rule(text), START, BERLIN)


@pytest.mark.parametrize(
    "text",
    [
        "FREQ=WEEKLY;UNTL=20240301",
        "FREQ=DAILY;COUNT=3;UNTIL=20240301",
        "INTERVAL=2",
        "FREQ=MONTHLY;BYDAY=0MO",
        "FREQ=DAILY;INTERVAL=0",
    ],
)
def test_invalid_rules_are_reported_as_invalid(text: str) -> None:
    with pytest.raises(InvalidRule):
        rrule_to_recurrence(rule(text), START, BERLIN)


def test_until_utc_becomes_the_local_date_of_the_last_occurrence_it_admits() -> None:
    # 09:30 Berlin is 08:30 UTC in winter: an UNTIL of 08:00 UTC on Friday 26th excludes that day.
    recurrence = rrule_to_recurrence(rule("FREQ=WEEKLY;BYDAY=WE,FR;UNTIL=20240126T080000Z"), START, BERLIN)
    assert recurrence.boundary == EndDatePattern(start=START.date(), end=date(2024, 1, 24))
    recurrence = rrule_to_recurrence(rule("FREQ=WEEKLY;BYDAY=WE,FR;UNTIL=20240126T083000Z"), START, BERLIN)
    assert recurrence.boundary.end == date(2024, 1, 26)


def test_count_becomes_a_numbered_range() -> None:
    recurrence = rrule_to_recurrence(rule("FREQ=DAILY;COUNT=5"), START, BERLIN)
    assert recurrence.boundary == NumberedPattern(start=START.date(), number=5)


# Rules covering each pattern and range, expanded by dateutil straight from the RRULE text.
EXPANSION_CASES = [
    ("FREQ=DAILY;INTERVAL=3;COUNT=20", START),
    ("FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE,FR;WKST=SU;UNTIL=20241231T235959Z", START),
    ("FREQ=WEEKLY;INTERVAL=3;BYDAY=SU,WE;WKST=MO", START),
    ("FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR;COUNT=30", START),
    ("FREQ=MONTHLY;BYDAY=2WE", START),
    ("FREQ=MONTHLY;INTERVAL=2;BYDAY=-1WE", datetime(2024, 1, 31, 9, 30)),
    ("FREQ=MONTHLY;BYMONTHDAY=-1", datetime(2024, 1, 31, 9, 30)),
    ("FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1", datetime(2024, 1, 31, 9, 30)),
    ("FREQ=MONTHLY;BYDAY=SA,SU;BYSETPOS=2", datetime(2024, 1, 7, 9, 30)),
    ("FREQ=MONTHLY;BYMONTHDAY=28,29,30;BYSETPOS=-1", datetime(2024, 1, 30, 9, 30)),
    ("FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU;COUNT=4", datetime(2024, 3, 31, 9, 30)),
    ("FREQ=YEARLY;INTERVAL=2;BYMONTH=1;BYMONTHDAY=10", START),
    ("FREQ=YEARLY", date(2024, 2, 28)),
    ("FREQ=WEEKLY;BYDAY=TU,TH;UNTIL=20240620", date(2024, 1, 11)),
]


@pytest.mark.parametrize(("text", "start"), EXPANSION_CASES)
def test_expansion_matches_an_independent_rrule_expander(text: str, start) -> None:
    recurrence = rrule_to_recurrence(rule(text), start, BERLIN)
    as_datetime = start if isinstance(start, datetime) else datetime.combine(start, datetime.min.time())
    # dateutil wants a UTC UNTIL to go with an aware start: give both in UTC-free local terms.
    local_text = text.replace("T235959Z", "T235959")
    horizon = as_datetime + timedelta(days=3 * 366)
    expected = [d for d in islice(rrulestr(local_text, dtstart=as_datetime), 400) if d <= horizon]
    ours = []
    for occurrence in expand(recurrence, start):
        value = (
            occurrence
            if isinstance(occurrence, datetime)
            else datetime.combine(occurrence, datetime.min.time())
        )
        if value > horizon:
            break
        ours.append(value)
    assert ours == expected


PATTERNS = [
    DailyPattern(interval=2),
    WeeklyPattern(interval=1, weekdays=[1, 3, 5], first_day_of_week=7),  # ints, as exchangelib parses them
    AbsoluteMonthlyPattern(interval=1, day_of_month=31),
    AbsoluteMonthlyPattern(interval=24, day_of_month=10),
    RelativeMonthlyPattern(interval=1, weekday=9, week_number=5),  # last weekday
    RelativeMonthlyPattern(interval=2, weekday="Day", week_number="First"),
    RelativeMonthlyPattern(interval=1, weekday="Day", week_number="Last"),
    AbsoluteYearlyPattern(day_of_month=29, month=2),
    RelativeYearlyPattern(weekday="Thursday", week_number="Fourth", month="November"),
]


@pytest.mark.parametrize("pattern", PATTERNS, ids=lambda p: str(p))
def test_ews_pattern_to_rrule_and_back_keeps_every_occurrence(pattern) -> None:
    recurrence = Recurrence(pattern=pattern, boundary=NumberedPattern(start=date(2024, 1, 1), number=40))
    first = next(expand(recurrence, datetime(2024, 1, 1, 9)))
    text = vRecur(recurrence_to_rrule(recurrence, first)).to_ical().decode()
    again = rrule_to_recurrence(rule(text), first, UTC)
    assert list(expand(again, first)) == list(expand(recurrence, first))
    assert list(rrulestr(text, dtstart=first)) == list(expand(recurrence, first))


def test_end_date_range_becomes_until_at_the_last_local_start() -> None:
    recurrence = Recurrence(
        pattern=DailyPattern(interval=1), boundary=EndDatePattern(start=START.date(), end=date(2024, 1, 20))
    )
    assert recurrence_to_rrule(recurrence, START)["UNTIL"] == [datetime(2024, 1, 20, 9, 30)]
    assert recurrence_to_rrule(recurrence, START.date())["UNTIL"] == [date(2024, 1, 20)]


def test_expansion_starts_at_the_pattern_start_date_like_exchange() -> None:
    """EWS counts occurrences from the range's StartDate, not from the item's first start."""
    recurrence = Recurrence(pattern=WeeklyPattern(interval=1, weekdays=["Friday"]), start=date(2024, 1, 1))
    assert list(islice(expand(recurrence, datetime(2024, 1, 5, 8)), 2)) == [
        datetime(2024, 1, 5, 8),
        datetime(2024, 1, 12, 8),
    ]


def test_an_until_centuries_away_is_cheap_and_exact() -> None:
    """Expansion stops after MAX_SCAN occurrences; the EndDate still admits the same occurrences."""
    recurrence = rrule_to_recurrence(rule("FREQ=DAILY;UNTIL=29991231T080000Z"), START, BERLIN)
    assert recurrence.boundary.end == date(2999, 12, 30)  # 08:00 UTC is 09:00 in Berlin: before 09:30
    recurrence = rrule_to_recurrence(rule("FREQ=DAILY;UNTIL=29991231T083000Z"), START, BERLIN)
    assert recurrence.boundary.end == date(2999, 12, 31)
