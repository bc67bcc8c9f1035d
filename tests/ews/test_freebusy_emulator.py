"""availability() against the emulator's GetUserAvailability (demo seed), through real exchangelib."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from gateway.ews.client import EwsClient
from gateway.ews.connection import ConnectionSettings, Credentials
from gateway.ews.freebusy import availability
from tests.support.emulator import EmulatorServer

ATTENDEES = [
    "mailto:bob@example.com",
    "mailto:carol@example.com",
    "mailto:room-1@example.com",
    "mailto:nobody@example.com",
]


@pytest.fixture
async def setup(emulator: EmulatorServer) -> AsyncIterator[tuple[EwsClient, object]]:
    client = EwsClient()
    credentials = Credentials("alice@example.com", "alice-pw")
    info = await client.connect(ConnectionSettings("alice@example.com", credentials, server=emulator.ews_url))
    emulator.reset()  # count only what availability() sends
    yield client, client.account(info, credentials)
    await client.close()


def _window() -> tuple[datetime, datetime]:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=1), today + timedelta(days=14)


def _covered(periods, fbtype: str, start: datetime, end: datetime) -> bool:
    return any(p.fbtype == fbtype and p.start <= start and end <= p.end for p in periods)


async def test_several_attendees_in_one_request(setup, emulator):
    client, account = setup
    start, end = _window()
    results = await availability(client, account, ATTENDEES, start, end)
    assert emulator.stats()["operations"] == {"GetUserAvailability": 1}  # no GetServerTimeZones
    assert [r.attendee for r in results] == ATTENDEES
    assert [r.status for r in results] == ["2.0", "2.0", "2.0", "3.7"]
    bob, carol, room, nobody = results
    assert nobody.periods == [] and nobody.message
    for result in (bob, carol, room):
        assert result.periods, result.attendee
        assert all(p.start.tzinfo is UTC and start <= p.start < p.end <= end for p in result.periods)
        assert result.periods == sorted(result.periods, key=lambda p: (p.start, p.end, p.fbtype))


async def test_busy_types_per_event(setup, emulator):
    client, account = setup
    start, end = _window()
    [bob] = await availability(client, account, ["mailto:bob@example.com"], start, end)
    events = emulator.state.store.busy_events("bob@example.com", start, end)
    expected = {"Busy": "BUSY", "Tentative": "BUSY-TENTATIVE", "OOF": "BUSY-UNAVAILABLE"}
    for event in events:
        clipped = (max(event.start, start), min(event.end, end))
        if event.busy_type in expected:
            assert _covered(bob.periods, expected[event.busy_type], *clipped), event.subject
    elsewhere = [e for e in events if e.busy_type == "WorkingElsewhere"]
    assert elsewhere, "the demo seed has a WorkingElsewhere day for bob"
    for event in elsewhere:
        assert not _covered(bob.periods, "BUSY-TENTATIVE", event.start, event.end)  # FREE by default
    [as_tentative] = await availability(
        client, account, ["mailto:bob@example.com"], start, end, working_elsewhere="BUSY-TENTATIVE"
    )
    for event in elsewhere:
        assert _covered(as_tentative.periods, "BUSY-TENTATIVE", event.start, event.end)


async def test_a_90_day_range_is_three_requests_merged(setup, emulator):
    client, account = setup
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=30)
    end = start + timedelta(days=90)
    [bob] = await availability(client, account, ["mailto:bob@example.com"], start, end)
    assert emulator.stats()["operations"] == {"GetUserAvailability": 3}
    assert bob.status == "2.0"
    # The daily stand-up runs on both sides of the first 42-day boundary; the weekly 1:1 throughout.
    boundary = start + timedelta(days=42)
    assert any(p.start < boundary for p in bob.periods) and any(p.start >= boundary for p in bob.periods)
    for earlier, later in zip(bob.periods, bob.periods[1:], strict=False):  # coalesced: no same-type overlap
        assert not (earlier.fbtype == later.fbtype and later.start <= earlier.end)


async def test_exchange_failure_is_5_x_per_mailbox(setup, emulator):
    client, account = setup
    emulator.set_faults(rules=[{"kind": "http_500", "operation": "GetUserAvailability"}])
    start, end = _window()
    results = await availability(client, account, ATTENDEES[:2], start, end)
    assert [r.status for r in results] == ["5.1", "5.1"]
    assert all(r.message and not r.periods for r in results)


_NO_DATA_SEED = {
    "mailboxes": [
        {
            "email": "alice@example.com",
            "password": "alice-pw",
            "time_zone": "UTC",
            "calendars": [{"name": "Calendar", "primary": True}],
        },
        {
            "email": "dan@example.com",
            "password": "dan-pw",
            "time_zone": "UTC",
            "calendars": [
                {
                    "name": "Calendar",
                    "primary": True,
                    "events": [
                        {
                            "subject": "unknown",
                            "date": 1,
                            "time": "10:00",
                            "duration": 60,
                            "free_busy": "NoData",
                        },
                        {"subject": "meeting", "date": 1, "time": "12:00", "duration": 60},
                    ],
                }
            ],
        },
    ],
}


async def test_no_data_is_flagged_not_free():
    with EmulatorServer(_NO_DATA_SEED) as server:
        client = EwsClient()
        credentials = Credentials("alice@example.com", "alice-pw")
        try:
            info = await client.connect(
                ConnectionSettings("alice@example.com", credentials, server=server.ews_url)
            )
            start, end = _window()
            [dan] = await availability(
                client, client.account(info, credentials), ["mailto:dan@example.com"], start, end
            )
        finally:
            await client.close()
    assert (dan.status, dan.no_data) == ("2.0", True)
    assert "not known to be free" in dan.message
    assert [(p.end - p.start, p.fbtype) for p in dan.periods] == [(timedelta(hours=1), "BUSY")]
