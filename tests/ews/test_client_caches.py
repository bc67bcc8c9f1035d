"""EwsClient's account cache against the emulator: bounded, evicting without harm, no network to re-create."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import pytest
from exchangelib.folders import Calendar

from gateway.ews.client import EwsClient
from gateway.ews.connection import ConnectionInfo, ConnectionSettings, Credentials
from tests.support.emulator import EmulatorServer

WHO = ("alice", "bob", "carol")


@pytest.fixture
async def client() -> AsyncIterator[EwsClient]:
    ews = EwsClient(max_live_accounts=2, retry_budget_s=5, request_timeout_s=10)
    yield ews
    await ews.close()


async def _stored(
    client: EwsClient, emulator: EmulatorServer, who: str
) -> tuple[ConnectionInfo, Credentials]:
    """Connect a demo mailbox as the gateway does, returning what it stores (no Account is kept)."""
    credentials = Credentials(f"{who}@example.com", f"{who}-pw")
    info = await client.connect(
        ConnectionSettings(f"{who}@example.com", credentials, server=emulator.ews_url)
    )
    return info, credentials


def _calendar_name(account):
    """GetFolder of the distinguished calendar."""
    return lambda: Calendar.get_distinguished(root=account.root).name


async def test_connecting_keeps_no_account(client, emulator):
    for who in WHO:
        await _stored(client, emulator, who)
    assert client.live_accounts() == 0 and client.live_protocols() == 0


async def test_the_cache_is_bounded_and_re_creating_an_account_costs_no_request(client, emulator):
    stored = [await _stored(client, emulator, who) for who in WHO]
    for info, credentials in stored:
        account = client.account(info, credentials)
        assert await client.run(account, "GetFolder", _calendar_name(account)) == "Calendar"
        assert client.live_accounts() <= 2 and client.live_protocols() <= 2
    assert client.live_accounts() == 2

    before = emulator.stats()["operations"]
    client.account(*stored[0])  # alice's was evicted by carol's
    assert emulator.stats()["operations"] == before
    assert client.account(*stored[0]) is client.account(*stored[0])  # and is cached again


async def test_a_changed_password_gives_a_new_account(client, emulator):
    info, credentials = await _stored(client, emulator, "alice")
    old = client.account(info, credentials)
    new = client.account(info, Credentials(credentials.username, "another-pw"))
    assert new is not old and new.protocol is not old.protocol


async def test_a_call_running_on_an_evicted_account_completes(client, emulator):
    stored = [await _stored(client, emulator, who) for who in WHO]
    alice = client.account(*stored[0])
    assert (
        await client.run(alice, "GetFolder", _calendar_name(alice)) == "Calendar"
    )  # alice's session is open
    waiting, go = threading.Event(), threading.Event()

    def two_calls() -> tuple[str, str]:
        first = _calendar_name(alice)()
        waiting.set()
        go.wait(10)
        return first, _calendar_name(alice)()

    running = asyncio.ensure_future(client.run(alice, "GetFolder", two_calls))
    assert await asyncio.to_thread(waiting.wait, 10)
    for info, credentials in stored[1:]:  # bob and carol evict alice; her protocol is closed
        client.account(info, credentials)
    assert client.live_accounts() == 2
    go.set()
    assert await running == ("Calendar", "Calendar")
