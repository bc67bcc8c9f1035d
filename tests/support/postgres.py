"""A throw-away PostgreSQL cluster for the tests: Debian's server binaries, a temporary directory, a
free port on 127.0.0.1, trust authentication, stopped at the end of the session.

PostgreSQL refuses to run as root, so when the tests run as root the cluster belongs to the
``postgres`` system user (Debian's package creates it) or else ``nobody``. Where no server binaries
are found the PostgreSQL tests fail with that reason when ``CI`` is set, and are skipped otherwise.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

import pytest

from gateway.benchmarks.postgres import PostgresServer, server_binaries

STORES = ("sqlite", "postgresql")
# Runs a test (whose fixtures use ``database_url``, tests/conftest.py) once on each store.
on_both_stores = pytest.mark.parametrize("store", STORES, indirect=True)
HOW_TO_INSTALL = "install Debian's postgresql package (scripts/test.sh does so as root)"


def server_bin_dir() -> Path | None:
    """Where PostgreSQL's server binaries are (gateway/benchmarks/postgres.py), or None."""
    return server_binaries()


def unavailable(reason: str) -> None:
    """Fail (CI: a missing database must not pass as skipped tests) or skip with ``reason``."""
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL tests cannot run: {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL not available: {reason}")


class PostgresCluster(PostgresServer):
    """The benchmark's throw-away server, without fsync, in a temporary directory; a database per test."""

    def __init__(self, bin_dir: Path) -> None:
        super().__init__(Path(tempfile.mkdtemp(prefix="gateway-pg-")), durable=False, database=None)
        self.binaries = bin_dir

    def start(self) -> PostgresCluster:
        super().start()
        return self

    def url(self, database: str) -> str:  # type: ignore[override]  # the tests name their database
        return self.url_of(database)

    def create_database(self) -> str:  # type: ignore[override]
        """A new empty database; returns its name."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        super().create_database(name)
        return name
