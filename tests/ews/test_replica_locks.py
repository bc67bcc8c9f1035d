"""Replicas on one PostgreSQL database: named locks hold across processes, die with a killed process, and
two index writers (each with its own engine, as two replicas have) never number a change twice."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa

from gateway.ews.index import ItemChange, ItemIndex
from gateway.store.database import Database
from gateway.store.schema import calendar_state, indexed_item

CAL = "account-1/calendar"


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
