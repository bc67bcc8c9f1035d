"""Several gateway replicas (``python -m gateway serve`` processes) on one PostgreSQL database.

Each replica is its own process with its own port and configuration file, all with the same
``database_url``, the same ``GATEWAY_SECRET_KEY`` (stored Exchange passwords are readable by every
replica) and the same admin token, in front of one EWS emulator, as an operator runs them behind
a load balancer:

    with ReplicaSet(tmp_path, emulator.base_url, database_url, count=3) as replicas:
        user = replicas.provision("alice", "alice@example.com", "alice-pw")
        replicas[2].base_url  # http://127.0.0.1:<port>
        replicas[0].kill()    # SIGKILL, as a crashed host
        replicas[0].start()   # the same port, configuration and database

:class:`RoundRobin` hands out the replicas in turn, as a load balancer without affinity does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import requests

from gateway.accounts.vault import generate_key

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 60.0
ADMIN_PREFIX = "/api/v1/admin"


def free_port() -> int:
    """A currently free port on 127.0.0.1 (each replica's configuration names its own)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Replica:
    """One ``python -m gateway serve --config FILE`` process; its output goes to a log file."""

    def __init__(self, number: int, workdir: Path, config: Path, port: int, env: dict[str, str]) -> None:
        self.number = number
        self.config = config
        self.port = port
        self.env = env
        self.log = workdir / f"replica-{number}.log"
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def dav_url(self) -> str:
        return f"{self.base_url}/dav/"

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def start(self) -> Replica:
        """Start the process (appending to the log: a restart keeps what the earlier run printed)."""
        with self.log.open("ab") as log:
            self.popen = subprocess.Popen(
                # One process per replica (serve's default on PostgreSQL is one per core): the tests kill
                # and count replicas by their process, and the 2 cores of CI run three of them.
                [sys.executable, "-m", "gateway", "serve", "--config", str(self.config), "--workers", "1"],
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> None:
        """Poll ``/readyz`` until it answers 200 (database reachable)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen is None or self.popen.poll() is not None:
                break
            try:
                if requests.get(self.base_url + "/readyz", timeout=2).status_code == 200:
                    return
            except (requests.ConnectionError, requests.Timeout):
                pass
            time.sleep(0.05)
        code = None if self.popen is None else self.popen.poll()
        raise AssertionError(f"replica {self.number} not ready (exit {code}):\n{self.output()[-4000:]}")

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs, sessions and connections die with the process."""
        assert self.popen is not None
        os.kill(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""


@dataclass(frozen=True)
class ReplicaUser:
    """A gateway user provisioned over the admin API, with one app password for CalDAV."""

    user_id: str
    username: str
    password: str = field(repr=False)
    app_password_id: str
    account_id: str


class ReplicaSet:
    """``count`` replicas sharing ``database_url``, the secret key and the admin token."""

    def __init__(
        self,
        workdir: Path,
        emulator_url: str,
        database_url: str,
        count: int = 3,
        *,
        domain: str = "example.com",
    ) -> None:
        self.workdir = workdir
        self.admin_token = "replica-admin-token-" + os.urandom(8).hex()
        env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
        env.update(GATEWAY_SECRET_KEY=generate_key(), GATEWAY_ADMIN_TOKEN=self.admin_token)
        self.replicas: list[Replica] = []
        for number in range(count):
            port = free_port()
            config = workdir / f"replica-{number}.toml"
            config.write_text(
                f'[server]\nhost = "127.0.0.1"\nport = {port}\n\n'
                f'[storage]\ndata_dir = "{workdir / f"data-{number}"}"\ndatabase_url = "{database_url}"\n\n'
                # The demo mailboxes' zone; a short retry budget so a test meets a failure quickly.
                '[ews]\ndefault_timezone = "Europe/Berlin"\nretry_budget_seconds = 3\n'
                "request_timeout_seconds = 20\n\n"
                f'[ews.autodiscover_endpoints]\n"{domain}" = "{emulator_url}/autodiscover/autodiscover.svc"\n\n'
                '[logging]\nlevel = "WARNING"\n',
                encoding="utf-8",
            )
            self.replicas.append(Replica(number, workdir, config, port, env))

    def __getitem__(self, number: int) -> Replica:
        return self.replicas[number]

    def __iter__(self) -> Iterator[Replica]:
        return iter(self.replicas)

    def __len__(self) -> int:
        return len(self.replicas)

    def start(self) -> ReplicaSet:
        """Start every replica at once, on the same (possibly empty) database, and wait until all answer."""
        for replica in self.replicas:
            replica.start()
        with ThreadPoolExecutor(len(self.replicas)) as pool:
            list(pool.map(lambda r: r.wait_ready(), self.replicas))
        return self

    def stop(self) -> None:
        """SIGTERM to all at once (each lets its requests finish), then wait for each."""
        for replica in self.replicas:
            if replica.popen is not None and replica.popen.poll() is None:
                replica.popen.terminate()
        for replica in self.replicas:
            replica.stop()

    def __enter__(self) -> ReplicaSet:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the admin JSON API (through any replica) ----------------------------------------------------

    def admin(self, method: str, path: str, body: dict | None = None, replica: int = 0) -> dict:
        answer = requests.request(
            method,
            self.replicas[replica].base_url + ADMIN_PREFIX + path,
            json=body,
            headers={"Authorization": f"Bearer {self.admin_token}"},
            timeout=60,
        )
        assert answer.status_code < 300, f"admin {method} {path}: {answer.status_code} {answer.text}"
        return answer.json() if answer.content else {}

    def provision(self, username: str, email: str, exchange_password: str) -> ReplicaUser:
        """Create the user, connect its mailbox (Autodiscover against the emulator), issue an app password."""
        user = self.admin("POST", "/users", {"username": username})
        account = self.admin(
            "POST", f"/users/{user['user_id']}/accounts", {"email": email, "password": exchange_password}
        )
        issued = self.admin("POST", f"/users/{user['user_id']}/app-passwords", {"label": "replicas"})
        return ReplicaUser(
            user["user_id"], username, issued["password"], issued["app_password_id"], account["account_id"]
        )

    def issue_app_password(self, user: ReplicaUser, label: str, replica: int = 0) -> tuple[str, str]:
        """A new app password of ``user``: (its id, its clear text)."""
        issued = self.admin("POST", f"/users/{user.user_id}/app-passwords", {"label": label}, replica)
        return issued["app_password_id"], issued["password"]

    def revoke_app_password(self, user: ReplicaUser, app_password_id: str, replica: int = 0) -> None:
        self.admin("DELETE", f"/users/{user.user_id}/app-passwords/{app_password_id}", replica=replica)


class RoundRobin:
    """The replicas' base URLs in turn, as a load balancer without session affinity hands them out."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        self._next = 0

    def __call__(self) -> str:
        url = self.urls[self._next % len(self.urls)]
        self._next += 1
        return url
