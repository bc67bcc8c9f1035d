"""``serve --workers N``: N processes answer on one port, a dead one is replaced, SIGTERM stops them all;
SQLite refuses more than one."""

from __future__ import annotations

import os
import re
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from gateway.accounts.vault import generate_key
from tests.ops.support import Process, clean_env, free_port

PID = re.compile(r"^gateway_worker_pid (\d+)$", re.MULTILINE)


def answering_pids(base_url: str, want: int, timeout: float = 30) -> set[int]:
    """The worker pids /metrics names, asked on fresh connections, until ``want`` distinct ones answered."""
    seen: set[int] = set()
    deadline = time.monotonic() + timeout

    def one(_: int) -> int:
        with requests.Session() as fresh:
            return int(PID.search(fresh.get(f"{base_url}/metrics", timeout=10).text).group(1))

    with ThreadPoolExecutor(8) as pool:
        while len(seen) < want and time.monotonic() < deadline:
            seen |= set(pool.map(one, range(16)))
    return seen


def parent_of(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except FileNotFoundError:
        return None


def alive(pid: int) -> bool:
    return (
        parent_of(pid) is not None and "Z" not in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1][:3]
    )


@pytest.fixture
def store() -> str:
    return "postgresql"


def test_two_workers_share_one_port_are_replaced_when_killed_and_stop_on_sigterm(
    tmp_path, database_url
) -> None:
    port = free_port()
    env = clean_env(
        GATEWAY_SECRET_KEY=generate_key(),
        GATEWAY_DATABASE_URL=database_url,
        GATEWAY_PORT=str(port),
        GATEWAY_LOG_LEVEL="info",
    )
    serve = Process.gateway(["serve", "--workers", "2"], env, tmp_path / "serve.log")
    base = f"http://127.0.0.1:{port}"
    try:
        # the socket accepts from the start; a request waits until a worker runs (slow on a busy machine)
        for number in (1, 2):
            serve.wait_for(rf"worker {number} serving", timeout=120)
        assert serve.wait_http(f"{base}/healthz").status_code == 200
        pids = answering_pids(base, 2)
        assert len(pids) == 2, serve.output()[-3000:]
        assert {parent_of(pid) for pid in pids} == {serve.popen.pid}  # the supervisor's children

        killed = min(pids)
        os.kill(killed, signal.SIGKILL)  # a worker dies
        serve.wait_for(rf"worker \d \(pid {killed}\) exited with -9; restarting", timeout=10)
        serve.wait_for(r"(?:worker \d serving[\s\S]*){3}", timeout=120)  # the replacement runs
        replaced = answering_pids(base, 2)
        assert killed not in replaced and len(replaced) == 2 and max(pids) in replaced

        assert serve.stop(signal.SIGTERM, timeout=40) == 0
        assert not any(alive(pid) for pid in replaced)
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{base}/healthz", timeout=2)
    finally:
        serve.stop(signal.SIGKILL)


def test_sqlite_refuses_several_workers(tmp_path) -> None:
    env = clean_env(GATEWAY_SECRET_KEY=generate_key(), GATEWAY_DATA_DIR=str(tmp_path / "data"))
    serve = Process.gateway(["serve", "--workers", "2"], env, tmp_path / "serve.log")
    try:
        assert serve.popen.wait(timeout=60) == 2
        assert "--workers 2 needs PostgreSQL" in serve.output()
    finally:
        serve.stop()


def test_workers_that_refuse_to_start_stop_the_supervisor_too(tmp_path) -> None:
    """No restart loop when the workers cannot start (here: nothing listens at the database's address)."""
    env = clean_env(
        GATEWAY_SECRET_KEY=generate_key(),
        GATEWAY_DATABASE_URL=f"postgresql+asyncpg://gateway@127.0.0.1:{free_port()}/gateway",
        GATEWAY_PORT=str(free_port()),
    )
    serve = Process.gateway(["serve", "--workers", "2"], env, tmp_path / "serve.log")
    try:
        assert serve.popen.wait(timeout=120) == 2
        assert "refused to start; stopping every worker" in serve.output()
    finally:
        serve.stop()


def test_a_missing_key_refuses_before_any_worker_starts(tmp_path) -> None:
    env = clean_env(GATEWAY_DATABASE_URL="postgresql+asyncpg://gateway@127.0.0.1:1/gateway")
    serve = Process.gateway(["serve", "--workers", "2"], env, tmp_path / "serve.log")
    try:
        assert serve.popen.wait(timeout=60) == 2
        assert "GATEWAY_SECRET_KEY" in serve.output() and "worker" not in serve.output()
    finally:
        serve.stop()
