"""vdirsyncer (a real sync client, run as a process) against a served gateway on 127.0.0.1.

It discovers from the bare server URL, downloads events, creates a calendar with extended
MKCOL, uploads into it and sets its metadata with PROPPATCH (CLIENTS.md, vdirsyncer / khal).
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from tests.support.dav import build_app

VDIRSYNCER = Path(sys.executable).with_name("vdirsyncer")
if not VDIRSYNCER.exists() and shutil.which("vdirsyncer"):
    VDIRSYNCER = Path(shutil.which("vdirsyncer") or "")

EVENT = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//test//EN
BEGIN:VEVENT
UID:{uid}
DTSTAMP:20250101T000000Z
DTSTART:20250301T100000Z
DTEND:20250301T110000Z
SUMMARY:{summary}
END:VEVENT
END:VCALENDAR
"""

CONFIG = """[general]
status_path = "{tmp}/status/"

[pair cal]
a = "local"
b = "remote"
collections = ["from a", "from b"]
metadata = ["displayname", "color"]
conflict_resolution = "a wins"

[storage local]
type = "filesystem"
path = "{tmp}/local/"
fileext = ".ics"

[storage remote]
type = "caldav"
url = "http://127.0.0.1:{port}/"
username = "alice"
password = "alice-app-pw"
"""


@pytest.fixture
async def server(backend, authenticator):
    srv = TestServer(build_app(backend, authenticator), host="127.0.0.1")
    await srv.start_server()
    yield srv
    await srv.close()


async def vdirsyncer(config: Path, *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        str(VDIRSYNCER),
        "-c",
        str(config),
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(b"y\n" * 10), timeout=60)
    text = out.decode("utf-8", "replace")
    assert proc.returncode == 0, text
    return text


@pytest.mark.skipif(not VDIRSYNCER.exists(), reason="vdirsyncer is not installed (pip install -e '.[test]')")
async def test_vdirsyncer_round_trip(server, backend, tmp_path):
    backend.seed("alice", "calendar", "server.ics", EVENT.format(uid="from-server", summary="Server event"))
    local = tmp_path / "local"
    (local / "trips").mkdir(parents=True)
    (local / "trips" / "flight.ics").write_text(EVENT.format(uid="from-client", summary="Flight"))
    (local / "trips" / "displayname").write_text("Trips")
    (local / "trips" / "color").write_text("#FF8800")
    config = tmp_path / "config"
    config.write_text(CONFIG.format(tmp=tmp_path, port=server.port))

    await vdirsyncer(config, "discover", "cal")
    await vdirsyncer(config, "sync")
    await vdirsyncer(config, "metasync")

    downloaded = list((local / "calendar").glob("*.ics"))
    assert [p.read_text().count("Server event") for p in downloaded] == [1]
    trips = backend.homes["alice"]["trips"]
    assert [o.uid for o in trips.objects.values()] == ["from-client"]
    assert (trips.info.display_name, trips.info.color) == ("Trips", "#FF8800")
