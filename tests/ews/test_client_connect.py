"""EwsClient.connect against the EWS emulator over real HTTP with real exchangelib."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
from collections.abc import AsyncIterator, Iterator

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from exchangelib.autodiscover.cache import autodiscover_cache
from exchangelib.protocol import CachingProtocol

from gateway.ews.client import EwsClient
from gateway.ews.connection import ConnectError, ConnectionSettings, Credentials
from gateway.ews.emulator.app import default_seed
from gateway.ews.errors import EwsAuthError
from tests.support.emulator import EmulatorServer


@pytest.fixture
async def client(emulator: EmulatorServer) -> AsyncIterator[EwsClient]:
    ews = EwsClient(autodiscover_endpoints={"example.com": emulator.autodiscover_url}, request_timeout_s=10)
    yield ews
    await ews.close()


def _alice(
    server: str | None = None, auth_type: str | None = None, password: str = "alice-pw"
) -> ConnectionSettings:
    return ConnectionSettings(
        "alice@example.com", Credentials("alice@example.com", password, auth_type), server=server
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_connect_by_autodiscover(client, emulator):
    cached_domains, cached_protocols = len(autodiscover_cache), len(CachingProtocol._protocol_cache)
    info = await client.connect(_alice())
    # exchangelib's process-global caches (one persisted to a shared temp file) are left alone.
    assert (len(autodiscover_cache), len(CachingProtocol._protocol_cache)) == (
        cached_domains,
        cached_protocols,
    )
    assert info.via == "autodiscover"
    assert info.ews_url == emulator.ews_url
    assert (info.email, info.display_name) == ("alice@example.com", "Alice Adams")
    assert (info.version, info.build) == ("Exchange2016", "15.1.2507.6")
    assert info.auth_type == "ntlm"  # offered Negotiate/NTLM/Basic: the password stays off the wire
    ops = emulator.stats()["operations"]
    assert ops["Autodiscover"] == 1
    assert ops["GetFolder"] >= 1  # the calendar was opened before connect() returned


@pytest.mark.parametrize("auth_type", ["basic", "ntlm"])
async def test_connect_by_ews_url(client, emulator, auth_type):
    info = await client.connect(_alice(server=emulator.ews_url, auth_type=auth_type))
    assert (info.via, info.auth_type, info.ews_url) == ("manual", auth_type, emulator.ews_url)
    assert "Autodiscover" not in emulator.stats()["operations"]


async def test_connect_with_domain_and_bare_username(client, emulator):
    settings = ConnectionSettings(
        "bob@example.com", Credentials("bob", "bob-pw"), server=emulator.ews_url, domain="EMULATOR"
    )
    info = await client.connect(settings)
    assert info.username == "EMULATOR\\bob"
    assert info.email == "bob@example.com"


async def test_mailbox_access_is_checked(client, emulator):
    as_delegate = ConnectionSettings(
        "alice@example.com", Credentials("bob@example.com", "bob-pw"), server=emulator.ews_url
    )
    assert (await client.connect(as_delegate)).username == "bob@example.com"  # alice lists bob as a delegate
    stranger = ConnectionSettings(
        "alice@example.com", Credentials("carol@example.com", "carol-pw"), server=emulator.ews_url
    )
    with pytest.raises(ConnectError) as denied:
        await client.connect(stranger)
    assert denied.value.code == "auth_failed"
    assert "carol@example.com" in denied.value.message and "delegate" in denied.value.message
    missing = ConnectionSettings(
        "zed@example.com", Credentials("alice@example.com", "alice-pw"), server=emulator.ews_url
    )
    with pytest.raises(ConnectError) as unknown:
        await client.connect(missing)
    assert unknown.value.code == "invalid_input"
    assert "zed@example.com" in unknown.value.message


async def test_wrong_password_is_auth_failed_with_advice(client, emulator):
    with pytest.raises(ConnectError) as info:
        await client.connect(_alice(server=emulator.ews_url, password="wrong"))
    assert info.value.code == "auth_failed"
    assert "password" in info.value.message
    assert "DOMAIN\\user" in info.value.message
    assert "wrong" not in repr(info.value)


async def test_wrong_password_through_autodiscover_is_auth_failed(client):
    with pytest.raises(ConnectError) as info:
        await client.connect(_alice(password="wrong"))
    assert info.value.code == "auth_failed"


async def test_a_url_that_is_not_ews(client, emulator):
    with pytest.raises(ConnectError) as info:
        await client.connect(_alice(server=f"{emulator.base_url}/owa/"))
    assert info.value.code == "not_ews"
    assert "/EWS/Exchange.asmx" in info.value.message


async def test_nothing_listening(client):
    with pytest.raises(ConnectError) as info:
        await client.connect(_alice(server=f"http://127.0.0.1:{_free_port()}/EWS/Exchange.asmx"))
    assert info.value.code in ("server_not_found", "unreachable")


async def test_autodiscover_failure_asks_for_manual_details(emulator):
    ews = EwsClient(autodiscover_endpoints={"example.com": f"{emulator.base_url}/no/autodiscover/here"})
    try:
        with pytest.raises(ConnectError) as info:
            await ews.connect(_alice())
    finally:
        await ews.close()
    assert info.value.code == "autodiscover_failed"
    assert "server" in info.value.message and "username" in info.value.message


async def test_unknown_mailbox_in_autodiscover(client):
    settings = ConnectionSettings("nobody@example.com", Credentials("alice@example.com", "alice-pw"))
    with pytest.raises(ConnectError) as info:
        await client.connect(settings)
    assert info.value.code == "autodiscover_failed"


async def test_invalid_input_is_refused_before_any_request(client, emulator):
    for settings in (
        ConnectionSettings("not-an-address", Credentials("a", "b")),
        ConnectionSettings("alice@example.com", Credentials("alice", "")),
        ConnectionSettings("alice@example.com", Credentials("alice", "pw", "kerberos")),
    ):
        with pytest.raises(ConnectError) as info:
            await client.connect(settings)
        assert info.value.code == "invalid_input"
    assert emulator.stats()["operations"] == {}


async def test_stored_account_with_changed_password_raises_auth_error(client, emulator):
    info = await client.connect(_alice(server=emulator.ews_url))
    account = client.account(info, Credentials("alice@example.com", "changed-meanwhile"))
    with pytest.raises(EwsAuthError) as error:
        await client.run(account, "GetFolder", lambda: account.root)
    assert "changed-meanwhile" not in str(error.value)


async def test_account_from_stored_info_sends_no_probe(emulator):
    first = EwsClient()
    info = await first.connect(_alice(server=emulator.ews_url, auth_type="basic"))
    await first.close()
    emulator.reset()
    second = EwsClient()
    try:
        account = second.account(info, Credentials("alice@example.com", "alice-pw"))
        assert second.account(info, Credentials("alice@example.com", "alice-pw")) is account
        await second.run(account, "GetFolder", lambda: account.root)
    finally:
        await second.close()
    assert emulator.stats()["operations"] == {"GetFolder": 1}  # no ConvertId version probe, no auth probe


# --- other servers: Exchange 2013, redirects, modern auth, old versions, TLS ----------------------


@pytest.fixture(scope="module")
def special_emulator() -> Iterator[EmulatorServer]:
    """Exchange 2013 with a redirecting domain and a mailbox that accepts only OAuth tokens."""
    seed = default_seed()
    seed["autodiscover"]["old.example"] = {"mode": "redirect_address", "target": "example.com"}
    with EmulatorServer(seed, ews_version="2013") as server:
        yield server


async def test_exchange_2013_is_supported(special_emulator):
    ews = EwsClient()
    try:
        info = await ews.connect(_alice(server=special_emulator.ews_url))
    finally:
        await ews.close()
    assert info.version.startswith("Exchange2013")
    assert info.build == "15.0.1497.2"


async def test_autodiscover_follows_redirect_address(special_emulator):
    endpoints = {
        "old.example": special_emulator.autodiscover_url,
        "example.com": special_emulator.autodiscover_url,
    }
    ews = EwsClient(autodiscover_endpoints=endpoints)
    try:
        info = await ews.connect(
            ConnectionSettings("alice@old.example", Credentials("alice@example.com", "alice-pw"))
        )
    finally:
        await ews.close()
    assert info.email == "alice@example.com"
    assert info.ews_url == special_emulator.ews_url


@pytest.fixture(scope="module")
def cloud_emulator() -> Iterator[EmulatorServer]:
    """A tenant whose only mailbox signs in with a bearer token (the server offers only Bearer)."""
    seed = {
        "mailboxes": [
            {
                "email": "erin@cloud.example",
                "display_name": "Erin",
                "auth": ["bearer"],
                "tokens": ["erin-access-token"],
                "calendars": [{"name": "Calendar", "primary": True}],
            }
        ],
        "autodiscover": {},
    }
    with EmulatorServer(seed) as server:
        yield server


async def test_oauth_token_is_refused_over_plain_http(cloud_emulator):
    ews = EwsClient()
    token = Credentials("erin@cloud.example", "erin-access-token", "oauth2")
    try:
        with pytest.raises(ConnectError) as info:
            await ews.connect(ConnectionSettings("erin@cloud.example", token, server=cloud_emulator.ews_url))
    finally:
        await ews.close()
    assert info.value.code == "invalid_input"
    assert "https" in info.value.message


async def test_modern_auth_only_tenant(cloud_emulator, monkeypatch):
    # The emulator speaks plain HTTP; oauthlib sends tokens over it only when told it is a test.
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    ews = EwsClient()
    try:
        with pytest.raises(ConnectError) as info:
            await ews.connect(
                ConnectionSettings(
                    "erin@cloud.example",
                    Credentials("erin@cloud.example", "pw"),
                    server=cloud_emulator.ews_url,
                )
            )
        assert info.value.code == "modern_auth_only"
        token = Credentials("erin@cloud.example", "erin-access-token", "oauth2")
        connected = await ews.connect(
            ConnectionSettings("erin@cloud.example", token, server=cloud_emulator.ews_url)
        )
    finally:
        await ews.close()
    assert connected.auth_type == "oauth2"


_OLD_SERVER_VERSION = (
    b'<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">'
    b'<s:Header><h:ServerVersionInfo xmlns:h="http://schemas.microsoft.com/exchange/services/2006/types" '
    b'MajorVersion="14" MinorVersion="3" MajorBuildNumber="123" MinorBuildNumber="4" Version="Exchange2010_SP2"/>'
    b"</s:Header><s:Body/></s:Envelope>"
)


def _exchange_2010_app() -> web.Application:
    """Just enough of an Exchange 2010 server: Basic challenge, then a version header."""

    async def ews(request: web.Request) -> web.Response:
        if "Authorization" not in request.headers:
            return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="old"'})
        return web.Response(body=_OLD_SERVER_VERSION, content_type="text/xml")

    app = web.Application()
    app.router.add_post("/EWS/Exchange.asmx", ews)
    return app


async def test_exchange_2010_is_too_old(aiohttp_server):
    server = await aiohttp_server(_exchange_2010_app(), host="127.0.0.1")
    ews = EwsClient()
    try:
        with pytest.raises(ConnectError) as info:
            await ews.connect(_alice(server=str(server.make_url("/EWS/Exchange.asmx"))))
    finally:
        await ews.close()
    assert info.value.code == "too_old"
    assert "2013" in info.value.message


async def test_basic_auth_blocked_by_policy_is_modern_auth_only(aiohttp_server):
    async def ews(request: web.Request) -> web.Response:
        if "Authorization" not in request.headers:
            return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm=""'})
        return web.Response(
            status=401,
            headers={
                "WWW-Authenticate": 'Basic realm=""',
                "x-ms-diagnostics": '4000000;reason="Basic authentication is blocked; use modern authentication"',
            },
        )

    app = web.Application()
    app.router.add_post("/EWS/Exchange.asmx", ews)
    server = await aiohttp_server(app, host="127.0.0.1")
    ews_client = EwsClient()
    try:
        with pytest.raises(ConnectError) as info:
            await ews_client.connect(_alice(server=str(server.make_url("/EWS/Exchange.asmx"))))
    finally:
        await ews_client.close()
    assert info.value.code == "modern_auth_only"


def _self_signed(tmp_path) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "ca.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return str(cert_file), str(key_file)


async def test_untrusted_certificate_then_trusted_with_ca_file(aiohttp_server, tmp_path):
    cert_file, key_file = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    server = await aiohttp_server(_exchange_2010_app(), host="127.0.0.1", ssl=context)
    url = f"https://127.0.0.1:{server.port}/EWS/Exchange.asmx"
    untrusting, trusting = EwsClient(), EwsClient(ca_file=cert_file)
    try:
        with pytest.raises(ConnectError) as refused:
            await untrusting.connect(_alice(server=url))
        with pytest.raises(ConnectError) as reached:
            await trusting.connect(_alice(server=url))
    finally:
        await untrusting.close()
        await trusting.close()
    assert refused.value.code == "tls_untrusted"
    assert "CA" in refused.value.message
    assert reached.value.code == "too_old"  # TLS succeeded with the organisation's CA: the server was asked
