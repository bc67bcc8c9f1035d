"""Connecting an Exchange account never puts the Exchange password on the network readable, and a TLS
server the gateway does not trust is named as such (with the way to trust it), not as "no server found".

Plain ``http://`` to another machine: Basic would send the password in base64, NTLM a hash that can be
cracked offline; loopback (the emulator, the tests) stays allowed. The non-loopback cases use this
machine's own non-loopback address, where the emulator is started for the purpose.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.ews.client import EwsClient
from gateway.ews.connection import ConnectError, ConnectionSettings, Credentials
from gateway.ews.emulator.app import create_app as create_emulator_app
from gateway.ews.emulator.app import default_seed
from tests.support.emulator import EmulatorServer
from tests.web.gateway_support import admin_headers
from tests.web.test_pages import signed_in

NOWHERE = "http://exchange.invalid/EWS/Exchange.asmx"  # RFC 6761: .invalid never resolves


def _alice(server: str | None = None, auth_type: str | None = None) -> ConnectionSettings:
    return ConnectionSettings(
        "alice@example.com", Credentials("alice@example.com", "alice-pw", auth_type), server=server
    )


def _own_address() -> str | None:
    """This machine's address on its default route, if it has one that is not loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.123", 9))  # a UDP "connect" only picks the route: nothing is sent
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if ipaddress.ip_address(address).is_loopback else address


@pytest.fixture
async def remote_exchange() -> AsyncIterator[str]:
    """The emulator on a non-loopback address of this machine: its plain-http EWS URL."""
    address = _own_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    server = TestServer(create_emulator_app(default_seed()), host=address)
    await server.start_server()
    try:
        yield f"http://{address}:{server.port}/EWS/Exchange.asmx"
    finally:
        await server.close()


@pytest.mark.parametrize("auth_type", ["basic", "ntlm", None], ids=["basic", "ntlm", "detect"])
async def test_a_password_is_never_sent_over_plain_http_to_another_machine(auth_type: str | None) -> None:
    client = EwsClient()
    started = time.monotonic()
    try:
        with pytest.raises(ConnectError) as refused:
            await client.connect(_alice(server=NOWHERE, auth_type=auth_type))
    finally:
        await client.close()
    assert refused.value.code == "insecure_transport"
    assert "https://" in refused.value.message and "exchange.invalid" in refused.value.message
    assert time.monotonic() - started < 1.0  # refused before any request, even a DNS look-up


async def test_ntlm_over_plain_http_only_when_allowed_and_basic_never(remote_exchange: str) -> None:
    strict, lenient = EwsClient(), EwsClient(allow_ntlm_over_http=True)
    try:
        with pytest.raises(ConnectError) as refused:
            await strict.connect(_alice(server=remote_exchange))
        assert refused.value.code == "insecure_transport"
        assert "allow_ntlm_over_http" in refused.value.message
        with pytest.raises(ConnectError) as basic:
            await lenient.connect(_alice(server=remote_exchange, auth_type="basic"))
        assert basic.value.code == "insecure_transport"
        info = await lenient.connect(_alice(server=remote_exchange))
        assert info.auth_type == "ntlm"  # detected: the emulator offers NTLM, and the setting allows it
    finally:
        await strict.close()
        await lenient.close()


async def test_plain_http_on_loopback_stays_allowed(emulator: EmulatorServer) -> None:
    client = EwsClient()
    try:
        info = await client.connect(_alice(server=emulator.ews_url, auth_type="basic"))
    finally:
        await client.close()
    assert info.auth_type == "basic"


async def test_the_admin_api_gives_the_sentence(gateway: TestClient, services: Any) -> None:
    ann = await services.accounts.create_user("ann")
    answer = await gateway.post(
        f"/api/v1/admin/users/{ann.user_id}/accounts",
        json={"email": "alice@example.com", "password": "alice-pw", "server": NOWHERE, "auth_type": "basic"},
        headers=admin_headers(),
    )
    assert answer.status == 422
    body = await answer.json()
    assert body["error"] == "insecure_transport" and "https://" in body["message"]


async def test_the_connect_page_gives_the_sentence(gateway: TestClient, services: Any) -> None:
    csrf = await signed_in(gateway, services)
    page = await gateway.post(
        "/accounts/connect",
        data={
            "csrf_token": csrf,
            "email": "alice@example.com",
            "password": "alice-pw",
            "server": NOWHERE,
            "auth_type": "basic",
            "manual": "1",
        },
    )
    assert page.status == 422
    assert "does not send an Exchange password to exchange.invalid over plain http://" in await page.text()


@pytest.fixture(scope="module")
def tls_emulator() -> Iterator[EmulatorServer]:
    """The emulator over HTTPS with a self-signed certificate (``--tls``)."""
    with EmulatorServer(default_seed(), tls=True) as server:
        yield server


async def test_autodiscover_at_an_untrusted_certificate_says_so_and_how_to_trust_it(
    tls_emulator: EmulatorServer,
) -> None:
    endpoints = {"example.com": tls_emulator.autodiscover_url}
    untrusting = EwsClient(autodiscover_endpoints=endpoints)
    trusting = EwsClient(autodiscover_endpoints=endpoints, ca_file=str(tls_emulator.ca_file))
    try:
        with pytest.raises(ConnectError) as refused:
            await untrusting.connect(_alice())
        info = await trusting.connect(_alice())
    finally:
        await untrusting.close()
        await trusting.close()
    assert refused.value.code == "tls_untrusted"
    message = refused.value.message
    assert "not trusted" in message and "127.0.0.1" in message and "ca_file" in message
    assert "no Exchange server" not in message
    assert info.ews_url.startswith("https://127.0.0.1:")
