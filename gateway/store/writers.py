"""SQLite: this process's write transactions one at a time, in the order they asked.

SQLite lets one connection write at a time; the others wait in its busy handler, which sleeps and
tries again (1, 2, 5, … then 100 ms between tries) rather than queueing. Under 100 clients the
gateway's 32 pooled connections all waited that way, and a waiter could lose every race to
connections that came later: a write that needed a few milliseconds waited 2 s on average and
over 30 s at worst (``gateway_stage_seconds{stage="database_write"}``, docs/PERFORMANCE.md). Taking
an asyncio lock (first come, first served) before ``engine.begin()`` keeps the busy handler for
other processes (the CLI) only. A transaction opened inside another in the same task does not wait
for the lock its own task holds. PostgreSQL locks rows, not the database: its engine is left alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time
import weakref
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.common.stages import STAGES

_HOLDING: contextvars.ContextVar[bool] = contextvars.ContextVar("gateway_sqlite_writer", default=False)


class SerialWritesEngine(AsyncEngine):
    """An ``AsyncEngine`` whose ``begin()`` first waits its turn (one lock per event loop)."""

    def __init__(self, sync_engine) -> None:  # noqa: ANN001 - SQLAlchemy's sync Engine
        super().__init__(sync_engine)
        self._turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    def _turn(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        lock = self._turns.get(loop)
        if lock is None:
            lock = self._turns[loop] = asyncio.Lock()
        return lock

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        if _HOLDING.get():
            async with super().begin() as conn:
                yield conn
            return
        waited = time.perf_counter()
        async with self._turn():
            STAGES.observe("database_writer_turn", time.perf_counter() - waited)
            holding = _HOLDING.set(True)
            began = time.perf_counter()
            try:
                async with super().begin() as conn:
                    yield conn
            finally:
                _HOLDING.reset(holding)
                STAGES.observe("database_writer_hold", time.perf_counter() - began)
