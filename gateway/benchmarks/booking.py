"""Workload 9: the booking API (docs/BOOKING.md) for one user with three conflict calendars in two accounts.

The user has two connected mailboxes of the free/busy set and a "Bookings" sub-calendar (made with
MKCALENDAR in the first); the three are checked for conflicts and bookings go to the sub-calendar.

- availability over 14 days, the cache missed (each round another window, which costs what the
  cache turned off costs) and hit; floor: the same three EWS calls (GetUserAvailability per account,
  FindItem of the sub-calendar), made concurrently as the gateway makes them;
- 100 visitors asking at once, with the cache (one identical question) and without (100 different
  windows); floor: one set of the calls, and 100 sets 20 at a time;
- a booking (the free/busy re-check and CreateItem with the invitation), then its cancellation
  (DeleteItem); floor: the same calls.
"""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import aiohttp

from gateway.benchmarks.floor import DirectMailbox
from gateway.benchmarks.report import Row
from gateway.benchmarks.stack import BenchUser, provision
from gateway.benchmarks.workloads import Context, _record

SUB_CALENDAR = "Bookings"
VISITORS = 100
ALL = ""  # count the EWS calls of every mailbox: the user's two accounts and the invitee's


class BookingUser:
    """The API as a scheduling tool calls it, for one user."""

    def __init__(self, ctx: Context, user: BenchUser) -> None:
        self.ctx = ctx
        self.base = f"{ctx.gateway.base_url}/api/v1/users/{user.username}"
        self.auth = {"auth": aiohttp.BasicAuth(user.username, user.app_password)}

    async def slots(self, start: datetime, end: datetime) -> dict[str, Any]:
        query = {"start": start.isoformat(), "end": end.isoformat(), "duration": "30"}
        async with self.ctx.session.get(f"{self.base}/slots", params=query, **self.auth) as response:
            body = await response.json()
            if response.status != 200:
                raise RuntimeError(f"slots: HTTP {response.status} {body}")
            return body

    async def book(self, slot: dict[str, str], invitee: str) -> dict[str, Any]:
        body = {"start": slot["start"], "end": slot["end"], "invitee": {"email": invitee}, "title": "Bench"}
        headers = {"Idempotency-Key": uuid.uuid4().hex}
        async with self.ctx.session.post(
            f"{self.base}/bookings", json=body, headers=headers, **self.auth
        ) as r:
            answer = await r.json()
            if r.status != 201:
                raise RuntimeError(f"booking: HTTP {r.status} {answer}")
            return answer

    async def cancel(self, booking_id: str) -> None:
        async with self.ctx.session.delete(f"{self.base}/bookings/{booking_id}", **self.auth) as response:
            if response.status != 204:
                raise RuntimeError(f"cancel: HTTP {response.status}")


async def _set_up(ctx: Context, mailboxes: list[dict[str, Any]]) -> tuple[BookingUser, list[DirectMailbox]]:
    """The user, the sub-calendar (MKCALENDAR), the calendar choices (admin API); direct floor mailboxes."""
    users = await provision(ctx.gateway, ctx.session, "booker", mailboxes)
    first = users[0]
    client = ctx.client(first)
    await client.sign_in()
    mkcalendar = (
        '<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop>'
        f"<D:displayname>{SUB_CALENDAR}</D:displayname></D:prop></D:set></C:mkcalendar>"
    )
    await client.send("MKCALENDAR", f"/dav/calendars/{first.username}/bookings/", mkcalendar, expect=(201,))
    admin = {"Authorization": f"Bearer {ctx.gateway.admin_token}"}
    api = ctx.gateway.base_url + "/api/v1/admin/users"
    async with ctx.session.get(api, headers=admin) as response:
        user_id = next(u["user_id"] for u in (await response.json())["users"] if u["username"] == "booker")
    async with ctx.session.get(f"{api}/{user_id}/calendars", headers=admin) as response:
        calendars = (await response.json())["calendars"]
    primaries = [f"{u.account_id}-calendar" for u in users]
    sub = next(c["calendar_id"] for c in calendars if c["display_name"] == SUB_CALENDAR)
    choice = {"conflict_calendar_ids": [*primaries, sub], "add_events_calendar_id": sub}
    async with ctx.session.put(f"{api}/{user_id}/settings", json=choice, headers=admin) as response:
        if response.status != 200:
            raise RuntimeError(f"settings: HTTP {response.status} {await response.text()}")
    direct = await asyncio.gather(*(asyncio.to_thread(ctx.direct, u) for u in users))
    return BookingUser(ctx, first), list(direct)


def _floor_question(direct: list[DirectMailbox], start: datetime, end: datetime) -> int:
    """GetUserAvailability of each account's own mailbox and FindItem of the sub-calendar, concurrently."""
    with ThreadPoolExecutor(max_workers=3) as pool:
        jobs = [pool.submit(d.availability, [d.account.primary_smtp_address], start, end) for d in direct]
        jobs.append(pool.submit(direct[0].folder_busy, SUB_CALENDAR, start, end))
        return sum(job.result() for job in jobs)


def _floor_questions(direct: list[DirectMailbox], windows: list[tuple[datetime, datetime]]) -> int:
    with ThreadPoolExecutor(max_workers=20) as pool:
        return sum(pool.map(lambda w: _floor_question(direct, *w), windows))


async def booking(
    ctx: Context, mailboxes: list[dict[str, Any]], invitee: str, visitors: int = VISITORS
) -> list[Row]:
    """Workload 9 (module docstring); ``visitors`` ask at once (fewer in the smoke profile)."""
    api, direct = await _set_up(ctx, mailboxes)
    # From tomorrow: a booking in the past is refused, and the benchmark's month may have begun.
    tomorrow = datetime.now(ctx.month[0].tzinfo).replace(hour=0, minute=0, second=0, microsecond=0)
    start = max(ctx.month[0], tomorrow) + timedelta(days=1)
    end = start + timedelta(days=14)
    miss = Row("9 availability 14 d, cache miss", target_ratio=1.25, note="3 calendars in 2 accounts")
    hit = Row("9 availability 14 d, cache hit", note="floor: the same question asked of Exchange")
    for number in range(ctx.rounds + ctx.warmup):
        moved = start + timedelta(minutes=number + 1)  # another question: the cache cannot answer it
        gateway = await ctx.on_gateway(ALL, lambda s=moved: api.slots(s, end))
        floor = await ctx.on_floor(ALL, lambda s=moved: _floor_question(direct, s, end))
        cached = await ctx.on_gateway(ALL, lambda s=moved: api.slots(s, end))
        if number >= ctx.warmup:
            _record(miss, gateway, floor)
            _record(hit, cached, floor)

    shared = Row(f"9 {visitors} visitors at once, cache on", note="one identical question")
    apart = Row(
        f"9 {visitors} visitors at once, cache off", note=f"{visitors} different windows; floor 20 at a time"
    )
    for number in range(max(1, ctx.heavy_rounds)):
        base = start + timedelta(hours=number + 1)
        same = await ctx.on_gateway(
            ALL, lambda b=base: asyncio.gather(*(api.slots(b, end) for _ in range(visitors)))
        )
        _record(shared, same, await ctx.on_floor(ALL, lambda b=base: _floor_question(direct, b, end)))
        windows = [(base + timedelta(seconds=i + 1), end) for i in range(visitors)]  # distinct, uncached
        each = await ctx.on_gateway(ALL, lambda w=windows: asyncio.gather(*(api.slots(s, e) for s, e in w)))
        _record(apart, each, await ctx.on_floor(ALL, lambda w=windows: _floor_questions(direct, w)))

    booked = Row(
        "9 booking (re-check + CreateItem)", target_ratio=1.25, note="the invitation sent by Exchange"
    )
    cancelled = Row("9 booking cancelled", target_ratio=1.25, note="DeleteItem, the cancellation sent")
    offered = (await api.slots(start, end))["slots"]
    for number in range(ctx.rounds + ctx.warmup):
        ours, theirs = offered[4 * number], offered[4 * number + 2]  # apart: each leaves the other free
        made = await ctx.on_gateway(ALL, lambda s=ours: api.book(s, invitee))
        slot_start, slot_end = (datetime.fromisoformat(theirs[k]) for k in ("start", "end"))

        def floor_book(s: datetime = slot_start, e: datetime = slot_end) -> Any:
            _floor_question(direct, s, e)
            return direct[0].book(SUB_CALENDAR, s, e, invitee)

        floor_made = await ctx.on_floor(ALL, floor_book)
        gone = await ctx.on_gateway(ALL, lambda b=made[2]["id"]: api.cancel(b))
        floor_gone = await ctx.on_floor(ALL, lambda i=floor_made[2]: direct[0].cancel(i))
        if number >= ctx.warmup:
            _record(booked, made, floor_made)
            _record(cancelled, gone, floor_gone)
    return [miss, hit, shared, apart, booked, cancelled]
