"""SQLite write transactions of one process take turns in arrival order (gateway/store/writers.py)
instead of racing in SQLite's busy handler, where a waiter could lose to every later one."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import insert, select

from gateway.common.stages import STAGES
from gateway.store.database import Database
from gateway.store.schema import users
from gateway.store.writers import SerialWritesEngine


def _user(name: str) -> dict[str, object]:
    from gateway.accounts.records import new_id, now

    return {
        "id": new_id(),
        "username": name,
        "password_hash": None,
        "display_name": name,
        "created_at": now(),
    }


async def test_writers_are_served_in_the_order_they_asked(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'g.sqlite3'}")
    await db.open()
    assert isinstance(db.engine, SerialWritesEngine)
    served: list[int] = []
    first_holds = asyncio.Event()

    async def first() -> None:
        async with db.engine.begin() as conn:
            await conn.execute(insert(users).values(**_user("first")))
            first_holds.set()
            await asyncio.sleep(0.3)  # holds SQLite's write lock; everyone else must wait

    async def writer(number: int) -> None:
        await asyncio.sleep(0.01 * number)  # arrive one after the other
        async with db.engine.begin() as conn:
            served.append(number)
            await conn.execute(insert(users).values(**_user(f"w{number}")))

    try:
        holder = asyncio.create_task(first())
        await first_holds.wait()
        await asyncio.gather(holder, *(writer(n) for n in range(12)))
        async with db.engine.connect() as conn:
            names = set((await conn.execute(select(users.c.username))).scalars())
    finally:
        await db.close()
    assert served == list(range(12))  # none overtaken (the busy handler gives no such order)
    assert names == {"first", *(f"w{n}" for n in range(12))}


async def test_a_transaction_opened_inside_another_of_the_same_task_does_not_wait_for_itself(
    tmp_path: Path,
) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'g.sqlite3'}")
    await db.open()
    before = _turns()
    try:
        async with db.engine.begin() as outer:
            await outer.execute(select(1))
            async with asyncio.timeout(5):
                async with db.engine.begin() as inner:
                    await inner.execute(insert(users).values(**_user("inner")))
    finally:
        await db.close()
    assert _turns() == before + 1  # only the outer one queued


def _turns() -> int:
    text = STAGES.render_prometheus()
    for line in text.splitlines():
        if line.startswith('gateway_stage_seconds_count{stage="database_writer_turn"}'):
            return int(line.rsplit(" ", 1)[1])
    return 0
