"""The database handle: an async SQLAlchemy engine plus numbered schema versions.

SQLite (aiosqlite) by default, in a file created on first start; PostgreSQL
(``postgresql+asyncpg://…``, the ``postgres`` extra) for a production store several processes share.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import event, insert, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from gateway.store import schema
from gateway.store.locks import Locks
from gateway.store.notify import Invalidations

log = logging.getLogger(__name__)

Migration = Callable[[AsyncConnection], Awaitable[None]]

# The version ``schema.py`` describes. A fresh database gets ``schema.metadata`` as is and
# is stamped with this version; an older database is brought up by the steps below.
SCHEMA_VERSION = 5


async def _provisional_items(conn: AsyncConnection) -> None:
    """Schema 2: ``ews_item.provisional`` and ``ews_item.delete_requested_at`` (gateway/ews/index.py).

    Rows of older versions were all written from SyncFolderItems or a create the next sync confirms
    like any other, so they start as confirmed."""
    await conn.execute(text("ALTER TABLE ews_item ADD COLUMN provisional BOOLEAN NOT NULL DEFAULT FALSE"))
    await conn.execute(text("ALTER TABLE ews_item ADD COLUMN delete_requested_at FLOAT"))
    await conn.execute(text("CREATE INDEX ix_ews_item_provisional ON ews_item (calendar_key, provisional)"))


# Schema 3: the columns schema.py declares Text since then, per table.
_UNBOUNDED = {
    "accounts": ("display_name",),
    "ews_calendar_state": ("calendar_key",),
    "ews_item": ("calendar_key", "item_id", "name", "changekey"),
    "ews_calendar_alias": ("account_id", "calendar_id", "folder_id"),
    "ews_calendar_property": ("account_id", "calendar_id", "name"),
}


async def _unbounded_identifiers(conn: AsyncConnection) -> None:
    """Schema 3: resource names, calendar ids, Exchange's ids and mailbox names as TEXT (a client's 600-character name
    was stored on SQLite, a 500 on PostgreSQL). SQLite enforces no declared length: nothing to change."""
    if conn.dialect.name != "postgresql":
        return
    for table, columns in _UNBOUNDED.items():
        changes = ", ".join(f"ALTER COLUMN {column} TYPE TEXT" for column in columns)
        await conn.execute(text(f"ALTER TABLE {table} {changes}"))


async def _bookings(conn: AsyncConnection) -> None:
    """Schema 4: the booking API's ``bookings`` table (idempotency keys, what DELETE cancels)."""
    await conn.run_sync(lambda sync: schema.bookings.create(sync, checkfirst=True))


async def _app_password_scope(conn: AsyncConnection) -> None:
    """Schema 5: ``app_passwords.scope`` (API tokens scoped to free/busy and booking); existing ones: all."""
    columns = await conn.run_sync(
        lambda sync: {c["name"] for c in inspect(sync).get_columns("app_passwords")}
    )
    if "scope" not in columns:  # a database made at schema 1 gets today's table, scope included
        await conn.execute(
            text("ALTER TABLE app_passwords ADD COLUMN scope VARCHAR(16) NOT NULL DEFAULT 'all'")
        )


# version -> (what it does, step from version-1). Append-only; never edit an applied step.
# When schema.py changes, bump SCHEMA_VERSION and add the step that makes the same change.
UPGRADES: dict[int, tuple[str, Migration]] = {
    2: ("item index: provisional rows and requested deletions", _provisional_items),
    3: ("item index and collection records: identifiers without a length limit", _unbounded_identifiers),
    4: ("bookings made through the booking API", _bookings),
    5: ("app passwords: scope (API tokens for free/busy and booking)", _app_password_scope),
}


# Connections kept open between requests. SQLAlchemy's default (5, then up to 10 more that are closed
# when returned) made a busy gateway open a connection per database query beyond five at once; with
# aiosqlite each one is a new thread, and starting it blocks the event loop until that thread gets the
# GIL (tens of ms under 50 clients, docs/PERFORMANCE.md). Idle SQLite connections cost little.
POOL_SIZE = 32
POOL_OVERFLOW = 32

# The PostgreSQL advisory lock (any constant bigint) that serializes schema creation and upgrades among
# processes starting at once against one database (replicas, or serve beside a CLI command): without it
# two could both find no history and both create the tables (one then fails), or apply an upgrade twice.
SCHEMA_LOCK_KEY = 0x6761_7465_7761_79  # "gateway"


class Database:
    """Owns the engine; ``await open()`` creates the file and applies pending migrations."""

    def __init__(self, url: str) -> None:
        self.url = url
        # In-memory SQLite has one static connection, which takes no pool sizes.
        pooled = make_url(url).database not in (None, "", ":memory:")
        sizes = {"pool_size": POOL_SIZE, "max_overflow": POOL_OVERFLOW} if pooled else {}
        self.engine: AsyncEngine = create_async_engine(url, **sizes)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        # Named locks across the processes sharing this database (item index writes, folder discovery).
        self.locks = Locks(url)
        # Cache invalidation across those processes (PostgreSQL LISTEN/NOTIFY); listening starts with serve.
        self.invalidations = Invalidations(self.engine)

    async def open(self) -> None:
        _ensure_sqlite_dir(self.url)
        async with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # Held until this transaction ends; PostgreSQL's DDL is transactional, so the next process
                # to get the lock sees the whole schema and its stamp, or nothing of it.
                await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
            elif conn.dialect.name == "sqlite":
                # Python's sqlite3 starts no transaction before DDL, so two processes could both find no
                # history and both create the tables; the write lock taken now (busy_timeout makes the
                # others wait) covers the whole check-and-create.
                await conn.exec_driver_sql("BEGIN IMMEDIATE")
            await conn.run_sync(lambda c: schema.schema_migrations.create(c, checkfirst=True))
            done = set((await conn.execute(select(schema.schema_migrations.c.version))).scalars())
            if not done:
                await self._create(conn)
                return
            current = max(done)
            if current > SCHEMA_VERSION:
                raise RuntimeError(f"database schema {current} is newer than this gateway ({SCHEMA_VERSION})")
            for version in range(current + 1, SCHEMA_VERSION + 1):
                what, step = UPGRADES[version]
                log.info("upgrading the database to schema %d: %s", version, what)
                await step(conn)
                await self._stamp(conn, version)

    async def _create(self, conn: AsyncConnection) -> None:
        if await conn.run_sync(lambda c: inspect(c).has_table("users")):
            raise RuntimeError("database has tables but no migration history; refusing to touch it")
        log.info("creating the database schema (version %d)", SCHEMA_VERSION)
        await conn.run_sync(schema.metadata.create_all)
        await self._stamp(conn, SCHEMA_VERSION)

    @staticmethod
    async def _stamp(conn: AsyncConnection, version: int) -> None:
        await conn.execute(
            insert(schema.schema_migrations).values(version=version, applied_at=datetime.now(UTC))
        )

    async def close(self) -> None:
        await self.invalidations.close()
        await self.locks.close()
        await self.engine.dispose()


def _ensure_sqlite_dir(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True, mode=0o700)


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001 - DB-API objects are untyped
    # SQLite ignores foreign keys (and so ON DELETE CASCADE) unless asked per connection.
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    # Readers never wait for a writer (WAL), and a writer waits for another instead of failing.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    # In WAL mode NORMAL syncs the log at checkpoints, not at every commit: a crash of the process loses
    # nothing and the file never corrupts (only a power cut may undo the last commits). FULL's fsync per
    # commit held the write lock ~5-150 ms each on this machine, and the other writers waited for it.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
