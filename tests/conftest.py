"""Project-wide fixtures: the EWS emulator (demo seed) and the session's EWS schema validation.

Every SOAP message that passes through an emulator started with
``tests.support.schema.observe_message`` (the fixtures below do) is validated against
``../shared/ews/schema/messages.xsd``; the session fails if any is invalid.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.emulator import EmulatorServer
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
