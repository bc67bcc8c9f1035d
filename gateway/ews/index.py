"""The per-calendar item index: resource names, ItemIds and the change sequence.

EWS reports deletions by ItemId only and has no notion of a CalDAV resource name,
so the gateway remembers, per calendar, which item carries which name, and numbers
every change it has seen with a per-calendar sequence. That sequence is the CalDAV
ctag and the RFC 6578 sync-token; because it lives in the database, a sync-token keeps
working after a restart and across replicas sharing it.

How the index converges to Exchange's state whatever the order of PUT, DELETE, sync and crash:

- SyncFolderItems answers (:meth:`ItemIndex.apply`) are the source of truth. A change the index
  already holds (same ChangeKey, or a deletion of a row already deleted) takes no new number.
- The gateway's own creates are recorded at once (:meth:`ItemIndex.record_created`), so the client's
  GET of the new resource needs no SyncFolderItems. Such a row is *provisional*: written outside the
  SyncFolderItems stream. Exchange never reports the deletion of an item the sync state never saw,
  so a provisional row could otherwise outlive its item forever (a ghost: listed, 404 on GET, its name
  and UID blocked). A SyncFolderItems answer that reports the item confirms the row.
- A sync that starts (reads the index state) while a provisional row exists starts from a sync state
  issued by a SyncFolderItems call that did not see the item — made before the CreateItem, or after
  the item was gone: had that call seen it, its answer would have confirmed the row (or written it
  first, and the record would then have found it there and written nothing). From such a state,
  Exchange reports the item if it still exists (as created). So a provisional row this sync does not
  report is gone from Exchange: it is marked deleted with a new number, and sync-collection reports
  the deletion. Only rows written before the sync read the state (``seq <= started_seq``) are judged,
  so the rule does not depend on the process lock below (a create recorded while another process's
  sync waits for Exchange is left to the next sync).
  The sync reads all pages (until IncludesLastItemInRange) before applying, and Exchange is assumed
  to show a committed CreateItem to the next SyncFolderItems (read-your-writes, as a mailbox database
  does).
- The gateway's own successful DELETE is recorded at once (:meth:`ItemIndex.record_deleted`: deleted,
  new number), so the name is free immediately; Exchange's later report of that deletion is already
  held and takes no second number. Before sending DeleteItem the gateway notes the time
  (:meth:`ItemIndex.request_delete`), which lets a retried DELETE whose answer was lost tell its own
  deletion from someone else's (gateway/ews/backend/writes.py).
- A restart changes nothing of the above: provisional rows and requested deletions live in the
  database, and the next sync judges them as any other.

The ChangeTracker (gateway/ews/backend/tracking.py) writes each calendar's syncs (:meth:`apply`) and
the gateway's own records under one per-calendar lock (:meth:`ItemIndex.lock`, a PostgreSQL advisory
lock shared by every replica: gateway/store/locks.py), so they never interleave, in one process or
across replicas. A sync holds only the in-process half (:meth:`ItemIndex.sync_lock`) across its EWS
call and takes the shared half (:meth:`ItemIndex.write_lock`) for its write, where it re-reads the
state: an answer asked from a state something else has since written over is dropped and asked again,
so every :meth:`apply` still starts from the state its SyncFolderItems started from. The numbers themselves are taken from the database inside the
writing transaction, the calendar's state row locked (``FOR UPDATE``; ``seq + 1`` for single records),
never from a process's memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.ews.collection_records import CollectionRecords
from gateway.store.schema import calendar_state, indexed_item

NAMES_PER_QUERY = 500  # bound parameters per IN list (SQLite allows 999 in old builds)

# The read statements of every request, built once: building a SQLAlchemy expression and its cache key
# costs more Python time than SQLite takes to answer these indexed look-ups.
_KEY = sa.bindparam("key")
_ITEM = indexed_item.c
_LIVE = (_ITEM.calendar_key == _KEY) & _ITEM.deleted.is_(False)
_HAS_PROVISIONAL = (
    sa.select(sa.literal(True))
    .where((_ITEM.calendar_key == calendar_state.c.calendar_key) & _ITEM.provisional.is_(True))
    .exists()
)
_STATE = sa.select(calendar_state, _HAS_PROVISIONAL.label("provisional")).where(
    calendar_state.c.calendar_key == _KEY
)
# Locks the row until the transaction ends (PostgreSQL; SQLite has one writer at a time anyway).
_STATE_FOR_WRITE = sa.select(calendar_state).where(calendar_state.c.calendar_key == _KEY).with_for_update()
_CHANGED = (_ITEM.calendar_key == _KEY) & (_ITEM.seq > sa.bindparam("since"))
_ITEMS = sa.select(indexed_item).where(_CHANGED & _ITEM.deleted.is_(False)).order_by(_ITEM.seq)
_ITEMS_AND_DELETIONS = sa.select(indexed_item).where(_CHANGED).order_by(_ITEM.seq)
_BY_NAMES = sa.select(indexed_item).where(_LIVE & _ITEM.name.in_(sa.bindparam("names", expanding=True)))
_BY_NAME_OR_UID = sa.select(indexed_item).where(
    _LIVE & ((_ITEM.name == sa.bindparam("name")) | (_ITEM.uid == sa.bindparam("uid")))
)
_BY_NAME = sa.select(indexed_item).where(_LIVE & (_ITEM.name == sa.bindparam("value")))
_DELETED_BY_NAME = sa.select(indexed_item).where(
    (_ITEM.calendar_key == _KEY) & _ITEM.deleted.is_(True) & (_ITEM.name == sa.bindparam("value"))
)
_THIS_ITEM = (_ITEM.calendar_key == _KEY) & (_ITEM.item_id == sa.bindparam("iid"))
_MARK_DELETED = (
    indexed_item.update().where(_THIS_ITEM).values(deleted=True, provisional=False, seq=sa.bindparam("s"))
)
_CONFIRM = indexed_item.update().where(_THIS_ITEM).values(provisional=False)
_UPDATE_ITEM = (
    indexed_item.update()
    .where(_THIS_ITEM)
    .values(
        name=sa.bindparam("n"),
        uid=sa.bindparam("u"),
        changekey=sa.bindparam("ck"),
        seq=sa.bindparam("s"),
        deleted=False,
        provisional=False,
    )
)
_REQUEST_DELETE = indexed_item.update().where(_THIS_ITEM).values(delete_requested_at=sa.bindparam("at"))
_LIVE_ROW = sa.select(_ITEM.item_id).where(_THIS_ITEM & _ITEM.deleted.is_(False))
_INSERT_ITEM = indexed_item.insert()
_HELD_VERSIONS = sa.select(_ITEM.item_id, _ITEM.changekey, _ITEM.deleted, _ITEM.provisional).where(
    (_ITEM.calendar_key == _KEY) & _ITEM.item_id.in_(sa.bindparam("iids", expanding=True))
)
_PROVISIONAL = sa.select(_ITEM.item_id).where(
    (_ITEM.calendar_key == _KEY) & _ITEM.provisional.is_(True) & (_ITEM.seq <= sa.bindparam("started"))
)
_NEW_STATE = calendar_state.insert()
_SET_STATE = (
    calendar_state.update()
    .where(calendar_state.c.calendar_key == _KEY)
    .values(sync_state=sa.bindparam("new_state"), seq=sa.bindparam("new_seq"))
)
_NEXT_SEQ = (
    calendar_state.update()
    .where(calendar_state.c.calendar_key == _KEY)
    .values(seq=calendar_state.c.seq + 1)
    .returning(calendar_state.c.seq)
)


@dataclass(frozen=True)
class IndexedItem:
    item_id: str
    name: str
    uid: str | None
    changekey: str
    seq: int
    deleted: bool
    provisional: bool = False
    delete_requested_at: float | None = None  # Unix time of the gateway's last DeleteItem for it


@dataclass(frozen=True)
class CalendarState:
    sync_state: str | None
    seq: int
    epoch: str
    provisional: bool = False  # whether any row awaits confirmation by a sync


@dataclass(frozen=True)
class ItemChange:
    """One change seen by SyncFolderItems: an upsert (name set) or a deletion (name None)."""

    item_id: str
    changekey: str | None = None
    name: str | None = None
    uid: str | None = None


@dataclass(frozen=True)
class _Held:
    changekey: str
    deleted: bool
    provisional: bool


class ItemIndex(CollectionRecords):
    """Async access to the index tables (SQLAlchemy Core)."""

    @property
    def shared(self) -> bool:
        """Whether other processes (replicas on one PostgreSQL) read and write this index too."""
        return self._locks.shared

    def lock(self, calendar_key: str) -> AbstractAsyncContextManager[None]:
        """Held while a calendar's index is written from Exchange's answers (a sync, a recorded write)."""
        return self._locks.hold(f"index:{calendar_key}")

    def sync_lock(self, calendar_key: str) -> AbstractAsyncContextManager[None]:
        """This process's half of :meth:`lock`: held by a sync across its EWS call (one sync of a
        calendar at a time per process), with no database connection."""
        return self._locks.hold_here(f"index:{calendar_key}")

    def write_lock(self, calendar_key: str) -> AbstractAsyncContextManager[None]:
        """The cross-replica half of :meth:`lock`, taken inside :meth:`sync_lock` around a sync's write."""
        return self._locks.hold_shared(f"index:{calendar_key}")

    def create_lock(self, calendar_key: str) -> AbstractAsyncContextManager[None]:
        """Held by a PUT from its look-up in Exchange to its CreateItem, so that two PUTs of one new
        name or UID (in any replica) never both find nothing and both create (docs/WRITES.md rule 6)."""
        return self._locks.hold(f"create:{calendar_key}")

    def discovery_lock(self, account_id: str) -> AbstractAsyncContextManager[None]:
        """Held while a mailbox's calendar folders are discovered or one is created with its alias."""
        return self._locks.hold(f"folders:{account_id}")

    async def state(self, calendar_key: str) -> CalendarState | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(_STATE, {"key": calendar_key})).first()
        return CalendarState(row.sync_state, row.seq, row.epoch, bool(row.provisional)) if row else None

    async def apply(
        self,
        calendar_key: str,
        new_sync_state: str,
        changes: list[ItemChange],
        epoch: str,
        started_seq: int = 0,
    ) -> int:
        """Record a SyncFolderItems answer in one transaction; returns the calendar's new sequence number.

        ``started_seq`` is the sequence number the sync read before its EWS call: provisional rows
        numbered up to it that the answer does not report are gone from Exchange (module docstring).
        Rows are written in bulk (executemany): a first sync brings thousands of items, and a
        long write transaction would keep other calendars' syncs waiting on SQLite's lock.
        A change the index already holds (see :meth:`record_created`) takes no sequence number.
        """
        async with self._engine.begin() as conn:
            row = (await conn.execute(_STATE_FOR_WRITE, {"key": calendar_key})).first()
            if row is None:
                await conn.execute(
                    _NEW_STATE, {"calendar_key": calendar_key, "sync_state": None, "seq": 0, "epoch": epoch}
                )
            seq = await _write_changes(conn, calendar_key, row.seq if row else 0, changes)
            seq = await _drop_unreported(conn, calendar_key, seq, started_seq, changes)
            await conn.execute(_SET_STATE, {"key": calendar_key, "new_state": new_sync_state, "new_seq": seq})
        return seq

    async def record_created(self, calendar_key: str, change: ItemChange) -> int | None:
        """Record an item the gateway itself created, before SyncFolderItems reports it; returns its sequence.

        The row is provisional until a sync reports the item (module docstring). The SyncFolderItems
        state is kept, so the next sync still reports the item; :meth:`apply` then finds this version
        already recorded. Nothing is written (None) for a calendar never synced (its first sync brings
        everything) or when a sync already recorded the item (the insert then conflicts with that row
        and the transaction, sequence included, is rolled back).
        """
        try:
            async with self._engine.begin() as conn:
                seq = (await conn.execute(_NEXT_SEQ, {"key": calendar_key})).scalar()
                if seq is not None:
                    await conn.execute(
                        _INSERT_ITEM,
                        {
                            "calendar_key": calendar_key,
                            "item_id": change.item_id,
                            "name": change.name,
                            "uid": change.uid,
                            "changekey": change.changekey or "",
                            "seq": seq,
                            "deleted": False,
                            "provisional": True,
                        },
                    )
        except sa.exc.IntegrityError:
            return None
        return seq

    async def record_deleted(self, calendar_key: str, item_id: str) -> int | None:
        """Record that an item is gone from Exchange (the gateway deleted it, or found it missing):
        deleted, with a new sequence number; None when the index holds no live row for it."""
        async with self._engine.begin() as conn:
            if (await conn.execute(_LIVE_ROW, {"key": calendar_key, "iid": item_id})).first() is None:
                return None
            seq = (await conn.execute(_NEXT_SEQ, {"key": calendar_key})).scalar()
            if seq is None:
                return None
            await conn.execute(_MARK_DELETED, {"key": calendar_key, "iid": item_id, "s": seq})
        return seq

    async def request_delete(self, calendar_key: str, item_id: str, at: float | None) -> None:
        """Note that the gateway is about to send DeleteItem for the item (Unix time ``at``; None: never)."""
        async with self._engine.begin() as conn:
            await conn.execute(_REQUEST_DELETE, {"key": calendar_key, "iid": item_id, "at": at})

    async def items(
        self, calendar_key: str, since_seq: int = 0, include_deleted: bool = False
    ) -> list[IndexedItem]:
        """Items changed after ``since_seq``, in change order."""
        query = _ITEMS_AND_DELETIONS if include_deleted else _ITEMS
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query, {"key": calendar_key, "since": since_seq})).all()
        return [_item(r) for r in rows]

    async def by_name(self, calendar_key: str, name: str) -> IndexedItem | None:
        async with self._engine.connect() as conn:
            r = (await conn.execute(_BY_NAME, {"key": calendar_key, "value": name})).first()
        return _item(r) if r else None

    async def deleted_by_name(self, calendar_key: str, name: str) -> list[IndexedItem]:
        """The deleted rows (tombstones) that carried ``name``."""
        async with self._engine.connect() as conn:
            rows = (await conn.execute(_DELETED_BY_NAME, {"key": calendar_key, "value": name})).all()
        return [_item(r) for r in rows]

    async def by_names(self, calendar_key: str, names: Sequence[str]) -> dict[str, IndexedItem]:
        """The live items with these names, in one query per NAMES_PER_QUERY names (a multiget of
        a hundred hrefs is one database round trip, not a hundred)."""
        found: dict[str, IndexedItem] = {}
        unique = list(dict.fromkeys(names))
        async with self._engine.connect() as conn:
            for first in range(0, len(unique), NAMES_PER_QUERY):
                chunk = unique[first : first + NAMES_PER_QUERY]
                for r in (await conn.execute(_BY_NAMES, {"key": calendar_key, "names": chunk})).all():
                    found[r.name] = _item(r)
        return found

    async def by_name_and_uid(
        self, calendar_key: str, name: str, uid: str
    ) -> tuple[IndexedItem | None, IndexedItem | None]:
        """(the live item named ``name``, the live item with ``uid``) in one query: what a PUT checks."""
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(_BY_NAME_OR_UID, {"key": calendar_key, "name": name, "uid": uid})
            ).all()
        named = next((_item(r) for r in rows if r.name == name), None)
        if named is not None and named.uid == uid:
            return named, named
        return named, next((_item(r) for r in rows if r.uid == uid), None)

    async def forget_calendar(self, calendar_key: str) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(indexed_item.delete().where(_ITEM.calendar_key == calendar_key))
            await conn.execute(calendar_state.delete().where(calendar_state.c.calendar_key == calendar_key))


async def _write_changes(
    conn: AsyncConnection, calendar_key: str, seq: int, changes: list[ItemChange]
) -> int:
    """Upsert and mark deleted, numbering each new change after ``seq``; returns the last number.

    An item changed twice in one answer keeps its last state. A reported item's provisional row is
    confirmed, whether or not the change is new.
    """
    held = await _held_versions(conn, calendar_key, [c.item_id for c in changes])
    existing = set(held)
    confirm = {
        c.item_id for c in changes if c.name is not None and (h := held.get(c.item_id)) and h.provisional
    }
    latest: dict[str, tuple[ItemChange, int]] = {}
    for change in changes:
        if _already_recorded(change, held.get(change.item_id)):
            continue
        held[change.item_id] = _Held(change.changekey or "", change.name is None, False)
        seq += 1
        latest[change.item_id] = (change, seq)
    deletions = [
        {"key": calendar_key, "iid": c.item_id, "s": n} for c, n in latest.values() if c.name is None
    ]
    updates = [
        {"key": calendar_key, "iid": c.item_id, "n": c.name, "u": c.uid, "ck": c.changekey or "", "s": n}
        for c, n in latest.values()
        if c.name is not None and c.item_id in existing
    ]
    inserts = [
        {
            "calendar_key": calendar_key,
            "item_id": c.item_id,
            "name": c.name,
            "uid": c.uid,
            "changekey": c.changekey or "",
            "seq": n,
            "deleted": False,
            "provisional": False,
        }
        for c, n in latest.values()
        if c.name is not None and c.item_id not in existing
    ]
    if deletions:
        await conn.execute(_MARK_DELETED, deletions)
    if updates:
        await conn.execute(_UPDATE_ITEM, updates)
    if inserts:
        await conn.execute(_INSERT_ITEM, inserts)
    confirm -= set(latest)  # an updated row is confirmed already
    if confirm:
        await conn.execute(_CONFIRM, [{"key": calendar_key, "iid": iid} for iid in confirm])
    return seq


async def _drop_unreported(
    conn: AsyncConnection, calendar_key: str, seq: int, started_seq: int, changes: list[ItemChange]
) -> int:
    """Mark deleted, numbered after ``seq``, the provisional rows (written up to ``started_seq``) this
    sync did not report: their items are gone from Exchange (module docstring). Returns the last number."""
    reported = {c.item_id for c in changes}
    rows = (await conn.execute(_PROVISIONAL, {"key": calendar_key, "started": started_seq})).all()
    gone = [r.item_id for r in rows if r.item_id not in reported]
    if gone:
        await conn.execute(
            _MARK_DELETED, [{"key": calendar_key, "iid": iid, "s": seq + n} for n, iid in enumerate(gone, 1)]
        )
    return seq + len(gone)


def _already_recorded(change: ItemChange, held: _Held | None) -> bool:
    """Whether the index holds this change: the same version (ChangeKey) of the item, or its deletion
    (an item the index never held needs no deletion)."""
    if change.name is None:
        return held is None or held.deleted
    return held is not None and (held.changekey, held.deleted) == (change.changekey or "", False)


async def _held_versions(conn: AsyncConnection, calendar_key: str, item_ids: list[str]) -> dict[str, _Held]:
    """item id → what the index holds of it, for the rows of ``item_ids``."""
    known: dict[str, _Held] = {}
    unique = list(dict.fromkeys(item_ids))
    for first in range(0, len(unique), NAMES_PER_QUERY):
        chunk = unique[first : first + NAMES_PER_QUERY]
        for r in (await conn.execute(_HELD_VERSIONS, {"key": calendar_key, "iids": chunk})).all():
            known[r.item_id] = _Held(r.changekey, bool(r.deleted), bool(r.provisional))
    return known


def _item(r: sa.Row) -> IndexedItem:
    return IndexedItem(
        r.item_id, r.name, r.uid, r.changekey, r.seq, r.deleted, bool(r.provisional), r.delete_requested_at
    )
