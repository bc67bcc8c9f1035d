"""Tasks in the emulator's store (types.xsd ``TaskType``): the data, task recurrence, and completion.

A mailbox's task folders (``IPF.Task``: the distinguished ``tasks`` folder and folders under it) hold
:class:`Task` items in the same folders, journals and id space as calendar items, so GetItem, DeleteItem,
SyncFolderItems and the folder operations treat them alike. What differs is here and in
``task_fields.py`` (their XML).

Exchange's rules for a task's state, as Outlook shows them: Status Completed means PercentComplete 100
and a CompleteDate (the time of completion when the client gives none); PercentComplete 100 means
Completed. Completing a *recurring* task keeps the completed occurrence as a separate, non-recurring,
completed task and moves the recurring task on to its next occurrence, with new StartDate/DueDate:
for a pattern (DailyRecurrence …) the next pattern date after the current due date, for a
regenerating pattern (DailyRegeneration …: "the interval since the task was completed", Microsoft's
EWS reference) the completion date plus the interval. The emulator's choice of what the recurring
task's range then says: it describes the remaining occurrences (StartDate moves to the new
occurrence, a NumberOfOccurrences counts one less); after the last occurrence the task itself stays
completed and is no longer recurring. That the copy is the completed instance and the original goes on
is MAPI's rule (PidLidTaskDeadOccurrence, "set to TRUE on the copy, which is the completed instance").
Deleting only the current occurrence (DeleteItem ``AffectedTaskOccurrences="SpecifiedOccurrenceOnly"``)
moves the task on the same way, without a completed copy.
"""

from __future__ import annotations

import calendar
import copy
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from gateway.ews.emulator.model import ExtendedValue, StoreError, zone_for
from gateway.ews.emulator.recurrence import Recurrence
from gateway.ews.emulator.store import MailboxStore

TASK_CLASS = "IPF.Task"
TASK_STATUSES = ("NotStarted", "InProgress", "Completed", "WaitingOnOthers", "Deferred")
# What Exchange answers as StatusDescription (the status as Outlook names it).
STATUS_DESCRIPTIONS = {
    "NotStarted": "Not Started",
    "InProgress": "In Progress",
    "Completed": "Completed",
    "WaitingOnOthers": "Waiting on someone else",
    "Deferred": "Deferred",
}
REGENERATIONS = ("Daily", "Weekly", "Monthly", "Yearly")


@dataclass
class TaskRecurrence:
    """``TaskRecurrenceType``: a calendar pattern plus range (``rule``), or a regenerating pattern.

    For a regenerating pattern ``regenerate`` is its unit (Daily, Weekly, Monthly, Yearly) and
    ``rule`` holds its interval and the range; the pattern part of ``rule`` is then not used.
    """

    rule: Recurrence
    regenerate: str | None = None


@dataclass
class Task:
    """A task item (types.xsd ``TaskType``)."""

    item_id: str
    change_key: str
    folder_id: str
    subject: str = ""
    body: str = ""
    body_type: str = "Text"
    sensitivity: str = "Normal"
    importance: str = "Normal"
    categories: list[str] = field(default_factory=list)
    reminder_is_set: bool = False
    reminder_due_by: datetime | None = None
    reminder_minutes: int = 0
    # StartDate and DueDate keep the offset they were written with, so that their date is the one the
    # client meant whatever its zone (exchangelib writes midnight UTC, others local midnight).
    start_date: datetime | None = None
    due_date: datetime | None = None
    complete_date: datetime | None = None
    status: str = "NotStarted"
    percent_complete: float = 0.0
    recurrence: TaskRecurrence | None = None
    change_count: int = 1
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    modified: datetime = field(default_factory=lambda: datetime.now(UTC))
    extended: dict[tuple[tuple[str, str], ...], ExtendedValue] = field(default_factory=dict)
    created_seq: int = 0
    modified_seq: int = 0
    # What the store's item-generic code (DeleteItem, touch, mapi's maintained properties) reads of any
    # stored item: a task is never an occurrence, a meeting or a series.
    item_class: str = "IPM.Task"
    master_id: str | None = None
    item_type: str = "Single"
    is_cancelled: bool = False
    my_response_type: str = "Organizer"

    @property
    def is_meeting(self) -> bool:
        return False

    @property
    def is_complete(self) -> bool:
        return self.status == "Completed"


def new_task(box: MailboxStore, folder_id: str, now: datetime) -> Task:
    """A blank task in a folder of ``box``, not yet stored (fill it, then :func:`add_task`)."""
    box.folder(folder_id)
    return Task(box.ids.item_id(), box.ids.change_key(), folder_id, created=now, modified=now)


def add_task(box: MailboxStore, task: Task) -> Task:
    """Store a new task (CreateItem), journalled for SyncFolderItems like any item."""
    folder = box.folder(task.folder_id)
    task.created_seq = task.modified_seq = folder.bump()
    folder.items[task.item_id] = task
    box.item_folder[task.item_id] = folder.folder_id
    return task


def settle(task: Task, before: Task, now: datetime) -> None:
    """Make Status, PercentComplete and CompleteDate agree after a write, as Exchange does.

    What the request changed wins: a new Status sets the percentage, a new percentage the Status.
    """
    if not 0 <= task.percent_complete <= 100:
        raise StoreError("ErrorInvalidValueForProperty", "PercentComplete must be between 0 and 100.")
    if task.complete_date is not None and task.complete_date != before.complete_date:
        task.status = "Completed"
    if task.status != before.status:
        if task.status == "Completed":
            task.percent_complete = 100.0
        elif task.status == "NotStarted" or task.percent_complete >= 100:
            task.percent_complete = 0.0
    elif task.percent_complete != before.percent_complete:
        if task.percent_complete >= 100:
            task.status = "Completed"
        elif task.percent_complete > 0 and task.status in ("NotStarted", "Completed"):
            task.status = "InProgress"
        elif task.percent_complete == 0 and task.status == "Completed":
            task.status = "NotStarted"
    if task.status == "Completed":
        task.complete_date = task.complete_date or now
    else:
        task.complete_date = None
    if task.due_date and task.start_date and task.due_date < task.start_date:
        raise StoreError("ErrorInvalidValueForProperty", "DueDate is earlier than StartDate.")


def commit_task(box: MailboxStore, task: Task, now: datetime) -> Task | None:
    """Store an updated task (UpdateItem); a completed recurring task regenerates.

    Returns the separate completed task that completing a recurring task leaves behind, if any.
    """
    folder = box.folders[task.folder_id]
    done = None
    if task.recurrence is not None and task.is_complete:
        done = _complete_occurrence(box, task, now)
    task.change_count += 1
    folder.items[task.item_id] = task
    box.touch(task, now)
    return done


def _complete_occurrence(box: MailboxStore, task: Task, now: datetime) -> Task | None:
    """Split a completed recurring task: a completed copy, and the task moved to its next occurrence."""
    assert task.recurrence is not None and task.complete_date is not None
    completed_on = task.complete_date.astimezone(zone_for(box.time_zone)).date()
    moved = next_occurrence(task, completed_on)
    if moved is None:  # the last occurrence: the task itself is done
        task.recurrence = None
        return None
    done = copy.deepcopy(task)
    done.item_id, done.change_key = box.ids.item_id(), box.ids.change_key()
    done.recurrence, done.created, done.modified = None, now, now
    add_task(box, done)
    task.start_date, task.due_date, task.recurrence = moved
    task.status, task.percent_complete, task.complete_date = "NotStarted", 0.0, None
    if task.reminder_is_set and task.reminder_due_by is not None and task.due_date is not None:
        task.reminder_due_by += task.due_date - (done.due_date or task.due_date)
    return done


def delete_task(box: MailboxStore, task: Task, affected: str | None, now: datetime) -> None:
    """DeleteItem of a task: ``AffectedTaskOccurrences`` is required ("AllOccurrences" deletes the task,
    "SpecifiedOccurrenceOnly" skips a recurring task's current occurrence; its last one deletes it)."""
    if affected not in ("AllOccurrences", "SpecifiedOccurrenceOnly"):
        raise StoreError(
            "ErrorAffectedTaskOccurrencesRequired", "AffectedTaskOccurrences is required to delete a task."
        )
    if affected == "SpecifiedOccurrenceOnly" and task.recurrence is not None:
        moved = next_occurrence(task, now.astimezone(zone_for(box.time_zone)).date())
        if moved is not None:
            task.start_date, task.due_date, task.recurrence = moved
            task.change_count += 1
            box.touch(task, now)
            return
    box.delete(task.item_id, now)


def next_occurrence(
    task: Task, completed_on: date
) -> tuple[datetime | None, datetime | None, TaskRecurrence] | None:
    """StartDate, DueDate and remaining recurrence of a recurring task's next occurrence (None: no more)."""
    assert task.recurrence is not None
    rec = copy.deepcopy(task.recurrence)
    rule = rec.rule
    anchor = task.due_date or task.start_date
    current = anchor.date() if anchor is not None else rule.start_date
    if rec.regenerate is not None:
        following = _add(completed_on, rec.regenerate, rule.interval)
        if rule.range_type == "Numbered" and (rule.number_of_occurrences or 0) <= 1:
            return None
    else:
        dates = iter(d for d in rule.dates() if d > current)
        found = next(dates, None)
        if found is None:
            return None
        following = found
        if rule.range_type == "Numbered":
            passed = sum(1 for d in rule.dates() if d <= current)
            rule.number_of_occurrences = (rule.number_of_occurrences or 1) - passed + 1
    if rule.range_type == "EndDate" and rule.end_date is not None and following > rule.end_date:
        return None
    if rule.range_type == "Numbered":
        rule.number_of_occurrences = (rule.number_of_occurrences or 1) - 1
    shift = following - current
    rule.start_date = following
    start = task.start_date + shift if task.start_date is not None else None
    due = task.due_date + shift if task.due_date is not None else None
    return start, due, rec


def _add(day: date, unit: str, count: int) -> date:
    """``day`` plus ``count`` days, weeks, months or years (a month's end stays within the month)."""
    if unit == "Daily":
        return day + timedelta(days=count)
    if unit == "Weekly":
        return day + timedelta(weeks=count)
    months = count * (12 if unit == "Yearly" else 1)
    year, month = divmod(day.month - 1 + months, 12)
    year += day.year
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))
