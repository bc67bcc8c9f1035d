"""Task lists: the VTODO resources of a task folder (IPF.Task), read and written as EWS Task items.

The item index (:mod:`gateway.ews.index`) names tasks as it names events (SyncFolderItems through
:mod:`.tracking`); the resource's UID is the task's ``CalDAVUid`` (EWS tasks have none), and the index's
row decides name and UID of a completed occurrence Exchange copied from a recurring task. Round trips:

- a time range (a month view): one FindItem (ids and change keys) and one batched GetItem; a
  SyncFolderItems too only when FindItem shows a task the index does not know yet. An EWS task has no
  CalendarView, so every task is read and the protocol layer applies RFC 4791 §9.9's VTODO table;
- GET / multiget: batched GetItem (SyncFolderItems first only for an unknown name);
- PUT: SyncFolderItems only for an unknown name, then CreateItem; or GetItem + UpdateItem;
- DELETE: DeleteItem (GetItem first only for If-Match).

A recurring task completed in Outlook is Exchange's doing: it keeps the completed occurrence as a
separate, completed task and moves the recurring one on to its next occurrence. After the next sync a
client sees its resource again with the next DTSTART/DUE, and one new resource (``<name>-<hash>.ics``, UID
``<uid>-<hash>``): the completed occurrence. A PUT completing the recurring task itself (RFC 5545: the
whole series) is one UpdateItem that completes it and ends its recurrence; a PUT completing occurrences
inside the task (RECURRENCE-ID overrides, :mod:`gateway.ews.mapping.task_instances`) has the task moved on
by the PUT itself. Either way the client keeps its one resource.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime

from exchangelib import Q, Task
from exchangelib.folders import Folder
from exchangelib.folders.collections import FolderCollection
from exchangelib.items import ALWAYS_OVERWRITE, ID_ONLY, NEVER_OVERWRITE, SHALLOW
from exchangelib.properties import ItemId

from gateway.caldav.backend import (
    CalendarObject,
    NotFound,
    PreconditionFailed,
    PutResult,
    UidConflict,
)
from gateway.ews.backend import replay
from gateway.ews.backend.calls import EwsCalls, raise_first_error
from gateway.ews.backend.reads import fetch_items
from gateway.ews.backend.records import MailboxCalendar
from gateway.ews.backend.tracking import ChangeTracker
from gateway.ews.exchange import CALDAV_FINGERPRINT, CALDAV_NAME, CALDAV_RESIDUAL, CALDAV_UID
from gateway.ews.index import IndexedItem, ItemChange, ItemIndex
from gateway.ews.mapping.task_writer import to_vtodo
from gateway.ews.mapping.tasks import TASK_READ_FIELDS, TASK_WRITE_FIELDS, TaskResource, from_vtodo

READ_FIELDS = [*TASK_READ_FIELDS, CALDAV_NAME, CALDAV_RESIDUAL, CALDAV_UID]
WRITE_FIELDS = [*TASK_WRITE_FIELDS, CALDAV_RESIDUAL, CALDAV_FINGERPRINT, CALDAV_UID]
_REQUIRED = {f.name for f in Task.FIELDS if f.is_required or f.is_required_after_save}
INLINE_BODY_CHARS = 16_384  # larger bodies are mapped off the event loop


class TaskLists:
    """Reads and writes of the tasks of task folders."""

    def __init__(self, calls: EwsCalls, index: ItemIndex, tracker: ChangeTracker, *, default_tz: str) -> None:
        self._calls = calls
        self._index = index
        self._tracker = tracker
        self._default_tz = default_tz

    # --- reads ----------------------------------------------------------------------------------

    async def query(
        self, cal: MailboxCalendar, start: datetime | None, end: datetime | None, with_data: bool
    ) -> list[CalendarObject]:
        """Every task (the protocol layer filters by RFC 4791 §9.9): FindItem + GetItem with data,
        SyncFolderItems without."""
        if not with_data:
            return await self._tracker.objects(cal)
        folder = cal.folder
        found = await self._calls.run(cal.account, "FindItem", lambda: _find_ids(folder))
        rows = {row.item_id: row for row in await self._index.items(cal.key)}
        if any(item_id not in rows for item_id in found):
            await self._tracker.refresh(cal)  # a task made elsewhere since the last sync: name it first
            rows = {row.item_id: row for row in await self._index.items(cal.key)}
        return await self._render(cal, [rows[i] for i in found if i in rows])

    async def get(self, cal: MailboxCalendar, names: Sequence[str]) -> dict[str, CalendarObject | None]:
        """Tasks by name: the index gives their ItemIds (a SyncFolderItems first for a name it lacks)."""
        located = await self._tracker.locate(cal, names)
        rendered = {o.name: o for o in await self._render(cal, list(located.values()))}
        return {name: rendered.get(name) for name in names}

    async def _render(self, cal: MailboxCalendar, rows: list[IndexedItem]) -> list[CalendarObject]:
        """One batched GetItem of the rows' tasks, each rendered under the index's name and UID."""
        if not rows:
            return []
        ids = [ItemId(row.item_id) for row in rows]
        fetched = await self._calls.run(
            cal.account, "GetItem", lambda: fetch_items(cal.folder, ids, READ_FIELDS)
        )
        out = []
        for row, task in zip(rows, fetched, strict=True):
            if task is None:
                continue
            if row.uid and row.uid != (task.caldav_uid or row.uid):
                task.caldav_uid = row.uid  # a completed occurrence Exchange copied: its own UID
            out.append(CalendarObject(row.name, task.changekey, to_vtodo(task, task.caldav_residual)))
        return out

    # --- writes ---------------------------------------------------------------------------------

    async def put(
        self, cal: MailboxCalendar, name: str, ical: str, if_match: str | None, if_none_match: bool
    ) -> PutResult:
        """CreateItem, or GetItem + UpdateItem (``ConflictResolution=NeverOverwrite`` with the client's
        ETag as the ChangeKey, so Exchange itself checks If-Match)."""
        resource = await _parse(ical, self._default_tz)
        fingerprint = replay.fingerprint(ical)
        await self._tracker.creates_recorded(cal)
        existing, holder = await self._index.by_name_and_uid(cal.key, name, resource.uid)
        if existing is None:
            await self._tracker.refresh(cal)
            existing, holder = await self._index.by_name_and_uid(cal.key, name, resource.uid)
        if existing is not None and existing.uid is not None and existing.uid != resource.uid:
            raise UidConflict(
                f"This resource holds the task with UID {existing.uid!r}; a PUT cannot change it to "
                f"{resource.uid!r}. Store the new task under a new name.",
                name,
            )
        if holder is not None and (existing is None or holder.item_id != existing.item_id):
            raise UidConflict(
                f"The UID {resource.uid!r} is already used by another task in this list.", holder.name
            )
        if existing is None:
            if if_match:
                raise PreconditionFailed("The resource does not exist, so If-Match cannot hold.")
            await self._create(cal, name, resource, fingerprint)
            return PutResult(etag=None, created=True)
        if if_none_match:
            if await self._holds(cal, existing, fingerprint):
                return PutResult(etag=None, created=True)  # a retry of the create whose answer was lost
            raise PreconditionFailed("A resource with this name already exists (If-None-Match: *).")
        await self._update(cal, existing, resource, fingerprint, if_match)
        return PutResult(etag=None, created=False)

    async def _holds(self, cal: MailboxCalendar, existing: IndexedItem, fingerprint: str) -> bool:
        """Whether the task was last written from this very body (docs/WRITES.md: a retried PUT)."""
        current = await self._calls.run(
            cal.account,
            "GetItem",
            lambda: fetch_items(cal.folder, [ItemId(existing.item_id)], [CALDAV_FINGERPRINT]),
        )
        return current[0] is not None and current[0].caldav_fingerprint == fingerprint

    async def _create(
        self, cal: MailboxCalendar, name: str, resource: TaskResource, fingerprint: str
    ) -> None:
        task = resource.task
        task.account, task.folder = cal.account, cal.folder
        task.caldav_name, task.caldav_uid, task.caldav_fingerprint = name, resource.uid, fingerprint
        task.caldav_residual = resource.residual
        await self._calls.run(cal.account, "CreateItem", lambda: task.save())
        await self._tracker.record_created(cal, ItemChange(task.id, task.changekey, name, resource.uid))

    async def _update(
        self,
        cal: MailboxCalendar,
        existing: IndexedItem,
        resource: TaskResource,
        fingerprint: str,
        if_match: str | None,
    ) -> None:
        task = resource.task
        task.account, task.folder = cal.account, cal.folder
        # the name too: a completed occurrence Exchange copied gets the name and UID it is shown with
        task.caldav_name, task.caldav_uid, task.caldav_fingerprint = existing.name, resource.uid, fingerprint
        task.caldav_residual = resource.residual
        if if_match:
            task.id, task.changekey = existing.item_id, if_match
        else:
            current = await self._calls.run(
                cal.account,
                "GetItem",
                lambda: fetch_items(cal.folder, [ItemId(existing.item_id)], ["changekey"]),
            )
            if current[0] is None:
                await self._tracker.record_deleted(cal, existing.item_id)
                raise PreconditionFailed("The task vanished in Exchange meanwhile; read the list again.")
            task.id, task.changekey = existing.item_id, current[0].changekey
        # a field Exchange requires (ReminderDueBy, …) cannot be deleted: left as it is when the PUT has none
        fields = [
            f for f in [*WRITE_FIELDS, CALDAV_NAME] if getattr(task, f) is not None or f not in _REQUIRED
        ]
        resolution = NEVER_OVERWRITE if if_match else ALWAYS_OVERWRITE
        await self._calls.run(
            cal.account,
            "UpdateItem",
            lambda: task.save(update_fields=fields, conflict_resolution=resolution),
        )

    async def delete(self, cal: MailboxCalendar, name: str, if_match: str | None) -> None:
        """DeleteItem (GetItem of the change key first only for If-Match); indexed at once."""
        await self._tracker.creates_recorded(cal)
        entry = await self._index.by_name(cal.key, name)
        if entry is None:
            await self._tracker.refresh(cal)
            entry = await self._index.by_name(cal.key, name)
        if entry is None:
            raise NotFound("No such task.")
        if if_match:
            current = await self._calls.run(
                cal.account,
                "GetItem",
                lambda: fetch_items(cal.folder, [ItemId(entry.item_id)], ["changekey"]),
            )
            if current[0] is None:
                await self._tracker.record_deleted(cal, entry.item_id)
                raise NotFound("No such task.")
            if current[0].changekey != if_match:
                raise PreconditionFailed("The task was changed since you read it (ETag mismatch).")
        account = cal.account
        results = await self._calls.run(
            account, "DeleteItem", lambda: list(account.bulk_delete([ItemId(entry.item_id)]))
        )
        raise_first_error(results)
        await self._tracker.record_deleted(cal, entry.item_id)


def _find_ids(folder: Folder) -> list[str]:
    """FindItem of the folder's tasks, ids only (blocking; runs in the pool)."""
    items = FolderCollection(account=folder.account, folders=[folder]).find_items(
        q=Q(), shape=ID_ONLY, depth=SHALLOW
    )
    found = []
    for item in items:
        if isinstance(item, Task):
            found.append(item.id)
        elif isinstance(item, tuple):  # (id, changekey), as exchangelib gives an IdOnly answer
            found.append(item[0])
    return found


async def _parse(ical: str, default_tz: str) -> TaskResource:
    """The mapping of a PUT body; off the event loop when it is large."""
    if len(ical) <= INLINE_BODY_CHARS:
        return from_vtodo(ical, default_tz=default_tz)
    return await asyncio.to_thread(from_vtodo, ical, default_tz=default_tz)
