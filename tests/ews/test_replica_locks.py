"""Replicas on one PostgreSQL database: named locks hold across processes, die with a killed process, and
two index writers (each with its own engine, as two replicas have) never number a change twice."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from types import SimpleNamespace
from typing import TypeVar

import pytest
import sqlalchemy as sa

from gateway.ews.backend import tracking
from gateway.ews.index import ItemChange, ItemIndex
from gateway.store.database import Database
from gateway.store.schema import calendar_state, indexed_item

CAL = "account-1/calendar"
T = TypeVar("T")


@pytest.fixture
def store() -> str:
    return "postgresql"  # what these tests are about: several processes on one database


@pytest.fixture
async def replicas(database_url: str) -> AsyncIterator[tuple[Database, Database]]:
    first, second = Database(database_url), Database(database_url)
    await first.open()
    await second.open()
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


async def test_a_lock_held_by_one_replica_keeps_the_other_waiting(replicas) -> None:
    first, second = replicas
    assert first.locks.shared
    order: list[str] = []
    async with first.locks.hold("index:x"):
        waiting = asyncio.create_task(_take(second, "index:x", order))
        await asyncio.sleep(0.5)
        assert order == []  # still waiting
        async with second.locks.hold("index:y"):  # another name is free
            order.append("other name")
        order.append("released")
    await asyncio.wait_for(waiting, 5)
    assert order == ["other name", "released", "second"]


async def _take(db: Database, name: str, order: list[str]) -> None:
    async with db.locks.hold(name):
        order.append("second")


HOLDER = """
import asyncio, sys
from gateway.store.locks import Locks
async def main():
    locks = Locks(sys.argv[1])
    async with locks.hold("index:killed"):
        print("held", flush=True)
        await asyncio.sleep(3600)
asyncio.run(main())
"""


async def test_a_replica_killed_while_holding_a_lock_leaves_none_behind(replicas, database_url) -> None:
    first, _ = replicas
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, database_url], stdout=subprocess.PIPE, text=True, env=os.environ
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(_take(first, "index:killed", []), 0.5)
        os.kill(holder.pid, signal.SIGKILL)
        started = time.monotonic()
        await asyncio.wait_for(_take(first, "index:killed", []), 10)
        assert time.monotonic() - started < 5
    finally:
        holder.kill()
        holder.wait()


async def test_two_replicas_writing_one_calendar_number_every_change_once(replicas) -> None:
    """Syncs (overlapping answers) and recorded creates from two replicas at once, each under the
    calendar's lock as the ChangeTracker writes: every change has its own number, none is lost."""
    indexes = [ItemIndex(db.engine, db.locks) for db in replicas]
    await indexes[0].apply(CAL, "s0", [], "epoch")

    async def sync(index: ItemIndex, n: int) -> None:
        async with index.lock(CAL):
            state = await index.state(CAL)
            await asyncio.sleep(0.01)  # the EWS call
            changes = [
                ItemChange(f"sync-{k}", f"ck{n}", f"sync-{k}.ics", f"uid-sync-{k}") for k in range(n % 4, 6)
            ]
            await index.apply(CAL, f"s{n}", changes, "epoch", state.seq)

    async def create(index: ItemIndex, n: int) -> None:
        async with index.lock(CAL):
            await index.record_created(CAL, ItemChange(f"put-{n}", "ck", f"put-{n}.ics", f"uid-put-{n}"))

    await asyncio.gather(
        *(sync(indexes[n % 2], n) for n in range(12)), *(create(indexes[n % 2], n) for n in range(20))
    )
    async with replicas[0].engine.connect() as conn:
        seqs = (
            (await conn.execute(sa.select(indexed_item.c.seq).where(indexed_item.c.calendar_key == CAL)))
            .scalars()
            .all()
        )
        last = (
            await conn.execute(sa.select(calendar_state.c.seq).where(calendar_state.c.calendar_key == CAL))
        ).scalar()
    assert len(seqs) == len(set(seqs)) == 26  # 6 synced items + 20 creates, no number twice
    assert max(seqs) == last
    names = {i.name for i in await indexes[1].items(CAL)}
    assert {f"put-{n}.ics" for n in range(20)} <= names


WRITER = """
import asyncio, sys
from gateway.ews.backend import tracking
from gateway.ews.index import ItemChange, ItemIndex
from gateway.store.database import Database
async def main():
    db = Database(sys.argv[1])
    await db.open()
    index = ItemIndex(db.engine, db.locks)
    n = 0
    while True:
        async with index.lock(sys.argv[2]):
            state = await index.state(sys.argv[2])
            changes = [ItemChange(f"sync-{n}-{k}", "ck", f"sync-{n}-{k}.ics", None) for k in range(50)]
            await index.apply(sys.argv[2], f"s{n}", changes, "epoch", state.seq)
            await index.record_created(sys.argv[2], ItemChange(f"other-{n}", "ck", f"other-{n}.ics", None))
        if n == 0:
            print("writing", flush=True)
        n += 1
asyncio.run(main())
"""


async def test_a_replica_killed_in_the_middle_of_writes_loses_nothing_and_blocks_nothing(
    replicas, database_url
) -> None:
    first, _ = replicas
    index = ItemIndex(first.engine, first.locks)
    await index.apply(CAL, "s", [], "epoch")
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, database_url, CAL], stdout=subprocess.PIPE, text=True, env=os.environ
    )
    recorded: dict[str, int] = {}

    async def write(n: int) -> None:  # a sync of this replica that brings one item
        async with index.lock(CAL):
            state = await index.state(CAL)
            change = ItemChange(f"mine-{n}", "ck", f"mine-{n}.ics", None)
            recorded[f"mine-{n}.ics"] = await index.apply(CAL, f"mine-{n}", [change], "epoch", state.seq)

    try:
        assert writer.stdout.readline().strip() == "writing"
        for n in range(10):  # side by side with the other replica
            await write(n)
        os.kill(writer.pid, signal.SIGKILL)  # wherever it is: inside a transaction, holding the lock, …
        writer.wait()
        for n in range(10, 20):  # the lock is free again at once, and numbering goes on
            await asyncio.wait_for(write(n), 10)
    finally:
        writer.kill()
        writer.wait()

    items = await index.items(CAL, include_deleted=True)
    seqs = [i.seq for i in items]
    assert len(seqs) == len(set(seqs))  # no number twice
    assert max(seqs) == (await index.state(CAL)).seq  # no change numbered and not written, or the reverse
    live = {i.name: i.seq for i in items if not i.deleted}
    assert all(live.get(name, 0) >= 1 and live[name] <= seq for name, seq in recorded.items())  # none lost
    synced = [i.name for i in items if i.name.startswith("sync-")]
    assert len(synced) % 50 == 0  # a sync's answer is written whole or not at all


class _ScriptedExchange:
    """EwsCalls and SyncFolderItems for a ChangeTracker: each call waits until the test lets it go,
    then answers the next scripted (new state, changes) and notes the state it was asked from."""

    def __init__(self, answers: list[tuple[str, list[ItemChange]]]) -> None:
        self.answers = answers
        self.asked_from: list[str | None] = []
        self.waiting = asyncio.Event()
        self.go = asyncio.Event()
        self.meanwhile: Callable[[int], Awaitable[None]] | None = None  # run while call n waits

    async def run(self, account: object, operation: str, call: Callable[[], T]) -> T:
        assert operation == "SyncFolderItems"
        self.waiting.set()
        if self.meanwhile is not None:
            await self.meanwhile(len(self.asked_from))
        else:
            await self.go.wait()
        return call()

    def sync_folder(
        self, folder: object, sync_state: str | None, tasks: bool
    ) -> tuple[str, list[ItemChange]]:
        self.asked_from.append(sync_state)
        return self.answers.pop(0)


async def test_a_sync_answer_overtaken_by_another_replicas_write_is_asked_again(
    replicas, monkeypatch
) -> None:
    """A's SyncFolderItems (asked from s1) still reports an item that B's gateway deleted meanwhile;
    A does not hold the cross-replica lock while it waits, and does not write that stale answer over
    B's deletion: it asks again from the state B left."""
    first, second = (ItemIndex(db.engine, db.locks) for db in replicas)
    await first.apply(CAL, "s1", [ItemChange("x", "ck1", "x.ics", "uid-x")], "epoch")
    exchange = _ScriptedExchange(
        [("s2", [ItemChange("x", "ck2", "x.ics", "uid-x")]), ("s3", [ItemChange("x")])]
    )
    monkeypatch.setattr(tracking, "_sync_folder", exchange.sync_folder)
    tracker = tracking.ChangeTracker(exchange, first)  # type: ignore[arg-type]
    cal = SimpleNamespace(key=CAL, account=None, folder=None, tasks=False)
    syncing = asyncio.create_task(tracker.refresh(cal))  # type: ignore[arg-type]
    await asyncio.wait_for(exchange.waiting.wait(), 5)
    async with asyncio.timeout(2), second.lock(CAL):  # free: A holds no lock connection now
        deleted_at = await second.record_deleted(CAL, "x")
    exchange.go.set()
    epoch, seq = await asyncio.wait_for(syncing, 10)
    assert exchange.asked_from == ["s1", "s1"]  # the first answer was dropped, not written
    (row,) = await first.items(CAL, include_deleted=True)
    assert row.deleted and row.seq == deleted_at == seq  # Exchange's report of it took no second number
    assert (await first.state(CAL)).sync_state == "s3"


async def test_a_sync_overtaken_again_and_again_holds_the_lock_across_its_last_attempt(
    replicas, monkeypatch
) -> None:
    """Another replica records a create during each of A's first SYNC_ATTEMPTS SyncFolderItems; A's
    next attempt holds the cross-replica lock across its EWS call, so it ends, and its answer
    confirms the three provisional rows."""
    first, second = (ItemIndex(db.engine, db.locks) for db in replicas)
    await first.apply(CAL, "s1", [], "epoch")
    created = [ItemChange(f"put-{n}", "ck", f"put-{n}.ics", f"uid-{n}") for n in range(3)]
    exchange = _ScriptedExchange([("s2", [])] * tracking.SYNC_ATTEMPTS + [("s2", created)])
    locked_out: list[int] = []

    async def meanwhile(n: int) -> None:
        if n < tracking.SYNC_ATTEMPTS:
            async with asyncio.timeout(2), second.lock(CAL):
                await second.record_created(CAL, created[n])
            return
        try:
            async with asyncio.timeout(0.5), second.lock(CAL):
                pass
        except TimeoutError:
            locked_out.append(n)

    exchange.meanwhile = meanwhile
    monkeypatch.setattr(tracking, "_sync_folder", exchange.sync_folder)
    tracker = tracking.ChangeTracker(exchange, first)  # type: ignore[arg-type]
    cal = SimpleNamespace(key=CAL, account=None, folder=None, tasks=False)
    epoch, seq = await asyncio.wait_for(tracker.refresh(cal), 20)  # type: ignore[arg-type]
    assert tracking.SYNC_ATTEMPTS == 3 and exchange.asked_from == ["s1"] * 4
    assert locked_out == [3]
    rows = await first.items(CAL)
    assert sorted(r.name for r in rows) == ["put-0.ics", "put-1.ics", "put-2.ics"]
    assert not any(r.provisional for r in rows) and seq == 3  # confirmed, no new numbers


async def test_a_change_another_replica_numbers_during_a_quiet_sync_is_reported_once(
    replicas, monkeypatch
) -> None:
    """A's SyncFolderItems finds nothing new, while B records a create: A's sync-collection answers
    with its own state's token and without B's change, which the next sync from that token reports."""
    first, second = (ItemIndex(db.engine, db.locks) for db in replicas)
    await first.apply(CAL, "s1", [ItemChange("x", "ck", "x.ics", "uid-x")], "epoch")
    exchange = _ScriptedExchange([("s1", [])])

    async def meanwhile(n: int) -> None:
        async with asyncio.timeout(2), second.lock(CAL):
            await second.record_created(CAL, ItemChange("put", "ck", "put.ics", "uid-put"))

    exchange.meanwhile = meanwhile
    monkeypatch.setattr(tracking, "_sync_folder", exchange.sync_folder)
    tracker = tracking.ChangeTracker(exchange, first)  # type: ignore[arg-type]
    cal = SimpleNamespace(key=CAL, account=None, folder=None, tasks=False)
    epoch, seq = await tracker.refresh(cal)  # type: ignore[arg-type]
    assert (epoch, seq) == ("epoch", 1)
    token = tracking.sync_token(epoch, 1)
    now = await tracker.change_set(cal, None, epoch, seq, token, None)  # type: ignore[arg-type]
    assert (now.sync_token, now.changed, now.deleted) == (token, [], [])
    later = await tracker.change_set(cal, None, epoch, 2, token, None)  # type: ignore[arg-type]
    assert [c.name for c in later.changed] == ["put.ics"]
