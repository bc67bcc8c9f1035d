"""Slow clients are cut off over real sockets, and everyone else is answered meanwhile.

The server is started the way ``serve`` and ``demo`` start it (``gateway.limits.start_server``) with short
limits: headers within 2 s, a body within 2 s, 50 connections per address. An attacker on 127.0.0.1 opens
100 connections that trickle a header byte per second; a real user on 127.0.0.2 is answered at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import encode_basic_auth, web

from gateway.accounts.exchange_accounts import ConnectRequest
from gateway.app import create_app
from gateway.config import LimitsConfig
from gateway.limits import start_server
from tests.web.gateway_support import make_config, make_services

HEADER_TIMEOUT = BODY_TIMEOUT = 2.0
PER_ADDRESS = 50
TRICKLERS = 100
SLACK = 1.5  # the timers' own granularity and a loaded test machine


@dataclass
class Gateway:
    port: int
    auth: dict[str, str]
    calendar: str


@pytest.fixture
async def server(tmp_path: Path, emulator: Any, secret_key: str) -> AsyncIterator[Gateway]:
    limits = LimitsConfig(
        header_timeout_seconds=HEADER_TIMEOUT,
        body_timeout_seconds=BODY_TIMEOUT,
        max_connections_per_address=PER_ADDRESS,
    )
    config = replace(make_config(tmp_path, emulator, port=0), limits=limits)
    services = make_services(config, secret_key)
    runner: web.AppRunner = await start_server(create_app(config, services=services), config)
    try:
        ann = await services.accounts.create_user("ann")
        account = await services.accounts.connect_account(
            ann.user_id, ConnectRequest("alice@example.com", "alice-pw")
        )
        _, password = await services.accounts.create_app_password(ann.user_id, "phone")
        yield Gateway(
            port=runner.addresses[0][1],
            auth={"Authorization": encode_basic_auth("ann", password)},
            calendar=f"/dav/calendars/ann/{account.account_id}-calendar/",
        )
    finally:
        await runner.cleanup()


@dataclass
class Cut:
    after: float  # seconds from connecting until the server closed the connection
    answer: bytes  # what the server sent before closing


async def _read_until_closed(reader: asyncio.StreamReader, started: float) -> Cut:
    answer = b""
    try:
        while data := await reader.read(4096):
            answer += data
    except ConnectionResetError:
        pass
    return Cut(time.monotonic() - started, answer)


async def _send_slowly(port: int, first: bytes, budget: float) -> Cut | None:
    """Send ``first``, then a byte a second; how the server ended the connection, or None if it did not
    within ``budget`` seconds."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    closed = asyncio.create_task(_read_until_closed(reader, started))
    try:
        writer.write(first)
        while time.monotonic() - started < budget:
            done, _ = await asyncio.wait({closed}, timeout=1.0)
            if done:
                return closed.result()
            writer.write(b"a")
        return None
    finally:
        closed.cancel()
        writer.close()


async def test_trickling_connections_are_closed_while_a_real_client_is_answered_at_once(
    server: Gateway,
) -> None:
    head = b"PROPFIND /dav/ HTTP/1.1\r\nHost: gateway\r\nX-Slow: "
    budget = HEADER_TIMEOUT + SLACK
    tricklers = [asyncio.create_task(_send_slowly(server.port, head, budget)) for _ in range(TRICKLERS)]
    await asyncio.sleep(0.5)  # every trickler is connected and sending

    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession(connector=connector) as real_user:
        started = time.monotonic()
        async with real_user.request(
            "PROPFIND",
            f"http://127.0.0.1:{server.port}{server.calendar}",
            headers={**server.auth, "Depth": "0"},
        ) as answer:
            assert answer.status == 207
        assert time.monotonic() - started < 1.0

    cuts = await asyncio.gather(*tricklers)
    assert None not in cuts, "a trickling connection stayed open past the header timeout"
    refused = [c for c in cuts if c.answer.startswith(b"HTTP/1.1 503")]
    timed_out = [c for c in cuts if not c.answer]
    # Beyond the per-address cap a connection is refused at once, with a sentence; the others are closed
    # when their headers have not arrived within the timeout.
    assert len(refused) == TRICKLERS - PER_ADDRESS and len(timed_out) == PER_ADDRESS, cuts
    assert all(c.after < 0.5 for c in refused) and b"Too many connections" in refused[0].answer
    assert all(HEADER_TIMEOUT - 0.5 < c.after < HEADER_TIMEOUT + SLACK for c in timed_out)


async def test_a_body_that_does_not_arrive_in_time_is_cut_with_408(
    server: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    head = (
        f"PUT {server.calendar}slow.ics HTTP/1.1\r\nHost: gateway\r\n"
        f"Authorization: {server.auth['Authorization']}\r\n"
        "Content-Type: text/calendar\r\nContent-Length: 200\r\n\r\nBEGIN:VCALENDAR\r\n"
    )
    cut = await _send_slowly(server.port, head.encode(), BODY_TIMEOUT + SLACK)  # a byte a second: never 200
    assert cut is not None, "the slow body was never cut"
    assert cut.answer.startswith(b"HTTP/1.1 408"), cut.answer[:200]
    assert b"did not arrive within 2 seconds" in cut.answer
    assert BODY_TIMEOUT - 0.5 < cut.after < BODY_TIMEOUT + SLACK
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]  # a slow client is no server error
