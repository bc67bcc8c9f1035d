"""Gateway configuration: one TOML file plus environment overrides.

Every key is documented in ``config/gateway.example.toml``. Secrets never live in
the file: the vault key (``GATEWAY_SECRET_KEY``, ``GATEWAY_OLD_SECRET_KEYS``), the
admin token (``GATEWAY_ADMIN_TOKEN``) and the metrics token (``GATEWAY_METRICS_TOKEN``)
are read from the environment only. The environment overrides the file for every key in
``ENV_OVERRIDES``; an empty variable counts as unset (compose files pass ``${X:-}``).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_DATA_DIR = Path("~/.local/share/caldav-gateway")
# Environment variable -> the key it overrides; config/gateway.example.toml lists the same set.
ENV_OVERRIDES = {
    "GATEWAY_HOST": "[server] host",
    "GATEWAY_PORT": "[server] port",
    "GATEWAY_BASE_URL": "[server] base_url",
    "GATEWAY_DATA_DIR": "[storage] data_dir",
    "GATEWAY_DATABASE_URL": "[storage] database_url",
    "GATEWAY_LOG_LEVEL": "[logging] level",
}
METRICS_TOKEN_ENV = "GATEWAY_METRICS_TOKEN"
# The configuration file when no --config is given: every command (serve, users, keys...) reads the
# same file, which a container names once in its environment.
CONFIG_ENV = "GATEWAY_CONFIG"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class ConfigError(Exception):
    """The configuration file or an environment override is invalid."""


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    base_url: str | None = None  # public URL as clients see it; derived from host/port when unset
    tls_cert: Path | None = None
    tls_key: Path | None = None
    allow_plain_http_credentials: bool = False

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None and self.tls_key is not None

    @property
    def loopback(self) -> bool:
        """True when the listener is reachable from this machine only."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @property
    def wildcard(self) -> bool:
        """True when the listener takes every address (0.0.0.0, ::): its own host is no URL."""
        return self.host in ("", "0.0.0.0", "::")

    def public_base_url(self, request_origin: str | None = None) -> str:
        """The URL clients use: ``base_url``, else the origin the request came to, else the listener.

        ``request_origin`` is ``scheme://host[:port]`` as the client addressed us (its Host header).
        A wildcard listener without either is named by the machine's name: ``http://0.0.0.0:…``
        is an address to bind, not one to connect to.
        """
        if self.base_url:
            return self.base_url.rstrip("/")
        if request_origin:
            return request_origin.rstrip("/")
        scheme = "https" if self.tls else "http"
        host = socket.gethostname() if self.wildcard else self.host
        host = f"[{host}]" if ":" in host else host
        return f"{scheme}://{host}:{self.port}"


@dataclass(frozen=True)
class StorageConfig:
    data_dir: Path = DEFAULT_DATA_DIR
    database_url: str | None = None  # e.g. postgresql+asyncpg://...; default: SQLite file in data_dir

    def url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir.expanduser() / 'gateway.sqlite3'}"


@dataclass(frozen=True)
class EwsConfig:
    # domain -> autodiscover URL; consulted before the DNS-based discovery (tests, split DNS)
    autodiscover_endpoints: Mapping[str, str] = field(default_factory=dict)
    ca_file: Path | None = None  # the organisation's CA bundle; verification is never turned off
    # IANA zone in which floating iCalendar times (no TZID, no Z) are stored in Exchange
    default_timezone: str = "UTC"
    # how long one EWS call may be retried (Exchange busy / 503) before the client gets a 503
    retry_budget_seconds: float = 10.0
    request_timeout_seconds: float = 60.0  # one EWS request, before it counts as failed
    max_workers: int = 32  # threads running exchangelib calls (the event loop never blocks on EWS)
    per_account_concurrency: int = 4  # EWS calls in flight per account (Exchange throttles per user)
    # exchangelib accounts (each with an HTTP session pool) kept in memory, most recently used first
    max_live_accounts: int = 300
    # NTLM to a plain http:// Exchange on another machine (trusted networks); Basic there is never sent
    allow_ntlm_over_http: bool = False


@dataclass(frozen=True)
class SecurityConfig:
    session_max_age: int = 8 * 3600  # seconds a web sign-in lasts
    app_password_cache_seconds: int = 60  # how long a verified app password skips the slow hash
    # Bearer token /metrics requires (GATEWAY_METRICS_TOKEN); None: /metrics is open (keep it internal)
    metrics_token: str | None = field(default=None, repr=False)


# --- [limits]: work per request, failed sign-ins, slow clients, connections --------------------------


@dataclass(frozen=True)
class LimitsConfig:
    """``[limits]``: how much work one request may cause (gateway.caldav.limits), failed sign-ins, slow
    clients and connections (docs/OPERATIONS.md, "Limits")."""

    max_resource_size: int = 1_000_000  # bytes of one PUT body (CALDAV:max-resource-size)
    max_attendees: int = 300  # ATTENDEEs of one event (CALDAV:max-attendees-per-instance)
    max_timezones: int = 20  # VTIMEZONEs of one calendar object
    max_alarms: int = 20  # VALARMs of one event
    max_overrides: int = 500  # modified occurrences (RECURRENCE-ID) of one series
    max_properties: int = 20_000  # content lines (properties) of one calendar object
    item_cache_bytes: int = 32 * 1024 * 1024  # memory for cached event renderings and exceptions
    # How long the booking API reuses the answer to an identical availability question (0: never).
    availability_cache_seconds: float = 10.0

    # Failed sign-ins (web password, CalDAV app passwords, admin token) counted over a sliding window;
    # beyond a budget the attempt is refused (429) without checking the password.
    window_seconds: float = 300.0
    failures_per_user_per_address: int = 10
    failures_per_address: int = 30  # whatever names are tried
    # Every address together: beyond it a user is refused except from addresses that signed in as that
    # user before, so an attacker's many addresses cannot lock the real user out.
    failures_per_user: int = 100
    # A request's headers must arrive within this (also how long an idle keep-alive connection stays open).
    header_timeout_seconds: float = 15.0
    body_timeout_seconds: float = 30.0  # the whole request body; beyond it 408
    max_connections: int = 1000  # open client connections; beyond it new ones get 503 and are closed
    max_connections_per_address: int = 100
    # Reverse proxies whose X-Forwarded-For names the client (addresses or networks); others are clients.
    trusted_proxies: tuple[str, ...] = ()


@dataclass(frozen=True)
class GatewayConfig:
    server: ServerConfig = field(default_factory=ServerConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    ews: EwsConfig = field(default_factory=EwsConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    log_level: str = "INFO"


def load_config(path: Path | None = None, env: Mapping[str, str] | None = None) -> GatewayConfig:
    """Read ``path`` (else ``$GATEWAY_CONFIG``, else none) and apply the ``GATEWAY_*`` overrides."""
    env = os.environ if env is None else env
    env = {k: v for k, v in env.items() if v != ""}  # empty means unset
    if path is None and CONFIG_ENV in env:
        path = Path(env[CONFIG_ENV])
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read configuration {path}: {exc}") from exc
    base = Path(path).parent if path is not None else Path.cwd()
    return GatewayConfig(
        server=_server(_table(raw, "server"), env, base),
        storage=_storage(_table(raw, "storage"), env, base),
        ews=_ews(_table(raw, "ews"), base),
        security=_security(_table(raw, "security"), env),
        log_level=_log_level(env.get("GATEWAY_LOG_LEVEL", _table(raw, "logging").get("level", "INFO"))),
        limits=_limits(_table(raw, "limits")),
    )


def _log_level(value: Any) -> str:
    level = str(value).strip().upper()
    if level not in LOG_LEVELS:
        raise ConfigError(f"[logging] level {value!r} is not one of {', '.join(LOG_LEVELS)}")
    return level


def _table(raw: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = raw.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"[{name}] must be a table")
    return value


def _path(value: Any, base: Path) -> Path | None:
    # Relative paths are relative to the configuration file, not the working directory.
    if value in (None, ""):
        return None
    p = Path(str(value)).expanduser()
    return p if p.is_absolute() else base / p


def _server(t: dict[str, Any], env: Mapping[str, str], base: Path) -> ServerConfig:
    cert, key = _path(t.get("tls_cert"), base), _path(t.get("tls_key"), base)
    if (cert is None) != (key is None):
        raise ConfigError("[server] tls_cert and tls_key must be given together")
    try:
        port = int(env.get("GATEWAY_PORT", t.get("port", 8080)))
    except ValueError as exc:
        raise ConfigError("[server] port must be a number") from exc
    return ServerConfig(
        host=str(env.get("GATEWAY_HOST", t.get("host", "127.0.0.1"))),
        port=port,
        base_url=env.get("GATEWAY_BASE_URL", t.get("base_url")),
        tls_cert=cert,
        tls_key=key,
        allow_plain_http_credentials=bool(t.get("allow_plain_http_credentials", False)),
    )


def _storage(t: dict[str, Any], env: Mapping[str, str], base: Path) -> StorageConfig:
    # A relative GATEWAY_DATA_DIR is relative to the working directory, as any shell path is.
    from_env = _path(env.get("GATEWAY_DATA_DIR"), Path.cwd())
    data_dir = from_env or _path(t.get("data_dir"), base) or DEFAULT_DATA_DIR
    return StorageConfig(
        data_dir=data_dir, database_url=_database_url(env.get("GATEWAY_DATABASE_URL", t.get("database_url")))
    )


# The async drivers the gateway runs on: URL scheme -> (module, how to get it).
DATABASE_DRIVERS = {
    "sqlite+aiosqlite": ("aiosqlite", "a dependency of the gateway"),
    "postgresql+asyncpg": ("asyncpg", 'pip install "exchange-caldav-gateway[postgres]"'),
}


def _database_url(url: Any) -> str | None:
    """Refuse at start what create_async_engine would fail on later, or run with a blocking driver."""
    if url is None:
        return None
    scheme = str(url).partition("://")[0] if "://" in str(url) else None
    if scheme is None:
        raise ConfigError(
            "[storage] database_url / GATEWAY_DATABASE_URL must be a URL such as postgresql+asyncpg://…"
        )
    postgres = scheme in ("postgresql", "postgres") or scheme.startswith("postgresql+")
    if postgres and scheme != "postgresql+asyncpg":
        raise ConfigError(f"database URL scheme {scheme!r}: write postgresql+asyncpg://USER:PASSWORD@HOST/DB")
    if scheme not in DATABASE_DRIVERS:
        raise ConfigError(
            f"database URL scheme {scheme!r} is not supported: use {' or '.join(DATABASE_DRIVERS)}"
        )
    module, how = DATABASE_DRIVERS[scheme]
    if find_spec(module) is None:
        raise ConfigError(f"the {scheme} database driver ({module}) is not installed: {how}")
    return str(url)


def _ews(t: dict[str, Any], base: Path) -> EwsConfig:
    endpoints = t.get("autodiscover_endpoints", {})
    if not isinstance(endpoints, dict) or not all(isinstance(v, str) for v in endpoints.values()):
        raise ConfigError("[ews] autodiscover_endpoints must map domain names to URLs")
    return EwsConfig(
        autodiscover_endpoints={k.lower(): v for k, v in endpoints.items()},
        ca_file=_path(t.get("ca_file"), base),
        default_timezone=_zone(str(t.get("default_timezone", "UTC"))),
        retry_budget_seconds=float(t.get("retry_budget_seconds", 10.0)),
        request_timeout_seconds=float(t.get("request_timeout_seconds", 60.0)),
        max_workers=int(t.get("max_workers", 32)),
        per_account_concurrency=int(t.get("per_account_concurrency", 4)),
        max_live_accounts=_positive(t.get("max_live_accounts", 300), "max_live_accounts"),
        allow_ntlm_over_http=_flag(t.get("allow_ntlm_over_http", False), "[ews] allow_ntlm_over_http"),
    )


def _flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false")
    return value


def _positive(value: Any, name: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1:
        raise ConfigError(f"[ews] {name} must be a whole number of at least 1")
    return number


def _zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"[ews] default_timezone {name!r} is not an IANA time zone name") from exc
    return name


def _security(t: dict[str, Any], env: Mapping[str, str]) -> SecurityConfig:
    return SecurityConfig(
        session_max_age=int(t.get("session_max_age", 8 * 3600)),
        app_password_cache_seconds=int(t.get("app_password_cache_seconds", 60)),
        metrics_token=env.get(METRICS_TOKEN_ENV),
    )


def _limits(t: dict[str, Any]) -> LimitsConfig:
    defaults = LimitsConfig()
    unknown = set(t) - set(LimitsConfig.__dataclass_fields__)
    if unknown:
        raise ConfigError(f"[limits] has no key {sorted(unknown)[0]!r}")
    values: dict[str, Any] = {}
    for name in ("window_seconds", "header_timeout_seconds", "body_timeout_seconds"):
        values[name] = _number(t.get(name, getattr(defaults, name)), f"[limits] {name}", float)
    for name in (
        "max_resource_size",
        "max_attendees",
        "max_timezones",
        "max_alarms",
        "max_overrides",
        "max_properties",
        "item_cache_bytes",
        "failures_per_user_per_address",
        "failures_per_address",
        "failures_per_user",
        "max_connections",
        "max_connections_per_address",
    ):
        values[name] = _number(t.get(name, getattr(defaults, name)), f"[limits] {name}", int)
    cache = t.get("availability_cache_seconds", defaults.availability_cache_seconds)
    if isinstance(cache, bool) or not isinstance(cache, int | float) or cache < 0:
        raise ConfigError("[limits] availability_cache_seconds must be a number of seconds, 0 or more")
    values["availability_cache_seconds"] = float(cache)
    proxies = t.get("trusted_proxies", [])
    if not isinstance(proxies, list) or not all(isinstance(p, str) for p in proxies):
        raise ConfigError("[limits] trusted_proxies must be a list of addresses or networks")
    for proxy in proxies:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise ConfigError(f"[limits] trusted_proxies: {proxy!r} is not an address or network") from None
    return LimitsConfig(**values, trusted_proxies=tuple(proxies))


def _number(value: Any, name: str, kind: type[int] | type[float]) -> Any:
    """A positive number (bool is no number here, though Python says it is an int)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0 or kind(value) != value:
        word = "whole number" if kind is int else "number"
        raise ConfigError(f"{name} must be a positive {word}")
    return kind(value)
