"""The booking API over the in-memory backend: it needs nothing of Exchange but the backend interface."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from aiohttp import encode_basic_auth
from sqlalchemy import insert, text

from gateway.booking.api import setup_booking
from gateway.booking.store import BookingStore
from gateway.caldav.backend import BackendUnavailable, WorkingHours, WorkingPeriod
from gateway.store.database import Database
from gateway.store.schema import users
from tests.support.dav import build_app
from tests.support.memory_backend import sample

AUTH = {"Authorization": encode_basic_auth("alice", "alice-app-pw")}
BERLIN = ZoneInfo("Europe/Berlin")


def _first_march_monday() -> datetime:
    """The first Monday of March of next year: always ahead (bookings must not start in the past), and
    in winter time (Berlin is UTC+1, New York UTC-5 that day)."""
    day = datetime(datetime.now(UTC).year + 1, 3, 1, tzinfo=BERLIN)
    return day + timedelta(days=(7 - day.weekday()) % 7)


MONDAY = _first_march_monday()


def event(uid: str, start: datetime, end: datetime) -> str:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:busy\r\n"
        f"DTSTART:{start.astimezone(UTC):%Y%m%dT%H%M%SZ}\r\nDTEND:{end.astimezone(UTC):%Y%m%dT%H%M%SZ}\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )


@pytest.fixture
async def api(aiohttp_client, tmp_path):
    backend, authenticator = sample()
    backend.working_hours = WorkingHours(BERLIN, (WorkingPeriod((0, 1, 2, 3, 4), 9 * 60, 17 * 60),))
    backend.seed(
        "alice", "projects", "busy.ics", event("busy", MONDAY.replace(hour=10), MONDAY.replace(hour=11))
    )
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'g.sqlite3'}")
    await db.open()
    async with db.engine.begin() as conn:
        for user_id in ("u1", "u2"):
            row = {"id": user_id, "username": user_id, "display_name": user_id}
            await conn.execute(insert(users).values(**row, created_at=text("CURRENT_TIMESTAMP")))
    app = build_app(backend, authenticator)
    setup_booking(app, BookingStore(db.engine), 10)
    client = await aiohttp_client(app)
    client.backend = backend
    yield client
    await db.close()


def window(**extra: str) -> dict[str, str]:
    return {
        "start": MONDAY.isoformat(),
        "end": (MONDAY + timedelta(days=1)).isoformat(),
        "duration": "60",
        **extra,
    }


async def test_slots_keep_to_working_hours_and_busy_time_in_the_callers_zone(api) -> None:
    answer = await api.get(
        "/api/v1/users/alice/slots", params=window(tz="America/New_York", step="60"), headers=AUTH
    )
    assert answer.status == 200
    starts = [s["start"] for s in (await answer.json())["slots"]]
    # 09:00-17:00 in Berlin is 03:00-11:00 in New York; 10:00-11:00 Berlin (04:00 New York) is busy.
    assert starts == [f"{MONDAY:%Y-%m-%d}T{h:02d}:00:00-05:00" for h in (3, 5, 6, 7, 8, 9, 10)]


async def test_attendees_exchange_cannot_answer_for_stop_the_question(api) -> None:
    api.backend.no_data.add("carol@example.com")
    unknown = await api.get("/api/v1/users/alice/slots", params=window(attendee="nobody@x.org"), headers=AUTH)
    assert unknown.status == 404 and "nobody@x.org" in (await unknown.json())["message"]
    no_data = await api.get(
        "/api/v1/users/alice/slots", params=window(attendee="carol@example.com"), headers=AUTH
    )
    assert no_data.status == 422 and (await no_data.json())["error"] == "unprocessable"
    with_bob = await api.get(
        "/api/v1/users/alice/slots", params=window(attendee="bob@example.com"), headers=AUTH
    )
    assert with_bob.status == 200


async def test_a_booking_is_made_once_and_refused_on_busy_time(api) -> None:
    body = {"start": MONDAY.replace(hour=14).isoformat(), "duration": 30, "invitee": {"email": "v@x.org"}}
    key = {**AUTH, "Idempotency-Key": "once"}
    first = await api.post("/api/v1/users/alice/bookings", json=body, headers=key)
    assert first.status == 201
    made = await first.json()
    assert made["calendar_id"] == "calendar" and made["href"].startswith("/dav/calendars/alice/calendar/")
    again = await api.post("/api/v1/users/alice/bookings", json=body, headers=key)
    assert (
        again.status == 201 and await again.json() == made and again.headers["Idempotent-Replayed"] == "true"
    )
    assert len(api.backend.bookings) == 1
    busy = {**body, "start": MONDAY.replace(hour=10, minute=30).isoformat()}
    refused = await api.post("/api/v1/users/alice/bookings", json=busy, headers=AUTH)
    assert refused.status == 409 and (await refused.json())["error"] == "not_free"
    assert len(api.backend.bookings) == 1


async def test_exchange_unavailable_is_a_503_with_retry_after_and_writes_nothing(api) -> None:
    api.backend.fail["availability"] = BackendUnavailable("Exchange is down.", retry_after=12)
    body = {"start": MONDAY.replace(hour=14).isoformat(), "duration": 30, "invitee": {"email": "v@x.org"}}
    refused = await api.post(
        "/api/v1/users/alice/bookings", json=body, headers={**AUTH, "Idempotency-Key": "k"}
    )
    assert refused.status == 503 and refused.headers["Retry-After"] == "12"
    assert (await refused.json()) == {"error": "exchange_unavailable", "message": "Exchange is down."}
    del api.backend.fail["availability"]
    assert (
        await api.post("/api/v1/users/alice/bookings", json=body, headers={**AUTH, "Idempotency-Key": "k"})
    ).status == 201
    assert len(api.backend.bookings) == 1
