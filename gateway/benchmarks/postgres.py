"""A throw-away PostgreSQL server (the replica benchmark's, and the tests' cluster): ``initdb`` in a
directory of its own, a free port on 127.0.0.1, trust authentication, stopped (and its files removed) at
the end.

Debian's server binaries (``/usr/lib/postgresql/<version>/bin``) or ``initdb`` on PATH are used.
PostgreSQL refuses to run as root, so when run as root the server runs as the ``postgres`` system user
(created by Debian's package) or else ``nobody``.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
from pathlib import Path

from gateway.benchmarks.stack import StackError, free_port


def server_binaries() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl`` (the newest installed version), or None."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parent.parent.name)
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PostgresServer:
    """One cluster under ``root``; :meth:`start` runs initdb and pg_ctl (and creates ``database``, if
    named), :meth:`stop` stops it. ``durable=False`` turns fsync off (tests: no power cut to survive)."""

    def __init__(
        self,
        root: Path,
        max_connections: int = 300,
        *,
        durable: bool = True,
        database: str | None = "gateway",
    ) -> None:
        binaries = server_binaries()
        if binaries is None:
            raise StackError("PostgreSQL's server binaries were not found (apt-get install postgresql)")
        self.binaries = binaries
        self.root = root
        self.port = free_port()
        self.max_connections = max_connections
        self.durable = durable
        self.database = database
        self.owner = self._owner() if os.geteuid() == 0 else None

    @staticmethod
    def _owner() -> pwd.struct_passwd:
        for name in ("postgres", "nobody"):
            try:
                return pwd.getpwnam(name)
            except KeyError:
                continue
        raise StackError("running as root and there is no postgres or nobody user to run PostgreSQL as")

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.binaries / program), *args]
        if self.owner is not None:
            command = ["runuser", "-u", self.owner.pw_name, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=self.root)
        if done.returncode != 0:
            raise StackError(f"{program} failed ({done.returncode}): {done.stderr or done.stdout}")

    def start(self) -> PostgresServer:
        self.root.mkdir(parents=True, exist_ok=True)
        if self.owner is not None:
            os.chown(self.root, self.owner.pw_uid, self.owner.pw_gid)
        data = self.root / "data"
        self._run("initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        # A benchmark of a store pays for the durability users get; the tests do not. 300 connections:
        # each replica pools up to 32 + 10.
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} "
            f"-c max_connections={self.max_connections}" + ("" if self.durable else " -c fsync=off")
        )
        self._run(
            "pg_ctl", "-D", str(data), "-l", str(self.root / "server.log"), "-o", options, "-w", "start"
        )
        if self.database is not None:
            self.create_database(self.database)
        return self

    def url_of(self, database: str) -> str:
        """The ``[storage] database_url`` of ``database`` on this server."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    @property
    def url(self) -> str:
        """The gateway's ``[storage] database_url`` for the database made at start."""
        return self.url_of(self.database or "postgres")

    def create_database(self, name: str) -> None:
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)

    def drop_database(self, name: str) -> None:
        self._run("dropdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "--force", name)

    def stop(self) -> None:
        try:
            self._run(
                "pg_ctl",
                "-D",
                str(self.root / "data"),
                "-m",
                "immediate" if not self.durable else "fast",
                "-w",
                "stop",
            )
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
