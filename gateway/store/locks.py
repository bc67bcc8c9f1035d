"""Named locks that hold across every gateway process sharing one database.

On PostgreSQL a lock is a transaction-level advisory lock (``pg_advisory_xact_lock``, PostgreSQL
manual §9.27.10) taken on a connection of a small pool of its own: the lock ends with that transaction,
so it is released when the block ends, when the connection goes back to the pool (which rolls back),
and when the process dies (the server ends a session whose client is gone, SIGKILL included). No row
records who holds what, so nothing is left to clean up after a crash.

The lock connections are a pool apart from the engine's: a holder writes through the engine while it
holds its lock, so holders waiting for a lock can never take every connection a holder needs.

On SQLite only one process serves a database (``serve --workers`` refuses more, docs/OPERATIONS.md),
so an in-process :class:`asyncio.Lock` per name is the whole lock. Within a process every lock is first
an :class:`asyncio.Lock`, so one process uses at most one lock connection per name.
"""

from __future__ import annotations

import asyncio
import hashlib
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

# Lock connections of one process: one per calendar (or mailbox) being synced or discovered at once.
# Beyond LOCK_POOL_SIZE + LOCK_POOL_OVERFLOW, further holders wait for a connection up to LOCK_WAIT_SECONDS.
LOCK_POOL_SIZE = 4
LOCK_POOL_OVERFLOW = 28
LOCK_WAIT_SECONDS = 300.0

_TAKE = text("SELECT pg_advisory_xact_lock(:key)")


def lock_key(name: str) -> int:
    """The signed 64-bit advisory-lock key of ``name`` (two names sharing a key only wait for each other)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


class Locks:
    """``async with locks.hold(name)``: one holder of ``name`` at a time, in every process of the database."""

    def __init__(self, url: str | None = None) -> None:
        self._local: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._engine: AsyncEngine | None = None
        if url is not None and make_url(url).get_backend_name() == "postgresql":
            self._engine = create_async_engine(
                url, pool_size=LOCK_POOL_SIZE, max_overflow=LOCK_POOL_OVERFLOW, pool_timeout=LOCK_WAIT_SECONDS
            )

    @property
    def shared(self) -> bool:
        """Whether the locks hold across processes (PostgreSQL), not only within this one."""
        return self._engine is not None

    @asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[None]:
        async with self.hold_here(name), self.hold_shared(name):
            yield

    @asynccontextmanager
    async def hold_here(self, name: str) -> AsyncIterator[None]:
        """Only this process's half of :meth:`hold`: no lock connection is taken. A holder that waits
        for something slow (an EWS call) holds this, and :meth:`hold_shared` only around its writes."""
        local = self._local.get(name)
        if local is None:
            local = self._local[name] = asyncio.Lock()
        async with local:
            yield

    @asynccontextmanager
    async def hold_shared(self, name: str) -> AsyncIterator[None]:
        """The cross-process half of :meth:`hold`, to take only inside ``hold_here(name)`` (so a
        process still uses at most one lock connection per name); nothing on SQLite."""
        if self._engine is None:
            yield
            return
        async with self._engine.begin() as conn:
            await conn.execute(_TAKE, {"key": lock_key(name)})
            yield  # the commit (or rollback) at the block's end releases the lock

    async def close(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
