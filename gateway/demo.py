"""``demo``: the EWS emulator with the demo mailboxes and the gateway in front of it, in one process.

Two gateway users, ``alice`` and ``bob``, are connected to their mailboxes
(``alice@example.com``, ``bob@example.com``) through Autodiscover against the
emulator, exactly as a user would connect a real Exchange account. The demo then
prints one line per user:

    CalDAV: http://127.0.0.1:8080/dav/ user=alice password=<app-password>

Without ``GATEWAY_SECRET_KEY`` the demo uses an ephemeral vault key (and says so):
stored Exchange passwords die with the process, which is what a demo wants.

Restarting on the same ``--data-dir`` keeps the users: each start replaces the previous
"demo" app password and sets the web sign-in password to the one printed. A data directory
the demo made itself (no ``--data-dir``) is removed when it stops.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import sys
import tempfile
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

from aiohttp import web

from gateway.accounts.passwords import hash_off_loop
from gateway.accounts.service import AccountService, ConnectRequest
from gateway.accounts.vault import SECRET_KEY_ENV, KeyRing
from gateway.config import LOG_LEVELS, EwsConfig, GatewayConfig, LimitsConfig, ServerConfig, StorageConfig
from gateway.limits import start_server
from gateway.logsafe import configure_logging, register_secret
from gateway.loop_monitor import freeze_startup_heap

DEMO_USERS = (("alice", "alice@example.com", "alice-pw"), ("bob", "bob@example.com", "bob-pw"))
DEMO_DOMAIN = "example.com"
DEMO_TIMEZONE = (
    "Europe/Berlin"  # the demo mailboxes' zone (W. Europe Standard Time): floating times land here
)
DEMO_LABEL = "demo"  # the label of the app password each start (re)issues
TEMP_PREFIX = "caldav-gateway-demo-"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="start the EWS emulator and the gateway with two demo users")
    # The same variables as `serve`, so the container image (GATEWAY_HOST=0.0.0.0) runs the demo as is.
    parser.add_argument(
        "--host",
        default=os.environ.get("GATEWAY_HOST") or "127.0.0.1",
        help="address both servers listen on (default: $GATEWAY_HOST, else 127.0.0.1)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=os.environ.get("GATEWAY_PORT") or "8080",  # a string: argparse converts it when used
        help="gateway port (default: $GATEWAY_PORT, else 8080)",
    )
    parser.add_argument("--emulator-port", type=int, default=8081, help="EWS emulator port (default 8081)")
    parser.add_argument("--password", help="app password for both demo users (default: generated)")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=os.environ.get("GATEWAY_DATA_DIR") or None,
        help="gateway data directory (default: $GATEWAY_DATA_DIR, else a fresh temporary directory)",
    )
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        default=(os.environ.get("GATEWAY_LOG_LEVEL") or "WARNING").upper(),
        help="log level (default: $GATEWAY_LOG_LEVEL, else WARNING); logs never contain credentials",
    )
    parser.set_defaults(func=run)


@dataclass
class DemoStack:
    """A running demo: both servers and the credentials of the demo users."""

    base_url: str  # the gateway as reached from this machine, e.g. http://127.0.0.1:8080
    emulator_url: str
    passwords: dict[str, str]  # gateway user name -> app password
    services: object
    _runners: tuple[web.AppRunner, ...]
    advertised_url: str  # what clients are told: GATEWAY_BASE_URL, else base_url

    @property
    def dav_url(self) -> str:
        return f"{self.advertised_url}/dav/"

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
    limits: LimitsConfig | None = None,
    request_timeout_seconds: float = 60.0,
    database_url: str | None = None,
) -> DemoStack:
    """Start the emulator and the gateway (port 0 picks a free port) and provision the demo users.

    With ``emulator_url`` an already running emulator (with the demo seed) is used instead; ``limits``
    replaces the default ``[limits]``; ``database_url`` replaces the SQLite file in ``data_dir``.
    """
    # Imported here: every other command (``users add``, ``accounts list``…) starts without loading the
    # whole gateway application and the emulator.
    from gateway.app import build_services, create_app
    from gateway.ews.emulator.app import create_app as create_emulator_app
    from gateway.ews.emulator.seed import demo_seed

    runners: list[web.AppRunner] = []
    if emulator_url is None:
        emulator_runner = web.AppRunner(create_emulator_app(demo_seed(date.today())), access_log=None)
        await emulator_runner.setup()
        runners.append(emulator_runner)
        emulator_site = web.TCPSite(emulator_runner, host, emulator_port)
        await emulator_site.start()
        emulator_url = f"http://{_local_host(host)}:{_bound_port(emulator_site)}"

    gateway_runner = None
    try:
        server = ServerConfig(host=host, port=port, base_url=os.environ.get("GATEWAY_BASE_URL") or None)
        # The demo's connect page takes the demo mailboxes' public passwords over plain HTTP even when
        # it listens on every address (a container): the startup text says not to enter real ones.
        server = replace(server, allow_plain_http_credentials=not server.loopback)
        config = GatewayConfig(
            server=server,
            storage=StorageConfig(data_dir=data_dir, database_url=database_url),
            ews=EwsConfig(
                autodiscover_endpoints={DEMO_DOMAIN: f"{emulator_url}/autodiscover/autodiscover.svc"},
                retry_budget_seconds=retry_budget_seconds,
                request_timeout_seconds=request_timeout_seconds,
                default_timezone=DEMO_TIMEZONE,
            ),
            limits=limits or LimitsConfig(),
        )
        if keyring is None:
            keyring = KeyRing.from_env() if os.environ.get(SECRET_KEY_ENV) else KeyRing.ephemeral()
        services = build_services(config, keyring=keyring)
        # The limits of `serve` ([limits] defaults: timeouts, connection caps): the demo may face a network.
        gateway_runner = await start_server(create_app(config, services=services), config, access_log=None)
        base_url = f"http://{_local_host(host)}:{gateway_runner.addresses[0][1]}"
        # One password for both users' app passwords and web sign-ins: one slow hash (60 ms) serves all four.
        stored = await hash_off_loop(password) if password else None
        issued = await asyncio.gather(
            *(
                _provision(services.accounts, username, email, exchange_password, password, stored)
                for username, email, exchange_password in DEMO_USERS
            )
        )
        passwords = {username: clear for (username, _, _), clear in zip(DEMO_USERS, issued, strict=True)}
    except BaseException:
        if gateway_runner is not None:
            await gateway_runner.cleanup()
        for runner in runners:
            await runner.cleanup()
        raise
    advertised = server.base_url.rstrip("/") if server.base_url else base_url
    return DemoStack(base_url, emulator_url, passwords, services, (gateway_runner, *runners), advertised)


async def _provision(
    accounts: AccountService,
    username: str,
    email: str,
    exchange_password: str,
    app_password: str | None,
    stored: str | None,
) -> str:
    """Create the user (if new), connect its mailbox by Autodiscover, and issue an app password.

    On a restart the previous demo app password is replaced (not added to), and the web sign-in
    password is set to the new one, so the one password printed works for both.
    """
    register_secret(exchange_password)
    user = await accounts.find_user(username)
    if user is None:
        user = await accounts.create_user(username, display_name=username.title())
    await accounts.connect_account(user.user_id, ConnectRequest(email=email, password=exchange_password))
    for old in await accounts.list_app_passwords(user.user_id):
        if old.label == DEMO_LABEL:
            await accounts.revoke_app_password(user.user_id, old.app_password_id)
    _, clear = await accounts.create_app_password(user.user_id, DEMO_LABEL, clear=app_password, stored=stored)
    register_secret(clear)
    await accounts.set_user_password(user.user_id, clear, stored=stored)  # the web pages accept it too
    return clear


def _bound_port(site: web.TCPSite) -> int:
    return site._server.sockets[0].getsockname()[1]  # the real port when 0 was asked for


def _local_host(host: str) -> str:
    """The address this machine reaches a listener on: a wildcard address is bound, not dialled."""
    return {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(host, host)


async def _serve(args: argparse.Namespace, data_dir: Path) -> None:
    stack = await start_demo(
        host=args.host,
        port=args.port,
        emulator_port=args.emulator_port,
        data_dir=data_dir,
        password=args.password,
    )
    _print_banner(stack, args.host, data_dir)
    freeze_startup_heap()
    print("Ready (Ctrl-C stops the demo).", flush=True)
    stopped = asyncio.Event()
    # `docker stop` and service managers send SIGTERM: stop as cleanly as on Ctrl-C.
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopped.set)
    try:
        await stopped.wait()
    finally:
        await stack.stop()


def _print_banner(stack: DemoStack, host: str, data_dir: Path) -> None:
    print(
        f"EWS emulator: {stack.emulator_url}/EWS/Exchange.asmx (demo mailboxes, see docs/EMULATOR.md)",
        flush=True,
    )
    print(
        f"Web pages:    {stack.advertised_url}/ (sign in with the user name and the password below)",
        flush=True,
    )
    print(f"Data dir:     {data_dir}", flush=True)
    for username, clear in stack.passwords.items():
        print(f"CalDAV: {stack.dav_url} user={username} password={clear}", flush=True)
    if _local_host(host) != host and stack.advertised_url == stack.base_url:
        print(
            f"Listening on every address ({host}): from another machine use this machine's name or "
            "address instead of the one above, or set GATEWAY_BASE_URL.",
            flush=True,
        )
    if not ServerConfig(host=host).loopback:
        print(
            "Not on loopback: the connect page accepts passwords over plain HTTP here. "
            "Enter only the demo mailboxes' passwords (they are public).",
            flush=True,
        )


def run(args: argparse.Namespace) -> int:
    if args.log_level not in LOG_LEVELS:  # a bad $GATEWAY_LOG_LEVEL default escapes argparse's check
        print(f"error: log level {args.log_level!r} is not one of {', '.join(LOG_LEVELS)}", file=sys.stderr)
        return 2
    configure_logging(args.log_level)
    made_dir = args.data_dir is None
    data_dir = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX)) if made_dir else Path(args.data_dir)
    try:
        asyncio.run(_serve(args, data_dir))
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if made_dir:  # only what the demo made itself: a --data-dir is the user's
            shutil.rmtree(data_dir, ignore_errors=True)
    return 0
