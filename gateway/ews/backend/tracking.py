"""Change tracking: SyncFolderItems into the item index, and the ctag/sync-token made from it.

Each calendar's changes come from one SyncFolderItems (more only while Exchange says more
changes wait); the index (:mod:`gateway.ews.index`) numbers them, so the ctag is
``<epoch>-<seq>`` and the RFC 6578 sync-token is a URI ending in the same. The epoch changes
when Exchange forgets the SyncState, which invalidates every token issued before.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence

from exchangelib.folders import Folder
from exchangelib.folders.collections import FolderCollection, SyncCompleted

from gateway.caldav.backend import CalendarInfo, CalendarObject, ChangeSet, InvalidSyncToken
from gateway.common.stages import STAGES
from gateway.ews.backend.calls import EwsCalls
from gateway.ews.backend.records import MailboxCalendar
from gateway.ews.calendar_ids import derived_name, distinct_name, task_uid
from gateway.ews.exchange import CALDAV_NAME, CALDAV_UID
from gateway.ews.index import CalendarState, IndexedItem, ItemChange, ItemIndex

log = logging.getLogger(__name__)

SYNC_TOKEN_PREFIX = "http://exchange-caldav-gateway.invalid/sync/"
SYNC_PAGE = 512
UNSYNCED = "unsynced"  # the epoch shown for a calendar whose index was never built
# Syncs of one calendar whose answer another replica's write overtook before the sync holds the write
# lock across its EWS call (bounded, so a busy calendar cannot keep one replica re-asking forever).
SYNC_ATTEMPTS = 3


def sync_token(epoch: str, seq: int) -> str:
    """The RFC 6578 sync-token (a URI) of a calendar's state ``seq`` in ``epoch``."""
    return f"{SYNC_TOKEN_PREFIX}{epoch}-{seq}"


def parse_sync_token(token: str) -> tuple[str, int]:
    """(epoch, seq) of a token :func:`sync_token` issued; InvalidSyncToken for any other."""
    if not token.startswith(SYNC_TOKEN_PREFIX):
        raise InvalidSyncToken("This sync-token was not issued by this server.")
    epoch, _, seq = token[len(SYNC_TOKEN_PREFIX) :].rpartition("-")
    if not epoch or not seq.isdigit():
        raise InvalidSyncToken("This sync-token is malformed.")
    return epoch, int(seq)


class ChangeTracker:
    """Keeps each calendar's index up to date: SyncFolderItems, and the gateway's own creates and
    deletions at once (see gateway/ews/index.py for why the index converges)."""

    def __init__(self, calls: EwsCalls, index: ItemIndex) -> None:
        self._calls = calls
        self._index = index
        # calendar key -> creates still being indexed after their PUT was answered (see record_created)
        self._recording: dict[str, set[asyncio.Task[None]]] = {}

    async def refresh(self, cal: MailboxCalendar) -> tuple[str, int]:
        """One SyncFolderItems (more only while Exchange says more changes wait); returns (epoch, seq).

        One sync of a calendar at a time in this process (:meth:`ItemIndex.sync_lock`), but the lock
        shared by the replicas (:meth:`ItemIndex.write_lock`, a database connection) is held only
        around the write: under it the stored state is read again, and if anything wrote the
        calendar's index since this sync read it (another replica's sync, create or deletion), this
        answer is discarded and SyncFolderItems asked again from the newer state. An answer is thus
        only ever written on top of the state it was asked from, as when the lock was held throughout.
        After SYNC_ATTEMPTS such races the write lock is held across the EWS call as well.
        """
        async with STAGES.entering(self._index.sync_lock(cal.key), "index_lock"):
            for _ in range(SYNC_ATTEMPTS):
                state = await self._index.state(cal.key)
                try:
                    new_state, changes = await self._sync(cal, state.sync_state if state else None)
                except InvalidSyncToken:
                    async with STAGES.entering(self._index.write_lock(cal.key), "index_write_lock"):
                        if await self._index.state(cal.key) != state:
                            continue  # another replica advanced the state Exchange did not know
                        return await self._rebuild(cal)
                if state and new_state == state.sync_state and not changes and not state.provisional:
                    return state.epoch, state.seq  # nothing to write
                async with STAGES.entering(self._index.write_lock(cal.key), "index_write_lock"):
                    if await self._index.state(cal.key) != state:
                        continue
                    return await self._write(cal, state, new_state, changes)
            async with STAGES.entering(self._index.write_lock(cal.key), "index_write_lock"):
                return await self._refresh_locked(cal)

    async def _refresh_locked(self, cal: MailboxCalendar) -> tuple[str, int]:
        """A whole sync under the calendar's write lock (after races with other replicas)."""
        state = await self._index.state(cal.key)
        try:
            new_state, changes = await self._sync(cal, state.sync_state if state else None)
        except InvalidSyncToken:
            return await self._rebuild(cal)
        if state and new_state == state.sync_state and not changes and not state.provisional:
            return state.epoch, state.seq
        return await self._write(cal, state, new_state, changes)

    async def _rebuild(self, cal: MailboxCalendar) -> tuple[str, int]:
        """Exchange forgot our state: rebuild the index under a new epoch, old tokens become invalid.
        Runs under the write lock (the index is emptied first)."""
        await self._index.forget_calendar(cal.key)
        new_state, changes = await self._sync(cal, None)
        return await self._write(cal, None, new_state, changes)

    async def _sync(self, cal: MailboxCalendar, sync_state: str | None) -> tuple[str, list[ItemChange]]:
        return await self._calls.run(
            cal.account, "SyncFolderItems", lambda: _sync_folder(cal.folder, sync_state, cal.tasks)
        )

    async def _write(
        self, cal: MailboxCalendar, state: CalendarState | None, new_state: str, changes: list[ItemChange]
    ) -> tuple[str, int]:
        """Write a SyncFolderItems answer asked from ``state`` (None: from nothing); under the write lock.
        Provisional rows up to the state's number are judged (index.py)."""
        epoch = state.epoch if state else uuid.uuid4().hex
        if cal.tasks:
            changes = await self._distinct_tasks(cal, changes)
        else:
            changes = _dedupe_names(changes)
        seq = await self._index.apply(cal.key, new_state, changes, epoch, state.seq if state else 0)
        return epoch, seq

    async def _distinct_tasks(self, cal: MailboxCalendar, changes: list[ItemChange]) -> list[ItemChange]:
        """A new task whose name another live task holds gets a name and UID of its own.

        Completing a recurring task makes Exchange copy it, the gateway's properties included: the copy
        is the completed occurrence, the original moves on to the next one and keeps its resource."""
        named = [c for c in changes if c.name]
        if not named:
            return changes
        held = {
            name: row.item_id
            for name, row in (await self._index.by_names(cal.key, [c.name for c in named if c.name])).items()
        }
        out = []
        for c in changes:
            if c.name and c.uid and held.setdefault(c.name, c.item_id) != c.item_id:
                suffix = distinct_name("x.ics", c.item_id)[1:-4]  # "-" and the ItemId's short hash
                uid = c.uid if c.uid.endswith(suffix) else f"{c.uid}{suffix}"
                c = ItemChange(c.item_id, c.changekey, distinct_name(c.name, c.item_id), uid)
            out.append(c)
        return out

    async def locate(self, cal: MailboxCalendar, names: Sequence[str]) -> dict[str, IndexedItem]:
        """The index rows of ``names``; for a name it lacks, after the creates still being indexed here
        (read again even if the row was written meanwhile), then after one SyncFolderItems."""
        located = await self._index.by_names(cal.key, names)
        if any(name not in located for name in names):
            await self.creates_recorded(cal)
            located = await self._index.by_names(cal.key, names)
        if any(name not in located for name in names):
            await self.refresh(cal)
            located = await self._index.by_names(cal.key, names)
        return located

    async def known_state(self, cal: MailboxCalendar) -> tuple[str, int]:
        """(epoch, seq) as the index last recorded them, without asking Exchange."""
        state = await self._index.state(cal.key)
        return (state.epoch, state.seq) if state else (UNSYNCED, 0)

    async def objects(self, cal: MailboxCalendar) -> list[CalendarObject]:
        """Every object's name and ETag: one SyncFolderItems, then the index."""
        await self.refresh(cal)
        return [CalendarObject(i.name, i.changekey) for i in await self._index.items(cal.key)]

    async def change_set(
        self,
        cal: MailboxCalendar,
        info: CalendarInfo,
        epoch: str,
        seq: int,
        token: str | None,
        limit: int | None,
    ) -> ChangeSet:
        """RFC 6578 §3: what changed since ``token`` (everything without one), as of the state (epoch, seq)."""
        since = 0
        if token:
            token_epoch, since = parse_sync_token(token)
            if token_epoch != epoch or since > seq:
                raise InvalidSyncToken("This sync-token is no longer valid; start a fresh sync.")
        rows = await self._index.items(cal.key, since_seq=since, include_deleted=bool(token))
        # Changes another replica numbered after ``seq`` (while this request's sync asked Exchange) wait
        # for the next token: reported now under ``seq``, they would be reported again from it.
        rows = [r for r in rows if r.seq <= seq]
        truncated = limit is not None and len(rows) > limit
        if truncated:
            rows = rows[:limit]
            seq = rows[-1].seq if rows else since
        return ChangeSet(
            sync_token=sync_token(epoch, seq),
            changed=[CalendarObject(r.name, r.changekey) for r in rows if not r.deleted],
            deleted=[r.name for r in rows if r.deleted],
            truncated=truncated,
            calendar=info,
        )

    async def record_created(self, cal: MailboxCalendar, change: ItemChange) -> None:
        """Index a created item; in one process, while the PUT is answered.

        The client's GET of the new resource then finds it without a SyncFolderItems (it waits for
        this in :meth:`creates_recorded`), and the PUT does not wait for the database. When replicas
        share the index, the next request may go to another replica, which cannot wait for this one:
        the PUT is answered once the row is written (a few milliseconds, where the other replica
        would pay a SyncFolderItems). If the record fails, the next sync brings the item. (Occurrences
        written next may give a series a newer ChangeKey, which the next sync then records as one
        more change.)
        """

        async def record() -> None:
            async with STAGES.entering(self._index.lock(cal.key), "index_lock"):
                await self._index.record_created(cal.key, change)

        task = asyncio.create_task(record())
        pending = self._recording.setdefault(cal.key, set())
        pending.add(task)

        def done(finished: asyncio.Task[None]) -> None:
            pending.discard(finished)
            if not pending and self._recording.get(cal.key) is pending:
                del self._recording[cal.key]
            if not finished.cancelled() and finished.exception() is not None:
                log.warning(
                    "indexing a created item failed; the next sync brings it: %r", finished.exception()
                )

        task.add_done_callback(done)
        if self._index.shared:
            await asyncio.wait({task})  # not cancelled with the request, and its failure is only logged

    async def record_deleted(self, cal: MailboxCalendar, item_id: str) -> None:
        """Index at once that an item is gone from Exchange (deleted by the gateway, or found missing).

        Waits for creates still being indexed (the row to mark may be one of them) and takes the
        calendar's lock, so a sync that read the item before it went cannot write it back afterwards.
        """
        await self.creates_recorded(cal)
        async with STAGES.entering(self._index.lock(cal.key), "index_lock"):
            await self._index.record_deleted(cal.key, item_id)

    async def creates_recorded(self, cal: MailboxCalendar) -> bool:
        """Wait until this calendar's creates are indexed; whether any were still being indexed."""
        pending = self._recording.get(cal.key)
        if not pending:
            return False
        await asyncio.wait(set(pending))  # not cancelled with the waiting request
        return True

    async def drain(self) -> None:
        """Let every create still being indexed finish (at shutdown, before the database closes)."""
        pending = {task for tasks in self._recording.values() for task in tasks}
        if pending:
            await asyncio.wait(pending)


def _sync_folder(folder: Folder, sync_state: str | None, tasks: bool = False) -> tuple[str, list[ItemChange]]:
    """SyncFolderItems until IncludesLastItemInRange (blocking; runs in the pool). A task has no UID
    field: the gateway's CalDAVUid, or one derived from its ItemId (calendar_ids.task_uid)."""
    changes: list[ItemChange] = []
    new_state = sync_state
    try:
        for change_type, item in FolderCollection(account=folder.account, folders=[folder]).sync_items(
            sync_state=sync_state,
            only_fields=[CALDAV_UID, CALDAV_NAME] if tasks else ["uid", CALDAV_NAME],
            max_changes_returned=SYNC_PAGE,
        ):
            if change_type == "delete":
                changes.append(ItemChange(item_id=item.id))
            elif change_type in ("create", "update"):
                uid = (item.caldav_uid or task_uid(item.id)) if tasks else (item.uid or item.id)
                changes.append(
                    ItemChange(item.id, item.changekey, item.caldav_name or derived_name(uid), uid)
                )
    except SyncCompleted as done:
        new_state = done.sync_state
    return new_state or "", changes


def _dedupe_names(changes: Sequence[ItemChange]) -> list[ItemChange]:
    """Two items whose names collide (same UID in Outlook) keep distinct hrefs."""
    seen: dict[str, str] = {}
    out = []
    for c in changes:
        if c.name and seen.setdefault(c.name, c.item_id) != c.item_id:
            c = ItemChange(c.item_id, c.changekey, distinct_name(c.name, c.item_id), c.uid)
        out.append(c)
    return out
