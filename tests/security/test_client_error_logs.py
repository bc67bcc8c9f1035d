"""A client's mistake is the client's: a 4xx answer and at most a short INFO/WARNING line, never an ERROR with
a traceback, and never the client's bytes in the log (they may be anything, credentials included)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import encode_basic_auth
from aiohttp.http_exceptions import BadHttpMessage, HttpProcessingError

from gateway.accounts.exchange_accounts import ConnectRequest
from gateway.app import create_app
from gateway.limits import start_server
from gateway.logsafe import ClientErrorFilter
from tests.web.gateway_support import make_config, make_services

MARK = "Zq7MARKER"  # in every malformed request; must appear in no log record


class Gateway:
    """The gateway as ``serve`` runs it (``start_server``), a user ann with a calendar, and a client."""

    def __init__(self, port: int, session: aiohttp.ClientSession, auth: str, calendar: str) -> None:
        self.host, self.port = "127.0.0.1", port
        self.session, self.auth, self.calendar = session, auth, calendar

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.session.request(method, f"http://{self.host}:{self.port}{path}", **kwargs)


@pytest.fixture
async def gateway(tmp_path: Path, emulator: Any, secret_key: str) -> AsyncIterator[Gateway]:
    config = make_config(tmp_path, emulator, port=0)
    services = make_services(config, secret_key)
    runner = await start_server(create_app(config, services=services), config)
    try:
        user = await services.accounts.create_user("ann", "ann-web-pw")
        account = await services.accounts.connect_account(
            user.user_id, ConnectRequest("alice@example.com", "alice-pw")
        )
        _, password = await services.accounts.create_app_password(user.user_id, "phone")
        async with aiohttp.ClientSession() as session:
            yield Gateway(
                runner.addresses[0][1],
                session,
                encode_basic_auth("ann", password),
                f"/dav/calendars/ann/{account.account_id}-calendar/",
            )
    finally:
        await runner.cleanup()


def _assert_quiet(caplog: pytest.LogCaptureFixture) -> None:
    for record in caplog.records:
        text = record.getMessage() + (caplog.text if record.exc_info else "")
        assert record.levelno < logging.ERROR, f"{record.name}: {record.getMessage()}"
        assert record.exc_info is None and record.exc_text is None, f"traceback from {record.name}"
        assert MARK not in text, f"client bytes echoed by {record.name}: {text}"
    assert MARK not in caplog.text


async def _raw(gateway: Gateway, data: bytes) -> bytes:
    """Send raw bytes on a new connection; the answer until the server closes it."""
    reader, writer = await asyncio.open_connection(gateway.host, gateway.port)
    writer.write(data)
    try:
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


async def test_malformed_bodies_are_4xx_without_error_records(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    auth = {"Authorization": gateway.auth}
    answers = [
        await gateway.request(
            "PROPFIND", gateway.calendar, data=f"<D:propfind {MARK}".encode(), headers={**auth, "Depth": "1"}
        ),
        await gateway.request(
            "PROPFIND", gateway.calendar, data=b"\xff\xfe" + MARK.encode(), headers={**auth, "Depth": "1"}
        ),
        await gateway.request(
            "PUT",
            gateway.calendar + "bad.ics",
            data=f"BEGIN:VCALENDAR\r\n{MARK}\r\nBEGIN:VEVENT\r\nDTSTART:{MARK}\r\n".encode(),
            headers={**auth, "Content-Type": "text/calendar"},
        ),
        await gateway.request("REPORT", gateway.calendar, data=f"<x>{MARK}</y>".encode(), headers=auth),
        # A form that is not UTF-8: the sign-in page must say so, not fail with 500.
        await gateway.request(
            "POST",
            "/signin",
            data=b"username=ann&password=\xff" + MARK.encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ),
    ]
    statuses = [a.status for a in answers]
    assert all(400 <= s < 500 for s in statuses), statuses
    _assert_quiet(caplog)


@pytest.mark.parametrize(
    "request_bytes",
    [
        f"GET /dav/ HTTP/1.1\r\nHost: x\r\nBad Header {MARK}\r\n\r\n",
        f"PROPFIND /dav/ HTTP/1.1\r\nHost: x\r\nContent-Length: {MARK}\r\n\r\n",
        f"GET /dav/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: {MARK}\r\n\r\n",
        f"GET /dav/{MARK} HTTP/9.9\r\nHost: x\r\n\r\n",
        "GET /dav/ HTTP/1.1\r\nHost: x\r\nX-Long: " + MARK * 2000 + "\r\n\r\n",
    ],
    ids=["header-token", "content-length", "transfer-encoding", "version", "too-long"],
)
async def test_malformed_requests_are_one_short_line_without_the_clients_bytes(
    gateway: Gateway, caplog: pytest.LogCaptureFixture, request_bytes: str
) -> None:
    caplog.set_level(logging.INFO)
    answer = await _raw(gateway, request_bytes.encode())
    assert answer.startswith(b"HTTP/1.") and answer.split(b" ")[1].startswith(b"4"), answer[:100]
    _assert_quiet(caplog)
    lines = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert len(lines) == 1 and "malformed request" in lines[0].getMessage()


async def test_a_client_that_disconnects_mid_body_is_no_server_error(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    reader, writer = await asyncio.open_connection(gateway.host, gateway.port)
    head = (
        f"PUT {gateway.calendar}gone.ics HTTP/1.1\r\nHost: x\r\nAuthorization: {gateway.auth}\r\n"
        f"Content-Type: text/calendar\r\nContent-Length: 500\r\n\r\nBEGIN:VCALENDAR\r\n{MARK}"
    )
    writer.write(head.encode())
    await writer.drain()
    await asyncio.sleep(0.5)  # the handler is waiting for the rest of the body
    writer.close()
    await asyncio.sleep(1.5)
    _assert_quiet(caplog)


def test_the_filter_leaves_server_errors_alone_and_respects_the_level() -> None:
    def record(exc: Exception) -> logging.LogRecord:
        made = logging.LogRecord(
            "aiohttp.server", logging.ERROR, __file__, 1, "Error from %s", ("1.2.3.4",), None
        )
        made.exc_info = (type(exc), exc, None)
        return made

    server_error = record(HttpProcessingError(code=500, message="boom"))
    assert ClientErrorFilter().filter(server_error) and server_error.levelno == logging.ERROR
    assert server_error.exc_info is not None
    logger = logging.getLogger("aiohttp.server")
    previous = logger.level
    try:
        logger.setLevel(logging.WARNING)  # INFO lines are not wanted: the client's mistake is dropped
        assert not ClientErrorFilter().filter(record(BadHttpMessage(f"Invalid:\n\n {MARK}")))
        logger.setLevel(logging.INFO)
        kept = record(BadHttpMessage(f"Invalid header token:\n\n  b'{MARK}'"))
        assert ClientErrorFilter().filter(kept)
        assert kept.getMessage() == "malformed request from 1.2.3.4 refused with 400: Invalid header token"
        quoted = record(BadHttpMessage(f"Bad status line {MARK!r}"))
        assert ClientErrorFilter().filter(quoted) and quoted.getMessage().endswith(": bad http message")
    finally:
        logger.setLevel(previous)
