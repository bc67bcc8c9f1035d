"""Bookings of one user are made one at a time: the free/busy re-check and the CreateItem of one
booking happen before the next booking's re-check, so two concurrent bookings of the same slot cannot
both find it free.

The lock is the store's named lock (gateway/store/locks.py): on PostgreSQL it holds across every gateway
process sharing the database (an advisory lock behind the in-process one), so two replicas booking one
slot at once give one booking and one 409; on SQLite one process serves the database and the lock is
in-process.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

from gateway.store.locks import Locks


def booking_lock(locks: Locks, user_id: str) -> AbstractAsyncContextManager[None]:
    """Hold the user's booking lock (the name is apart from the index's calendar and discovery locks)."""
    return locks.hold(f"booking:{user_id}")
