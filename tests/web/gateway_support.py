"""Fixtures and helpers shared by the accounts/web/security tests: the real gateway app
(pages, admin API, CalDAV over EWS) in front of the EWS emulator."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from gateway.accounts.vault import generate_key
from gateway.app import build_services, create_app
from gateway.config import EwsConfig, GatewayConfig, ServerConfig, StorageConfig
from gateway.web.services import Services

ADMIN_TOKEN = "test-admin-token-0123456789"
T = TypeVar("T")


def make_config(tmp_path: Path, emulator: Any, **server: Any) -> GatewayConfig:
    return GatewayConfig(
        server=ServerConfig(**server),
        storage=StorageConfig(data_dir=tmp_path / "data"),
        ews=EwsConfig(autodiscover_endpoints={"example.com": emulator.autodiscover_url}),
    )


def make_services(config: GatewayConfig, secret_key: str, admin_token: str | None = ADMIN_TOKEN) -> Services:
    env = {"GATEWAY_SECRET_KEY": secret_key}
    if admin_token:
        env["GATEWAY_ADMIN_TOKEN"] = admin_token
    return build_services(config, env=env)


def autodiscover_off(emulator: Any, domain: str = "example.com") -> None:
    """Make the emulator answer 404 to Autodiscover for ``domain`` (reset restores it)."""
    emulator.state.autodiscover[domain] = {"mode": "none"}


@pytest.fixture
def secret_key() -> str:
    return generate_key()


@pytest.fixture
def gateway_config(tmp_path: Path, emulator: Any, database_url: str) -> GatewayConfig:
    """The SQLite file in ``tmp_path / "data"``, or PostgreSQL where the test runs ``on_both_stores``."""
    config = make_config(tmp_path, emulator)
    return replace(config, storage=replace(config.storage, database_url=database_url))


@pytest.fixture
def services(gateway_config: GatewayConfig, secret_key: str) -> Services:
    return make_services(gateway_config, secret_key)


@pytest.fixture
async def gateway(
    aiohttp_client: Any, gateway_config: GatewayConfig, services: Services
) -> AsyncIterator[TestClient]:
    """The gateway app over real HTTP on 127.0.0.1 (pytest-aiohttp's test server)."""
    yield await aiohttp_client(create_app(gateway_config, services=services))


def admin_headers(token: str = ADMIN_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class GatewayThread:
    """The gateway on its own event loop thread, for clients that block (a browser driver)."""

    def __init__(self, config: GatewayConfig, services: Services) -> None:
        self.services = services
        self._app = create_app(config, services=services)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="gateway", daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    def __enter__(self) -> GatewayThread:
        self._thread.start()
        self.port = self.call(self._serve())
        return self

    async def _serve(self) -> int:
        self._runner = web.AppRunner(self._app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return site._server.sockets[0].getsockname()[1]

    def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the gateway's loop (where its database connections live)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=60)

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            self.call(self._runner.cleanup())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"
