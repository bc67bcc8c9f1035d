"""The bookings table (gateway/booking/store.py): one row per Idempotency-Key and user, reserved before
Exchange is asked; and its schema upgrade."""

from __future__ import annotations

import pytest
from sqlalchemy import insert, text

from gateway.booking.store import BookingStore, KeyInUse
from gateway.caldav.backend import Booked
from gateway.store.database import Database
from gateway.store.schema import users
from tests.support.postgres import on_both_stores

pytestmark = on_both_stores


@pytest.fixture
async def bookings(database_url: str):
    db = Database(database_url)
    await db.open()
    async with db.engine.begin() as conn:
        for user in ("u1", "u2"):
            await conn.execute(
                insert(users).values(
                    id=user, username=user, display_name=user, created_at=text("CURRENT_TIMESTAMP")
                )
            )
    yield BookingStore(db.engine)
    await db.close()


async def test_a_key_is_reserved_once_per_user(bookings: BookingStore) -> None:
    first = await bookings.reserve("u1", "k", "digest-1")
    with pytest.raises(KeyInUse) as raised:
        await bookings.reserve("u1", "k", "digest-2")
    assert raised.value.existing.booking_id == first and raised.value.existing.booked is None
    assert await bookings.reserve("u2", "k", "digest-1") != first  # another user's key
    assert await bookings.reserve("u1", None, "d") != await bookings.reserve(
        "u1", None, "d"
    )  # no key: no limit


async def test_a_completed_booking_is_found_and_a_failed_one_frees_its_key(bookings: BookingStore) -> None:
    made = await bookings.reserve("u1", "k", "digest")
    await bookings.complete(made, Booked("cal", "x.ics", "item-id"), '{"id": "..."}')
    found = await bookings.by_key("u1", "k")
    assert found.booked == Booked("cal", "x.ics", "item-id") and found.answer == '{"id": "..."}'
    await bookings.release(made)  # a completed booking is never released
    assert await bookings.by_id("u1", made) is not None and await bookings.by_id("u2", made) is None
    await bookings.cancelled(made)
    assert (await bookings.by_id("u1", made)).cancelled

    failed = await bookings.reserve("u1", "k2", "digest")
    await bookings.release(failed)
    assert await bookings.by_key("u1", "k2") is None
    await bookings.reserve("u1", "k2", "digest")


async def test_a_database_of_schema_3_gets_the_table(database_url: str) -> None:
    db = Database(database_url)
    await db.open()
    async with db.engine.begin() as conn:
        await conn.execute(text("DROP TABLE bookings"))
        await conn.execute(text("ALTER TABLE app_passwords DROP COLUMN scope"))  # schema 5's
        await conn.execute(text("DELETE FROM schema_migrations"))
        await conn.execute(text("INSERT INTO schema_migrations VALUES (3, '2026-01-01 00:00:00')"))
        await conn.execute(
            insert(users).values(
                id="u1", username="u1", display_name="u1", created_at=text("CURRENT_TIMESTAMP")
            )
        )
    await db.close()
    db = Database(database_url)
    await db.open()
    try:
        assert await BookingStore(db.engine).reserve("u1", "k", "d")
    finally:
        await db.close()


async def test_a_database_of_schema_4_gets_app_password_scopes(database_url: str) -> None:
    """Schema 5: app passwords made before it stay app passwords (scope all), and tokens can be stored."""
    db = Database(database_url)
    await db.open()
    async with db.engine.begin() as conn:
        await conn.execute(text("ALTER TABLE app_passwords DROP COLUMN scope"))
        await conn.execute(text("DELETE FROM schema_migrations"))
        await conn.execute(text("INSERT INTO schema_migrations VALUES (4, '2026-01-01 00:00:00')"))
        await conn.execute(
            insert(users).values(
                id="u1", username="u1", display_name="u1", created_at=text("CURRENT_TIMESTAMP")
            )
        )
        await conn.execute(
            text(
                "INSERT INTO app_passwords (id, user_id, label, lookup, password_hash, created_at)"
                " VALUES ('p1', 'u1', 'old', 'x', 'y', CURRENT_TIMESTAMP)"
            )
        )
    await db.close()
    db = Database(database_url)
    await db.open()
    try:
        async with db.engine.begin() as conn:
            assert (await conn.execute(text("SELECT scope FROM app_passwords"))).scalar() == "all"
            await conn.execute(
                text(
                    "INSERT INTO app_passwords (id, user_id, label, lookup, password_hash, created_at, scope)"
                    " VALUES ('p2', 'u1', 'tool', 'z', 'y', CURRENT_TIMESTAMP, 'booking')"
                )
            )
    finally:
        await db.close()
