"""The ``bookings`` table: idempotency keys and what a DELETE cancels.

A booking is reserved before Exchange is asked (a row without ``handle``), so two requests with one
Idempotency-Key never both create an event, even in two processes: the second insert conflicts with the
first on (user, key). The row is completed with the event's handle and the answer, or removed when the
booking was refused or failed before its CreateItem (the key may then be used again). A keyed row whose
CreateItem failed stays reserved: the event may exist, and the retry looks for its UID (``booking_uid``).
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.caldav.backend import Booked
from gateway.store.schema import bookings


@dataclass(frozen=True)
class StoredBooking:
    booking_id: str
    request_digest: str
    booked: Booked | None  # None: still being made
    answer: str | None
    cancelled: bool


def booking_uid(booking_id: str) -> str:
    """The UID of a booking's event (RFC 5545 §3.8.4.7), fixed by its id before Exchange is asked, so a
    retry of a booking whose answer was lost can find the event the first attempt made."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"urn:caldav-gateway:booking:{booking_id}"))


class KeyInUse(Exception):
    """Another request holds this Idempotency-Key (the stored row is ``existing``)."""

    def __init__(self, existing: StoredBooking | None) -> None:
        super().__init__("idempotency key in use")
        self.existing = existing


def _stored(row: dict) -> StoredBooking:
    booked = None
    if row["handle"] is not None:
        booked = Booked(calendar_id=row["calendar_id"], name=row["name"], handle=row["handle"])
    return StoredBooking(
        row["id"], row["request_digest"], booked, row["answer"], row["cancelled_at"] is not None
    )


class BookingStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def by_key(self, user_id: str, key: str) -> StoredBooking | None:
        query = select(bookings).where(bookings.c.user_id == user_id, bookings.c.idempotency_key == key)
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        return None if row is None else _stored(dict(row))

    async def by_id(self, user_id: str, booking_id: str) -> StoredBooking | None:
        query = select(bookings).where(bookings.c.user_id == user_id, bookings.c.id == booking_id)
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        return None if row is None else _stored(dict(row))

    async def reserve(self, user_id: str, key: str | None, digest: str) -> str:
        """A new booking id, its row holding the key; KeyInUse when another request has the key."""
        booking_id = secrets.token_urlsafe(16)
        row = {
            "id": booking_id,
            "user_id": user_id,
            "idempotency_key": key,
            "request_digest": digest,
            "created_at": datetime.now(UTC),
        }
        try:
            async with self._engine.begin() as conn:
                await conn.execute(insert(bookings).values(**row))
        except IntegrityError:
            raise KeyInUse(await self.by_key(user_id, key) if key else None) from None
        return booking_id

    async def complete(self, booking_id: str, booked: Booked, answer: str) -> None:
        values = {
            "calendar_id": booked.calendar_id,
            "name": booked.name,
            "handle": booked.handle,
            "answer": answer,
        }
        async with self._engine.begin() as conn:
            await conn.execute(update(bookings).where(bookings.c.id == booking_id).values(**values))

    async def release(self, booking_id: str) -> None:
        """Forget a reservation whose booking was not made."""
        async with self._engine.begin() as conn:
            await conn.execute(
                delete(bookings).where(bookings.c.id == booking_id, bookings.c.handle.is_(None))
            )

    async def cancelled(self, booking_id: str, *, cancelled: bool = True) -> None:
        """Mark the booking cancelled (or, when its cancellation failed, not)."""
        when = datetime.now(UTC) if cancelled else None
        async with self._engine.begin() as conn:
            await conn.execute(update(bookings).where(bookings.c.id == booking_id).values(cancelled_at=when))
