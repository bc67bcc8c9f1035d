"""The gateway's aiohttp application: CalDAV, free/busy URLs, pages, admin API, health and metrics."""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import fields

from aiohttp import web
from sqlalchemy import Connection, Engine, event, text
from sqlalchemy.exc import SQLAlchemyError

from gateway.accounts.service import AccountService
from gateway.accounts.throttle import SignInThrottle
from gateway.accounts.vault import KeyRing, Vault
from gateway.booking.api import setup_booking
from gateway.booking.store import BookingStore
from gateway.caldav.app import setup_caldav
from gateway.caldav.limits import Limits
from gateway.common.stages import STAGES, TimedPool
from gateway.config import GatewayConfig, LimitsConfig
from gateway.ews.backend import EwsBackend
from gateway.ews.client import EwsClient
from gateway.ews.index import ItemIndex
from gateway.limits import body_deadline
from gateway.logsafe import quiet_client_errors
from gateway.loop_monitor import LOOP_MONITOR_KEY, setup_loop_monitor
from gateway.store.database import Database
from gateway.web.admin import admin_auth, setup_admin
from gateway.web.openapi import setup_openapi
from gateway.web.pages import setup_pages
from gateway.web.services import SERVICES_KEY, Services
from gateway.web.sessions import SessionStore

log = logging.getLogger(__name__)

ADMIN_TOKEN_ENV = "GATEWAY_ADMIN_TOKEN"
EWS_CLIENT_KEY = web.AppKey("gateway_ews_client", EwsClient)
BACKEND_KEY = web.AppKey("gateway_backend", EwsBackend)


def build_services(
    config: GatewayConfig,
    *,
    keyring: KeyRing | None = None,
    ews_client: EwsClient | None = None,
    env: Mapping[str, str] | None = None,
) -> Services:
    """Everything one gateway process needs; the database is opened by the app's startup.

    ``keyring`` defaults to ``KeyRing.from_env()``, which raises
    ``MissingSecretKeyError`` without ``GATEWAY_SECRET_KEY``: the server refuses to
    start. The demo passes ``KeyRing.ephemeral()`` instead (it logs that it does).
    """
    env = os.environ if env is None else env
    keyring = keyring or KeyRing.from_env(env)
    client = ews_client or EwsClient(
        autodiscover_endpoints=dict(config.ews.autodiscover_endpoints),
        ca_file=str(config.ews.ca_file) if config.ews.ca_file else None,
        retry_budget_s=config.ews.retry_budget_seconds,
        request_timeout_s=config.ews.request_timeout_seconds,
        max_workers=config.ews.max_workers,
        per_account_concurrency=config.ews.per_account_concurrency,
        max_live_accounts=config.ews.max_live_accounts,
        allow_ntlm_over_http=config.ews.allow_ntlm_over_http,
    )
    db = Database(config.storage.url())
    limits = config.limits
    throttle = SignInThrottle(
        window=limits.window_seconds,
        per_user_per_address=limits.failures_per_user_per_address,
        per_address=limits.failures_per_address,
        per_user=limits.failures_per_user,
    )
    accounts = AccountService(
        db,
        Vault(keyring),
        client,
        cache_seconds=config.security.app_password_cache_seconds,
        throttle=throttle,
    )
    return Services(
        config=config,
        db=db,
        accounts=accounts,
        sessions=SessionStore(
            db,
            config.security.session_max_age,
            always_secure=config.server.public_base_url().startswith("https://"),
        ),
        admin_token=env.get(ADMIN_TOKEN_ENV) or None,
        ews_client=client,
    )


def create_app(
    config: GatewayConfig, *, ews_client: EwsClient | None = None, services: Services | None = None
) -> web.Application:
    """The application; opens (and migrates) the database on startup, closes it on cleanup."""
    services = services or build_services(config, ews_client=ews_client)
    quiet_client_errors()
    app = web.Application(
        middlewares=[
            timed_requests,
            body_deadline(config.limits.body_timeout_seconds),
            undecodable_forms,
            admin_auth,
        ],
        client_max_size=1 << 20,
    )
    app[SERVICES_KEY] = services
    app[EWS_CLIENT_KEY] = services.ews_client
    app.on_startup.append(_open)
    app.on_cleanup.append(_close)

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    setup_pages(app)
    setup_admin(app)
    setup_openapi(app)

    setup_dav(app, services)
    return app


_FORM = "application/x-www-form-urlencoded"


@web.middleware
async def undecodable_forms(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """A form body that is no text in its charset is the client's mistake: 400 with a sentence, not the
    500 ``request.post()`` would end in. (The body is read once; ``post()`` reuses it. The admin API
    answers bad JSON itself, CalDAV bodies are checked by the protocol.)"""
    if request.content_type == _FORM and request.body_exists:
        charset = request.charset or "utf-8"
        try:
            (await request.read()).decode(charset)
        except LookupError:
            raise web.HTTPBadRequest(
                text="The request names a character set this server does not know.\n"
            ) from None
        except UnicodeDecodeError:
            raise web.HTTPBadRequest(text=f"The request body is not valid {charset} text.\n") from None
    return await handler(request)


def setup_dav(app: web.Application, services: Services) -> None:
    """CalDAV over EWS (the AccountService authenticates app passwords) and /metrics."""
    index = ItemIndex(services.db.engine, services.db.locks, services.db.invalidations)
    limits = services.config.limits
    backend = EwsBackend(
        services.accounts,
        services.ews_client,
        index,
        default_timezone=services.config.ews.default_timezone,
        live_accounts=services.config.ews.max_live_accounts,
        item_cache_bytes=limits.item_cache_bytes,
    )
    services.list_calendars = backend.calendars
    setup_caldav(
        app, backend, services.accounts, limits=dav_limits(limits), client_address=services.client_address
    )
    setup_booking(app, BookingStore(services.db.engine), limits.availability_cache_seconds, services.db.locks)
    app[BACKEND_KEY] = backend

    async def drain(_app: web.Application) -> None:
        await backend.drain()

    app.on_shutdown.append(drain)
    setup_loop_monitor(app)
    app.router.add_get("/metrics", metrics)


def dav_limits(limits: LimitsConfig) -> Limits:
    """The ``[limits]`` configuration as the CalDAV layer applies it."""
    return Limits(**{f.name: getattr(limits, f.name) for f in fields(Limits)})


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition: EWS requests per operation and their latency, event-loop lag, caches.

    With ``GATEWAY_METRICS_TOKEN`` set, only for ``Authorization: Bearer <token>`` (RFC 6750
    section 2.1); a missing or wrong token gets 401 with a ``Bearer`` challenge (section 3).
    """
    token = request.app[SERVICES_KEY].config.security.metrics_token
    if token is not None and not _bearer_matches(request, token):
        return web.Response(
            status=401,
            text="metrics need the bearer token\n",
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    body = (
        # which worker answered (serve --workers: each process has its own counters, gateway/workers.py)
        f"# HELP gateway_worker_pid The process id of the worker that answered.\n"
        f"# TYPE gateway_worker_pid gauge\ngateway_worker_pid {os.getpid()}\n"
        + request.app[EWS_CLIENT_KEY].metrics.render_prometheus()
        + request.app[LOOP_MONITOR_KEY].render_prometheus()
        + request.app[BACKEND_KEY].render_prometheus()
        + STAGES.render_prometheus()
    )
    return web.Response(
        text=body, content_type="text/plain", charset="utf-8", headers={"X-Content-Type-Options": "nosniff"}
    )


def _bearer_matches(request: web.Request, token: str) -> bool:
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    # Constant-time comparison: response timing does not reveal how much of a guess was right.
    return scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), token.encode())


async def _open(app: web.Application) -> None:
    loop = asyncio.get_running_loop()
    if loop not in _TIMED_LOOPS:  # answers built off the loop (asyncio.to_thread) wait for these threads
        _TIMED_LOOPS.add(loop)
        loop.set_default_executor(TimedPool("default_executor", min(32, (os.cpu_count() or 1) + 4)))
    db = app[SERVICES_KEY].db
    time_statements(db.engine.sync_engine)
    await db.open()
    await db.invalidations.start()  # PostgreSQL: hear of changes other replicas commit


_TIMED_LOOPS: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()


def time_statements(engine: Engine) -> None:
    """Observe each SQL statement's time (waiting for SQLite's write lock included) as the stage
    ``database_read`` or ``database_write`` (gateway/common/stages.py)."""
    if event.contains(engine, "before_cursor_execute", _statement_starts):
        return
    event.listen(engine, "before_cursor_execute", _statement_starts)
    event.listen(engine, "after_cursor_execute", _statement_ends)


def _statement_starts(conn: Connection, _cursor: object, statement: str, *_args: object) -> None:
    conn.info["stage_started"] = time.perf_counter()


def _statement_ends(conn: Connection, _cursor: object, statement: str, *_args: object) -> None:
    started = conn.info.pop("stage_started", None)
    if started is not None:
        reads = statement.lstrip()[:6].upper() in ("SELECT", "PRAGMA")
        STAGES.observe("database_read" if reads else "database_write", time.perf_counter() - started)


@web.middleware
async def timed_requests(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """The whole handling of a request as the stage ``request`` (the sum its other stages are part of)."""
    with STAGES.timed("request"):
        return await handler(request)


async def _close(app: web.Application) -> None:
    services = app[SERVICES_KEY]
    await services.ews_client.close()
    await services.db.close()


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: the database answers."""
    try:
        async with request.app[SERVICES_KEY].db.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError) as exc:
        log.warning("readiness check failed: %s", type(exc).__name__)
        return web.json_response({"status": "unavailable", "database": "down"}, status=503)
    return web.json_response({"status": "ok", "database": "up"})
