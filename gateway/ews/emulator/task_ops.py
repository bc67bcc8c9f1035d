"""CreateItem and UpdateItem of tasks (``t:Task``); item_ops.py hands them here by element / item type.

UpdateItem's Set/Append/DeleteItemField loop is item_ops' one, given the task fields of task_fields.py.

GetItem, FindItem, DeleteItem and SyncFolderItems need nothing of their own: tasks are stored items of
their folder like calendar items, and ``items.item_xml`` writes them as ``t:Task``.
"""

from __future__ import annotations

import copy
from datetime import datetime, tzinfo

from lxml import etree

from gateway.ews.emulator.model import Folder, StoreError
from gateway.ews.emulator.store import MailboxStore
from gateway.ews.emulator.task_fields import apply_task
from gateway.ews.emulator.tasks import TASK_CLASS, Task, add_task, commit_task, new_task, settle


def create_task(
    box: MailboxStore, folder: Folder | None, elem: etree._Element, now: datetime, zone: tzinfo
) -> Task:
    """CreateItem of a ``t:Task`` into ``folder`` (default: the mailbox's distinguished Tasks folder)."""
    target = folder if folder is not None else box.distinguished_folder("tasks")
    if target.folder_class != TASK_CLASS:
        raise StoreError("ErrorCannotCreateTaskInNonTaskFolder", "Tasks can only be created in task folders.")
    task = new_task(box, target.folder_id, now)
    before = copy.deepcopy(task)
    apply_task(task, elem, zone=zone)
    settle(task, before, now)
    # A recurring task created completed is stored as written: completing one (tasks.commit_task) is a
    # change of an existing task.
    return add_task(box, task)


def update_task(box: MailboxStore, before: Task, task: Task, now: datetime) -> None:
    """UpdateItem of a task, once item_ops has applied the request's changes to ``task``, a copy of the
    stored ``before``: Exchange's status and recurrence rules, then the store."""
    settle(task, before, now)
    commit_task(box, task, now)
