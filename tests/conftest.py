"""Project-wide fixtures: the EWS emulator (demo seed) and the session's EWS schema validation.

Every SOAP message that passes through an emulator started by these fixtures is validated against
``../shared/ews/schema/messages.xsd``; the session fails if any is invalid.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.emulator import EmulatorServer
from tests.support.schema import SchemaValidator, schema_path

_validator: SchemaValidator | None = None
_validator_missing: str | None = None


def schema_validator() -> SchemaValidator | None:
    """The session's validator (created on first use), or None when ../shared is absent."""
    global _validator, _validator_missing
    if _validator is None and _validator_missing is None:
        path = schema_path()
        if path.is_file():
            _validator = SchemaValidator.load(path)
        else:
            _validator_missing = f"EWS schema validation skipped: {path} not found (set GATEWAY_SHARED_DIR)"
    return _validator


def observe_message(kind: str, operation: str, body: bytes) -> None:
    """A ``message_observer`` for any emulator a test starts itself."""
    validator = schema_validator()
    if validator is not None:
        validator.observe(kind, operation, body)


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
    if _validator is not None and _validator.invalid:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    validator = schema_validator()
    if validator is None:
        terminalreporter.write_line(_validator_missing or "EWS schema validation skipped")
        return
    terminalreporter.write_line(validator.summary())
    for invalid in validator.invalid[:50]:
        terminalreporter.write_line(f"  invalid {invalid.kind} {invalid.operation}: {'; '.join(invalid.errors[:3])}")
