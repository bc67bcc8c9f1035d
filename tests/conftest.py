"""Project-wide fixtures: the EWS emulator (demo seed) and the session's EWS schema validation.

Every SOAP message that passes through an emulator started with
``tests.support.schema.observe_message`` (the fixtures below do) is validated against
``../shared/ews/schema/messages.xsd``; the session fails if any is invalid.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.emulator import EmulatorServer
from tests.support.postgres import HOW_TO_INSTALL, PostgresCluster, server_bin_dir, unavailable
from tests.support.schema import missing_reason, observe_message, session_validator


@pytest.fixture(scope="session")
def emulator_server() -> Iterator[EmulatorServer]:
    """One emulator with the demo seed for the whole session (reset per test by ``emulator``)."""
    with EmulatorServer(message_observer=observe_message) as server:
        yield server


@pytest.fixture
def emulator(emulator_server: EmulatorServer) -> EmulatorServer:
    """The session emulator, reset to the demo seed (stats zeroed, faults cleared)."""
    emulator_server.reset()
    return emulator_server


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """One throw-away PostgreSQL server for the session (tests/support/postgres.py)."""
    if importlib.util.find_spec("asyncpg") is None:
        unavailable("the asyncpg driver is not installed (pip install -e .[test])")
    bin_dir = server_bin_dir()
    if bin_dir is None:
        unavailable(f"no initdb in /usr/lib/postgresql/*/bin or on PATH; {HOW_TO_INSTALL}")
    cluster = PostgresCluster(bin_dir).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def store(request: pytest.FixtureRequest) -> str:
    """Which database the test runs on: "sqlite" unless parametrized (``on_both_stores``)."""
    return getattr(request, "param", "sqlite")


@pytest.fixture
def database_url(store: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """The SQLite file the gateway makes by default in ``tmp_path / "data"``, or an empty PostgreSQL
    database of its own."""
    if store == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'data' / 'gateway.sqlite3'}"
        return
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    name = cluster.create_database()
    try:
        yield cluster.url(name)
    finally:
        cluster.drop_database(name)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    validator = session_validator()
    if validator is not None and validator.invalid:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    validator = session_validator()
    if validator is None:
        terminalreporter.write_line(missing_reason() or "EWS schema validation skipped")
        return
    terminalreporter.write_line(validator.summary())
    for invalid in validator.invalid[:50]:
        terminalreporter.write_line(
            f"  invalid {invalid.kind} {invalid.operation}: {'; '.join(invalid.errors[:3])}"
        )
