"""Two processes on one PostgreSQL database (two AccountServices, each with its own engine and listening
connection): failed sign-ins through one count in the other's budgets (gateway/accounts/throttle.py),
carried as messages on the invalidation channel (gateway/store/notify.py), which fit NOTIFY's payload
limit however many are sent at once, and never come back to their sender."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import pytest

from gateway.accounts.service import AccountService
from gateway.accounts.throttle import SignInThrottle
from gateway.accounts.vault import KeyRing, Vault
from gateway.caldav.backend import TooManyFailures
from gateway.config import LimitsConfig
from gateway.store.database import Database
from gateway.store.notify import PAYLOAD_BYTES, _payloads

BUDGET = LimitsConfig().failures_per_user_per_address


@pytest.fixture
def store() -> str:
    return "postgresql"


@pytest.fixture
async def databases(database_url: str) -> AsyncIterator[tuple[Database, Database]]:
    dbs = (Database(database_url), Database(database_url))
    for db in dbs:
        await db.open()
        await db.invalidations.start()
    try:
        yield dbs
    finally:
        for db in dbs:
            await db.close()


@pytest.fixture
def pair(databases) -> tuple[AccountService, AccountService]:
    keyring = KeyRing.ephemeral()
    a, b = (AccountService(db, Vault(keyring), None, throttle=SignInThrottle()) for db in databases)
    return a, b


async def heard(service: AccountService, user: str, address: str, count: int) -> None:
    started = time.monotonic()
    while service.throttle.failures("dav", user, address) != count:
        assert time.monotonic() - started < 2.0, service.throttle.failures("dav", user, address)
        await asyncio.sleep(0.01)


async def test_failures_through_one_process_spend_the_budget_in_the_other(pair) -> None:
    a, b = pair
    user = await a.create_user("dora")
    _, clear = await a.create_app_password(user.user_id, "phone")
    for n in range(BUDGET):
        assert await (a, b)[n % 2].authenticate("dora", "wrong", "192.0.2.7") is None
    await heard(a, "dora", "192.0.2.7", BUDGET)
    await heard(b, "dora", "192.0.2.7", BUDGET)
    for service in (a, b):
        with pytest.raises(TooManyFailures):
            await service.authenticate("dora", clear, "192.0.2.7")
    assert (await b.authenticate("dora", clear, "192.0.2.8")).user_id == user.user_id


async def test_a_burst_of_messages_reaches_the_other_process_whole_and_not_its_sender(databases) -> None:
    a, b = (db.invalidations for db in databases)
    got: dict[str, list[str]] = {"a": [], "b": []}
    a.on_message("test_burst", got["a"].append)
    b.on_message("test_burst", got["b"].append)
    sent = [json.dumps(["n", n, "é" * 40]) for n in range(1000)]  # ~130 KB: many notices
    for message in sent:
        a.send_soon("test_burst", message)
    started = time.monotonic()
    while len(got["b"]) < len(sent):
        assert time.monotonic() - started < 5.0, len(got["b"])
        await asyncio.sleep(0.02)
    assert got["b"] == sent and got["a"] == []


def test_messages_are_packed_into_notices_within_the_payload_limit() -> None:
    batch = [("k", "m" * 300 + str(n)) for n in range(100)] + [("k", "too long" * 2000), ("j", "other")]
    payloads = _payloads(batch, "origin")
    assert all(len(p.encode()) <= PAYLOAD_BYTES for p in payloads)
    lines = [p.split("\n") for p in payloads]
    assert [line for p in lines if p[0] == "k" for line in p[2:]] == [m for _, m in batch[:100]]
    assert [p for p in lines if p[0] == "j"] == [["j", "origin", "other"]]
