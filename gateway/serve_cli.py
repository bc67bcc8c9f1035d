"""``serve --config FILE``: run the gateway (pages, admin API; CalDAV once wired)."""

from __future__ import annotations

import argparse
import logging
import ssl
import sys
from pathlib import Path

from aiohttp import web

from gateway.accounts.vault import VaultError
from gateway.config import ConfigError, GatewayConfig, load_config

log = logging.getLogger("gateway.serve")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("serve", help="run the gateway server")
    parser.add_argument("--config", type=Path, help="configuration file (see config/gateway.example.toml)")
    parser.set_defaults(func=serve)


def ssl_context(config: GatewayConfig) -> ssl.SSLContext | None:
    """The server TLS context when [server] tls_cert/tls_key are set."""
    server = config.server
    if not server.tls:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(server.tls_cert), str(server.tls_key))
    return context


def serve(args: argparse.Namespace) -> int:
    # Imported here so the other CLI commands start without loading the CalDAV/EWS stack.
    from gateway.app import create_app
    from gateway.loop_monitor import freeze_startup_heap

    try:
        config = load_config(args.config)
        logging.basicConfig(level=config.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        app = create_app(config)
        context = ssl_context(config)
    except (ConfigError, VaultError, OSError, ssl.SSLError) as exc:
        # Refusing to start (e.g. no GATEWAY_SECRET_KEY) is a clear message, not a traceback.
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not context and not config.server.loopback:
        log.warning(
            "serving plain HTTP on %s: Exchange passwords are refused unless "
            "allow_plain_http_credentials is set or a TLS proxy is in front (https base_url)",
            config.server.host,
        )
    log.info(
        "serving on %s (CalDAV at %s/dav/)", config.server.public_base_url(), config.server.public_base_url()
    )
    freeze_startup_heap()
    web.run_app(app, host=config.server.host, port=config.server.port, ssl_context=context, print=None)
    return 0
