"""Storage: the database (a SQLite file, or PostgreSQL) gets its schema on first start and migrations
apply once, also when several processes start at once."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import insert, inspect, select

from gateway.store import schema
from gateway.store.database import SCHEMA_VERSION, Database
from gateway.store.schema import schema_migrations
from tests.support.postgres import on_both_stores, unavailable

REPO = Path(__file__).resolve().parents[2]


async def _versions(url: str) -> list[int]:
    db = Database(url)
    try:
        async with db.engine.connect() as conn:
            return list((await conn.execute(select(schema_migrations.c.version))).scalars())
    finally:
        await db.close()


async def test_first_start_creates_the_file_and_reopening_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "gateway.sqlite3"
    db = Database(f"sqlite+aiosqlite:///{path}")
    await db.open()
    await db.close()
    assert path.is_file()
    db = Database(f"sqlite+aiosqlite:///{path}")
    await db.open()
    await db.close()
    assert await _versions(f"sqlite+aiosqlite:///{path}") == [SCHEMA_VERSION]


@on_both_stores
async def test_first_start_creates_every_table_and_reopening_is_idempotent(database_url: str) -> None:
    for _ in range(2):
        db = Database(database_url)
        await db.open()
        async with db.engine.connect() as conn:
            tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        await db.close()
        assert tables == set(schema.metadata.tables)
    assert await _versions(database_url) == [SCHEMA_VERSION]


@on_both_stores
async def test_a_database_from_a_newer_gateway_is_refused(database_url: str) -> None:
    db = Database(database_url)
    await db.open()
    async with db.engine.begin() as conn:
        await conn.execute(
            insert(schema_migrations).values(version=SCHEMA_VERSION + 1, applied_at=datetime.now(UTC))
        )
    with pytest.raises(RuntimeError, match="newer than this gateway"):
        await db.open()
    await db.close()


_START_AND_WORK = """
import asyncio, pathlib, sys, time
from gateway.accounts.throttle import SignInThrottle
from gateway.accounts.users import Users
from gateway.store.database import Database

async def main(url, name, go):
    # Imports done: say so, then start together with the others (the test creates the go file).
    pathlib.Path(go + "." + name).touch()
    while not pathlib.Path(go).exists():
        time.sleep(0.005)
    db = Database(url)
    await db.open()
    try:
        users = Users(db, SignInThrottle())
        await users.create_user(name)
        print(len(await users.list_users()))
    finally:
        await db.close()

asyncio.run(main(*sys.argv[1:]))
"""


@on_both_stores
def test_three_processes_starting_at_once_create_the_schema_once(database_url: str, tmp_path: Path) -> None:
    """Replicas (or ``serve`` restarted beside a CLI command) start together against an empty database:
    one creates the schema, the others wait for it and then find it (no "table exists" failure, no
    second stamp), and every one of them works."""
    go = tmp_path / "go"
    names = ("ann", "ben", "cat")
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _START_AND_WORK, database_url, name, str(go)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in names
    ]
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"go.{name}").exists() for name in names) and time.monotonic() < deadline:
        time.sleep(0.01)
    go.touch()
    results = [(p.wait(timeout=120), *p.communicate()) for p in processes]
    assert [code for code, _, _ in results] == [0, 0, 0], [err for _, _, err in results]
    assert asyncio.run(_versions(database_url)) == [SCHEMA_VERSION]
    assert max(int(out) for _, out, _ in results) == 3


def test_missing_postgresql_fails_in_ci_and_skips_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    """CI must not pass with the PostgreSQL tests silently skipped; a developer without it is told why."""
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="PostgreSQL tests cannot run: no initdb"):
        unavailable("no initdb")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="PostgreSQL not available: no initdb"):
        unavailable("no initdb")
