"""The calendar chosen for new events reaches CalDAV clients as the inbox's
``CALDAV:schedule-default-calendar-URL`` (RFC 6638 §9.2), whichever surface changed it: the admin API,
the settings page or the CLI (another process: seen once the principal cache expires)."""

from __future__ import annotations

import asyncio
import io
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.app import create_app
from gateway.cli import main
from tests.support.dav import Dav
from tests.web.gateway_support import admin_headers, make_config, make_services
from tests.web.test_pages import signed_in

H = admin_headers()
CAL = "{urn:ietf:params:xml:ns:caldav}"
INBOX = "/dav/calendars/ann/inbox/"
PROPFIND = (
    '<?xml version="1.0"?><d:propfind xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav">'
    "<d:prop><c:schedule-default-calendar-URL/></d:prop></d:propfind>"
)


async def _ann(gateway: TestClient) -> tuple[str, Dav, dict[str, str]]:
    """User ann with alice's mailbox (Calendar + the Projects sub-calendar) and an app password."""
    created = await gateway.post("/api/v1/admin/users", json={"username": "ann"}, headers=H)
    user_id = (await created.json())["user_id"]
    connected = await gateway.post(
        f"/api/v1/admin/users/{user_id}/accounts",
        json={"email": "alice@example.com", "password": "alice-pw"},
        headers=H,
    )
    assert connected.status == 201, await connected.text()
    secret = await gateway.post(
        f"/api/v1/admin/users/{user_id}/app-passwords", json={"label": "t"}, headers=H
    )
    calendars = await (await gateway.get(f"/api/v1/admin/users/{user_id}/calendars", headers=H)).json()
    by_name = {c["display_name"]: c["calendar_id"] for c in calendars["calendars"]}
    return user_id, Dav(gateway, "ann", (await secret.json())["password"]), by_name


async def _default_calendar(dav: Dav) -> list[str]:
    response = await dav("PROPFIND", INBOX, PROPFIND, depth="0")
    assert response.status == 207, response.text
    found = response.prop(INBOX, f"{CAL}schedule-default-calendar-URL")
    assert found is not None, response.text
    return [h.text for h in found.iter("{DAV:}href")]


async def test_the_admin_api_choice_is_the_inboxs_default_calendar(gateway: TestClient) -> None:
    user_id, dav, calendars = await _ann(gateway)
    primary, projects = calendars["Calendar"], calendars["Projects"]
    assert await _default_calendar(dav) == [f"/dav/calendars/ann/{primary}/"]  # the default: the primary

    url = f"/api/v1/admin/users/{user_id}/settings"
    chosen = await gateway.put(url, json={"add_events_calendar_id": projects}, headers=H)
    assert chosen.status == 200, await chosen.text()
    assert await _default_calendar(dav) == [f"/dav/calendars/ann/{projects}/"]  # a sub-calendar, at once

    assert (await gateway.put(url, json={"add_events_calendar_id": None}, headers=H)).status == 200
    assert await _default_calendar(dav) == [f"/dav/calendars/ann/{primary}/"]


async def test_a_user_without_a_mailbox_has_no_default_calendar(gateway: TestClient) -> None:
    created = await gateway.post("/api/v1/admin/users", json={"username": "ann"}, headers=H)
    user_id = (await created.json())["user_id"]
    secret = await gateway.post(
        f"/api/v1/admin/users/{user_id}/app-passwords", json={"label": "t"}, headers=H
    )
    dav = Dav(gateway, "ann", (await secret.json())["password"])
    response = await dav("PROPFIND", INBOX, PROPFIND, depth="0")
    assert response.status == 207
    assert response.status_of(INBOX, f"{CAL}schedule-default-calendar-URL") == 404


async def test_the_cli_choice_reaches_a_running_gateway(
    aiohttp_client: Any,
    tmp_path: Path,
    emulator: Any,
    secret_key: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: Any,
) -> None:
    """The CLI is another process with its own cache: a gateway whose principal cache is off (or has
    expired, ``app_password_cache_seconds``) answers with the CLI's choice."""
    base = make_config(tmp_path, emulator)
    config = replace(base, security=replace(base.security, app_password_cache_seconds=0))
    gateway = await aiohttp_client(create_app(config, services=make_services(config, secret_key)))
    _, dav, calendars = await _ann(gateway)
    assert await _default_calendar(dav) == [f"/dav/calendars/ann/{calendars['Calendar']}/"]

    for name in ("GATEWAY_CONFIG", "GATEWAY_DATA_DIR", "GATEWAY_DATABASE_URL", "GATEWAY_OLD_SECRET_KEYS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GATEWAY_SECRET_KEY", secret_key)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    toml = tmp_path / "gateway.toml"
    toml.write_text(
        f'[storage]\ndata_dir = "{tmp_path / "data"}"\n'
        f'[ews.autodiscover_endpoints]\n"example.com" = "{emulator.autodiscover_url}"\n'
    )
    args = ["settings", "set", "ann", "--add-events-calendar", calendars["Projects"], "--config", str(toml)]
    code = await asyncio.to_thread(main, args)  # the CLI runs its own event loop
    assert code == 0, capsys.readouterr().err
    assert await _default_calendar(dav) == [f"/dav/calendars/ann/{calendars['Projects']}/"]


async def test_the_settings_page_choice_is_the_inboxs_default_calendar(
    gateway: TestClient, services: Any
) -> None:
    csrf = await signed_in(gateway, services)
    connected = await gateway.post(
        "/accounts/connect", data={"csrf_token": csrf, "email": "alice@example.com", "password": "alice-pw"}
    )
    assert connected.status == 200
    user = await services.accounts.find_user("ann")
    _, password = await services.accounts.create_app_password(user.user_id, "phone")
    dav = Dav(gateway, "ann", password)
    (account,) = await services.accounts.list_accounts(user.user_id)
    primary = f"{account.account_id}-calendar"
    assert await _default_calendar(dav) == [f"/dav/calendars/ann/{primary}/"]

    home = await (await gateway.get("/")).text()
    (projects,) = set(re.findall(r'name="add_events" value="([^"]+)"', home)) - {primary}
    saved = await gateway.post(
        "/settings", data={"csrf_token": csrf, "conflict": [primary], "add_events": projects}
    )
    assert saved.status == 200
    assert await _default_calendar(dav) == [f"/dav/calendars/ann/{projects}/"]


async def test_the_default_calendar_cannot_be_deleted_until_another_is_chosen(gateway: TestClient) -> None:
    user_id, dav, calendars = await _ann(gateway)
    projects = f"/dav/calendars/ann/{calendars['Projects']}/"
    url = f"/api/v1/admin/users/{user_id}/settings"
    assert (
        await gateway.put(url, json={"add_events_calendar_id": calendars["Projects"]}, headers=H)
    ).status == 200
    refused = await dav("DELETE", projects)
    assert refused.status == 403
    assert "default-calendar-needed" in refused.text and "choose another" in refused.text
    assert (await dav("PROPFIND", projects, depth="0")).status == 207  # still there

    assert (await gateway.put(url, json={"add_events_calendar_id": None}, headers=H)).status == 200
    assert (await dav("DELETE", projects)).status == 204
