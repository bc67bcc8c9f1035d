"""Run vdirsyncer (the real sync client, as a subprocess) against a gateway.

    sync = Vdirsyncer(tmp_path, url=stack.dav_url, username="alice", password=stack.password)
    sync.discover()
    sync.sync()
    sync.files()  # {file name: iCalendar text} of the local calendar folder

The generated configuration pairs a ``filesystem`` storage (``fileext = ".ics"``) with a
``caldav`` storage at the gateway, exactly as a khal user would set it up.
"""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

_BESIDE_PYTHON = Path(sys.executable).with_name("vdirsyncer")
VDIRSYNCER: Path | None = (
    _BESIDE_PYTHON
    if _BESIDE_PYTHON.exists()
    else (Path(found) if (found := shutil.which("vdirsyncer")) else None)
)
PAIR = "exchange"


@dataclass(frozen=True)
class SyncRun:
    """One finished vdirsyncer invocation."""

    returncode: int
    output: str  # stdout and stderr, interleaved

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class VdirsyncerError(AssertionError):
    """vdirsyncer exited non-zero where the test expected success."""


def _config_value(value: object) -> str:
    """A config value: vdirsyncer reads every value in its INI-style file as JSON."""
    return json.dumps(value)


def read_ics(path: Path) -> str:
    """A local file's exact text (``Path.read_text`` would turn the CRLFs of iCalendar into LFs)."""
    return path.read_bytes().decode("utf-8")


class Vdirsyncer:
    """A vdirsyncer configuration in ``workdir`` and the commands to run it.

    ``collections`` is the pair's ``collections`` value; ``conflict_resolution`` is
    ``None`` (vdirsyncer then refuses to overwrite and reports the conflict), ``"a wins"``
    (local) or ``"b wins"`` (the gateway). ``pair_options`` (e.g. ``metadata``) and
    ``remote_options`` (e.g. ``start_date``, ``item_types``) are added verbatim.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        url: str,
        username: str,
        password: str,
        collections: list[str] | None = None,
        conflict_resolution: str | None = None,
        pair_options: dict[str, object] | None = None,
        remote_options: dict[str, object] | None = None,
        timeout: float = 60,
    ) -> None:
        if VDIRSYNCER is None:
            raise RuntimeError("vdirsyncer is not installed (pip install -e '.[test]')")
        self.workdir = workdir
        self.local = workdir / "calendars"
        self.config = workdir / "vdirsyncer.conf"
        self.timeout = timeout
        self._url, self._username, self._password = url, username, password
        self.collections = collections if collections is not None else ["from b"]
        self.conflict_resolution = conflict_resolution
        self.pair_options = pair_options or {}
        self.remote_options = remote_options or {}
        self.write_config()

    def write_config(self) -> None:
        """(Re)write the configuration file from the current attributes."""
        self.local.mkdir(parents=True, exist_ok=True)
        lines = [
            "[general]",
            f"status_path = {_config_value(str(self.workdir / 'status') + '/')}",
            "",
            f"[pair {PAIR}]",
            'a = "local"',
            'b = "gateway"',
            f"collections = {_config_value(self.collections)}",
        ]
        if self.conflict_resolution is not None:
            lines.append(f"conflict_resolution = {_config_value(self.conflict_resolution)}")
        lines += [f"{key} = {_config_value(value)}" for key, value in self.pair_options.items()]
        lines += [
            "",
            "[storage local]",
            'type = "filesystem"',
            f"path = {_config_value(str(self.local) + '/')}",
            'fileext = ".ics"',
            "",
            "[storage gateway]",
            'type = "caldav"',
            f"url = {_config_value(self._url)}",
            f"username = {_config_value(self._username)}",
            f"password = {_config_value(self._password)}",
            *(f"{key} = {_config_value(value)}" for key, value in self.remote_options.items()),
            "",
        ]
        self.config.write_text("\n".join(lines))

    def run(self, *args: str, check: bool = True) -> SyncRun:
        """``vdirsyncer -c <config> <args>``; every prompt (create a local collection?) is answered yes."""
        completed = subprocess.run(
            [str(VDIRSYNCER), "-c", str(self.config), *args],
            input="y\n" * 20,
            capture_output=True,
            text=True,
            timeout=self.timeout,
            check=False,
        )
        result = SyncRun(completed.returncode, completed.stdout + completed.stderr)
        if check and not result.ok:
            raise VdirsyncerError(f"vdirsyncer {' '.join(args)} exited {result.returncode}:\n{result.output}")
        return result

    def discover(self, check: bool = True) -> SyncRun:
        return self.run("discover", PAIR, check=check)

    def sync(self, check: bool = True) -> SyncRun:
        return self.run("sync", PAIR, check=check)

    def metasync(self, check: bool = True) -> SyncRun:
        return self.run("metasync", PAIR, check=check)

    def folders(self) -> list[Path]:
        """The local collection folders vdirsyncer created (one per synced calendar)."""
        return sorted(p for p in self.local.iterdir() if p.is_dir())

    def files(self, folder: Path | None = None) -> dict[str, str]:
        """``{file name: text}`` of one local collection (the only one when ``folder`` is None)."""
        if folder is None:
            (folder,) = self.folders()
        return {p.name: read_ics(p) for p in sorted(folder.glob("*.ics"))}


@dataclass(frozen=True)
class ProxiedRequest:
    """One request the proxy forwarded, with the conditional headers that decide data loss."""

    method: str
    path: str
    if_match: str | None
    if_none_match: str | None
    status: int


# Headers the proxy sets itself (send_response adds Date and Server) or that are per connection.
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "date", "server"})
_DAV_METHODS = (
    "GET",
    "HEAD",
    "PUT",
    "DELETE",
    "POST",
    "OPTIONS",
    "PROPFIND",
    "PROPPATCH",
    "REPORT",
    "MKCOL",
    "MKCALENDAR",
    "MOVE",
    "COPY",
)


class RecordingProxy:
    """A plain HTTP forwarder on 127.0.0.1 between a client and the gateway.

    It records every request's method, path, ``If-Match``/``If-None-Match`` and the
    gateway's status, and calls ``before(method, path)`` (from the proxy's thread) just
    before forwarding: a test uses it to let "Outlook" change an item in the middle of a
    sync, between the client's listing and its write.
    """

    def __init__(self, target: str, before: Callable[[str, str], None] | None = None) -> None:
        self.retarget(target)
        self.before = before
        self.requests: list[ProxiedRequest] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="recording-proxy", daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def retarget(self, target: str) -> None:
        """Forward to ``target`` from now on (a restarted gateway on another port, same public address)."""
        parts = urlsplit(target)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 80)

    def writes(self) -> list[ProxiedRequest]:
        """The PUT and DELETE requests seen so far."""
        return [r for r in self.requests if r.method in ("PUT", "DELETE")]

    def __enter__(self) -> RecordingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def _forward(self, handler: BaseHTTPRequestHandler) -> None:
        method, path = handler.command, handler.path
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        if self.before is not None:
            self.before(method, path)
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in _HOP_BY_HOP}
        connection = http.client.HTTPConnection(*self._target, timeout=60)
        try:
            connection.request(method, path, body=body, headers=headers)
            answer = connection.getresponse()
            payload = answer.read()
        finally:
            connection.close()
        self.requests.append(
            ProxiedRequest(
                method,
                path,
                handler.headers.get("If-Match"),
                handler.headers.get("If-None-Match"),
                answer.status,
            )
        )
        try:
            handler.send_response(answer.status)
            for key, value in answer.getheaders():
                if key.lower() not in _HOP_BY_HOP:
                    handler.send_header(key, value)
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            if method != "HEAD":
                handler.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            handler.close_connection = True  # the client gave up (e.g. exited on a conflict)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the client expects of the gateway

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
                """Quiet: the test asserts on ``requests`` instead."""

        for name in _DAV_METHODS:
            setattr(Handler, f"do_{name}", lambda self: proxy._forward(self))
        return Handler
