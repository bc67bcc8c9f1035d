"""``serve --workers N``: N gateway processes answering on one listening socket, supervised.

The parent binds the socket once and starts N children (``python -m gateway serve`` again, so each is a
fresh interpreter: no event loop, thread or connection is inherited), handing them the socket's file
descriptor (:data:`LISTEN_FD_ENV`); each accepts on it with aiohttp's ``SockSite``, and the kernel gives
every connection to one of them. The parent only supervises: it restarts a child that dies (after a
pause growing while children die young), forwards SIGTERM and SIGINT to every child, waits for them
to finish their requests, and exits. A child refusing to start (exit 2: configuration, missing key,
database schema) stops them all with that status, instead of a restart loop.

Each child has its own caches and ``/metrics`` (``gateway_worker_pid`` says which one answered): a
scraper sees one worker per scrape; docs/OPERATIONS.md. The children share state through the database
only (gateway/store/locks.py, notify.py), which is why several workers need PostgreSQL.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

log = logging.getLogger("gateway.serve")

LISTEN_FD_ENV = "GATEWAY_LISTEN_FD"  # set in a worker: the inherited listening socket's descriptor
WORKER_ENV = "GATEWAY_WORKER"  # set in a worker: its number, 1..N (for its log lines)
BACKLOG = 1024
STOP_SECONDS = 30.0  # a stopping worker finishes its requests within this, else it is killed
YOUNG_SECONDS = 10.0  # a worker dying sooner than this after its start delays the next restart
MAX_RESTART_DELAY = 30.0
REFUSED_TO_START = 2  # serve's exit status when it refuses to start


def cores() -> int:
    """The cores this process may run on (a container's CPU set, not the machine's)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def listening_socket(host: str, port: int) -> socket.socket:
    """One TCP listener for ``[server] host``/``port``; a wildcard host takes IPv4 and IPv6 where it can."""
    if host in ("", "::") and socket.has_dualstack_ipv6():
        sock = socket.create_server(
            ("::", port), family=socket.AF_INET6, dualstack_ipv6=True, backlog=BACKLOG
        )
    elif host in ("", "::", "0.0.0.0"):
        sock = socket.create_server(("0.0.0.0", port), backlog=BACKLOG)
    else:
        family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.create_server(address[:2], family=family, backlog=BACKLOG)
    sock.set_inheritable(True)
    return sock


def inherited_socket() -> socket.socket | None:
    """In a worker, the listening socket its supervisor handed down; None in a lone ``serve``."""
    fd = os.environ.get(LISTEN_FD_ENV)
    return socket.socket(fileno=int(fd)) if fd else None


@dataclass
class _Worker:
    number: int
    process: subprocess.Popen[bytes]
    started: float = field(default_factory=time.monotonic)


class Supervisor:
    """Starts, restarts and stops the workers (see the module docstring)."""

    def __init__(self, command: Sequence[str], workers: int, sock: socket.socket) -> None:
        self._command = list(command)
        self._count = workers
        self._sock = sock
        self._stopping = False
        self._young_deaths = 0

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._stop)
        workers = [self._start(n) for n in range(1, self._count + 1)]
        status = 0
        while not self._stopping:
            time.sleep(0.2)
            for i, worker in enumerate(workers):
                code = worker.process.poll()
                if code is None or self._stopping:
                    continue
                if code == REFUSED_TO_START:
                    log.error("worker %d refused to start; stopping every worker", worker.number)
                    self._stopping, status = True, REFUSED_TO_START
                    break
                workers[i] = self._restart(worker, code)
        self._stop_all(workers)
        return status

    def _start(self, number: int) -> _Worker:
        env = dict(os.environ, **{LISTEN_FD_ENV: str(self._sock.fileno()), WORKER_ENV: str(number)})
        process = subprocess.Popen(self._command, env=env, pass_fds=(self._sock.fileno(),))
        log.info("worker %d started (pid %d)", number, process.pid)
        return _Worker(number, process)

    def _restart(self, worker: _Worker, code: int) -> _Worker:
        young = time.monotonic() - worker.started < YOUNG_SECONDS
        self._young_deaths = self._young_deaths + 1 if young else 0
        delay = min(MAX_RESTART_DELAY, 0.5 * 2 ** (self._young_deaths - 1)) if young else 0.0
        log.warning(
            "worker %d (pid %d) exited with %s; restarting it in %.1f s",
            worker.number,
            worker.process.pid,
            code,
            delay,
        )
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline and not self._stopping:
            time.sleep(0.1)
        return self._start(worker.number)

    def _stop(self, signum: int, _frame: object) -> None:
        self._stopping = True

    def _stop_all(self, workers: list[_Worker]) -> None:
        """SIGTERM to every worker (each lets its requests finish), then wait; SIGKILL after STOP_SECONDS."""
        for worker in workers:
            if worker.process.poll() is None:
                worker.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        for worker in workers:
            try:
                worker.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker %d did not stop in time; killing it", worker.number)
                worker.process.kill()
                worker.process.wait()
        self._sock.close()
        log.info("every worker stopped")


def worker_command(config_path: str | None) -> list[str]:
    """The command line of one worker: ``serve`` again, with the same configuration file."""
    command = [sys.executable, "-m", "gateway", "serve", "--workers", "1"]
    return command + (["--config", config_path] if config_path else [])
