"""The whole gateway (real HTTP, real SQLite file or PostgreSQL, real exchangelib) in a background thread.

Blocking clients (python-caldav, vdirsyncer, requests) talk to it from the test thread,
exactly as they would to a deployed gateway:

    with GatewayStack(emulator, tmp_path) as gw:
        caldav.DAVClient(gw.base_url, username="alice", password=gw.password)
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from gateway.accounts.vault import KeyRing
from gateway.app import BACKEND_KEY
from gateway.config import LimitsConfig
from gateway.demo import DemoStack, start_demo

DEMO_PASSWORD = "demo-app-password-1"


class GatewayStack:
    """``gateway demo`` against a running emulator, on its own event loop thread."""

    def __init__(
        self,
        emulator: Any,
        data_dir: Path,
        keyring: KeyRing | None = None,
        limits: LimitsConfig | None = None,
        *,
        request_timeout_seconds: float = 60.0,
        database_url: str | None = None,
    ) -> None:
        self.database_url = database_url  # None: the SQLite file in data_dir
        self.emulator = emulator
        self.limits = limits
        self.request_timeout_seconds = request_timeout_seconds
        self.data_dir = data_dir
        self.keyring = keyring or KeyRing.ephemeral()
        self.password = DEMO_PASSWORD
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="gateway", daemon=True)
        self._thread.start()
        self.stack: DemoStack | None = None

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 60) -> Any:
        """Run a coroutine on the gateway's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=timeout)

    def start(self) -> GatewayStack:
        self.stack = self.run(
            start_demo(
                port=0,
                data_dir=self.data_dir,
                password=self.password,
                keyring=self.keyring,
                emulator_url=self.emulator.base_url,
                retry_budget_seconds=2.0,  # failing-Exchange tests answer quickly
                limits=self.limits,
                request_timeout_seconds=self.request_timeout_seconds,
                database_url=self.database_url,
            )
        )
        return self

    def restart(self) -> None:
        """Stop the gateway and start a new one on the same data directory and key."""
        self.run(self.stack.stop())
        self.start()

    def stop(self) -> None:
        if self.stack is not None:
            self.run(self.stack.stop())
            self.stack = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> GatewayStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return self.stack.base_url

    @property
    def dav_url(self) -> str:
        return self.stack.dav_url

    @property
    def backend(self) -> Any:
        return self.stack._runners[0].app[BACKEND_KEY]

    def ews_calls(self) -> dict[str, int]:
        """EWS operations the emulator has counted so far (Autodiscover included)."""
        return dict(self.emulator.stats()["operations"])
