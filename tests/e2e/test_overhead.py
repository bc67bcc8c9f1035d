"""What the per-request caches of the EWS backend must never change: a changed password or a removed
account counts at once, users stay isolated, and a bounded account cache costs no extra EWS call.

The gateway app runs over real HTTP in front of the emulator (demo seed); EWS calls are read from the
emulator's counters.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import encode_basic_auth
from aiohttp.test_utils import TestClient

from gateway.accounts.service import ConnectRequest
from gateway.app import create_app
from gateway.config import EwsConfig, GatewayConfig, ServerConfig, StorageConfig
from gateway.web.services import Services
from tests.web.gateway_support import make_services

CTAG = (
    '<propfind xmlns="DAV:" xmlns:CS="http://calendarserver.org/ns/">'
    "<prop><CS:getctag/><sync-token/></prop></propfind>"
)


@pytest.fixture
def services(tmp_path: Path, emulator: Any, secret_key: str) -> Services:
    """A gateway that keeps a single exchangelib account alive, so every second account evicts one."""
    config = GatewayConfig(
        server=ServerConfig(),
        storage=StorageConfig(data_dir=tmp_path / "data"),
        ews=EwsConfig(autodiscover_endpoints={"example.com": emulator.autodiscover_url}, max_live_accounts=1),
    )
    return make_services(config, secret_key)


@pytest.fixture
def secret_key() -> str:
    from gateway.accounts.vault import generate_key

    return generate_key()


@pytest.fixture
async def gateway(aiohttp_client: Any, services: Services) -> AsyncIterator[TestClient]:
    yield await aiohttp_client(create_app(services.config, services=services))


def _basic(email: str, password: str | None = None) -> ConnectRequest:
    """Basic authentication: Exchange checks the password on every request (NTLM, per connection)."""
    return ConnectRequest(email, password or email.split("@")[0] + "-pw", auth_type="basic")


async def _user(services: Services, name: str, *emails: str) -> tuple[Any, str, list[Any]]:
    """A gateway user with the given demo mailboxes connected and an app password."""
    accounts = services.accounts
    user = await accounts.create_user(name)
    records = [await accounts.connect_account(user.user_id, _basic(e)) for e in emails]
    _, clear = await accounts.create_app_password(user.user_id, "phone")
    return user, clear, records


async def _ctag(
    gateway: TestClient, user: str, password: str, calendar_id: str, owner: str | None = None
) -> int:
    """Status of a ctag PROPFIND (Depth 0) on a calendar collection, as a polling client sends it."""
    path = f"/dav/calendars/{owner or user}/{calendar_id}/"
    headers = {"Depth": "0", "Authorization": encode_basic_auth(user, password)}
    response = await gateway.request("PROPFIND", path, data=CTAG, headers=headers)
    await response.read()
    return response.status


def _set_exchange_password(emulator: Any, email: str, password: str) -> None:
    """The mailbox's password changes in Exchange (the emulator's reset restores it)."""
    directory = emulator.state.directory
    mailbox = directory.get(email)
    directory._by_email[mailbox.email] = dataclasses.replace(mailbox, password=password)


def _calls(emulator: Any, email: str) -> dict[str, int]:
    return dict(emulator.stats()["mailboxes"].get(email, {}))


def _delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}


async def test_a_reconnected_password_counts_on_the_next_request(
    gateway: TestClient, services: Services, emulator: Any
) -> None:
    user, app_pw, [alice] = await _user(services, "ann", "alice@example.com")
    calendar = f"{alice.account_id}-calendar"
    assert await _ctag(gateway, "ann", app_pw, calendar) == 207  # credentials now cached in memory

    _set_exchange_password(emulator, "alice@example.com", "changed-pw")
    await services.accounts.connect_account(user.user_id, _basic("alice@example.com", "changed-pw"))
    assert await _ctag(gateway, "ann", app_pw, calendar) == 207


async def test_a_password_stored_by_another_replica_counts_once_exchange_refuses_the_old(
    gateway: TestClient, services: Services, emulator: Any, secret_key: str
) -> None:
    user, app_pw, [alice] = await _user(services, "ann", "alice@example.com")
    calendar = f"{alice.account_id}-calendar"
    assert await _ctag(gateway, "ann", app_pw, calendar) == 207

    _set_exchange_password(emulator, "alice@example.com", "changed-pw")
    replica = make_services(services.config, secret_key)  # a second gateway process on the same database
    await replica.db.open()
    try:
        await replica.accounts.connect_account(user.user_id, _basic("alice@example.com", "changed-pw"))
    finally:
        await replica.ews_client.close()
        await replica.db.close()
    assert await _ctag(gateway, "ann", app_pw, calendar) != 207  # this process still held the old password
    assert await _ctag(gateway, "ann", app_pw, calendar) == 207  # ... and read the new one after the refusal


async def test_a_removed_account_is_gone_on_the_next_request(gateway: TestClient, services: Services) -> None:
    user, app_pw, [alice, carol] = await _user(services, "ann", "alice@example.com", "carol@example.com")
    assert await _ctag(gateway, "ann", app_pw, f"{carol.account_id}-calendar") == 207
    await services.accounts.remove_account(user.user_id, carol.account_id)
    assert await _ctag(gateway, "ann", app_pw, f"{carol.account_id}-calendar") == 404
    assert await _ctag(gateway, "ann", app_pw, f"{alice.account_id}-calendar") == 207


async def test_cached_calendars_stay_their_owners(gateway: TestClient, services: Services) -> None:
    _, ann_pw, [alice] = await _user(services, "ann", "alice@example.com")
    _, ben_pw, [bob] = await _user(services, "ben", "bob@example.com")
    alice_calendar = f"{alice.account_id}-calendar"
    assert (
        await _ctag(gateway, "ann", ann_pw, alice_calendar) == 207
    )  # alice's calendar is warm in every cache
    assert await _ctag(gateway, "ben", ben_pw, f"{bob.account_id}-calendar") == 207
    assert await _ctag(gateway, "ben", ben_pw, alice_calendar) == 404  # under his own home: not his
    assert await _ctag(gateway, "ben", ben_pw, alice_calendar, owner="ann") in (403, 404)
    assert await _ctag(gateway, "ann", ben_pw, alice_calendar) == 401


async def test_an_evicted_account_comes_back_without_extra_ews_calls(
    gateway: TestClient, services: Services, emulator: Any
) -> None:
    _, app_pw, [alice, carol] = await _user(services, "ann", "alice@example.com", "carol@example.com")
    alice_calendar, carol_calendar = f"{alice.account_id}-calendar", f"{carol.account_id}-calendar"
    assert await _ctag(gateway, "ann", app_pw, alice_calendar) == 207  # folder discovery, first sync
    before = _calls(emulator, "alice@example.com")
    assert await _ctag(gateway, "ann", app_pw, alice_calendar) == 207
    warm = _delta(before, _calls(emulator, "alice@example.com"))
    assert warm == {"SyncFolderItems": 1}

    for _ in range(2):
        assert await _ctag(gateway, "ann", app_pw, carol_calendar) == 207  # carol's account evicts alice's
        client = services.ews_client
        assert client.live_accounts() == 1 and client.live_protocols() == 1
        before = _calls(emulator, "alice@example.com")
        assert await _ctag(gateway, "ann", app_pw, alice_calendar) == 207  # alice's is re-created
        assert _delta(before, _calls(emulator, "alice@example.com")) == warm
