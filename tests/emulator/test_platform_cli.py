"""``python -m gateway emulator``: a real process, plain HTTP and self-signed HTTPS."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from queue import Empty, Queue

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]


def start(*args: str) -> tuple[subprocess.Popen, dict[str, str]]:
    """Start the CLI on a free port; return the process and what it printed (URL, cert path)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "emulator", "--port", "0", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    # A reader thread: the pipe is line-buffered text, and select() cannot see Python's buffer.
    queue: Queue[str] = Queue()
    threading.Thread(target=lambda: [queue.put(line) for line in process.stdout], daemon=True).start()
    lines: list[str] = []
    deadline = time.monotonic() + 20
    while not lines or not lines[-1].startswith("Ready"):
        try:
            lines.append(queue.get(timeout=max(0.01, deadline - time.monotonic())))
        except Empty:
            break
    text = "".join(lines)
    found = {"text": text}
    if match := re.search(r"EWS URL:\s+(\S+)", text):
        found["ews_url"] = match.group(1)
    if match := re.search(r"TLS certificate.*: (\S+)", text):
        found["cert"] = match.group(1)
    return process, found


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen]]:
    started: list[subprocess.Popen] = []
    yield started
    for process in started:
        process.terminate()
        process.wait(timeout=10)


def test_cli_serves_the_demo_seed_over_http(processes):
    process, out = start("--ews-version", "2019")
    processes.append(process)
    assert "ews_url" in out, out["text"]
    assert "DEMO ONLY" in out["text"] and "alice-pw" in out["text"]
    response = requests.post(out["ews_url"], data=b"<x/>", auth=("alice@example.com", "alice-pw"))
    assert response.status_code == 400  # authenticated, then refused as not SOAP
    stats = requests.get(out["ews_url"].replace("/EWS/Exchange.asmx", "/_emulator/stats")).json()
    assert (stats["operations"], stats["mailboxes"]) == ({}, {})
    assert stats["calendars"]["alice@example.com"]["folders"] == 2  # the demo seed: Calendar and Projects


def test_cli_tls_prints_a_certificate_clients_can_trust(processes, tmp_path):
    seed = {
        "mailboxes": [
            {
                "email": "dana@example.org",
                "display_name": "Dana",
                "password": "dana-pw",
                "calendars": [{"name": "Calendar", "primary": True, "events": []}],
            }
        ]
    }
    seed_file = tmp_path / "seed.json"
    seed_file.write_text(json.dumps(seed))
    process, out = start("--tls", "--seed", str(seed_file))
    processes.append(process)
    assert out.get("ews_url", "").startswith("https://"), out["text"]
    response = requests.post(out["ews_url"], data=b"", verify=out["cert"])
    assert response.status_code == 401
    with pytest.raises(requests.exceptions.SSLError):
        requests.post(out["ews_url"], data=b"")  # not trusted without the printed certificate
    assert "dana@example.org" in out["text"]
