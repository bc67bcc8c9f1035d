"""``caldav-gateway … --config FILE`` run in this process, through the CLI's ``main()``.

The same parser and command functions a ``python -m gateway`` process runs, without paying a new
interpreter and its imports per command; the tests that prove what only a real process shows (its
standard input, its environment, its exit status) start one.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from gateway.cli import main


def clear_gateway_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``GATEWAY_*`` setting of the test run's environment reaches the command (the test support's own
    ``GATEWAY_SHARED_DIR``, which the gateway does not read, stays)."""
    for name in [name for name in os.environ if name.startswith("GATEWAY_") and name != "GATEWAY_SHARED_DIR"]:
        monkeypatch.delenv(name)


class Cli:
    """``caldav-gateway … --config FILE`` in-process; returns (exit code, stdout, stderr)."""

    def __init__(
        self, config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        self.config = config
        self.capsys = capsys
        self.monkeypatch = monkeypatch

    def __call__(self, *args: str, stdin: str = "") -> tuple[int, str, str]:
        self.monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        self.capsys.readouterr()
        code = main([*args, "--config", str(self.config)])
        out, err = self.capsys.readouterr()
        return code, out, err
