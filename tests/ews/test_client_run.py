"""EwsClient.run against the emulator: threads, per-account limits, back-off, timeouts, metrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from exchangelib.folders import Calendar

from gateway.ews.client import EwsClient
from gateway.ews.connection import ConnectionSettings, Credentials
from gateway.ews.errors import EwsUnavailable
from tests.support.emulator import EmulatorServer


async def _connected(client: EwsClient, emulator: EmulatorServer, who: str):
    credentials = Credentials(f"{who}@example.com", f"{who}-pw")
    info = await client.connect(
        ConnectionSettings(f"{who}@example.com", credentials, server=emulator.ews_url)
    )
    account = client.account(info, credentials)
    await client.run(account, "GetFolder", lambda: account.root)  # warm: later calls are one GetFolder each
    return account


def _open_calendar(account):
    """One GetFolder request (the root folder is cached by then)."""
    return lambda: Calendar.get_distinguished(root=account.root)


@pytest.fixture
async def client() -> AsyncIterator[EwsClient]:
    ews = EwsClient(per_account_concurrency=2, retry_budget_s=5, request_timeout_s=10)
    yield ews
    await ews.close()


async def test_calls_run_in_threads_and_the_loop_keeps_ticking(client, emulator):
    alice = await _connected(client, emulator, "alice")
    emulator.set_faults(latency_ms=400)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    started = time.monotonic()
    calendar = await client.run(alice, "GetFolder", _open_calendar(alice))
    elapsed = time.monotonic() - started
    task.cancel()
    assert calendar.name == "Calendar"
    assert elapsed >= 0.4
    assert ticks >= 5  # a blocked loop would have ticked about once (generous for a loaded machine)


async def test_per_account_concurrency_is_respected(client, emulator):
    alice = await _connected(client, emulator, "alice")
    emulator.reset()
    # The emulator answers ErrorServerBusy when a user has more than 2 requests in flight.
    emulator.set_faults(latency_ms=200, max_concurrent_per_user=2)
    started = time.monotonic()
    results = await asyncio.gather(*(client.run(alice, "GetFolder", _open_calendar(alice)) for _ in range(6)))
    elapsed = time.monotonic() - started
    assert [r.name for r in results] == ["Calendar"] * 6
    assert emulator.stats()["operations"]["GetFolder"] == 6  # never refused as busy, so never retried
    assert elapsed >= 3 * 0.2  # six calls, two at a time


async def test_server_busy_backs_off_one_account_while_another_proceeds(client, emulator):
    alice = await _connected(client, emulator, "alice")
    bob = await _connected(client, emulator, "bob")
    emulator.reset()
    emulator.set_faults(
        rules=[
            {
                "kind": "server_busy",
                "user": "alice@example.com",
                "operation": "GetFolder",
                "count": 1,
                "back_off_ms": 1200,
            }
        ]
    )
    done: dict[str, float] = {}
    started = time.monotonic()

    async def timed(name: str, account) -> None:
        await client.run(account, "GetFolder", _open_calendar(account))
        done[name] = time.monotonic() - started

    await asyncio.gather(timed("alice", alice), timed("bob", bob))
    assert done["alice"] >= 1.2  # waited as long as Exchange asked
    assert done["bob"] < 0.8  # unaffected by alice's back-off
    per_mailbox = emulator.stats()["mailboxes"]
    assert per_mailbox["alice@example.com"]["GetFolder"] == 2  # refused once, then retried
    assert per_mailbox["bob@example.com"]["GetFolder"] == 1


async def test_back_off_beyond_the_budget_is_unavailable(emulator):
    ews = EwsClient(retry_budget_s=0.5)
    try:
        alice = await _connected(ews, emulator, "alice")
        emulator.set_faults(rules=[{"kind": "server_busy", "user": "alice@example.com", "back_off_ms": 3000}])
        started = time.monotonic()
        with pytest.raises(EwsUnavailable) as info:
            await ews.run(alice, "GetFolder", _open_calendar(alice))
    finally:
        await ews.close()
    assert time.monotonic() - started < 1.5  # did not sleep 3 s for nothing
    assert info.value.retry_after == 3
    assert info.value.operation == "GetFolder"


async def test_slow_exchange_times_out(emulator):
    ews = EwsClient(request_timeout_s=0.3)
    try:
        alice = await _connected(ews, emulator, "alice")
        emulator.set_faults(latency_ms=1500)
        with pytest.raises(EwsUnavailable) as info:
            await ews.run(alice, "GetFolder", _open_calendar(alice))
    finally:
        emulator.set_faults()
        await ews.close()
    assert "GetFolder" in str(info.value)


async def test_metrics_count_what_exchange_received(emulator):
    ews = EwsClient(autodiscover_endpoints={"example.com": emulator.autodiscover_url})
    try:
        credentials = Credentials("alice@example.com", "alice-pw")
        info = await ews.connect(ConnectionSettings("alice@example.com", credentials))
        alice = ews.account(info, credentials)
        emulator.set_faults(
            rules=[{"kind": "server_busy", "operation": "GetFolder", "count": 1, "back_off_ms": 50}]
        )
        for _ in range(3):
            await ews.run(alice, "GetFolder", _open_calendar(alice))
    finally:
        await ews.close()
    received = emulator.stats()["operations"]
    counted = ews.metrics.requests()
    assert counted.pop("GetUserSettings") == received.pop("Autodiscover") == 1
    assert counted == received
    text = ews.metrics.render_prometheus()
    assert f'gateway_ews_requests_total{{operation="GetFolder"}} {received["GetFolder"]}' in text
    assert 'gateway_ews_request_failures_total{operation="GetFolder"} 1' in text  # the busy answer
    assert 'gateway_ews_request_duration_seconds_count{operation="ConvertId"}' in text


async def test_a_dropped_connection_is_not_repeated(client, emulator):
    alice = await _connected(client, emulator, "alice")
    # Two sessions in alice's pool: exchangelib then reports the broken connection as "server busy".
    await asyncio.gather(*(client.run(alice, "GetFolder", _open_calendar(alice)) for _ in range(2)))
    emulator.reset()
    emulator.set_faults(rules=[{"kind": "drop", "operation": "GetFolder", "count": 1}])
    with pytest.raises(EwsUnavailable):
        await client.run(alice, "GetFolder", _open_calendar(alice))
    assert emulator.stats()["operations"] == {"GetFolder": 1}  # it may have been carried out: not sent twice


@pytest.mark.parametrize(
    ("rule", "refused"),
    [
        ({"kind": "server_busy", "back_off_ms": 100}, True),  # Exchange said no: nothing was done
        ({"kind": "http_503", "when": "after"}, False),  # the answer was lost: perhaps it was done
    ],
)
async def test_an_item_write_is_never_repeated_here(client, emulator, rule, refused):
    """Repeating a CreateItem whose answer was lost would duplicate the event, so item writes leave
    the decision to the writer, told whether Exchange refused the request."""
    alice = await _connected(client, emulator, "alice")
    emulator.reset()
    emulator.set_faults(rules=[{**rule, "operation": "GetFolder", "count": 1}])
    with pytest.raises(EwsUnavailable) as failed:  # a GetFolder stands in for the write: same transport
        await client.run(alice, "CreateItem", _open_calendar(alice))
    assert failed.value.refused is refused
    assert emulator.stats()["operations"] == {"GetFolder": 1}
    emulator.set_faults(rules=[{**rule, "operation": "GetFolder", "count": 1}])
    await client.run(alice, "GetFolder", _open_calendar(alice))  # a read is repeated
    assert emulator.stats()["operations"] == {"GetFolder": 3}
