"""The timed workloads: each gateway operation over real HTTP, then the floor's EWS calls, per round.

Gateway and floor alternate round by round, so both see the same machine load. EWS calls per
operation come from the emulator's per-mailbox counters (``GET /_emulator/stats``), read before
and after each timed operation. The load workloads (6 concurrency, 7 memory) are in
:mod:`gateway.benchmarks.load`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar

import aiohttp

from gateway.benchmarks import dav
from gateway.benchmarks.floor import DirectMailbox, timed
from gateway.benchmarks.report import Row, ms
from gateway.benchmarks.stack import BenchUser, Gateway, cpu_seconds

T = TypeVar("T")
NOT_EWS = frozenset({"Autodiscover"})


@dataclass
class Context:
    """Everything a workload needs: the stack, its users and the run's sizes."""

    gateway: Gateway
    emulator_url: str
    session: aiohttp.ClientSession
    users: list[BenchUser]  # connected to the 2,000-event mailboxes
    fb_emails: list[str]  # mailboxes for free/busy
    month: tuple[datetime, datetime]
    rounds: int
    warmup: int
    cold_rounds: int  # one fresh account each
    heavy_rounds: int  # free/busy of 100 attendees: seconds per round on the emulator
    emulator_pid: int
    clients: dict[str, dav.DavClient] = field(default_factory=dict)

    @property
    def ews_url(self) -> str:
        return self.emulator_url + "/EWS/Exchange.asmx"

    def client(self, user: BenchUser) -> dav.DavClient:
        key = f"{user.username}/{user.account_id}/{user.collection}"  # one client per collection
        if key not in self.clients:
            self.clients[key] = dav.DavClient(self.gateway.base_url, user, self.session)
        return self.clients[key]

    def direct(self, user: BenchUser) -> DirectMailbox:
        return DirectMailbox(self.ews_url, user.email, user.exchange_password, user.auth_type)

    async def stats(self) -> dict[str, Any]:
        async with self.session.get(self.emulator_url + "/_emulator/stats") as response:
            return await response.json()

    async def calls(self, email: str | None = None) -> Counter[str]:
        """EWS operations counted so far for one mailbox (or all), Autodiscover excluded."""
        stats = await self.stats()
        counts = stats["mailboxes"].get(email, {}) if email else stats["operations"]
        return Counter({op: n for op, n in counts.items() if op not in NOT_EWS})

    async def on_gateway(self, email: str, op: Callable[[], Awaitable[T]]) -> tuple[float, Counter[str], T]:
        """Time one gateway operation and count the EWS calls it caused for ``email``."""
        before = await self.calls(email)
        started = time.perf_counter()
        result = await op()
        elapsed = time.perf_counter() - started
        return elapsed, (await self.calls(email)) - before, result

    async def on_floor(self, email: str, op: Callable[[], T]) -> tuple[float, Counter[str], T]:
        """Time the floor's blocking exchangelib calls (in a worker thread) and count them."""
        before = await self.calls(email)
        elapsed, result = await asyncio.to_thread(timed, op)
        return elapsed, (await self.calls(email)) - before, result


def _record(
    row: Row, gateway: tuple[float, Counter[str], Any], floor: tuple[float, Counter[str], Any]
) -> None:
    row.gateway.append(gateway[0])
    row.calls.append(gateway[1])
    row.floor.append(floor[0])
    row.floor_calls.append(floor[1])


# --- 1. month view ------------------------------------------------------------------------------


async def month_view(ctx: Context) -> list[Row]:
    """calendar-query with calendar-data over a month: cold (first after connecting), then warm."""
    start, end = ctx.month
    cold = Row(
        "1 month view, cold",
        target_ratio=None,
        note="first month view of a freshly connected account; floor: a fresh exchangelib account",
    )
    for user in ctx.users[1 : 1 + ctx.cold_rounds]:
        await ctx.client(user).sign_in()
        gateway = await ctx.on_gateway(user.email, lambda u=user: ctx.client(u).month_view(start, end))
        direct = await asyncio.to_thread(ctx.direct, user)  # building the Account makes no EWS call
        _record(cold, gateway, await ctx.on_floor(user.email, lambda d=direct: d.month_view(start, end)))
    warm = Row("1 month view, warm", target_ratio=1.25)
    user = ctx.users[0]
    client, direct = ctx.client(user), await asyncio.to_thread(ctx.direct, user)
    await client.sign_in()
    for _ in range(ctx.warmup):
        await client.month_view(start, end)
        await asyncio.to_thread(direct.month_view, start, end)
    events = 0
    for _ in range(ctx.rounds):
        gateway = await ctx.on_gateway(user.email, lambda: client.month_view(start, end))
        events = dav.responses(gateway[2].body)
        _record(warm, gateway, await ctx.on_floor(user.email, lambda: direct.month_view(start, end)))
    warm.note = f"{events} calendar objects in the month"
    return [cold, warm]


# --- 1t/2t. a task list: month view and unchanged poll ---------------------------------------------

TASKS_IN_LIST = 30


async def task_list(ctx: Context) -> list[Row]:
    """The month view and the unchanged ctag poll of the first user's Tasks folder, with the tasks a client
    saved first: the same EWS calls as for a calendar (FindItem + GetItem; SyncFolderItems)."""
    user = replace(ctx.users[0], collection="tasks")
    client, direct = ctx.client(user), await asyncio.to_thread(ctx.direct, user)
    start, end = ctx.month
    for number in range(TASKS_IN_LIST):
        uid = f"bench-task-{number}-{uuid.uuid4().hex[:8]}"
        due = start + timedelta(days=number % 28)
        await client.put(f"{uid}.ics", dav.task_ics(uid, due, f"Task {number}"))
    view = Row("1t month view, task list", target_ratio=1.25, max_calls=2)
    ctag = Row("2t unchanged poll, task list", target_ratio=1.25, max_calls=1)
    state = await asyncio.to_thread(direct.task_sync, None)
    for _ in range(ctx.warmup):
        await client.month_view(start, end)
        await client.ctag()
    for _ in range(ctx.rounds):
        gateway = await ctx.on_gateway(user.email, lambda: client.month_view(start, end))
        _record(view, gateway, await ctx.on_floor(user.email, direct.task_month_view))
        _record(
            ctag,
            await ctx.on_gateway(user.email, client.ctag),
            await ctx.on_floor(user.email, partial(direct.task_sync, state)),
        )
    view.note = f"{TASKS_IN_LIST} tasks saved by a client; floor: FindItem + GetItem of the Tasks folder"
    return [view, ctag]


# --- 2. unchanged poll, 3. delta sync -------------------------------------------------------------


async def polls(ctx: Context) -> list[Row]:
    """Unchanged ctag PROPFIND and sync-collection, then a delta sync after one change in "Outlook"."""
    user = ctx.users[0]
    client, direct = ctx.client(user), await asyncio.to_thread(ctx.direct, user)
    token = dav.sync_token_of((await client.ctag()).body)
    state, _ = await asyncio.to_thread(direct.sync, None)
    ctag = Row("2 unchanged poll, ctag PROPFIND", target_ratio=1.25, max_calls=1)
    sync = Row("2 unchanged poll, sync-collection", target_ratio=1.25, max_calls=1)
    for _ in range(ctx.warmup):
        await client.ctag()
        state, _ = await asyncio.to_thread(direct.sync, state)
    for _ in range(ctx.rounds):
        _record(
            ctag,
            await ctx.on_gateway(user.email, client.ctag),
            await ctx.on_floor(user.email, partial(direct.sync, state)),
        )
        gateway = await ctx.on_gateway(user.email, partial(client.sync, token))
        token = dav.sync_token_of(gateway[2].body)
        _record(sync, gateway, await ctx.on_floor(user.email, partial(direct.sync, state)))
    delta = Row(
        "3 delta sync after one change",
        target_ratio=1.25,
        note="sync-collection + calendar-multiget of the changed object; floor: SyncFolderItems + GetItem",
    )
    for number in range(ctx.rounds + ctx.warmup):
        await asyncio.to_thread(direct.touch, f"Changed in Outlook {number}")
        gateway = await ctx.on_gateway(user.email, partial(_delta, client, token))
        token = gateway[2]
        floor = await ctx.on_floor(user.email, partial(direct.delta, state))
        state = floor[2]
        if number >= ctx.warmup:
            _record(delta, gateway, floor)
    return [ctag, sync, delta]


async def _delta(client: dav.DavClient, token: str) -> str:
    answer = await client.sync(token)
    hrefs = dav.changed_hrefs(answer.body)
    if hrefs:
        await client.multiget(hrefs)
    return dav.sync_token_of(answer.body)


# --- 4. writes ----------------------------------------------------------------------------------


async def writes(ctx: Context) -> list[Row]:
    """PUT create (If-None-Match), PUT update (If-Match), DELETE (If-Match), and the floor's equivalents."""
    user = ctx.users[0]
    client, direct = ctx.client(user), await asyncio.to_thread(ctx.direct, user)
    state, _ = await asyncio.to_thread(direct.sync, None)
    rows = [
        Row("4 PUT create", target_ratio=1.25),
        Row("4 PUT update", target_ratio=1.25),
        Row("4 DELETE", target_ratio=1.25),
    ]
    when = ctx.month[0] + timedelta(days=3, hours=5)
    for number in range(ctx.rounds + ctx.warmup):
        name = f"bench-{uuid.uuid4()}.ics"
        created = await ctx.on_gateway(
            user.email, partial(client.put, name, dav.event_ics(name[:-4], when, "Bench"))
        )
        changed = dav.event_ics(name[:-4], when, "Bench 2")
        etag = await client.etag_after_put(name, created[2])  # not timed: a GET when the PUT carried none
        updated = await ctx.on_gateway(user.email, partial(client.put, name, changed, etag))
        etag = await client.etag_after_put(name, updated[2])
        deleted = await ctx.on_gateway(user.email, partial(client.delete, name, etag))
        floor_created = await ctx.on_floor(
            user.email, partial(direct.create, state, "Bench", when, when + timedelta(hours=1))
        )
        state, item = floor_created[2]
        floor_updated = await ctx.on_floor(user.email, partial(direct.update, item, "Bench 2"))
        floor_deleted = await ctx.on_floor(user.email, partial(direct.delete, item))
        if number >= ctx.warmup:
            for row, gateway, floor in zip(
                rows, (created, updated, deleted), (floor_created, floor_updated, floor_deleted), strict=True
            ):
                _record(row, gateway, floor)
    return rows


# --- 5. free/busy -------------------------------------------------------------------------------


async def free_busy(ctx: Context) -> list[Row]:
    """Outbox POST (RFC 6638 §3.2): own merged 30 days, then 20 and 100 attendees."""
    user = ctx.users[0]
    client, direct = ctx.client(user), await asyncio.to_thread(ctx.direct, user)
    start = ctx.month[0]
    end = start + timedelta(days=30)
    twenty, hundred = ctx.fb_emails[:20], ctx.fb_emails[:100]
    cases = [
        ("5 free/busy own, 30 days", [user.email], 1.25, ctx.rounds),
        (f"5 free/busy {len(twenty)} attendees", twenty, 1.25, ctx.rounds),
        (f"5 free/busy {len(hundred)} attendees", hundred, None, ctx.heavy_rounds),
    ]
    rows = []
    for name, attendees, target, rounds in cases:
        row = Row(name, target_ratio=target)
        for number in range(rounds + ctx.warmup):
            gateway = await ctx.on_gateway(user.email, lambda a=attendees: client.outbox(a, start, end))
            floor = await ctx.on_floor(user.email, lambda a=attendees: direct.availability(a, start, end))
            if number >= ctx.warmup:
                _record(row, gateway, floor)
        rows.append(row)
    return rows


# --- 8. CPU -------------------------------------------------------------------------------------


async def cpu(ctx: Context, views: int) -> dict[str, Any]:
    """Gateway CPU ms per warm month view (``/proc/<pid>/stat`` of the gateway process only)."""
    user = ctx.users[0]
    client = ctx.client(user)
    start, end = ctx.month
    events = dav.responses((await client.month_view(start, end)).body)
    before = cpu_seconds(ctx.gateway.pid)
    started = time.perf_counter()
    for _ in range(views):
        await client.month_view(start, end)
    wall = time.perf_counter() - started
    used = cpu_seconds(ctx.gateway.pid) - before
    return {
        "month_views": views,
        "events_per_view": events,
        "cpu_ms_per_view": ms(used / views),
        "wall_ms_per_view": ms(wall / views),
    }
