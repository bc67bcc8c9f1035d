"""Storage: the SQLite file is created on first start and migrations apply once."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from gateway.store.database import SCHEMA_VERSION, Database
from gateway.store.schema import schema_migrations


async def test_first_start_creates_the_file_and_reopening_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "gateway.sqlite3"
    db = Database(f"sqlite+aiosqlite:///{path}")
    await db.open()
    await db.close()
    assert path.is_file()
    db = Database(f"sqlite+aiosqlite:///{path}")
    await db.open()
    async with db.engine.connect() as conn:
        versions = list((await conn.execute(select(schema_migrations.c.version))).scalars())
    await db.close()
    assert versions == [SCHEMA_VERSION]


async def test_a_database_from_a_newer_gateway_is_refused(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'gateway.sqlite3'}")
    await db.open()
    async with db.engine.begin() as conn:
        await conn.execute(
            insert(schema_migrations).values(version=SCHEMA_VERSION + 1, applied_at=datetime.now(UTC))
        )
    with pytest.raises(RuntimeError, match="newer than this gateway"):
        await db.open()
    await db.close()
