"""Gateway commands as an operator runs them: a subprocess with only the environment it is given."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
CALDAV_LINE = re.compile(r"CalDAV: (\S+) user=(\w+) password=(\S+)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any GATEWAY_* variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    return {**env, **extra}


class Process:
    """A running command; its stdout and stderr go to one file (DEBUG output never fills a pipe)."""

    def __init__(self, argv: Sequence[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._file = log.open("wb")
        self.popen = subprocess.Popen(
            list(argv), cwd=REPO, env=env, stdout=self._file, stderr=subprocess.STDOUT
        )

    @classmethod
    def gateway(cls, args: Sequence[str], env: dict[str, str], log: Path) -> Process:
        return cls([sys.executable, "-m", "gateway", *args], env, log)

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def wait_for(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        """The first match of ``pattern`` in the output, waiting for it to be printed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.output())
            if found:
                return found
            if self.popen.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"{pattern!r} not printed (exit {self.popen.poll()}):\n{self.output()[-4000:]}")

    def wait_http(self, url: str, timeout: float = 60) -> requests.Response:
        """The first answer from ``url`` (any status), retrying while the server starts."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.popen.poll() is None:
            try:
                return requests.get(url, timeout=2)
            except requests.ConnectionError:
                time.sleep(0.1)
        raise AssertionError(f"{url} never answered (exit {self.popen.poll()}):\n{self.output()[-4000:]}")

    def stop(self, sig: int = signal.SIGINT, timeout: float = 20) -> int:
        """Send ``sig`` and wait; returns the exit code."""
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)
        self._file.close()
        return self.popen.returncode


def web_sign_in(base_url: str, username: str, password: str) -> requests.Session | None:
    """A browser session signed in through the form, or None when the password is refused."""
    browser = requests.Session()
    token = CSRF.search(browser.get(f"{base_url}/signin", timeout=10).text).group(1)
    answer = browser.post(
        f"{base_url}/signin",
        data={"username": username, "password": password, "csrf_token": token},
        allow_redirects=False,
        timeout=30,
    )
    return browser if answer.status_code == 303 else None


def propfind(url: str, auth: tuple[str, str], depth: str = "1") -> requests.Response:
    """A CalDAV PROPFIND (RFC 4918 section 9.1) with Basic credentials."""
    return requests.request(
        "PROPFIND",
        url,
        auth=auth,
        headers={"Depth": depth, "Content-Type": "application/xml"},
        data=b'<?xml version="1.0"?><propfind xmlns="DAV:"><allprop/></propfind>',
        timeout=60,
    )
