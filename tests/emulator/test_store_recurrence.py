"""Unit tests of EWS recurrence expansion (gateway/ews/emulator/recurrence.py)."""

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from gateway.ews.emulator.recurrence import Recurrence, instances, relative_day

BERLIN = ZoneInfo("Europe/Berlin")


def _dates(rec: Recurrence, n: int = 6) -> list[date]:
    return [d for _, d in zip(range(n), rec.dates(), strict=False)]


def test_weekly_keeps_local_time_across_dst() -> None:
    rec = Recurrence(
        "Weekly",
        date(2026, 3, 16),
        days_of_week=["Tuesday"],
        first_day_of_week="Monday",
        range_type="Numbered",
        number_of_occurrences=3,
    )
    first = datetime(2026, 3, 17, 8, 0, tzinfo=UTC)  # 09:00 CET
    got = list(instances(rec, first, datetime(2026, 3, 17, 9, 0, tzinfo=UTC), BERLIN))
    assert [i.index for i in got] == [1, 2, 3]
    assert [i.start.astimezone(BERLIN).hour for i in got] == [9, 9, 9]
    # Summer time starts on 2026-03-29: the UTC hour moves, the length stays one hour.
    assert [i.start.hour for i in got] == [8, 8, 7]
    assert all((i.end - i.start).total_seconds() == 3600 for i in got)


@pytest.mark.parametrize(
    ("rec", "expected"),
    [
        (Recurrence("Daily", date(2026, 1, 30), interval=2), ["2026-01-30", "2026-02-01", "2026-02-03"]),
        (
            Recurrence(
                "Weekly",
                date(2026, 1, 1),
                interval=2,
                days_of_week=["Monday", "Friday"],
                first_day_of_week="Monday",
            ),
            ["2026-01-02", "2026-01-12", "2026-01-16"],
        ),
        (
            Recurrence("AbsoluteMonthly", date(2026, 1, 1), day_of_month=31),
            ["2026-01-31", "2026-02-28", "2026-03-31"],
        ),
        (
            Recurrence(
                "RelativeMonthly", date(2026, 1, 1), days_of_week=["Tuesday"], day_of_week_index="Second"
            ),
            ["2026-01-13", "2026-02-10", "2026-03-10"],
        ),
        (
            Recurrence(
                "RelativeMonthly", date(2026, 1, 1), days_of_week=["Weekday"], day_of_week_index="Last"
            ),
            ["2026-01-30", "2026-02-27", "2026-03-31"],
        ),
        (
            Recurrence("AbsoluteYearly", date(2026, 6, 1), day_of_month=15, month="March"),
            ["2027-03-15", "2028-03-15", "2029-03-15"],
        ),
        (
            Recurrence(
                "RelativeYearly",
                date(2026, 1, 1),
                days_of_week=["Sunday"],
                day_of_week_index="First",
                month="November",
            ),
            ["2026-11-01", "2027-11-07", "2028-11-05"],
        ),
    ],
)
def test_patterns(rec: Recurrence, expected: list[str]) -> None:
    rec.validate()
    assert [d.isoformat() for d in _dates(rec, 3)] == expected


def test_ranges_end_date_is_inclusive_and_numbered_counts() -> None:
    by_date = Recurrence("Daily", date(2026, 1, 1), range_type="EndDate", end_date=date(2026, 1, 3))
    assert len(list(by_date.dates())) == 3
    numbered = Recurrence(
        "Weekly",
        date(2026, 1, 1),
        days_of_week=["Monday", "Thursday"],
        range_type="Numbered",
        number_of_occurrences=5,
    )
    assert len(list(numbered.dates())) == 5


def test_invalid_patterns_are_refused() -> None:
    with pytest.raises(ValueError):
        Recurrence("Weekly", date(2026, 1, 1)).validate()
    with pytest.raises(ValueError):
        Recurrence("RelativeMonthly", date(2026, 1, 1), days_of_week=["Monday"]).validate()
    with pytest.raises(ValueError):
        Recurrence("Daily", date(2026, 1, 5), range_type="EndDate", end_date=date(2026, 1, 1)).validate()


def test_relative_day_pseudo_days() -> None:
    assert relative_day(2026, 2, "WeekendDay", "First") == date(2026, 2, 1)
    assert relative_day(2026, 2, "Day", "Last") == date(2026, 2, 28)
