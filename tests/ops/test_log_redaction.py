"""No log level writes credentials: passwords, tokens, Authorization headers, NTLM messages.

At DEBUG, exchangelib, requests and urllib3 log HTTP headers and bodies. The gateway runs as an
operator runs it (``serve`` against the EWS emulator, and the demo), is driven through the admin
API, the web sign-in and CalDAV with Basic credentials, making it talk Basic and NTLM to the
emulator, and its whole output is scanned.
"""

from __future__ import annotations

import base64
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from gateway.accounts.vault import generate_key
from gateway.logsafe import REDACTED, RedactingFilter, redact, register_secret
from tests.ops.support import CALDAV_LINE, Process, clean_env, free_port, propfind, web_sign_in

ADMIN = "ops-admin-token-90c2e7"
WEB_PASSWORD = "Ann-Web-pw-7781"
WRONG = "wrong-guess-5521"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _assert_clean(output: str, secrets: list[str]) -> None:
    forbidden = [
        *secrets,
        *(_b64(s) for s in secrets if ":" in s),
        "NTLM TlRMTVNTUAAD",  # an NTLM type-3 (authenticate) message: crackable offline
        "TlRMTVNTUAAD",
        "Authorization: Basic ",
        "'Authorization': 'Basic ",
        "'Authorization': 'NTLM T",
    ]
    leaks = [s for s in forbidden if s in output]
    assert leaks == [], leaks


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("emulator") / "emulator.log"
    process = Process.gateway(["emulator", "--port", str(port)], clean_env(), log)
    process.wait_for("Ready")
    yield f"http://127.0.0.1:{port}"
    process.stop()


def _drive_serve(base: str) -> list[str]:
    """Admin API, Exchange connections (NTLM and Basic), web sign-in, CalDAV; the secrets used."""
    admin = {"Authorization": f"Bearer {ADMIN}"}
    api = f"{base}/api/v1/admin/users"
    user = requests.post(api, json={"username": "ann", "password": WEB_PASSWORD}, headers=admin, timeout=10)
    user_id = user.json()["user_id"]
    accounts = f"{api}/{user_id}/accounts"
    for body in (
        {"email": "alice@example.com", "password": WRONG},  # refused by Exchange
        {"email": "alice@example.com", "password": "alice-pw"},  # NTLM (preferred)
        {"email": "bob@example.com", "password": "bob-pw", "auth_type": "basic"},
    ):
        requests.post(accounts, json=body, headers=admin, timeout=60)
    app_password = requests.post(
        f"{api}/{user_id}/app-passwords", json={"label": "logs"}, headers=admin, timeout=10
    ).json()["password"]
    assert web_sign_in(base, "ann", WEB_PASSWORD) is not None
    home = f"{base}/dav/calendars/ann/"
    assert propfind(home, ("ann", app_password)).status_code == 207  # lists calendars over EWS
    assert propfind(home, ("ann", WRONG)).status_code == 401
    return [
        "alice-pw",
        "bob-pw",
        WRONG,
        WEB_PASSWORD,
        app_password,
        ADMIN,
        "alice@example.com:alice-pw",
        "bob@example.com:bob-pw",
        f"ann:{app_password}",
        f"ann:{WRONG}",
    ]


@pytest.mark.parametrize("level", ["DEBUG", "INFO", "WARNING"])
def test_serve_logs_no_credentials(tmp_path: Path, emulator: str, level: str) -> None:
    port, key = free_port(), generate_key()
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'[ews.autodiscover_endpoints]\n"example.com" = "{emulator}/autodiscover/autodiscover.svc"\n'
    )
    env = clean_env(
        GATEWAY_CONFIG=str(config),
        GATEWAY_SECRET_KEY=key,
        GATEWAY_ADMIN_TOKEN=ADMIN,
        GATEWAY_DATA_DIR=str(tmp_path / "data"),
        GATEWAY_PORT=str(port),
        GATEWAY_LOG_LEVEL=level,
    )
    serve = Process.gateway(["serve"], env, tmp_path / "serve.log")
    base = f"http://127.0.0.1:{port}"
    try:
        serve.wait_http(f"{base}/healthz")
        secrets = [*_drive_serve(base), key]
    finally:
        serve.stop()
    output = serve.output()
    _assert_clean(output, secrets)
    if level == "DEBUG":  # the scan looked at the traffic: headers and EWS bodies were logged
        assert "exchangelib" in output and "GetFolder" in output and REDACTED in output, output[-3000:]


def test_demo_at_debug_logs_no_credentials(tmp_path: Path) -> None:
    demo = Process.gateway(
        ["demo", "--port", "0", "--emulator-port", "0", "--password", "demo-app-pw-4471"],
        clean_env(GATEWAY_LOG_LEVEL="DEBUG"),
        tmp_path / "demo.log",
    )
    try:
        demo.wait_for("Ready")
        url = CALDAV_LINE.search(demo.output())[1]
        assert propfind(f"{url}calendars/alice/", ("alice", "demo-app-pw-4471")).status_code == 207
        assert web_sign_in(url.removesuffix("/dav/"), "bob", "demo-app-pw-4471") is not None
    finally:
        demo.stop()
    # The printed password lines are the demo's purpose; every log line must be clean.
    logged = "\n".join(line for line in demo.output().splitlines() if not CALDAV_LINE.search(line))
    _assert_clean(
        logged,
        ["alice-pw", "bob-pw", "demo-app-pw-4471", "alice@example.com:alice-pw", "alice:demo-app-pw-4471"],
    )
    assert "exchangelib" in logged and REDACTED in logged


# ---- units: what the filter rewrites -----------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "Authorization: Basic YWxpY2VAZXhhbXBsZS5jb206YWxpY2UtcHc=",
        "{'Authorization': 'NTLM TlRMTVNTUAADAAAAGAAYAEgAAAA='}",
        "{b'Authorization': b'Negotiate TlRMTVNTUAAB'}",
        "proxy-authorization: Bearer abc.def-ghi",
        "WWW-Authenticate: NTLM TlRMTVNTUAACAAAADAAMADgAAAA=",
        "sent header Authorization=Digest username",
        "retrying with Bearer eyJ0eXAiOiJKV1QiLCJhbGciOi",
        "Cookie: gateway_session=8f2e9c0d77",
    ],
)
def test_credential_headers_and_schemes_are_redacted(line: str) -> None:
    out = redact(line)
    assert REDACTED in out
    for token in ("YWxpY2", "TlRMTVNTUA", "abc.def", "eyJ0eX", "8f2e9c0d77", "username"):
        assert token not in out


def test_prose_about_schemes_is_left_alone() -> None:
    assert redact("auth type is NTLM") == "auth type is NTLM"
    assert redact("falling back to basic authentication") == "falling back to basic authentication"


def test_registered_secrets_are_redacted_in_message_args_and_exceptions() -> None:
    register_secret("Hunter2-registered-42")
    register_secret("pw")  # too short to redact: it would shred the log, not protect anything
    record = logging.LogRecord(
        "x", logging.ERROR, __file__, 1, "connect %s as %r", ("eu", "Hunter2-registered-42"), None
    )
    try:
        raise ValueError("refused Hunter2-registered-42")  # words no test uses as a password
    except ValueError:
        record.exc_info = sys.exc_info()
    assert RedactingFilter().filter(record)
    text = logging.Formatter().format(record)
    assert "Hunter2" not in text
    assert text.startswith(f"connect eu as '{REDACTED}'") and f"ValueError: refused {REDACTED}" in text
    assert redact("pw") == "pw"
