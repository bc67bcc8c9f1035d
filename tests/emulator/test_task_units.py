"""Task rules without HTTP: status settling and the next occurrence of recurring tasks."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime

import pytest

from gateway.ews.emulator.model import StoreError
from gateway.ews.emulator.recurrence import Recurrence
from gateway.ews.emulator.tasks import Task, TaskRecurrence, next_occurrence, settle

NOW = datetime(2026, 5, 20, 12, 0, tzinfo=UTC)


def _task(**fields) -> Task:
    return Task("id", "ck", "folder", **fields)


def _due(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def test_settle_follows_what_the_request_changed() -> None:
    before = _task(status="InProgress", percent_complete=40.0)
    after = copy.deepcopy(before)
    after.status = "Completed"
    settle(after, before, NOW)
    assert (after.percent_complete, after.complete_date) == (100.0, NOW)
    again = copy.deepcopy(after)
    again.percent_complete = 30.0
    settle(again, after, NOW)
    assert (again.status, again.complete_date) == ("InProgress", None)
    with pytest.raises(StoreError):
        bad = copy.deepcopy(before)
        bad.percent_complete = -1
        settle(bad, before, NOW)


def test_monthly_pattern_moves_to_the_next_pattern_date_within_an_end_date() -> None:
    rule = Recurrence(
        "AbsoluteMonthly",
        date(2026, 1, 31),
        day_of_month=31,
        range_type="EndDate",
        end_date=date(2026, 3, 15),
    )
    task = _task(due_date=_due(date(2026, 1, 31)), recurrence=TaskRecurrence(rule))
    moved = next_occurrence(task, date(2026, 2, 10))
    assert moved is not None
    start, due, rest = moved
    assert start is None and due == _due(date(2026, 2, 28))  # the 31st clamps to February's end
    assert rest.rule.start_date == date(2026, 2, 28)
    task.due_date, task.recurrence = due, rest
    assert next_occurrence(task, date(2026, 3, 1)) is None  # March 31 is past the end date


def test_yearly_regeneration_from_a_leap_day_and_a_numbered_range() -> None:
    rule = Recurrence("Daily", date(2028, 2, 29), range_type="Numbered", number_of_occurrences=2)
    task = _task(
        start_date=_due(date(2028, 2, 20)),
        due_date=_due(date(2028, 2, 29)),
        recurrence=TaskRecurrence(rule, "Yearly"),
    )
    moved = next_occurrence(task, date(2028, 2, 29))
    assert moved is not None
    start, due, rest = moved
    assert due == _due(date(2029, 2, 28)) and start == _due(date(2029, 2, 19))
    assert rest.rule.number_of_occurrences == 1
    task.start_date, task.due_date, task.recurrence = start, due, rest
    assert next_occurrence(task, date(2029, 3, 1)) is None
