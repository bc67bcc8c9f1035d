"""Seeds' ``task_lists`` part (a mailbox's task folders and their tasks) and the demo's tasks.

The format is documented in docs/EMULATOR-CALENDARS.md ("Tasks"). As for events, dates may be ISO dates or
whole-day offsets from the seed's today; a task's dates are local midnights of the mailbox's time zone,
as Outlook writes them.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

from gateway.ews.emulator.model import zone_for
from gateway.ews.emulator.seed import recurrence, resolve_date, seed_today
from gateway.ews.emulator.store import CalendarStore, MailboxStore
from gateway.ews.emulator.tasks import REGENERATIONS, TASK_CLASS, Task, TaskRecurrence, add_task, new_task


def load_tasks(store: CalendarStore, seed: dict, now: datetime) -> None:
    """Fill every seeded mailbox's task folders: the ``primary`` list is the distinguished Tasks folder,
    others are created under it."""
    for mailbox in seed.get("mailboxes", []):
        box = store.mailbox(mailbox["email"])
        today = seed_today(seed, now, box.time_zone)
        tasks_folder = box.distinguished_folder("tasks")
        for task_list in mailbox.get("task_lists", []):
            folder = (
                tasks_folder
                if task_list.get("primary")
                else box.create_folder(tasks_folder.folder_id, task_list["name"], TASK_CLASS)
            )
            for data in task_list.get("tasks", []):
                add_seed_task(box, folder.folder_id, data, today, now)


def add_seed_task(
    box: MailboxStore, folder_id: str, data: dict[str, Any], today: date, now: datetime
) -> Task:
    """Store one seed task."""
    zone = zone_for(box.time_zone)

    def local_midnight(key: str) -> datetime | None:
        if key not in data:
            return None
        return datetime.combine(resolve_date(data[key], today), time(), zone)

    task = new_task(box, folder_id, now)
    task.subject = data.get("subject", "")
    task.body = data.get("body", "")
    task.importance = data.get("importance", "Normal")
    task.sensitivity = data.get("sensitivity", "Normal")
    task.categories = list(data.get("categories", []))
    task.start_date, task.due_date = local_midnight("start"), local_midnight("due")
    task.status = data.get("status", "NotStarted")
    task.percent_complete = float(data.get("percent", 100 if task.status == "Completed" else 0))
    if task.status == "Completed":
        done = local_midnight("completed") or now
        task.complete_date = done.astimezone(UTC)
    if "reminder" in data:  # {"date": offset, "time": "HH:MM"}, local
        when = datetime.combine(
            resolve_date(data["reminder"].get("date", 0), today),
            time.fromisoformat(data["reminder"].get("time", "09:00")),
            zone,
        )
        task.reminder_is_set, task.reminder_due_by = True, when.astimezone(UTC)
    if "recurrence" in data:
        task.recurrence = _task_recurrence(data["recurrence"], task, today)
    return add_task(box, task)


def _task_recurrence(data: dict[str, Any], task: Task, today: date) -> TaskRecurrence:
    """An event-style recurrence (seed.py's keys), or ``{"regenerate": "Weekly", "interval": 2}``."""
    anchor = task.due_date or task.start_date
    first = anchor.date() if anchor is not None else today
    regenerate = data.get("regenerate")
    if regenerate is not None and regenerate not in REGENERATIONS:
        raise ValueError(f"seed: regenerate must be one of {REGENERATIONS}")
    rule = recurrence(data, first, today, pattern="Daily" if regenerate else None)
    return TaskRecurrence(rule, regenerate)


def _next(today: date, weekday: int) -> int:
    """Day offset from ``today`` of the next ``weekday`` (0 = Monday), today included."""
    return (weekday - today.weekday()) % 7


def demo_task_lists(today: date) -> list[dict[str, Any]]:
    """The demo's tasks: in Tasks a recurring, a regenerating, a completed and a reminded one; in the
    sub-folder "Errands" two more."""
    friday = _next(today, 4)
    return [
        {
            "name": "Tasks",
            "primary": True,
            "tasks": [
                {
                    "subject": "Submit the expense report",
                    "due": 2,
                    "importance": "High",
                    "status": "InProgress",
                    "percent": 50,
                    "reminder": {"date": 2, "time": "09:00"},
                    "body": "Receipts are in the shared folder.",
                },
                {
                    "subject": "Water the office plants",
                    "start": friday,
                    "due": friday,
                    "recurrence": {"pattern": "Weekly", "days_of_week": ["Friday"]},
                    "categories": ["Office"],
                },
                {
                    "subject": "Back up the laptop",
                    "due": 3,
                    "recurrence": {"regenerate": "Weekly", "interval": 2},
                },
                {
                    "subject": "Book flights for the Berlin conference",
                    "start": -6,
                    "due": -2,
                    "status": "Completed",
                    "completed": -3,
                },
            ],
        },
        {
            "name": "Errands",
            "tasks": [
                {"subject": "Pick up the dry cleaning", "due": 1},
                {
                    "subject": "Buy a birthday present",
                    "due": 6,
                    "sensitivity": "Private",
                    "categories": ["Personal"],
                },
            ],
        },
    ]
