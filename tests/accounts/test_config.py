"""Configuration: the example file parses, env overrides apply, paths are relative to the file."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from gateway.config import ConfigError, load_config

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "gateway.example.toml"


def test_example_config_loads_with_safe_defaults() -> None:
    config = load_config(EXAMPLE, env={})
    assert config.server.host == "127.0.0.1" and config.server.loopback
    assert not config.server.allow_plain_http_credentials and not config.server.tls
    assert config.server.public_base_url() == "http://127.0.0.1:8080"
    assert config.storage.url().endswith("/caldav-gateway/gateway.sqlite3")


def test_env_overrides_and_relative_paths(tmp_path: Path) -> None:
    file = tmp_path / "gw.toml"
    file.write_text(
        '[server]\nhost = "0.0.0.0"\ntls_cert = "c.pem"\ntls_key = "k.pem"\n'
        '[ews.autodiscover_endpoints]\n"Example.COM" = "http://127.0.0.1:1/autodiscover/autodiscover.svc"\n'
    )
    config = load_config(file, env={"GATEWAY_DATA_DIR": str(tmp_path / "data"), "GATEWAY_PORT": "9443"})
    assert config.server.tls_cert == tmp_path / "c.pem" and not config.server.loopback
    # 0.0.0.0 is an address to bind, not to connect to: the machine's name stands for it (issue 13).
    assert config.server.public_base_url() == f"https://{socket.gethostname()}:9443"
    assert config.storage.url() == f"sqlite+aiosqlite:///{tmp_path / 'data' / 'gateway.sqlite3'}"
    assert config.ews.autodiscover_endpoints == {
        "example.com": "http://127.0.0.1:1/autodiscover/autodiscover.svc"
    }


def test_half_a_tls_pair_is_an_error(tmp_path: Path) -> None:
    file = tmp_path / "gw.toml"
    file.write_text('[server]\ntls_cert = "c.pem"\n')
    with pytest.raises(ConfigError, match="together"):
        load_config(file, env={})


def test_limits_come_from_their_own_section_and_are_checked(tmp_path: Path) -> None:
    example = load_config(EXAMPLE, env={}).limits
    assert (example.max_resource_size, example.max_attendees, example.item_cache_bytes) == (
        1_000_000,
        300,
        33554432,
    )
    file = tmp_path / "gw.toml"
    file.write_text("[limits]\nmax_attendees = 50\nitem_cache_bytes = 1048576\n")
    limits = load_config(file, env={}).limits
    assert (limits.max_attendees, limits.item_cache_bytes, limits.max_timezones) == (50, 1_048_576, 20)
    for bad in ("max_attendees = 0", 'max_alarms = "ten"', "max_atendees = 5"):
        file.write_text(f"[limits]\n{bad}\n")
        with pytest.raises(ConfigError, match=r"\[limits\]"):
            load_config(file, env={})


def test_limits_have_defaults_and_are_checked(tmp_path: Path) -> None:
    limits = load_config(EXAMPLE, env={}).limits
    assert (limits.failures_per_user_per_address, limits.failures_per_address, limits.failures_per_user) == (
        10,
        30,
        100,
    )
    assert limits.trusted_proxies == () and limits.body_timeout_seconds == 30
    file = tmp_path / "gw.toml"
    file.write_text('[limits]\nwindow_seconds = 60\ntrusted_proxies = ["10.0.0.0/8", "::1"]\n')
    limits = load_config(file, env={}).limits
    assert limits.window_seconds == 60 and limits.trusted_proxies == ("10.0.0.0/8", "::1")
    for bad, word in [
        ("failures_per_address = 0", "failures_per_address"),
        ("max_connections = 1.5", "max_connections"),
        ('trusted_proxies = ["proxy.example.com"]', "trusted_proxies"),
        ("failures_per_usr = 3", "failures_per_usr"),
    ]:
        file.write_text(f"[limits]\n{bad}\n")
        with pytest.raises(ConfigError, match=word):
            load_config(file, env={})


def test_the_availability_cache_may_be_turned_off_but_not_negative(tmp_path: Path) -> None:
    assert load_config(EXAMPLE, env={}).limits.availability_cache_seconds == 10
    file = tmp_path / "g.toml"
    file.write_text("[limits]\navailability_cache_seconds = 0\n")
    assert load_config(file, env={}).limits.availability_cache_seconds == 0
    for bad in ("-1", '"10"', "true"):
        file.write_text(f"[limits]\navailability_cache_seconds = {bad}\n")
        with pytest.raises(ConfigError, match="availability_cache_seconds"):
            load_config(file, env={})


def test_a_database_url_the_gateway_cannot_use_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """A plain postgresql:// URL would pick a blocking driver, another database none at all: the error
    says what to write instead, before anything starts."""
    for url, word in (
        ("postgresql://gateway@db/gateway", "postgresql\\+asyncpg://"),
        ("postgres://gateway@db/gateway", "postgresql\\+asyncpg://"),
        ("mysql+aiomysql://gateway@db/gateway", "sqlite\\+aiosqlite"),
        ("not a url", "GATEWAY_DATABASE_URL"),
    ):
        with pytest.raises(ConfigError, match=word):
            load_config(env={"GATEWAY_DATABASE_URL": url})
    url = "postgresql+asyncpg://gateway:pw@db:5432/gateway"
    assert load_config(env={"GATEWAY_DATABASE_URL": url}).storage.url() == url
    monkeypatch.setattr("gateway.config.find_spec", lambda name: None)  # asyncpg not installed
    with pytest.raises(ConfigError, match=r"exchange-caldav-gateway\[postgres\]"):
        load_config(env={"GATEWAY_DATABASE_URL": url})
