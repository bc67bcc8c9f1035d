"""The onboarding pages over real HTTP (no JavaScript needed): sign-in, CSRF, connect, settings."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.app import create_app
from tests.support.postgres import STORES
from tests.web.gateway_support import admin_headers, autodiscover_off, make_config, make_services


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest) -> str:
    """The tests on the gateway fixture run on SQLite and on PostgreSQL (tests/support/postgres.py)."""
    return request.param


CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


async def _csrf(gateway: TestClient, path: str) -> str:
    response = await gateway.get(path)
    assert response.status == 200, path
    return CSRF.search(await response.text()).group(1)


async def signed_in(
    gateway: TestClient, services: Any, name: str = "ann", password: str = "ann-web-pw"
) -> str:
    """Creates the user, signs in through the form; returns the session's CSRF token."""
    await services.accounts.create_user(name, password)
    token = await _csrf(gateway, "/signin")
    response = await gateway.post(
        "/signin", data={"username": name, "password": password, "csrf_token": token}, allow_redirects=False
    )
    assert response.status == 303
    return await _csrf(gateway, "/")


async def test_pages_require_sign_in_and_reject_a_wrong_password(gateway: TestClient, services: Any) -> None:
    response = await gateway.get("/", allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/signin"
    await services.accounts.create_user("ann", "ann-web-pw")
    token = await _csrf(gateway, "/signin")
    wrong = await gateway.post("/signin", data={"username": "ann", "password": "nope", "csrf_token": token})
    assert wrong.status == 401 and "Wrong user name or password" in await wrong.text()
    forged = await gateway.post(
        "/signin", data={"username": "ann", "password": "ann-web-pw", "csrf_token": "x"}
    )
    assert forged.status == 403


async def test_session_cookie_is_httponly_and_forms_need_the_csrf_token(
    gateway: TestClient, services: Any
) -> None:
    await services.accounts.create_user("ann", "ann-web-pw")
    token = await _csrf(gateway, "/signin")
    response = await gateway.post(
        "/signin",
        data={"username": "ann", "password": "ann-web-pw", "csrf_token": token},
        allow_redirects=False,
    )
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    page = await gateway.get("/")
    assert "Signed in as" in await page.text()
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    refused = await gateway.post("/app-passwords", data={"label": "x"})
    assert refused.status == 403


async def test_connect_by_autodiscover_then_manual_fallback(
    gateway: TestClient, services: Any, emulator: Any
) -> None:
    csrf = await signed_in(gateway, services)
    ok = await gateway.post(
        "/accounts/connect", data={"csrf_token": csrf, "email": "alice@example.com", "password": "alice-pw"}
    )
    assert ok.status == 200 and "The account is connected." in await ok.text()
    autodiscover_off(emulator)
    failed = await gateway.post(
        "/accounts/connect", data={"csrf_token": csrf, "email": "bob@example.com", "password": "bob-pw"}
    )
    page = await failed.text()
    assert failed.status == 422 and "Autodiscover" in page
    assert 'id="server"' in page and 'id="domain"' in page and 'id="username"' in page
    assert "iPhone Mail" in page and "Outlook for Mac" in page
    assert 'value="bob@example.com"' in page and "bob-pw" not in page  # the password is never echoed
    manual = await gateway.post(
        "/accounts/connect",
        data={
            "csrf_token": csrf,
            "manual": "1",
            "email": "bob@example.com",
            "password": "bob-pw",
            "server": emulator.ews_url,
            "username": "bob@example.com",
            "auth_type": "basic",
        },
    )
    home = await manual.text()
    assert "alice@example.com" in home and "bob@example.com" in home


async def test_calendar_choices_and_working_elsewhere_are_saved(gateway: TestClient, services: Any) -> None:
    csrf = await signed_in(gateway, services)
    await gateway.post(
        "/accounts/connect", data={"csrf_token": csrf, "email": "alice@example.com", "password": "alice-pw"}
    )
    (account,) = await services.accounts.list_accounts((await services.accounts.find_user("ann")).user_id)
    home = await (await gateway.get("/")).text()
    sub_ids = set(re.findall(r'name="conflict" value="([^"]+)"', home)) - {f"{account.account_id}-calendar"}
    assert len(sub_ids) == 1  # alice's "Projects" calendar
    (projects,) = sub_ids
    saved = await gateway.post(
        "/settings", data={"csrf_token": csrf, "conflict": [projects], "add_events": projects}
    )
    assert saved.status == 200
    settings = await services.accounts.settings(account.user_id)
    assert settings.conflict_calendar_ids == (projects,) and settings.add_events_calendar_id == projects
    foreign = await gateway.post("/settings", data={"csrf_token": csrf, "conflict": ["zzz-calendar"]})
    assert foreign.status == 400
    await gateway.post(
        f"/accounts/{account.account_id}/options",
        data={"csrf_token": csrf, "working_elsewhere": "BUSY", "invitations": "never"},
    )
    stored = await services.accounts.get_account(account.user_id, account.account_id)
    assert (stored.working_elsewhere, stored.invitations) == ("BUSY", "never")


async def test_app_password_is_shown_once_with_the_caldav_url(gateway: TestClient, services: Any) -> None:
    csrf = await signed_in(gateway, services)
    page = await (
        await gateway.post("/app-passwords", data={"csrf_token": csrf, "label": "Thunderbird"})
    ).text()
    password = re.search(r'id="new-app-password">([^<]+)<', page).group(1)
    assert "/dav/</code>" in page
    assert await services.accounts.authenticate("ann", password) is not None
    home = await (await gateway.get("/")).text()
    assert "Thunderbird" in home and password not in home


async def test_exchange_passwords_are_refused_over_plain_http_off_loopback(
    aiohttp_client: Any, tmp_path: Path, emulator: Any, secret_key: str
) -> None:
    config = make_config(tmp_path, emulator, host="0.0.0.0")
    services = make_services(config, secret_key)
    gateway = await aiohttp_client(create_app(config, services=services))
    csrf = await signed_in(gateway, services)
    response = await gateway.post(
        "/accounts/connect", data={"csrf_token": csrf, "email": "alice@example.com", "password": "alice-pw"}
    )
    assert response.status == 403 and "plain HTTP" in await response.text()
    user = await services.accounts.find_user("ann")
    api = await gateway.post(
        f"/api/v1/admin/users/{user.user_id}/accounts",
        headers=admin_headers(),
        json={"email": "alice@example.com", "password": "alice-pw"},
    )
    assert api.status == 403 and (await api.json())["error"] == "plain_http_refused"
    assert await services.accounts.list_accounts(user.user_id) == []


async def test_remove_and_revoke_ask_for_confirmation_without_javascript(
    gateway: TestClient, services: Any
) -> None:
    csrf = await signed_in(gateway, services)
    user = await services.accounts.find_user("ann")
    await gateway.post(
        "/accounts/connect", data={"csrf_token": csrf, "email": "alice@example.com", "password": "alice-pw"}
    )
    (account,) = await services.accounts.list_accounts(user.user_id)
    record, clear = await services.accounts.create_app_password(user.user_id, "Phone")
    home = await (await gateway.get("/")).text()
    # The home page only links to the confirmation; it holds no form that removes or revokes.
    assert f'action="/accounts/{account.account_id}/remove"' not in home
    assert f'action="/app-passwords/{record.app_password_id}/revoke"' not in home

    for path, what in (
        (f"/accounts/{account.account_id}/remove", "alice@example.com"),
        (f"/app-passwords/{record.app_password_id}/revoke", "Phone"),
    ):
        page = await (await gateway.get(path)).text()
        assert what in page and f'action="{path}"' in page and 'name="confirm" value="yes"' in page
        assert CSRF.search(page).group(1) == csrf and 'href="/"' in page  # cancel goes back
        # A POST that did not come from the confirmation asks again and changes nothing.
        again = await gateway.post(path, data={"csrf_token": csrf})
        assert again.status == 200 and 'name="confirm" value="yes"' in await again.text()
    assert await services.accounts.list_accounts(user.user_id) == [account]
    assert await services.accounts.authenticate("ann", clear) is not None

    revoked = await gateway.post(
        f"/app-passwords/{record.app_password_id}/revoke", data={"csrf_token": csrf, "confirm": "yes"}
    )
    assert "The app password was revoked." in await revoked.text()
    assert await services.accounts.authenticate("ann", clear) is None
    removed = await gateway.post(
        f"/accounts/{account.account_id}/remove", data={"csrf_token": csrf, "confirm": "yes"}
    )
    assert "The account was removed" in await removed.text()
    assert await services.accounts.list_accounts(user.user_id) == []
    forged = await gateway.post(f"/accounts/{account.account_id}/remove", data={"confirm": "yes"})
    assert forged.status == 403
    assert (await gateway.get(f"/accounts/{account.account_id}/remove")).status == 404


async def test_the_pages_say_only_what_is_true(gateway: TestClient, services: Any, emulator: Any) -> None:
    signin = await (await gateway.get("/signin")).text()
    assert "caldav-gateway users add" in signin and "demo" in signin  # where a user name comes from
    csrf = await signed_in(gateway, services)
    manual = await (await gateway.get("/accounts/connect?manual=1")).text()
    assert 'id="server"' in manual and "could not find your server" not in manual
    autodiscover_off(emulator)
    failed = await gateway.post(
        "/accounts/connect", data={"csrf_token": csrf, "email": "bob@example.com", "password": "bob-pw"}
    )
    assert "could not find your server" in await failed.text()
    wrong = await gateway.post(
        "/accounts/connect",
        data={
            "csrf_token": csrf,
            "manual": "1",
            "email": "bob@example.com",
            "password": "nope",
            "server": emulator.ews_url,
        },
    )
    page = await wrong.text()
    assert wrong.status == 422 and 'id="server"' in page and "could not find your server" not in page

    home = await (await gateway.get("/")).text()
    assert "list below" not in home and "Create one below" in home
    await gateway.post("/app-passwords", data={"csrf_token": csrf, "label": "Phone"})
    home = await (await gateway.get("/")).text()
    assert "from the list below" in home
    created = re.search(r'<td><time datetime="([^"]+)">([^<]+)</time></td>', home)
    assert created and created.group(1).endswith("+00:00") and created.group(2).endswith(" UTC")


async def test_a_booking_token_is_made_on_the_page_and_shown_once(gateway: TestClient, services: Any) -> None:
    csrf = await signed_in(gateway, services)
    page = await (
        await gateway.post(
            "/app-passwords", data={"csrf_token": csrf, "label": "Booking page", "scope": "booking"}
        )
    ).text()
    token = re.search(r'id="new-app-password">([^<]+)<', page).group(1)
    assert "Bearer" in page and "/api/v1/users/ann/slots" in page
    assert await services.accounts.authenticate("ann", token) is None
    assert await services.accounts.authenticate_token(token) is not None
    home = await (await gateway.get("/")).text()
    assert "Booking page" in home and token not in home and "free/busy and booking" in home
