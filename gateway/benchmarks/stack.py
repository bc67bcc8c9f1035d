"""The benchmarked stack: the EWS emulator and the gateway, each in its own process, on 127.0.0.1.

Both are started the way users start them (``python -m gateway emulator`` / ``serve``); the gateway
gets a fresh SQLite data directory, a generated vault key and admin token, and its users are created
and connected over the admin JSON API (Autodiscover against the emulator), as an operator would.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from gateway.accounts.vault import generate_key

START_TIMEOUT_S = 180.0  # loading a large seed takes the emulator a while
_EWS_URL_LINE = re.compile(r"EWS URL:\s+(\S+)")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class StackError(RuntimeError):
    """A process of the stack did not start or answer as expected."""


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1 (the gateway's config needs a number)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (``/proc/<pid>/stat`` fields 14 and 15, proc(5))."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may contain spaces
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def memory_kb(pid: int) -> dict[str, int]:
    """Current (VmRSS) and peak (VmHWM) resident set size of a process in KiB (proc(5))."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values


class Process:
    """A child process whose output goes to a log file; stopped with SIGTERM, then SIGKILL."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        log_path: Path,
        env: dict[str, str] | None = None,
        *,
        append: bool = False,
    ) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = log_path
        self._log = log_path.open("ab" if append else "wb")  # a restart keeps the earlier output
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT, env=env)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            tail = "\n".join(self.output().splitlines()[-15:])
            raise StackError(f"{self.name} exited with status {self.proc.returncode}:\n{tail}")

    def kill(self) -> None:
        """SIGKILL, as a crash or an out-of-memory kill ends a process: nothing is finished or flushed."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()


def start_emulator(
    seed: dict[str, Any], workdir: Path, latency_ms: int, port: int = 0
) -> tuple[Process, str]:
    """``python -m gateway emulator --port N --seed FILE --latency-ms N``; returns it and its base URL
    (``port`` 0: a free one; a chosen one lets the gateway start before the emulator is up)."""
    seed_path = workdir / "seed.json"
    seed_path.write_text(json.dumps(seed), encoding="utf-8")
    argv = [
        sys.executable,
        "-m",
        "gateway",
        "emulator",
        "--port",
        str(port),
        "--seed",
        str(seed_path),
        "--latency-ms",
        str(latency_ms),
    ]
    process = Process("emulator", argv, workdir / "emulator.log")
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        process.check_alive()
        text = process.output()
        match = _EWS_URL_LINE.search(text)
        if match and "Ready" in text:
            return process, match.group(1).rsplit("/EWS/", 1)[0]
        time.sleep(0.2)
    process.stop()
    raise StackError(f"the emulator did not start within {START_TIMEOUT_S:.0f} s")


@dataclass
class Gateway:
    """A running ``python -m gateway serve`` and what is needed to administer it."""

    process: Process
    base_url: str
    admin_token: str = field(default="", repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def restart(self, *, kill: bool = False) -> None:
        """Stop the process (``kill``: SIGKILL, no shutdown at all) and start it again on the same
        configuration, data and key."""
        if kill:
            self.process.kill()
        else:
            self.process.stop()
        old = self.process
        self.process = Process(old.name, old.argv, old.log_path, old.env, append=True)


def start_gateway(
    workdir: Path,
    emulator_url: str,
    domains: list[str],
    *,
    database_url: str | None = None,
    secrets_from: Gateway | None = None,
    name: str = "gateway",
) -> Gateway:
    """The gateway, Autodiscover aimed at the emulator for ``domains``: a fresh SQLite store, or
    ``database_url``; a replica (``secrets_from``) shares the vault key and admin token of another."""
    port = free_port()
    endpoints = "\n".join(f'"{d}" = "{emulator_url}/autodiscover/autodiscover.svc"' for d in domains)
    config = workdir / f"{name}.toml"
    database = f'database_url = "{database_url}"\n' if database_url else ""
    config.write_text(
        f'[server]\nhost = "127.0.0.1"\nport = {port}\n\n'
        f'[storage]\ndata_dir = "{workdir / f"data-{name}-{int(time.time())}"}"\n{database}\n'
        '[ews]\ndefault_timezone = "UTC"\nretry_budget_seconds = 10\n\n'
        f"[ews.autodiscover_endpoints]\n{endpoints}\n\n"
        # Benchmark clients keep their app password for the whole run: verified once per user.
        "[security]\napp_password_cache_seconds = 3600\n\n"
        '[logging]\nlevel = "WARNING"\n',
        encoding="utf-8",
    )
    if secrets_from is not None and secrets_from.process.env is not None:
        key, token = secrets_from.process.env["GATEWAY_SECRET_KEY"], secrets_from.admin_token
    else:
        key, token = generate_key(), secrets.token_urlsafe(32)
    env = dict(os.environ, GATEWAY_SECRET_KEY=key, GATEWAY_ADMIN_TOKEN=token)
    # One process per replica (serve's default on PostgreSQL is a worker per core): its /metrics and CPU
    # time are the whole replica's.
    argv = [sys.executable, "-m", "gateway", "serve", "--config", str(config), "--workers", "1"]
    process = Process(name, argv, workdir / f"{name}.log", env=env)
    return Gateway(process, f"http://127.0.0.1:{port}", token)


async def start_stack(
    seed: dict[str, Any], workdir: Path, latency_ms: int, domains: list[str]
) -> tuple[Process, str, Gateway]:
    """The emulator with ``seed`` and a gateway aimed at it for ``domains``: (emulator, its URL, gateway).
    The gateway starts while the emulator loads its seed (it needs the emulator's URL only to connect)."""
    emulator_port = free_port()
    gateway = start_gateway(workdir, f"http://127.0.0.1:{emulator_port}", domains)
    try:
        emulator, emulator_url = await asyncio.to_thread(
            start_emulator, seed, workdir, latency_ms, emulator_port
        )
    except BaseException:
        gateway.process.stop()
        raise
    return emulator, emulator_url, gateway


async def wait_ready(gateway: Gateway, session: aiohttp.ClientSession) -> None:
    """Poll ``/readyz`` until the gateway answers (database open)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        gateway.process.check_alive()
        try:
            async with session.get(gateway.base_url + "/readyz") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise StackError(f"the gateway did not become ready within {START_TIMEOUT_S:.0f} s")


@dataclass(frozen=True)
class BenchUser:
    """A gateway user connected to one emulator mailbox, with an app password for CalDAV."""

    username: str
    email: str
    exchange_password: str = field(repr=False)
    app_password: str = field(repr=False)
    account_id: str
    auth_type: str
    collection: str = "calendar"  # "tasks": the mailbox's Tasks folder (a VTODO collection)

    @property
    def calendar_path(self) -> str:
        return f"/dav/calendars/{self.username}/{self.account_id}-{self.collection}/"

    @property
    def outbox_path(self) -> str:
        return f"/dav/calendars/{self.username}/outbox/"


async def provision(
    gateway: Gateway, session: aiohttp.ClientSession, username: str, mailboxes: list[dict[str, Any]]
) -> list[BenchUser]:
    """Admin API: create the user, connect each mailbox (Autodiscover), issue one app password."""
    headers = {"Authorization": f"Bearer {gateway.admin_token}"}
    api = gateway.base_url + "/api/v1/admin/users"
    user = await _admin(session, "POST", api, headers, {"username": username})
    accounts = [
        await _admin(
            session,
            "POST",
            f"{api}/{user['user_id']}/accounts",
            headers,
            {"email": mailbox["email"], "password": mailbox["password"]},
        )
        for mailbox in mailboxes
    ]
    app_password = await _admin(
        session, "POST", f"{api}/{user['user_id']}/app-passwords", headers, {"label": "bench"}
    )
    return [
        BenchUser(
            username,
            mailbox["email"],
            mailbox["password"],
            app_password["password"],
            account["account_id"],
            account["auth_type"],
        )
        for mailbox, account in zip(mailboxes, accounts, strict=True)
    ]


async def _admin(
    session: aiohttp.ClientSession, method: str, url: str, headers: dict[str, str], body: dict[str, Any]
) -> dict[str, Any]:
    async with session.request(method, url, json=body, headers=headers) as response:
        data = await response.json(content_type=None)
        if response.status >= 300:
            # The admin API's error bodies carry a code and a sentence, never a secret.
            raise StackError(
                f"admin API {method} {url.rsplit('/api/v1/admin', 1)[1]}: {response.status} {data}"
            )
        return data
