"""python-caldav (a real client library) against a served gateway on 127.0.0.1 with the memory backend.

python-caldav is blocking, so each client step runs in a worker thread while the server
runs on the test's event loop.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import caldav
import pytest
from aiohttp.test_utils import TestServer

from tests.support.dav import build_app

WEEKLY = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//test//EN
BEGIN:VEVENT
UID:py-weekly
DTSTAMP:20250101T000000Z
DTSTART:20250106T090000Z
DTEND:20250106T100000Z
RRULE:FREQ=WEEKLY;COUNT=4
SUMMARY:Weekly review
END:VEVENT
END:VCALENDAR
"""

ONCE = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//test//EN
BEGIN:VEVENT
UID:py-once
DTSTAMP:20250101T000000Z
DTSTART:20250108T140000Z
DTEND:20250108T150000Z
SUMMARY:One-off
END:VEVENT
END:VCALENDAR
"""


@pytest.fixture
async def server(backend, authenticator):
    srv = TestServer(build_app(backend, authenticator), host="127.0.0.1")
    await srv.start_server()
    yield srv
    await srv.close()


def client_for(server: TestServer) -> caldav.DAVClient:
    return caldav.DAVClient(
        url=f"http://127.0.0.1:{server.port}/",
        username="alice",
        password="alice-app-pw",
        require_tls=False,
        enable_rfc6764=False,
    )


async def test_discovery_and_calendar_listing(server):
    def run() -> list[str]:
        with client_for(server) as client:
            principal = client.principal()
            return sorted(str(c.url) for c in principal.calendars())

    urls = await asyncio.to_thread(run)
    assert [u.rsplit("/", 2)[1] for u in urls] == ["calendar", "projects"]


async def test_save_search_expand_multiget_modify_delete(server, backend):
    def run() -> dict[str, object]:
        with client_for(server) as client:
            calendar = client.principal().calendars()[0]
            calendar.save_event(WEEKLY)
            once = calendar.save_event(ONCE)
            expanded = calendar.search(
                start=datetime(2025, 1, 6, tzinfo=UTC),
                end=datetime(2025, 1, 21, tzinfo=UTC),
                event=True,
                expand=True,
            )
            starts = sorted(str(e.icalendar_component["DTSTART"].dt) for e in expanded)
            by_server = calendar.search(
                start=datetime(2025, 1, 6, tzinfo=UTC),
                end=datetime(2025, 1, 21, tzinfo=UTC),
                event=True,
                expand=True,
                server_expand=True,
            )
            server_starts = sorted(str(e.icalendar_component["DTSTART"].dt) for e in by_server)
            fetched = calendar.calendar_multiget([once.url])
            once.icalendar_component["SUMMARY"] = "Renamed"
            once.save()
            renamed = calendar.event_by_uid("py-once").icalendar_component["SUMMARY"]
            once.delete()
            remaining = [str(e.icalendar_component["UID"]) for e in calendar.events()]
            return {
                "starts": starts,
                "server_starts": server_starts,
                "fetched": [f.data for f in fetched],
                "renamed": renamed,
                "remaining": remaining,
            }

    result = await asyncio.to_thread(run)
    assert result["starts"] == [
        "2025-01-06 09:00:00+00:00",
        "2025-01-08 14:00:00+00:00",
        "2025-01-13 09:00:00+00:00",
        "2025-01-20 09:00:00+00:00",
    ]
    assert result["server_starts"] == result["starts"]
    assert "One-off" in result["fetched"][0]
    assert result["renamed"] == "Renamed"
    assert result["remaining"] == ["py-weekly"]


async def test_sync_tokens(server, backend):
    def first() -> tuple[list[str], object]:
        with client_for(server) as client:
            calendar = client.principal().calendars()[0]
            calendar.save_event(WEEKLY)
            objects = calendar.objects_by_sync_token(load_objects=True)
            return [str(o.icalendar_component["UID"]) for o in objects], objects.sync_token

    uids, token = await asyncio.to_thread(first)
    assert uids == ["py-weekly"]
    backend.seed("alice", "calendar", "server-side.ics", ONCE)

    def again() -> list[str]:
        with client_for(server) as client:
            calendar = client.principal().calendars()[0]
            changed = calendar.objects_by_sync_token(sync_token=token, load_objects=True)
            return [str(o.icalendar_component["UID"]) for o in changed]

    assert await asyncio.to_thread(again) == ["py-once"]


async def test_freebusy_request_through_outbox(server, backend):
    backend.seed("bob", "calendar", "busy.ics", ONCE)

    def run() -> dict:
        with client_for(server) as client:
            principal = client.principal()
            return principal.freebusy_request(
                datetime(2025, 1, 6, tzinfo=UTC),
                datetime(2025, 1, 13, tzinfo=UTC),
                ["mailto:bob@example.com"],
            )

    response = await asyncio.to_thread(run)
    assert response["errors"] == {}
    fb = response["mailto:bob@example.com"].icalendar_instance.walk("VFREEBUSY")[0]
    period = fb["FREEBUSY"].dt
    assert (period[0].isoformat(), period[1].isoformat()) == (
        "2025-01-08T14:00:00+00:00",
        "2025-01-08T15:00:00+00:00",
    )
    assert backend.free_busy_calls[0][0] == ["mailto:bob@example.com"]
