"""Password guessing is refused: failure budgets per user and per client address, across parallel requests.

Each test fires 60 wrong guesses at once from 127.0.0.1 (an attacker on one address), over real HTTP, then
checks that the guesses were cut off (429 with Retry-After and a sentence, without checking the password)
and that the real user, from another address (127.0.0.2: every 127/8 address is this machine), is not
locked out.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import encode_basic_auth
from aiohttp.test_utils import TestClient

from tests.web.gateway_support import ADMIN_TOKEN, admin_headers

GUESSES = 60
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
async def elsewhere() -> AsyncIterator[aiohttp.ClientSession]:
    """A client on another address than the attacker's: its connections leave from 127.0.0.2."""
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0), force_close=True)
    # unsafe: keep cookies of an IP-address host (the sign-in form's CSRF cookie).
    async with aiohttp.ClientSession(
        connector=connector, cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as session:
        yield session


async def _burst(request: Callable[[], Awaitable[aiohttp.ClientResponse]]) -> tuple[list[int], float]:
    """GUESSES requests at once; their statuses and how long the burst took."""

    async def one() -> int:
        response = await request()
        status = response.status
        if status == 429:
            assert int(response.headers["Retry-After"]) >= 1
            assert "try again in" in (await response.text()).lower()
        response.release()
        return status

    started = time.monotonic()
    statuses = await asyncio.gather(*(one() for _ in range(GUESSES)))
    return statuses, time.monotonic() - started


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": encode_basic_auth(user, password), "Depth": "0"}


def _assert_cut_off(statuses: list[int], refused: int) -> None:
    assert statuses.count(429) >= GUESSES - 10, statuses
    # Only the guesses within the budget were checked at all: parallel requests did not slip through.
    assert statuses.count(refused) <= 10, statuses
    assert set(statuses) <= {429, refused}, statuses


async def test_parallel_caldav_guesses_are_cut_off_and_the_user_still_gets_in(
    gateway: TestClient, services: Any, elsewhere: aiohttp.ClientSession
) -> None:
    ann = await services.accounts.create_user("ann")
    _, app_password = await services.accounts.create_app_password(ann.user_id, "phone")
    url = "/dav/calendars/ann/"

    statuses, _ = await _burst(lambda: gateway.request("PROPFIND", url, headers=_basic("ann", "guess")))
    _assert_cut_off(statuses, 401)
    # The attacker's address is locked for this user: even the right password is not checked there.
    locked = await gateway.request("PROPFIND", url, headers=_basic("ann", app_password))
    assert locked.status == 429

    started = time.monotonic()
    real = await elsewhere.request("PROPFIND", gateway.make_url(url), headers=_basic("ann", app_password))
    assert real.status == 207
    assert time.monotonic() - started < 2.0  # at once: no slowdown inherited from the attack


async def test_guessing_many_users_from_one_address_is_cut_off(gateway: TestClient, services: Any) -> None:
    statuses, _ = await _burst(
        lambda: gateway.request("PROPFIND", "/dav/", headers=_basic(f"user{time.monotonic_ns()}", "guess"))
    )
    # Per address, whatever the names: at most the address budget (30 by default) was checked.
    assert statuses.count(401) <= 30 and statuses.count(429) >= GUESSES - 30, statuses


async def test_parallel_web_sign_in_guesses_are_cut_off_and_the_user_still_gets_in(
    gateway: TestClient, services: Any, elsewhere: aiohttp.ClientSession
) -> None:
    await services.accounts.create_user("ann", "ann-web-pw")
    token = CSRF.search(await (await gateway.get("/signin")).text()).group(1)

    def guess() -> Awaitable[aiohttp.ClientResponse]:
        form = {"username": "ann", "password": "guess", "csrf_token": token}
        return gateway.post("/signin", data=form, allow_redirects=False)

    statuses, _ = await _burst(guess)
    _assert_cut_off(statuses, 401)
    page = await guess()
    assert page.status == 429 and "try again in" in (await page.text())

    form_page = await elsewhere.get(gateway.make_url("/signin"))
    real_token = CSRF.search(await form_page.text()).group(1)
    real = await elsewhere.post(
        gateway.make_url("/signin"),
        data={"username": "ann", "password": "ann-web-pw", "csrf_token": real_token},
        allow_redirects=False,
    )
    assert real.status == 303 and real.headers["Location"] == "/"


async def test_parallel_admin_token_guesses_are_cut_off_and_the_admin_still_gets_in(
    gateway: TestClient, elsewhere: aiohttp.ClientSession
) -> None:
    statuses, _ = await _burst(lambda: gateway.get("/api/v1/admin/users", headers=admin_headers("guess")))
    _assert_cut_off(statuses, 401)
    refused = await gateway.get("/api/v1/admin/users", headers=admin_headers(ADMIN_TOKEN))
    assert refused.status == 429
    body = await refused.json()
    assert body["error"] == "too_many_failures" and "try again in" in body["message"]

    real = await elsewhere.get(gateway.make_url("/api/v1/admin/users"), headers=admin_headers(ADMIN_TOKEN))
    assert real.status == 200
