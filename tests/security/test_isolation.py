"""One user can neither see nor use another user's accounts, through any endpoint."""

from __future__ import annotations

from typing import Any

from aiohttp import encode_basic_auth
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from gateway.accounts.service import ConnectRequest
from gateway.store.schema import accounts as table
from tests.web.gateway_support import admin_headers
from tests.web.test_pages import signed_in

H = admin_headers()


async def test_users_are_isolated_on_pages_admin_api_and_caldav_auth(
    gateway: TestClient, services: Any
) -> None:
    accounts = services.accounts
    ann = await accounts.create_user("ann", "ann-web-pw")
    alice = await accounts.connect_account(ann.user_id, ConnectRequest("alice@example.com", "alice-pw"))
    ann_app, ann_app_pw = await accounts.create_app_password(ann.user_id, "ann phone")

    csrf = await signed_in(gateway, services, "ben", "ben-web-pw")  # ben's browser session
    ben = await accounts.find_user("ben")
    _, ben_app_pw = await accounts.create_app_password(ben.user_id, "ben phone")

    home = await (await gateway.get("/")).text()
    assert "alice@example.com" not in home and alice.account_id not in home and "ann phone" not in home
    for path, data in [
        (f"/accounts/{alice.account_id}/options", {"working_elsewhere": "BUSY"}),
        (f"/accounts/{alice.account_id}/remove", {"confirm": "yes"}),
        (f"/app-passwords/{ann_app.app_password_id}/revoke", {"confirm": "yes"}),
    ]:
        response = await gateway.post(path, data={"csrf_token": csrf, **data})
        assert response.status == 404, path
        if "confirm" in data:  # nor does the confirmation page show what is not ben's
            assert (await gateway.get(path)).status == 404, path
    stolen = await gateway.post(
        "/settings",
        data={
            "csrf_token": csrf,
            "conflict": [f"{alice.account_id}-calendar"],
            "add_events": f"{alice.account_id}-calendar",
        },
    )
    assert stolen.status == 400

    base = f"/api/v1/admin/users/{ben.user_id}"
    assert (await gateway.get(f"{base}/accounts/{alice.account_id}", headers=H)).status == 404
    assert (
        await gateway.patch(
            f"{base}/accounts/{alice.account_id}", json={"working_elsewhere": "BUSY"}, headers=H
        )
    ).status == 404
    assert (await gateway.delete(f"{base}/accounts/{alice.account_id}", headers=H)).status == 404
    assert (await gateway.delete(f"{base}/app-passwords/{ann_app.app_password_id}", headers=H)).status == 404
    put = await gateway.put(
        f"{base}/settings", json={"conflict_calendar_ids": [f"{alice.account_id}-calendar"]}, headers=H
    )
    assert put.status == 400

    # CalDAV credentials: a user's app password works only with that user's name.
    assert await accounts.authenticate("ann", ben_app_pw) is None
    assert await accounts.authenticate("ben", ann_app_pw) is None
    principal = await accounts.authenticate("ben", ben_app_pw)
    assert principal is not None and principal.emails == ()

    # Ann's account is untouched by all of the above.
    assert (await accounts.get_account(ann.user_id, alice.account_id)).working_elsewhere == "FREE"
    assert await accounts.authenticate("ann", ann_app_pw) is not None


async def test_deleting_account_and_user_deletes_stored_credentials(
    services: Any, gateway: TestClient
) -> None:
    accounts = services.accounts
    ann = await accounts.create_user("ann")
    alice = await accounts.connect_account(ann.user_id, ConnectRequest("alice@example.com", "alice-pw"))
    await accounts.connect_account(ann.user_id, ConnectRequest("bob@example.com", "bob-pw"))

    async def sealed_rows() -> int:
        async with services.db.engine.connect() as conn:
            return (await conn.execute(select(func.count()).select_from(table))).scalar_one()

    assert await sealed_rows() == 2
    await accounts.remove_account(ann.user_id, alice.account_id)
    assert await sealed_rows() == 1
    assert (await gateway.delete(f"/api/v1/admin/users/{ann.user_id}", headers=H)).status == 204
    assert await sealed_rows() == 0


async def test_caldav_app_passwords_reach_only_their_own_users_calendars(
    gateway: TestClient, services: Any
) -> None:
    accounts = services.accounts
    ann = await accounts.create_user("ann")
    alice = await accounts.connect_account(ann.user_id, ConnectRequest("alice@example.com", "alice-pw"))
    ben = await accounts.create_user("ben")
    _, ben_pw = await accounts.create_app_password(ben.user_id, "ben phone")
    depth0 = {"Depth": "0", "Authorization": encode_basic_auth("ben", ben_pw)}

    own = await gateway.request("PROPFIND", "/dav/calendars/ben/", headers=depth0)
    assert own.status == 207
    wrong = {"Authorization": encode_basic_auth("ben", "wrong")}
    assert (await gateway.request("PROPFIND", "/dav/", headers=wrong)).status == 401
    for path in (
        "/dav/calendars/ann/",
        f"/dav/calendars/ann/{alice.account_id}-calendar/",
        f"/dav/calendars/ben/{alice.account_id}-calendar/",
        "/dav/principals/ann/",
    ):
        response = await gateway.request("PROPFIND", path, headers=depth0)
        assert response.status in (403, 404), (path, response.status)
        assert "alice@example.com" not in await response.text()
