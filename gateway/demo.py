"""``demo``: the EWS emulator with the demo mailboxes and the gateway in front of it, in one process.

Two gateway users, ``alice`` and ``bob``, are connected to their mailboxes
(``alice@example.com``, ``bob@example.com``) through Autodiscover against the
emulator, exactly as a user would connect a real Exchange account. The demo then
prints one line per user:

    CalDAV: http://127.0.0.1:8080/dav/ user=alice password=<app-password>

Without ``GATEWAY_SECRET_KEY`` the demo uses an ephemeral vault key (and says so):
stored Exchange passwords die with the process, which is what a demo wants.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from aiohttp import web

from gateway.accounts.service import AccountService, ConnectRequest
from gateway.accounts.vault import SECRET_KEY_ENV, KeyRing
from gateway.app import build_services, create_app
from gateway.config import EwsConfig, GatewayConfig, ServerConfig, StorageConfig
from gateway.ews.emulator.app import create_app as create_emulator_app
from gateway.ews.emulator.seed import demo_seed
from gateway.loop_monitor import freeze_startup_heap

DEMO_USERS = (("alice", "alice@example.com", "alice-pw"), ("bob", "bob@example.com", "bob-pw"))
DEMO_DOMAIN = "example.com"
DEMO_TIMEZONE = (
    "Europe/Berlin"  # the demo mailboxes' zone (W. Europe Standard Time): floating times land here
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="start the EWS emulator and the gateway with two demo users")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address both servers listen on (default 127.0.0.1)"
    )
    parser.add_argument("--port", type=int, default=8080, help="gateway port (default 8080)")
    parser.add_argument("--emulator-port", type=int, default=8081, help="EWS emulator port (default 8081)")
    parser.add_argument("--password", help="app password for both demo users (default: generated)")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=os.environ.get("GATEWAY_DATA_DIR") or None,
        help="gateway data directory (default: $GATEWAY_DATA_DIR, else a fresh temporary directory)",
    )
    parser.set_defaults(func=run)


@dataclass
class DemoStack:
    """A running demo: both servers and the credentials of the demo users."""

    base_url: str  # the gateway, e.g. http://127.0.0.1:8080
    emulator_url: str
    passwords: dict[str, str]  # gateway user name -> app password
    services: object
    _runners: tuple[web.AppRunner, ...]

    @property
    def dav_url(self) -> str:
        return f"{self.base_url}/dav/"

    async def stop(self) -> None:
        for runner in self._runners:
            await runner.cleanup()


async def start_demo(
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    emulator_port: int = 8081,
    data_dir: Path,
    password: str | None = None,
    keyring: KeyRing | None = None,
    emulator_url: str | None = None,
    retry_budget_seconds: float = 10.0,
    request_timeout_seconds: float = 60.0,
) -> DemoStack:
    """Start the emulator and the gateway (port 0 picks a free port) and provision the demo users.

    With ``emulator_url`` an already running emulator (with the demo seed) is used instead.
    """
    runners: list[web.AppRunner] = []
    if emulator_url is None:
        emulator_runner = web.AppRunner(create_emulator_app(demo_seed(date.today())), access_log=None)
        await emulator_runner.setup()
        runners.append(emulator_runner)
        emulator_site = web.TCPSite(emulator_runner, host, emulator_port)
        await emulator_site.start()
        emulator_url = f"http://{host}:{_bound_port(emulator_site)}"

    gateway_runner = None
    try:
        config = GatewayConfig(
            server=ServerConfig(host=host, port=port),
            storage=StorageConfig(data_dir=data_dir),
            ews=EwsConfig(
                autodiscover_endpoints={DEMO_DOMAIN: f"{emulator_url}/autodiscover/autodiscover.svc"},
                retry_budget_seconds=retry_budget_seconds,
                request_timeout_seconds=request_timeout_seconds,
                default_timezone=DEMO_TIMEZONE,
            ),
        )
        if keyring is None:
            keyring = KeyRing.from_env() if os.environ.get(SECRET_KEY_ENV) else KeyRing.ephemeral()
        services = build_services(config, keyring=keyring)
        gateway_runner = web.AppRunner(create_app(config, services=services), access_log=None)
        await gateway_runner.setup()
        gateway_site = web.TCPSite(gateway_runner, host, port)
        await gateway_site.start()
        base_url = f"http://{host}:{_bound_port(gateway_site)}"
        passwords = {}
        for username, email, exchange_password in DEMO_USERS:
            passwords[username] = await _provision(
                services.accounts, username, email, exchange_password, password
            )
    except BaseException:
        if gateway_runner is not None:
            await gateway_runner.cleanup()
        for runner in runners:
            await runner.cleanup()
        raise
    return DemoStack(base_url, emulator_url, passwords, services, (gateway_runner, *runners))


async def _provision(
    accounts: AccountService, username: str, email: str, exchange_password: str, app_password: str | None
) -> str:
    """Create the user (if new), connect its mailbox by Autodiscover, and issue an app password."""
    user = await accounts.find_user(username)
    if user is None:
        user = await accounts.create_user(username, password=app_password, display_name=username.title())
    await accounts.connect_account(user.user_id, ConnectRequest(email=email, password=exchange_password))
    _, clear = await accounts.create_app_password(user.user_id, "demo", clear=app_password)
    if app_password is None:
        await accounts.set_user_password(user.user_id, clear)  # the web pages accept the same password
    return clear


def _bound_port(site: web.TCPSite) -> int:
    return site._server.sockets[0].getsockname()[1]  # the real port when 0 was asked for


async def _serve(args: argparse.Namespace) -> None:
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="caldav-gateway-demo-"))
    stack = await start_demo(
        host=args.host,
        port=args.port,
        emulator_port=args.emulator_port,
        data_dir=Path(data_dir),
        password=args.password,
    )
    print(
        f"EWS emulator: {stack.emulator_url}/EWS/Exchange.asmx (demo mailboxes, see docs/EMULATOR.md)",
        flush=True,
    )
    print(f"Web pages:    {stack.base_url}/ (sign in with the user name and the password below)", flush=True)
    print(f"Data dir:     {data_dir}", flush=True)
    for username, clear in stack.passwords.items():
        print(f"CalDAV: {stack.dav_url} user={username} password={clear}", flush=True)
    freeze_startup_heap()
    print("Ready (Ctrl-C stops the demo).", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await stack.stop()


def run(args: argparse.Namespace) -> int:
    try:
        asyncio.run(_serve(args))
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
