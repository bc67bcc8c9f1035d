"""CreateItem and UpdateItem of tasks (``t:Task``); item_ops.py hands them here by element / item type.

GetItem, FindItem, DeleteItem and SyncFolderItems need nothing of their own: tasks are stored items of
their folder like calendar items, and ``items.item_xml`` writes them as ``t:Task``.
"""

from __future__ import annotations

import copy
from datetime import datetime, tzinfo

from lxml import etree

from gateway.ews.emulator import mapi
from gateway.ews.emulator.model import Folder, StoreError
from gateway.ews.emulator.restrictions import elements
from gateway.ews.emulator.store import MailboxStore
from gateway.ews.emulator.task_fields import apply_task, task_field
from gateway.ews.emulator.tasks import TASK_CLASS, Task, add_task, commit_task, new_task, settle
from gateway.ews.emulator.xsd import local


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


def update_task(
    box: MailboxStore, target: Task, updates: etree._Element | None, now: datetime, zone: tzinfo
) -> Task:
    """UpdateItem of a task: Set/Append/DeleteItemField, then Exchange's status and recurrence rules.

    The changes are made on a copy, so that a refused update leaves the stored task untouched.
    """
    task = copy.deepcopy(target)
    for update in elements(updates):
        parts = elements(update)
        kind = local(update)
        if kind in ("SetItemField", "AppendToItemField"):
            apply_task(task, parts[1], append=kind == "AppendToItemField", zone=zone)
        elif kind == "DeleteItemField":
            _delete_field(task, parts[0])
        else:
            raise StoreError("ErrorInvalidPropertyUpdateSentMessage", f"{kind} is not supported.")
    settle(task, target, now)
    commit_task(box, task, now)
    return task


def _delete_field(task: Task, path: etree._Element) -> None:
    if local(path) == "ExtendedFieldURI":
        mapi.delete_item(task, dict(path.attrib))  # type: ignore[arg-type]  # reads extended / subject / body
        return
    declared = task_field(path.get("FieldURI", ""))
    # Properties the store does not model have nothing to delete (exchangelib deletes every empty field).
    if declared is not None:
        declared.delete(task)  # type: ignore[arg-type]
