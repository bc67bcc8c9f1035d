"""Storage: the SQLite file is created on first start and migrations apply once."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from gateway.store.database import MIGRATIONS, Database
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
    assert versions == [v for v, _, _ in MIGRATIONS]
