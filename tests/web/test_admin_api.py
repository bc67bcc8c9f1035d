"""The admin JSON API over real HTTP, connecting accounts on the EWS emulator with the real EwsClient."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.support.emulator import EmulatorServer
from tests.support.postgres import STORES
from tests.web.gateway_support import admin_headers, autodiscover_off


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest) -> str:
    """The tests on the gateway fixture run on SQLite and on PostgreSQL (tests/support/postgres.py)."""
    return request.param


H = admin_headers()


async def _user(gateway: TestClient, name: str = "ann") -> str:
    response = await gateway.post(
        "/api/v1/admin/users", json={"username": name, "password": "ann-web-pw"}, headers=H
    )
    assert response.status == 201, await response.text()
    return (await response.json())["user_id"]


async def _connect(gateway: TestClient, user_id: str, **body: Any) -> tuple[int, dict]:
    response = await gateway.post(f"/api/v1/admin/users/{user_id}/accounts", json=body, headers=H)
    return response.status, await response.json()


async def test_admin_api_requires_the_bearer_token(gateway: TestClient) -> None:
    assert (await gateway.get("/api/v1/admin/users")).status == 401
    wrong = await gateway.get("/api/v1/admin/users", headers=admin_headers("nope"))
    assert wrong.status == 401 and (await wrong.json())["error"] == "unauthorized"
    assert (await gateway.get("/api/v1/admin/users", headers=H)).status == 200


async def test_autodiscover_connects_and_records_the_server(gateway: TestClient, emulator: Any) -> None:
    user_id = await _user(gateway)
    status, account = await _connect(gateway, user_id, email="alice@example.com", password="alice-pw")
    assert status == 201, account
    assert account["email"] == "alice@example.com"
    assert account["ews_url"] == emulator.ews_url
    assert account["version"] == "Exchange2016" and account["build"].startswith("15.1.")
    assert account["working_elsewhere"] == "FREE" and "password" not in account and "secret" not in account
    listed = await (await gateway.get(f"/api/v1/admin/users/{user_id}/accounts", headers=H)).json()
    assert [a["account_id"] for a in listed["accounts"]] == [account["account_id"]]


async def test_autodiscover_failure_then_manual_server_domain_username(
    gateway: TestClient, emulator: Any
) -> None:
    user_id = await _user(gateway)
    autodiscover_off(emulator)
    status, error = await _connect(gateway, user_id, email="bob@example.com", password="bob-pw")
    assert status == 422 and error["error"] == "autodiscover_failed"
    status, account = await _connect(
        gateway,
        user_id,
        email="bob@example.com",
        password="bob-pw",
        server=emulator.ews_url,
        username="bob@example.com",
    )
    assert status == 201, account
    assert account["ews_url"] == emulator.ews_url and account["username"] == "bob@example.com"


async def test_basic_and_ntlm_accounts(gateway: TestClient, emulator: Any) -> None:
    user_id = await _user(gateway)
    status, basic = await _connect(
        gateway, user_id, email="alice@example.com", password="alice-pw", auth_type="basic"
    )
    assert status == 201 and basic["auth_type"] == "basic"
    status, ntlm = await _connect(
        gateway,
        user_id,
        email="bob@example.com",
        password="bob-pw",
        server=emulator.ews_url,
        auth_type="ntlm",
    )
    assert status == 201 and ntlm["auth_type"] == "ntlm"
    status, detected = await _connect(gateway, user_id, email="carol@example.com", password="carol-pw")
    assert status == 201 and detected["auth_type"] == "ntlm"  # NTLM preferred when offered


async def test_connect_failures_explain_what_to_do(gateway: TestClient, emulator: Any) -> None:
    user_id = await _user(gateway)
    cases = [
        ({"email": "alice@example.com", "password": "wrong"}, "auth_failed", "password"),
        (
            {"email": "alice@example.com", "password": "alice-pw", "server": "mail.does-not-exist.invalid"},
            "server_not_found",
            "could not be found",
        ),
        (
            {"email": "alice@example.com", "password": "alice-pw", "server": emulator.base_url + "/owa/"},
            "not_ews",
            "EWS",
        ),
        ({"email": "not-an-address", "password": "x"}, "invalid_input", "e-mail address"),
    ]
    for body, code, words in cases:
        status, error = await _connect(gateway, user_id, **body)
        assert (status, error["error"]) == (422, code), (body, error)
        assert words in error["message"]
        assert "alice-pw" not in error["message"]
    listed = await (await gateway.get(f"/api/v1/admin/users/{user_id}/accounts", headers=H)).json()
    assert listed["accounts"] == []  # nothing stored on failure


async def test_several_accounts_settings_and_options_round_trip(gateway: TestClient, emulator: Any) -> None:
    user_id = await _user(gateway)
    ids = []
    for who in ("alice", "bob"):
        status, account = await _connect(gateway, user_id, email=f"{who}@example.com", password=f"{who}-pw")
        assert status == 201
        ids.append(account["account_id"])
    url = f"/api/v1/admin/users/{user_id}/settings"
    defaults = await (await gateway.get(url, headers=H)).json()
    assert defaults["stored"] == {"conflict_calendar_ids": None, "add_events_calendar_id": None}
    assert defaults["effective"]["conflict_calendar_ids"] == [f"{i}-calendar" for i in ids]
    assert defaults["effective"]["add_events_calendar_id"] == f"{ids[0]}-calendar"

    chosen = {"conflict_calendar_ids": [f"{ids[1]}-calendar"], "add_events_calendar_id": f"{ids[1]}-calendar"}
    assert (await gateway.put(url, json=chosen, headers=H)).status == 200
    assert (await (await gateway.get(url, headers=H)).json())["stored"] == chosen
    foreign = {"conflict_calendar_ids": ["someone-else-calendar"], "add_events_calendar_id": None}
    bad = await gateway.put(url, json=foreign, headers=H)
    assert bad.status == 400 and (await bad.json())["error"] == "unknown_calendar"

    patch = await gateway.patch(
        f"/api/v1/admin/users/{user_id}/accounts/{ids[0]}",
        json={"working_elsewhere": "BUSY-TENTATIVE"},
        headers=H,
    )
    assert (await patch.json())["working_elsewhere"] == "BUSY-TENTATIVE"
    invalid = await gateway.patch(
        f"/api/v1/admin/users/{user_id}/accounts/{ids[0]}", json={"working_elsewhere": "MAYBE"}, headers=H
    )
    assert invalid.status == 400

    assert (await gateway.delete(f"/api/v1/admin/users/{user_id}/accounts/{ids[0]}", headers=H)).status == 204
    listed = await (await gateway.get(f"/api/v1/admin/users/{user_id}/accounts", headers=H)).json()
    assert [a["account_id"] for a in listed["accounts"]] == [ids[1]]


async def test_app_passwords_authenticate_until_revoked(gateway: TestClient, services: Any) -> None:
    user_id = await _user(gateway)
    created = await gateway.post(
        f"/api/v1/admin/users/{user_id}/app-passwords", json={"label": "phone"}, headers=H
    )
    body = await created.json()
    principal = await services.accounts.authenticate("ann", body["password"])
    assert principal is not None and principal.user_id == user_id
    listed = await (await gateway.get(f"/api/v1/admin/users/{user_id}/app-passwords", headers=H)).json()
    assert [p["label"] for p in listed["app_passwords"]] == ["phone"] and "password" not in listed[
        "app_passwords"
    ][0]
    revoke = await gateway.delete(
        f"/api/v1/admin/users/{user_id}/app-passwords/{body['app_password_id']}", headers=H
    )
    assert revoke.status == 204
    assert await services.accounts.authenticate("ann", body["password"]) is None


async def test_health_endpoints(gateway: TestClient) -> None:
    assert (await (await gateway.get("/healthz")).json())["status"] == "ok"
    ready = await gateway.get("/readyz")
    assert ready.status == 200 and (await ready.json())["database"] == "up"


def _exchange_2010() -> web.Application:
    """Just enough of an Exchange 2010 server: a Basic challenge, then a 14.x version header."""
    body = (
        b'<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">'
        b'<s:Header><h:ServerVersionInfo xmlns:h="http://schemas.microsoft.com/exchange/services/2006/types" '
        b'MajorVersion="14" MinorVersion="3" MajorBuildNumber="123" MinorBuildNumber="4" '
        b'Version="Exchange2010_SP2"/></s:Header><s:Body/></s:Envelope>'
    )

    async def ews(request: web.Request) -> web.Response:
        if "Authorization" not in request.headers:
            return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="old"'})
        return web.Response(body=body, content_type="text/xml")

    app = web.Application()
    app.router.add_post("/EWS/Exchange.asmx", ews)
    return app


async def test_modern_auth_only_and_too_old_servers_are_explained(
    gateway: TestClient, aiohttp_server: Any
) -> None:
    user_id = await _user(gateway)
    cloud_seed = {
        "mailboxes": [
            {
                "email": "erin@cloud.example",
                "display_name": "Erin",
                "auth": ["bearer"],
                "tokens": ["erin-token"],
                "calendars": [{"name": "Calendar", "primary": True}],
            }
        ],
        "autodiscover": {},
    }
    with EmulatorServer(cloud_seed) as cloud:
        status, error = await _connect(
            gateway, user_id, email="erin@cloud.example", password="pw", server=cloud.ews_url
        )
    assert (status, error["error"]) == (422, "modern_auth_only") and "OAuth" in error["message"]
    old = await aiohttp_server(_exchange_2010(), host="127.0.0.1")
    status, error = await _connect(
        gateway,
        user_id,
        email="alice@example.com",
        password="alice-pw",
        server=str(old.make_url("/EWS/Exchange.asmx")),
    )
    assert (status, error["error"]) == (422, "too_old") and "Exchange 2013 or newer" in error["message"]


async def test_malformed_requests_get_a_json_400(gateway: TestClient) -> None:
    for body in ({"username": 5}, {"username": "Bad Name!"}):
        response = await gateway.post("/api/v1/admin/users", json=body, headers=H)
        assert response.status == 400 and (await response.json())["error"] == "invalid_request"
    garbage = await gateway.post("/api/v1/admin/users", data=b"{not json", headers=H)
    assert garbage.status == 400 and (await garbage.json())["error"] == "invalid_json"
    assert (await gateway.get("/api/v1/admin/users/nobody/accounts", headers=H)).status == 404


async def test_a_display_name_too_long_is_a_400_on_every_store(gateway: TestClient) -> None:
    """SQLite stored any length, PostgreSQL's VARCHAR(200) answered 500: both now refuse it alike."""
    body = {"username": "longname", "display_name": "D" * 201}
    response = await gateway.post("/api/v1/admin/users", json=body, headers=H)
    assert response.status == 400 and "200 characters" in (await response.json())["message"]
    body["display_name"] = "D" * 200
    assert (await gateway.post("/api/v1/admin/users", json=body, headers=H)).status == 201


async def test_booking_tokens_are_made_listed_and_revoked_like_app_passwords(
    gateway: TestClient, services: Any
) -> None:
    user_id = await _user(gateway)
    created = await gateway.post(
        f"/api/v1/admin/users/{user_id}/app-passwords",
        json={"label": "booking page", "scope": "booking"},
        headers=H,
    )
    assert created.status == 201
    body = await created.json()
    assert body["scope"] == "booking"
    assert await services.accounts.authenticate("ann", body["password"]) is None  # not for HTTP Basic
    principal = await services.accounts.authenticate_token(body["password"])
    assert principal is not None and principal.user_id == user_id
    listed = await (await gateway.get(f"/api/v1/admin/users/{user_id}/app-passwords", headers=H)).json()
    assert [p["scope"] for p in listed["app_passwords"]] == ["booking"]
    bad = await gateway.post(
        f"/api/v1/admin/users/{user_id}/app-passwords", json={"scope": "root"}, headers=H
    )
    assert bad.status == 400 and "scope" in (await bad.json())["message"]
    revoke = await gateway.delete(
        f"/api/v1/admin/users/{user_id}/app-passwords/{body['app_password_id']}", headers=H
    )
    assert revoke.status == 204
    assert await services.accounts.authenticate_token(body["password"]) is None
