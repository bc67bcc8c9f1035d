"""Run python-caldav's own functional tests against the gateway's demo (two users, alice and bob).

Usage: ``.venv/bin/python scripts/python_caldav_suite.py [--workdir DIR] [--keep] [-- PYTEST ARGS]``
(``bash scripts/python-caldav-suite.sh`` sets up ``.venv`` first). Steps:

1. the source distribution of the python-caldav release installed in this venv is downloaded with pip
   (its ``tests/`` are not in the wheel) and unpacked into a temporary directory;
2. a separate virtualenv gets that release and the test extra it declares, without the embedded servers
   (Xandikos, Radicale) and the tools (deptry, coverage) the run does not use;
3. ``python -m gateway demo`` starts on free ports with a fresh data directory;
4. ``tests/caldav_test_servers.json`` describes the demo as python-caldav's one external test server, its
   second user for the scheduling tests, and the features the gateway does not have (:data:`FEATURES`);
5. the server-facing test files (:data:`TEST_FILES`) run; the summary lists every failure, each with the
   reason documented in docs/CONFORMANCE.md (:data:`KNOWN_FAILURES`) or marked NEW;
6. the demo is stopped and the temporary directory removed (``--keep`` keeps it).

The exit status is 0 when every failure is a documented one. Not part of the default test suite: it
downloads from PyPI; tests/ops/test_python_caldav_suite.py checks the configuration it writes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import tomllib
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVER_NAME = "gateway"
USERS = ("alice", "bob")
# The files of python-caldav's tests/ that talk to a server; the others are unit tests of the library.
TEST_FILES = (
    "tests/test_caldav.py",
    "tests/test_async_integration.py",
    "tests/test_examples.py",
    "tests/test_docs.py",
)
# Packages of python-caldav's test extra that this run does not need: in-process servers (the run
# switches them off) and tools that test python-caldav's packaging, not a server.
UNUSED_TEST_EXTRAS = frozenset({"xandikos", "radicale", "deptry", "coverage"})

# python-caldav's compatibility flags (caldav/compatibility_hints.py) for what the gateway does not
# have. Every flag is in docs/CONFORMANCE.md with its reason; nothing is declared to hide a defect.
FEATURES: dict[str, dict[str, str]] = {
    # Exchange keeps tasks in task folders (task lists), apart from calendars: a calendar holds events only.
    "save-load.todo.mixed-calendar": {"support": "unsupported"},
    # Exchange has no journal entries: a VJOURNAL has nowhere to go.
    "save-load.journal": {"support": "unsupported"},
}

PYTEST_OPTIONS = (
    "-p",
    "no:cacheprovider",
    # python-caldav's pytest configuration leaves this unset, and pytest-asyncio warns (an error there).
    "-o",
    "asyncio_default_fixture_loop_scope=function",
    # testPrincipals calls the library's own deprecated principals(); its configuration turns every
    # warning into an error, which would fail the test before it asks the server anything.
    "-W",
    "default:principals() is deprecated:DeprecationWarning",
)

# Failures that remain, by test id (without the server-specific class suffix), with the reason
# (the keys of docs/CONFORMANCE.md's table).
KNOWN_FAILURES: dict[str, str] = {
    "test_caldav.py::TestForServer*::testIssue397": "dtstart-not-an-occurrence",
    "test_async_integration.py::TestAsyncFor*::test_issue_397": "dtstart-not-an-occurrence",
    "test_examples.py::TestExamples::test_basic_usage_examples": "tasks-apart",
}


def server_config(url: str, users: list[tuple[str, str]]) -> dict:
    """python-caldav's test server configuration (tests/caldav_test_servers.*, ``test-servers`` form):
    the demo as an external server for the first user, every user for the RFC 6638 scheduling tests."""
    username, password = users[0]
    return {
        "test-servers": {
            SERVER_NAME: {
                "type": "external",
                "enabled": True,
                "url": url,
                "username": username,
                "password": password,
                "features": FEATURES,
                "scheduling_users": [{"url": url, "username": u, "password": p} for u, p in users],
            }
        }
    }


def test_extras(pyproject: str) -> list[str]:
    """The requirements of the sdist's ``test`` extra that this run installs."""
    extras = tomllib.loads(pyproject)["project"]["optional-dependencies"]["test"]
    return [
        r for r in extras if re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0].lower() not in UNUSED_TEST_EXTRAS
    ]


@dataclass
class Outcome:
    """The result of one test: ``passed``, ``failed``, ``error`` or ``skipped``."""

    test_id: str
    status: str
    message: str = ""


@dataclass
class Summary:
    outcomes: list[Outcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status in ("failed", "error")]


def read_junit(path: Path) -> Summary:
    """The outcome of every test case in a JUnit XML report written by pytest."""
    summary = Summary()
    for case in ET.parse(path).iter("testcase"):
        parts = case.get("classname", "").split(".")
        if parts[-1][:1].isupper():  # a test class; otherwise a module-level test function
            test_id = f"{'/'.join(parts[1:-1])}.py::{parts[-1]}::{case.get('name')}"
        else:
            test_id = f"{'/'.join(parts[1:])}.py::{case.get('name')}"
        status, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                status = {"failure": "failed"}.get(child.tag, child.tag)
                message = (child.get("message") or "").splitlines()[0] if child.get("message") else ""
                break
        summary.outcomes.append(Outcome(test_id, status, message))
    return summary


def known_reason(test_id: str) -> str | None:
    """The documented reason for a failing test, None when it is not documented."""
    for pattern, reason in KNOWN_FAILURES.items():
        regex = "^" + re.escape(pattern).replace(r"\*", "[A-Za-z0-9_]*") + "$"
        if re.match(regex, test_id):
            return reason
    return None


def report(summary: Summary, version: str) -> tuple[str, bool]:
    """The printed summary, and whether every failure is a documented one."""
    lines = [
        f"python-caldav {version} functional tests against the gateway demo:",
        f"  passed {summary.count('passed')}, failed {summary.count('failed')}, "
        f"errors {summary.count('error')}, skipped {summary.count('skipped')}",
    ]
    all_known = True
    for outcome in summary.failures():
        reason = known_reason(outcome.test_id)
        all_known &= reason is not None
        lines.append(
            f"  {'NEW' if reason is None else reason:>26}  {outcome.test_id}: {outcome.message[:120]}"
        )
    return "\n".join(lines), all_known


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd: list[str], **kwargs) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, **kwargs)


def fetch_sdist(version: str, workdir: Path) -> Path:
    """Download and unpack python-caldav's source distribution (pip, no build); returns its root."""
    downloads = workdir / "download"
    pip = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check"]
    run([*pip, "--no-deps", "--no-binary", ":all:", f"caldav=={version}", "-d", str(downloads)])
    (archive,) = downloads.glob("caldav-*.tar.gz")
    with tarfile.open(archive) as tar:
        tar.extractall(workdir, filter="data")
    return workdir / f"caldav-{version}"


def make_venv(version: str, source: Path, workdir: Path) -> Path:
    """A virtualenv with python-caldav ``version`` and the test requirements this run uses."""
    venv = workdir / "venv"
    run([sys.executable, "-m", "venv", str(venv)])
    python = venv / "bin" / "python"
    extras = test_extras((source / "pyproject.toml").read_text(encoding="utf-8"))
    run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            f"caldav=={version}",
            *extras,
        ]
    )
    return python


class Demo:
    """``python -m gateway demo`` on free ports, started and stopped by this script."""

    def __init__(self, workdir: Path) -> None:
        self.password = "suite-" + secrets.token_urlsafe(12)
        self.port, self.emulator_port = free_port(), free_port()
        self.log = workdir / "demo.log"
        self.url = ""
        self._proc: subprocess.Popen[str] | None = None
        self._data = workdir / "demo-data"

    def start(self, timeout: float = 90.0) -> None:
        cmd = [sys.executable, "-m", "gateway", "demo", "--port", str(self.port)]
        cmd += ["--emulator-port", str(self.emulator_port), "--data-dir", str(self._data)]
        cmd += ["--password", self.password]
        with self.log.open("w") as log:
            self._proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True)
        assert self._proc.stdout is not None
        deadline = time.monotonic() + timeout
        for line in self._proc.stdout:
            print("demo:", line.rstrip(), flush=True)
            found = re.match(r"CalDAV: (\S+) user=", line)
            if found:
                self.url = found.group(1)
            if line.startswith("Ready"):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the demo did not start in {timeout:.0f} s; see {self.log}")
        else:
            raise RuntimeError(f"the demo stopped before it was ready; see {self.log}")
        # Keep reading its output so that the pipe never fills.
        threading.Thread(target=self._proc.stdout.read, daemon=True).start()

    def stop(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.send_signal(
            signal.SIGTERM
        )  # the demo stops cleanly on it (SIGINT may be ignored in the background)
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, help="work here instead of a new temporary directory")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("pytest_args", nargs="*", help="more pytest arguments (after --)")
    args = parser.parse_args(argv)
    version = metadata.version("caldav")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="python-caldav-suite-"))
    workdir.mkdir(parents=True, exist_ok=True)
    demo = Demo(workdir)
    try:
        source = fetch_sdist(version, workdir)
        python = make_venv(version, source, workdir)
        demo.start()
        users = [(user, demo.password) for user in USERS]
        config = source / "tests" / "caldav_test_servers.json"
        config.write_text(json.dumps(server_config(demo.url, users), indent=2), encoding="utf-8")
        junit = workdir / "junit.xml"
        env = {
            **os.environ,
            "PYTHON_CALDAV_TEST_EMBEDDED": "0",
            "PYTHON_CALDAV_TEST_DOCKER": "0",
            "HOME": str(workdir / "home"),  # no ~/.config/caldav of the caller's
        }
        cmd = [str(python), "-m", "pytest", "-q", *PYTEST_OPTIONS, f"--junitxml={junit}", "-rfE"]
        print("+", " ".join(cmd + list(TEST_FILES) + args.pytest_args), flush=True)
        subprocess.run(cmd + list(TEST_FILES) + args.pytest_args, cwd=source, env=env, check=False)
        text, all_known = report(read_junit(junit), version)
        print(text)
        return 0 if all_known else 1
    finally:
        demo.stop()
        if args.keep or args.workdir:
            print(f"work directory kept: {workdir} (demo log: {demo.log})")
        else:
            subprocess.run(["rm", "-rf", str(workdir)], check=False)


if __name__ == "__main__":
    sys.exit(main())
