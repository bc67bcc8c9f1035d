"""Two replicas on one PostgreSQL database (two AccountServices, each with its own engine and listening
connection, as two processes have): what one changes, the other stops using from its caches within a
second (gateway/store/notify.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from sqlalchemy import text

from gateway.accounts.service import AccountService
from gateway.accounts.vault import KeyRing, Vault
from gateway.ews.connection import ConnectionInfo
from gateway.store.database import Database

WITHIN = 1.0  # seconds: what the issue allows a change to take to reach every replica


@pytest.fixture
def store() -> str:
    return "postgresql"  # several processes on one database


@pytest.fixture
async def pair(database_url: str) -> AsyncIterator[tuple[AccountService, AccountService]]:
    keyring = KeyRing.ephemeral()
    dbs = [Database(database_url), Database(database_url)]
    services = []
    for db in dbs:
        await db.open()
        await db.invalidations.start()
        services.append(AccountService(db, Vault(keyring), None))
    try:
        yield services[0], services[1]
    finally:
        for db in dbs:
            await db.close()


async def eventually(check: Callable[[], Awaitable[bool]], within: float = WITHIN) -> float:
    """Seconds until ``check`` holds; fails after ``within``."""
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < within, "the other replica still uses what it cached"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def test_an_app_password_revoked_on_one_replica_is_refused_by_the_other(pair) -> None:
    a, b = pair
    user = await a.create_user("carol")
    record, clear = await a.create_app_password(user.user_id, "phone")
    assert (await b.authenticate("carol", clear)).user_id == user.user_id
    assert b.verified.get("carol", clear) is not None  # B answers the next request from its cache

    await a.revoke_app_password(user.user_id, record.app_password_id)

    async def refused() -> bool:
        return await b.authenticate("carol", clear) is None

    await eventually(refused)


async def test_a_user_deleted_on_one_replica_cannot_sign_in_on_the_other(pair) -> None:
    a, b = pair
    user = await a.create_user("dave")
    _, clear = await a.create_app_password(user.user_id, "laptop")
    assert await b.authenticate("dave", clear) is not None
    await a.delete_user(user.user_id)

    async def refused() -> bool:
        return await b.authenticate("dave", clear) is None

    await eventually(refused)


def _info(email: str) -> ConnectionInfo:
    return ConnectionInfo(
        email, "https://ex.invalid/EWS/Exchange.asmx", "basic", email, "Exchange2016", "15", None, "manual"
    )


async def test_an_account_removed_on_one_replica_is_gone_on_the_other(pair) -> None:
    a, b = pair
    user = await a.create_user("erin")
    first = await a.exchange._store_account(user.user_id, _info("erin@example.com"), "secret-1")
    await a.exchange._store_account(user.user_id, _info("erin@other.example"), "secret-2")
    assert (await b.principal(user.user_id)).emails == ("erin@example.com", "erin@other.example")
    assert len(await b.connected_accounts(user.user_id)) == 2  # both cached on B now

    await a.remove_account(user.user_id, first.account_id)

    async def gone() -> bool:
        emails = (await b.principal(user.user_id)).emails
        return emails == ("erin@other.example",) and len(await b.connected_accounts(user.user_id)) == 1

    await eventually(gone)

    # a changed password (connecting the same address again) reaches B's cached credentials too
    await a.exchange._store_account(user.user_id, _info("erin@other.example"), "secret-3")

    async def new_password() -> bool:
        return (await b.connected_accounts(user.user_id))[0].credentials.password == "secret-3"

    await eventually(new_password)


async def test_a_lost_listening_connection_drops_every_cache_and_listens_again(pair) -> None:
    a, b = pair
    user = await a.create_user("frank")
    record, clear = await a.create_app_password(user.user_id, "tablet")
    assert await b.authenticate("frank", clear) is not None
    assert b.verified.get("frank", clear) is not None
    async with a.users.db.engine.begin() as conn:  # the server ends B's listening session
        await conn.execute(
            text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%'")
        )

    async def dropped() -> bool:
        return b.verified.get("frank", clear) is None

    await eventually(dropped)  # whatever was announced meanwhile, nothing stale is kept

    async def listening_again() -> bool:
        return b.users.db.invalidations.token("sign_in") is not None

    await eventually(listening_again, within=5)
    assert await b.authenticate("frank", clear) is not None  # cached again
    assert b.verified.get("frank", clear) is not None
    await a.revoke_app_password(user.user_id, record.app_password_id)

    async def refused() -> bool:
        return await b.authenticate("frank", clear) is None

    await eventually(refused)
