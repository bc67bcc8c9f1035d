"""Bookings of one user are made one at a time: the free/busy re-check and the CreateItem of one
booking happen before the next booking's re-check, so two concurrent bookings of the same slot cannot
both find it free.

One process: an asyncio lock per user. Several processes sharing a database need a lock they share
(a PostgreSQL advisory lock); this function is the one place to put it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from weakref import WeakValueDictionary

_locks: WeakValueDictionary[str, asyncio.Lock] = WeakValueDictionary()


@asynccontextmanager
async def booking_lock(user_id: str) -> AsyncIterator[None]:
    """Hold the user's booking lock (kept while anyone holds or waits for it, then forgotten)."""
    lock = _locks.get(user_id)
    if lock is None:
        lock = _locks[user_id] = asyncio.Lock()
    async with lock:
        yield
