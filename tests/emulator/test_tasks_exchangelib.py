"""The emulator's tasks as real exchangelib sees them (``account.tasks``, ``Task`` items, task folders).

The ``emulator`` fixture (tests/conftest.py) validates every SOAP message against the EWS schema, so each
test here also proves its requests and responses schema-valid.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal

import pytest
from exchangelib import BASIC, DELEGATE, Account, Configuration, Credentials, EWSTimeZone, ExtendedProperty
from exchangelib.errors import ErrorDeleteDistinguishedFolder, ErrorItemNotFound
from exchangelib.folders import Tasks
from exchangelib.items import Task
from exchangelib.recurrence import (
    DailyRegeneration,
    MonthlyRegeneration,
    TaskRecurrence,
    WeeklyPattern,
    WeeklyRegeneration,
)
from exchangelib.version import Build, Version

from tests.support.emulator import EmulatorServer

BERLIN = EWSTimeZone("Europe/Berlin")


class ResourceName(ExtendedProperty):
    """A named property of the kind the gateway stores with every item it writes."""

    property_set_id = "c11ff724-aa03-4555-9952-8fa248a11c3e"
    property_name = "CalDAVResourceName"
    property_type = "String"


@pytest.fixture
def account(emulator: EmulatorServer) -> Iterator[Account]:
    """Alice's account on the demo-seeded emulator (reset for this test)."""
    Task.register("resource_name", ResourceName)
    config = Configuration(
        service_endpoint=emulator.ews_url,
        credentials=Credentials("alice@example.com", "alice-pw"),
        auth_type=BASIC,
        version=Version(build=Build(15, 1, 2507, 6)),
    )
    yield Account(
        "alice@example.com", config=config, autodiscover=False, access_type=DELEGATE, default_timezone=BERLIN
    )
    Task.deregister("resource_name")


def _task(account: Account, **fields) -> Task:
    task = Task(account=account, folder=account.tasks, **fields)
    task.save()
    return task


def test_create_read_update_delete_a_task(account: Account) -> None:
    task = _task(
        account,
        subject="File the tax return",
        body="Forms are in the drawer",
        start_date=dt.date(2026, 4, 1),
        due_date=dt.date(2026, 4, 30),
        importance="High",
        categories=["Home"],
        sensitivity="Private",
        status="InProgress",
        percent_complete=Decimal(20),
        resource_name="tax.ics",
    )
    back = account.tasks.get(id=task.id)
    assert back.subject == "File the tax return"
    assert back.body == "Forms are in the drawer"
    assert (back.start_date, back.due_date) == (dt.date(2026, 4, 1), dt.date(2026, 4, 30))
    assert (back.importance, back.categories, back.sensitivity) == ("High", ["Home"], "Private")
    assert (back.status, back.percent_complete, back.status_description) == ("InProgress", 20, "In Progress")
    assert back.is_complete is False and back.is_recurring is False
    assert back.resource_name == "tax.ics"
    assert back.item_class == "IPM.Task"
    assert back.datetime_created is not None and back.last_modified_time is not None

    back.subject = "File the tax return (2025)"
    back.due_date = dt.date(2026, 5, 15)
    back.resource_name = "tax-2025.ics"
    back.save(update_fields=["subject", "due_date", "resource_name"])
    again = account.tasks.get(id=task.id)
    assert again.changekey != back.changekey or again.changekey != task.changekey
    assert (again.subject, again.due_date, again.resource_name) == (
        "File the tax return (2025)",
        dt.date(2026, 5, 15),
        "tax-2025.ics",
    )

    again.delete()
    with pytest.raises(ErrorItemNotFound):
        account.tasks.get(id=task.id)


def test_find_tasks_in_the_tasks_folder(account: Account) -> None:
    _task(account, subject="Buy milk", due_date=dt.date(2026, 2, 1))
    _task(account, subject="Call the bank")
    found = {t.subject: t for t in account.tasks.all() if t.subject in ("Buy milk", "Call the bank")}
    assert set(found) == {"Buy milk", "Call the bank"}
    assert all(isinstance(t, Task) for t in found.values())
    assert found["Buy milk"].due_date == dt.date(2026, 2, 1)
    assert [t.subject for t in account.tasks.filter(subject="Buy milk")] == ["Buy milk"]


def test_completing_a_task_sets_percent_and_complete_date(account: Account) -> None:
    task = _task(account, subject="Water the plants")
    task.complete()
    back = account.tasks.get(id=task.id)
    assert (back.status, back.percent_complete, back.is_complete) == ("Completed", 100, True)
    assert back.complete_date is not None
    assert abs(back.complete_date - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=5)
    back.status, back.percent_complete = "NotStarted", Decimal(0)
    back.save(update_fields=["status", "percent_complete"])
    reopened = account.tasks.get(id=task.id)
    assert (reopened.status, reopened.complete_date, reopened.is_complete) == ("NotStarted", None, False)


def test_reminder_fields_round_trip(account: Account) -> None:
    due_by = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)
    task = _task(account, subject="Renew passport", reminder_is_set=True, reminder_due_by=due_by)
    back = account.tasks.get(id=task.id)
    assert back.reminder_is_set is True
    assert back.reminder_due_by == due_by


def test_sync_task_folder_items(account: Account) -> None:
    folder = account.tasks
    list(folder.sync_items())
    state = folder.item_sync_state
    task = _task(account, subject="Synced")
    created = list(folder.sync_items(sync_state=state))
    assert [(kind, item.id) for kind, item in created] == [("create", task.id)]
    state = folder.item_sync_state
    task.subject = "Synced (renamed)"
    task.save(update_fields=["subject"])
    task.delete()
    changes = list(folder.sync_items(sync_state=state))
    assert [kind for kind, _ in changes] == ["delete"]


def test_task_sub_folders(account: Account) -> None:
    folder = Tasks(parent=account.tasks, name="Garden")
    folder.save()
    assert folder.folder_class == "IPF.Task"
    children = {c.name: c for c in account.tasks.children}
    assert isinstance(children["Garden"], Tasks)
    task = Task(account=account, folder=children["Garden"], subject="Mow the lawn")
    task.save()
    assert [t.subject for t in children["Garden"].all()] == ["Mow the lawn"]
    folder.name = "Garden and yard"
    folder.save(update_fields=["name"])
    assert "Garden and yard" in {c.name for c in account.tasks.children}
    folder.delete()
    assert "Garden and yard" not in {c.name for c in account.tasks.children}
    with pytest.raises(ErrorDeleteDistinguishedFolder):
        account.tasks.delete()


def test_recurring_task_round_trips(account: Account) -> None:
    recurrence = TaskRecurrence(
        pattern=WeeklyPattern(interval=1, weekdays=["Monday"], first_day_of_week="Monday"),
        start=dt.date(2026, 3, 2),
        number=5,
    )
    task = _task(
        account,
        subject="Take out the bins",
        start_date=dt.date(2026, 3, 2),
        due_date=dt.date(2026, 3, 2),
        recurrence=recurrence,
    )
    back = account.tasks.get(id=task.id)
    assert back.is_recurring is True
    assert back.recurrence.pattern == recurrence.pattern
    assert back.recurrence.boundary.start == dt.date(2026, 3, 2)
    assert back.recurrence.boundary.number == 5


@pytest.mark.parametrize(
    "pattern",
    [DailyRegeneration(interval=3), WeeklyRegeneration(interval=2), MonthlyRegeneration(interval=1)],
    ids=lambda p: type(p).__name__,
)
def test_regenerating_patterns_round_trip(account: Account, pattern) -> None:
    task = _task(
        account,
        subject="Regenerating",
        due_date=dt.date(2026, 1, 10),
        recurrence=TaskRecurrence(pattern=pattern, start=dt.date(2026, 1, 10)),
    )
    back = account.tasks.get(id=task.id)
    assert back.recurrence.pattern == pattern
    assert back.recurrence.boundary.start == dt.date(2026, 1, 10)


def test_completing_a_recurring_task_keeps_a_completed_copy_and_moves_on(account: Account) -> None:
    recurrence = TaskRecurrence(
        pattern=WeeklyPattern(interval=1, weekdays=["Monday"], first_day_of_week="Monday"),
        start=dt.date(2026, 3, 2),
        number=3,
    )
    task = _task(
        account,
        subject="Weekly report",
        start_date=dt.date(2026, 3, 1),
        due_date=dt.date(2026, 3, 2),
        recurrence=recurrence,
    )
    task.complete()
    mine = [t for t in account.tasks.all() if t.subject == "Weekly report"]
    assert len(mine) == 2
    done = next(t for t in mine if t.id != task.id)
    assert (done.status, done.is_recurring, done.due_date) == ("Completed", False, dt.date(2026, 3, 2))
    assert done.complete_date is not None
    moved = account.tasks.get(id=task.id)
    assert (moved.status, moved.percent_complete, moved.is_recurring) == ("NotStarted", 0, True)
    assert (moved.start_date, moved.due_date) == (dt.date(2026, 3, 8), dt.date(2026, 3, 9))
    assert moved.recurrence.boundary.start == dt.date(2026, 3, 9)
    assert moved.recurrence.boundary.number == 2

    moved.complete()  # the second of three
    moved = account.tasks.get(id=task.id)
    assert moved.due_date == dt.date(2026, 3, 16) and moved.recurrence.boundary.number == 1
    moved.complete()  # the last one: the task itself is done and recurs no more
    last = account.tasks.get(id=task.id)
    assert (last.status, last.is_recurring) == ("Completed", False)
    assert len([t for t in account.tasks.all() if t.subject == "Weekly report"]) == 3


def test_completing_a_regenerating_task_counts_from_the_completion_date(account: Account) -> None:
    task = _task(
        account,
        subject="Descale the kettle",
        due_date=dt.date(2025, 1, 10),
        recurrence=TaskRecurrence(pattern=DailyRegeneration(interval=10), start=dt.date(2025, 1, 10)),
    )
    task.complete()
    moved = account.tasks.get(id=task.id)
    today = dt.datetime.now(BERLIN).date()
    assert moved.due_date == today + dt.timedelta(days=10)
    assert moved.status == "NotStarted" and moved.is_recurring


def test_demo_seed_has_tasks_of_every_kind(account: Account) -> None:
    tasks = {t.subject: t for t in account.tasks.all()}
    recurring = tasks["Water the office plants"]
    assert recurring.is_recurring and recurring.due_date.weekday() == 4  # a Friday
    assert isinstance(tasks["Back up the laptop"].recurrence.pattern, WeeklyRegeneration)
    done = tasks["Book flights for the Berlin conference"]
    assert (done.status, done.is_complete, done.percent_complete) == ("Completed", True, 100)
    assert done.complete_date is not None
    reminded = tasks["Submit the expense report"]
    assert reminded.reminder_is_set and reminded.reminder_due_by is not None
    assert (reminded.status, reminded.percent_complete) == ("InProgress", 50)
    errands = next(c for c in account.tasks.children if c.name == "Errands")
    assert isinstance(errands, Tasks)
    assert {t.subject for t in errands.all()} == {"Pick up the dry cleaning", "Buy a birthday present"}


def test_a_whole_save_of_a_fetched_recurring_task_changes_only_what_changed(account: Account) -> None:
    task = next(t for t in account.tasks.all() if t.subject == "Water the office plants")
    before = (task.due_date, task.start_date, task.recurrence)
    task.subject = "Water the office plants (and the cactus)"
    task.save()  # exchangelib sends every field, and deletes the empty ones
    back = account.tasks.get(id=task.id)
    assert back.subject == "Water the office plants (and the cactus)"
    assert (back.due_date, back.start_date, back.recurrence) == before
    assert (back.status, back.is_recurring) == ("NotStarted", True)
    assert len([t for t in account.tasks.all() if t.subject.startswith("Water the office plants")]) == 1


def test_stats_count_tasks_apart_from_calendar_items(account: Account, emulator: EmulatorServer) -> None:
    before = emulator.stats()["calendars"]["alice@example.com"]
    assert before["tasks"] == 6  # the demo's four in Tasks and two in Errands
    _task(account, subject="One more")
    after = emulator.stats()["calendars"]["alice@example.com"]
    assert (after["tasks"], after["items"]) == (7, before["items"])
