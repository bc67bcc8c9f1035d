"""Run the EWS emulator on a free 127.0.0.1 port in a background thread (exchangelib is blocking).

with EmulatorServer(seed) as emu:
    config = Configuration(service_endpoint=emu.ews_url, ...)
    emu.stats()["operations"]["ConvertId"]
"""

from __future__ import annotations

import asyncio
import json
import ssl
import tempfile
import threading
import urllib.request
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

from aiohttp import web

from gateway.ews.emulator.app import STATE, create_app
from gateway.ews.emulator.cli import write_self_signed_cert
from gateway.ews.emulator.state import EmulatorState


class EmulatorServer:
    """The emulator on its own event loop thread; control calls go through real HTTP."""

    def __init__(
        self,
        seed: dict | None = None,
        *,
        ews_version: str = "2016",
        latency_ms: int = 0,
        message_observer: Callable[[str, str, bytes], None] | None = None,
        tls: bool = False,
    ) -> None:
        self._app = create_app(
            seed, ews_version=ews_version, latency_ms=latency_ms, message_observer=message_observer
        )
        # With tls=True: HTTPS with a fresh self-signed certificate; clients trust ``ca_file``.
        self.ca_file: Path | None = None
        self._ssl: ssl.SSLContext | None = None
        if tls:
            self._tmp = tempfile.TemporaryDirectory(prefix="ews-emulator-")
            self.ca_file, key_file = write_self_signed_cert(Path(self._tmp.name), "127.0.0.1")
            self._ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self._ssl.load_cert_chain(self.ca_file, key_file)
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="ews-emulator", daemon=True)
        self.port = 0

    def start(self) -> EmulatorServer:
        self._thread.start()
        future: Future[int] = asyncio.run_coroutine_threadsafe(self._serve(), self._loop)
        self.port = future.result(timeout=10)
        return self

    async def _serve(self) -> int:
        self._runner = web.AppRunner(self._app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self._ssl)
        await site.start()
        return site._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
            self._runner = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
        if self.ca_file is not None:
            self._tmp.cleanup()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"{'https' if self._ssl else 'http'}://127.0.0.1:{self.port}"

    @property
    def ews_url(self) -> str:
        return f"{self.base_url}/EWS/Exchange.asmx"

    @property
    def autodiscover_url(self) -> str:
        return f"{self.base_url}/autodiscover/autodiscover.svc"

    @property
    def state(self) -> EmulatorState:
        return self._app[STATE]

    def _control(self, method: str, path: str, payload: dict | None = None) -> dict:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(
            f"{self.base_url}{path}", data=data, method=method, headers={"Content-Type": "application/json"}
        )
        context = ssl.create_default_context(cafile=str(self.ca_file)) if self.ca_file else None
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return json.loads(response.read())

    def stats(self) -> dict:
        """``GET /_emulator/stats``."""
        return self._control("GET", "/_emulator/stats")

    def reset(self) -> None:
        """``POST /_emulator/reset``: seed restored, statistics and faults cleared."""
        self._control("POST", "/_emulator/reset", {})

    def set_faults(self, faults: dict | None = None, **kwargs: object) -> dict:
        """``POST /_emulator/faults`` with ``faults`` (or keyword arguments) as the JSON body."""
        return self._control("POST", "/_emulator/faults", dict(faults or {}, **kwargs))
