"""The per-calendar item index: resource names, ItemIds and the change sequence.

EWS reports deletions by ItemId only and has no notion of a CalDAV resource name,
so the gateway remembers, per calendar, which item carries which name, and numbers
every change it has seen (SyncFolderItems) with a per-calendar sequence. That
sequence is the CalDAV ctag and the RFC 6578 sync-token; because it lives in the
database, a sync-token keeps working after a restart and across replicas sharing it.

The gateway's own creates are recorded at once (:meth:`ItemIndex.record_created`), so the new resource can
be read without another SyncFolderItems; when SyncFolderItems later reports that same version of
the item (same ChangeKey), it is not counted as a second change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.store.schema import calendar_alias, calendar_property, calendar_state, indexed_item

NAMES_PER_QUERY = 500  # bound parameters per IN list (SQLite allows 999 in old builds)

# The read statements of every request, built once: building a SQLAlchemy expression and its cache key
# costs more Python time than SQLite takes to answer these indexed look-ups.
_KEY = sa.bindparam("key")
_LIVE = (indexed_item.c.calendar_key == _KEY) & indexed_item.c.deleted.is_(False)
_STATE = sa.select(calendar_state).where(calendar_state.c.calendar_key == _KEY)
_CHANGED = (indexed_item.c.calendar_key == _KEY) & (indexed_item.c.seq > sa.bindparam("since"))
_ITEMS = (
    sa.select(indexed_item).where(_CHANGED & indexed_item.c.deleted.is_(False)).order_by(indexed_item.c.seq)
)
_ITEMS_AND_DELETIONS = sa.select(indexed_item).where(_CHANGED).order_by(indexed_item.c.seq)
_BY_NAMES = sa.select(indexed_item).where(
    _LIVE & indexed_item.c.name.in_(sa.bindparam("names", expanding=True))
)
_BY_NAME_OR_UID = sa.select(indexed_item).where(
    _LIVE & ((indexed_item.c.name == sa.bindparam("name")) | (indexed_item.c.uid == sa.bindparam("uid")))
)
_BY_NAME = sa.select(indexed_item).where(_LIVE & (indexed_item.c.name == sa.bindparam("value")))
_THIS_ITEM = (indexed_item.c.calendar_key == _KEY) & (indexed_item.c.item_id == sa.bindparam("iid"))
_MARK_DELETED = indexed_item.update().where(_THIS_ITEM).values(deleted=True, seq=sa.bindparam("s"))
_DROP_ITEM = indexed_item.delete().where(_THIS_ITEM)
_INSERT_ITEM = indexed_item.insert()
_HELD_VERSIONS = sa.select(indexed_item.c.item_id, indexed_item.c.changekey, indexed_item.c.deleted).where(
    (indexed_item.c.calendar_key == _KEY) & indexed_item.c.item_id.in_(sa.bindparam("iids", expanding=True))
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
_ALIASES = sa.select(calendar_alias).where(calendar_alias.c.account_id == sa.bindparam("account"))
_PROPERTIES = sa.select(calendar_property).where(calendar_property.c.account_id == sa.bindparam("account"))


@dataclass(frozen=True)
class IndexedItem:
    item_id: str
    name: str
    uid: str | None
    changekey: str
    seq: int
    deleted: bool


@dataclass(frozen=True)
class CalendarState:
    sync_state: str | None
    seq: int
    epoch: str


@dataclass(frozen=True)
class ItemChange:
    """One change seen by SyncFolderItems: an upsert (name set) or a deletion (name None)."""

    item_id: str
    changekey: str | None = None
    name: str | None = None
    uid: str | None = None


class ItemIndex:
    """Async access to the index tables (SQLAlchemy Core)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def state(self, calendar_key: str) -> CalendarState | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(_STATE, {"key": calendar_key})).first()
        return CalendarState(row.sync_state, row.seq, row.epoch) if row else None

    async def apply(
        self, calendar_key: str, new_sync_state: str, changes: list[ItemChange], epoch: str
    ) -> int:
        """Record a SyncFolderItems answer in one transaction; returns the calendar's new sequence number.

        Rows are written in bulk (executemany): a first sync brings thousands of items, and a
        long write transaction would keep other calendars' syncs waiting on SQLite's lock.
        A change the index already holds (see :meth:`record_created`) takes no sequence number.
        """
        async with self._engine.begin() as conn:
            row = (await conn.execute(_STATE, {"key": calendar_key})).first()
            if row is None:
                await conn.execute(
                    _NEW_STATE, {"calendar_key": calendar_key, "sync_state": None, "seq": 0, "epoch": epoch}
                )
            seq = await self._write_changes(conn, calendar_key, row.seq if row else 0, changes)
            await conn.execute(_SET_STATE, {"key": calendar_key, "new_state": new_sync_state, "new_seq": seq})
        return seq

    async def record_created(self, calendar_key: str, change: ItemChange) -> int | None:
        """Record an item the gateway itself created, before SyncFolderItems reports it; returns its sequence.

        The SyncFolderItems state is kept, so the next sync still reports the item; :meth:`apply`
        then finds this version already recorded. Nothing is written (None) for a calendar never
        synced (its first sync brings everything) or when a sync already recorded the item (the
        insert then conflicts with that row and the transaction, sequence included, is rolled back).
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
                        },
                    )
        except sa.exc.IntegrityError:
            return None
        return seq

    @staticmethod
    async def _write_changes(
        conn: AsyncConnection, calendar_key: str, seq: int, changes: list[ItemChange]
    ) -> int:
        """Upsert and mark deleted, numbering each new change after ``seq``; returns the last number.

        An item changed twice in one answer keeps its last state.
        """
        held = await _held_versions(conn, calendar_key, [c.item_id for c in changes])
        latest: dict[str, tuple[ItemChange, int]] = {}
        for change in changes:
            if _already_recorded(change, held.get(change.item_id)):
                continue
            held[change.item_id] = (change.changekey or "", change.name is None)
            seq += 1
            latest[change.item_id] = (change, seq)
        deletions = [
            {"key": calendar_key, "iid": c.item_id, "s": n} for c, n in latest.values() if c.name is None
        ]
        upserts = [
            {
                "calendar_key": calendar_key,
                "item_id": c.item_id,
                "name": c.name,
                "uid": c.uid,
                "changekey": c.changekey or "",
                "seq": n,
                "deleted": False,
            }
            for c, n in latest.values()
            if c.name is not None
        ]
        if deletions:
            await conn.execute(_MARK_DELETED, deletions)
        if upserts:
            await conn.execute(_DROP_ITEM, [{"key": calendar_key, "iid": u["item_id"]} for u in upserts])
            await conn.execute(_INSERT_ITEM, upserts)
        return seq

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

    async def add_alias(self, account_id: str, calendar_id: str, folder_id: str) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                calendar_alias.insert().values(
                    account_id=account_id, calendar_id=calendar_id, folder_id=folder_id
                )
            )

    async def aliases(self, account_id: str) -> dict[str, str]:
        """folder id → the calendar id a client chose for it."""
        async with self._engine.connect() as conn:
            return {
                r.folder_id: r.calendar_id
                for r in (await conn.execute(_ALIASES, {"account": account_id})).all()
            }

    async def drop_alias(self, account_id: str, calendar_id: str) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                calendar_alias.delete().where(
                    (calendar_alias.c.account_id == account_id)
                    & (calendar_alias.c.calendar_id == calendar_id)
                )
            )

    async def properties(self, account_id: str) -> dict[str, dict[str, str]]:
        """calendar id → {property Clark name: value}."""
        found: dict[str, dict[str, str]] = {}
        async with self._engine.connect() as conn:
            for r in (await conn.execute(_PROPERTIES, {"account": account_id})).all():
                found.setdefault(r.calendar_id, {})[r.name] = r.value
        return found

    async def set_properties(self, account_id: str, calendar_id: str, values: dict[str, str | None]) -> None:
        """Store (or, for None, remove) collection properties."""
        async with self._engine.begin() as conn:
            for name, value in values.items():
                key = (
                    (calendar_property.c.account_id == account_id)
                    & (calendar_property.c.calendar_id == calendar_id)
                    & (calendar_property.c.name == name)
                )
                await conn.execute(calendar_property.delete().where(key))
                if value is not None:
                    await conn.execute(
                        calendar_property.insert().values(
                            account_id=account_id, calendar_id=calendar_id, name=name, value=value
                        )
                    )

    async def drop_properties(self, account_id: str, calendar_id: str) -> None:
        """Remove every stored property of a calendar (it was deleted)."""
        async with self._engine.begin() as conn:
            await conn.execute(
                calendar_property.delete().where(
                    (calendar_property.c.account_id == account_id)
                    & (calendar_property.c.calendar_id == calendar_id)
                )
            )

    async def forget_calendar(self, calendar_key: str) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(indexed_item.delete().where(indexed_item.c.calendar_key == calendar_key))
            await conn.execute(calendar_state.delete().where(calendar_state.c.calendar_key == calendar_key))


def _already_recorded(change: ItemChange, held: tuple[str, bool] | None) -> bool:
    """Whether the index holds this change: the same version (ChangeKey) of the item, or its deletion
    (an item the index never held needs no deletion)."""
    if change.name is None:
        return held is None or held[1]
    return held == (change.changekey or "", False)


async def _held_versions(
    conn: AsyncConnection, calendar_key: str, item_ids: list[str]
) -> dict[str, tuple[str, bool]]:
    """item id → (ChangeKey, deleted) of the rows the index holds for ``item_ids``."""
    known: dict[str, tuple[str, bool]] = {}
    unique = list(dict.fromkeys(item_ids))
    for first in range(0, len(unique), NAMES_PER_QUERY):
        chunk = unique[first : first + NAMES_PER_QUERY]
        for r in (await conn.execute(_HELD_VERSIONS, {"key": calendar_key, "iids": chunk})).all():
            known[r.item_id] = (r.changekey, bool(r.deleted))
    return known


def _item(r: sa.Row) -> IndexedItem:
    return IndexedItem(r.item_id, r.name, r.uid, r.changekey, r.seq, r.deleted)
