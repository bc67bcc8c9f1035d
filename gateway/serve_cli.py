"""``serve [--config FILE] [--workers N]``: run the gateway (pages, admin API, CalDAV).

The configuration file is optional (``--config``, else ``$GATEWAY_CONFIG``): with neither, the
defaults and the ``GATEWAY_*`` environment variables are the whole configuration, as in a container.
``--workers N`` runs N processes on one listening socket (gateway/workers.py); by default as many as
there are cores on PostgreSQL, one on SQLite (whose locks and caches are those of one process).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import ssl
import sys
from collections.abc import Mapping
from pathlib import Path

from aiohttp import web

from gateway.accounts.vault import OLD_SECRET_KEYS_ENV, SECRET_KEY_ENV, KeyRing, VaultError
from gateway.config import METRICS_TOKEN_ENV, ConfigError, GatewayConfig, load_config
from gateway.limits import start_server
from gateway.logsafe import configure_logging, register_secret

log = logging.getLogger("gateway.serve")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("serve", help="run the gateway server")
    parser.add_argument(
        "--config",
        type=Path,
        help="configuration file (see config/gateway.example.toml; default: $GATEWAY_CONFIG, else "
        "none: defaults and GATEWAY_* environment variables only)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        help="gateway processes sharing the listening socket (default: the number of cores on "
        "PostgreSQL; SQLite allows only 1)",
    )
    parser.set_defaults(func=serve)


def worker_count(requested: int | None, database_url: str) -> int:
    """How many processes serve: ``requested``, else the cores on PostgreSQL and 1 on SQLite.
    Raises ConfigError for a count below 1, or above 1 on SQLite."""
    from gateway.workers import cores

    postgres = database_url.startswith("postgresql")
    count = requested if requested is not None else (cores() if postgres else 1)
    if count < 1:
        raise ConfigError("--workers needs at least 1 process")
    if count > 1 and not postgres:
        raise ConfigError(
            f"--workers {count} needs PostgreSQL ([storage] database_url): on SQLite the index locks and "
            "cache invalidation cover one process only"
        )
    return count


def ssl_context(config: GatewayConfig) -> ssl.SSLContext | None:
    """The server TLS context when [server] tls_cert/tls_key are set."""
    server = config.server
    if not server.tls:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(server.tls_cert), str(server.tls_key))
    return context


def register_environment_secrets(env: Mapping[str, str]) -> None:
    """Keep the keys and tokens the process got from its environment out of every log line."""
    from gateway.app import ADMIN_TOKEN_ENV  # imported with the app, which reads it (see serve)

    for name in (SECRET_KEY_ENV, ADMIN_TOKEN_ENV, METRICS_TOKEN_ENV):
        register_secret(env.get(name, "").strip())
    for old in env.get(OLD_SECRET_KEYS_ENV, "").split(","):
        register_secret(old.strip())


def serve(args: argparse.Namespace) -> int:
    # Imported here so the other CLI commands start without loading the CalDAV/EWS stack.
    from gateway.app import create_app
    from gateway.loop_monitor import freeze_startup_heap
    from gateway.workers import Supervisor, inherited_socket, listening_socket, worker_command

    register_environment_secrets(os.environ)
    try:
        config = load_config(args.config)
        configure_logging(config.log_level)
        workers = worker_count(args.workers, config.storage.url())
        if workers > 1:  # the supervisor: it binds the socket and starts the workers, no application
            KeyRing.from_env(os.environ)  # a missing key refuses here, before any worker starts
            sock = listening_socket(config.server.host, config.server.port)
            log.info("%s; %d workers", startup_message(config), workers)
            # the workers inherit the environment ($GATEWAY_CONFIG included)
            supervisor = Supervisor(worker_command(str(args.config) if args.config else None), workers, sock)
        else:
            app = create_app(config)
            context = ssl_context(config)
    except (ConfigError, VaultError, OSError, ssl.SSLError) as exc:
        # Refusing to start (e.g. no GATEWAY_SECRET_KEY) is a clear message, not a traceback.
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if workers > 1:
        return supervisor.run()
    if not context and not config.server.loopback:
        log.warning(
            "serving plain HTTP on %s: Exchange passwords are refused unless "
            "allow_plain_http_credentials is set or a TLS proxy is in front (https base_url)",
            config.server.host,
        )
    sock = inherited_socket()
    if sock is None:
        log.info("%s", startup_message(config))
    else:
        log.info("worker %s serving (pid %d)", os.environ.get("GATEWAY_WORKER", "?"), os.getpid())
    freeze_startup_heap()
    try:
        asyncio.run(_serve_until_stopped(app, config, context, sock))
    except OSError as exc:  # e.g. the port is taken
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


async def _serve_until_stopped(
    app: web.Application, config: GatewayConfig, context: ssl.SSLContext | None, sock: socket.socket | None
) -> None:
    """Serve with the ``[limits]`` (``gateway.limits``) until SIGINT or SIGTERM, then let requests in
    flight finish and close the database (the application's shutdown and cleanup). ``sock``: a worker's
    inherited listener, instead of binding ``[server] host``/``port``."""
    runner = await start_server(app, config, ssl_context=context, sock=sock)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopped.set)
    try:
        await stopped.wait()
    finally:
        await runner.cleanup()


def startup_message(config: GatewayConfig) -> str:
    """Where the gateway listens and the CalDAV URL, never a wildcard address as a URL."""
    server = config.server
    if server.base_url or not server.wildcard:
        url = server.public_base_url()
        return f"serving on {url} (CalDAV at {url}/dav/)"
    return (
        f"listening on every address ({server.host or '*'}) port {server.port}; the CalDAV URL shown to "
        "clients is derived from each request's Host (set GATEWAY_BASE_URL to fix it)"
    )
