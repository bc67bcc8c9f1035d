"""Scale-out workloads: the concurrency mix alone (``bench --load``), against 1..N gateway replicas on one
PostgreSQL server (``bench --replicas``), and the soak with a replica killed and restarted on a
schedule (``bench --soak``).

Replicas are ``python -m gateway serve`` processes sharing one database, vault key and admin token.
No load balancer is started: the clients take the replicas in turn for each request
(:class:`gateway.benchmarks.dav.Rotation`), which is what a round-robin balancer without sticky
sessions does; during the soak a killed replica is taken out of the turn at once (a perfect health
check) and put back when its ``/readyz`` answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from gateway.benchmarks import dav, load, workloads
from gateway.benchmarks.postgres import PostgresServer
from gateway.benchmarks.report import Progress, machine
from gateway.benchmarks.stack import BenchUser, Gateway, start_emulator, start_gateway, wait_ready
from gateway.ews.emulator.generator import generate_mailboxes

DOMAIN = "load.bench.example.com"
SPAN_DAYS = 60  # the density of the benchmark's 2,000-event mailboxes, around today (bench.LIGHT_SPAN_DAYS)
EVENTS = 164
FREEBUSY_ATTENDEES = 20


@dataclass(frozen=True)
class Plan:
    """What one scale-out run does."""

    clients: tuple[int, ...] = (100,)  # one concurrency window per count (and per replica count)
    seconds: float = 30.0
    replicas: tuple[int, ...] = ()  # empty: one gateway on SQLite only
    sqlite_too: bool = True  # with replicas: the same windows on one SQLite gateway for comparison
    soak_minutes: float = 0.0
    restart_every_s: float = 120.0
    latency_ms: int = 20
    connect_parallel: int = 8
    cold: bool = False  # no warm-up: sign-ins and first syncs inside the window (load.concurrency)
    sticky: bool = False  # each client keeps to one replica instead of taking them in turn


@contextlib.asynccontextmanager
async def _stack(
    plan: Plan, workdir: Path, replicas: int, store: str, say: Progress
) -> AsyncIterator[tuple[workloads.Context, list[Gateway], list[BenchUser]]]:
    """The emulator, a database and ``replicas`` gateways on it, ``max(plan.clients)`` connected users."""
    today = datetime.now(UTC).date()
    accounts = max(plan.clients)
    seed = generate_mailboxes(accounts, EVENTS, SPAN_DAYS, seed=2, today=today, domain=DOMAIN)
    say(f"{store}, {replicas} replica(s): starting the emulator ({accounts} mailboxes)")
    emulator, emulator_url = await asyncio.to_thread(start_emulator, seed, workdir, plan.latency_ms)
    postgres = None
    gateways: list[Gateway] = []
    timeout = aiohttp.ClientTimeout(total=120)
    try:
        database_url = None
        if store == "postgresql":
            # Its own directory in the system's temporary one: as root the server runs as another user,
            # who may not enter the run's (private) work directory.
            pg_root = Path(tempfile.mkdtemp(prefix="gateway-bench-pg-"))
            postgres = await asyncio.to_thread(PostgresServer(pg_root).start)
            database_url = postgres.url
        async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as session:
            for number in range(replicas):
                # The first creates the schema; the others start once it is there, as a rollout would.
                gateways.append(
                    start_gateway(
                        workdir,
                        emulator_url,
                        [DOMAIN],
                        database_url=database_url,
                        secrets_from=gateways[0] if gateways else None,
                        name=f"gateway-{store}-{number + 1}",
                    )
                )
                await wait_ready(gateways[-1], session)
            say(f"{replicas} gateway(s) ready; connecting {accounts} accounts")
            gate = asyncio.Semaphore(plan.connect_parallel)

            async def connect(number: int, mailbox: dict[str, Any]) -> list[BenchUser]:
                from gateway.benchmarks.stack import provision

                async with gate:  # over the replicas in turn too: any replica serves the admin API
                    target = gateways[number % len(gateways)]
                    return await provision(target, session, f"load{number:04d}", [mailbox])

            groups = await asyncio.gather(*(connect(n, m) for n, m in enumerate(seed["mailboxes"])))
            users = [user for group in groups for user in group]
            start = datetime(today.year, today.month, 1, tzinfo=UTC)
            month = (start, datetime(today.year + today.month // 12, today.month % 12 + 1, 1, tzinfo=UTC))
            ctx = workloads.Context(
                gateways[0],
                emulator_url,
                session,
                users,
                [u.email for u in users[:FREEBUSY_ATTENDEES]],
                month,
                0,
                0,
                0,
                0,
                emulator.pid,
            )
            yield ctx, gateways, users
    finally:
        for gateway in gateways:
            gateway.process.stop()
        emulator.stop()
        if postgres is not None:
            await asyncio.to_thread(postgres.stop)


async def run(plan: Plan, workdir: Path) -> dict[str, Any]:
    """Every configuration of ``plan``; the JSON document (docs/PERFORMANCE.md, "Scale-out")."""
    say = Progress()
    document: dict[str, Any] = {
        "machine": machine(),
        "plan": {
            "clients": list(plan.clients),
            "seconds": plan.seconds,
            "replicas": list(plan.replicas),
            "latency_ms": plan.latency_ms,
            "cold": plan.cold,
            "sticky": plan.sticky,
        },
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "windows": [],
    }
    configurations = [("postgresql", n) for n in plan.replicas]
    if not plan.replicas or plan.sqlite_too:
        configurations.insert(0, ("sqlite", 1))
    if plan.seconds > 0:
        for store, replicas in configurations:
            async with _stack(plan, workdir, replicas, store, say) as (ctx, gateways, users):
                for clients in plan.clients:
                    say(f"{store}, {replicas} replica(s): {clients} clients for {plan.seconds:.0f} s")
                    result = await load.concurrency(
                        ctx, users[:clients], plan.seconds, gateways, cold=plan.cold, sticky=plan.sticky
                    )
                    result["store"] = store
                    document["windows"].append(result)
                    say(_line(result))
    if plan.soak_minutes > 0:
        replicas = max(plan.replicas or (2,))
        store = "postgresql"
        async with _stack(plan, workdir, replicas, store, say) as (ctx, gateways, users):
            document["soak"] = await soak(ctx, gateways, users[: min(plan.clients)], plan, say)
    say("done")
    return document


def _line(result: dict[str, Any]) -> str:
    return (
        f"{result['store']} x{result['replicas']}, {result['clients']} clients: "
        f"{result['throughput_rps']} req/s, p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, "
        f"p99/p50 {result['p99_over_p50']}, errors {result['errors']}"
    )


def table(document: dict[str, Any]) -> str:
    """The printed summary: one line per window, its slowest stages, the soak's accounting."""
    lines = [
        f"{'store':<11} {'replicas':>8} {'clients':>7} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>9} "
        f"{'p99/p50':>7} {'errors':>6}  CPU: gateways/emulator/clients"
    ]
    for w in document["windows"]:
        lines.append(
            f"{w['store']:<11} {w['replicas']:>8} {w['clients']:>7} {w['throughput_rps']:>7} {w['p50_ms']:>8} "
            f"{w['p99_ms']:>9} {w['p99_over_p50']!s:>7} {w['errors']:>6}  {w['gateway_cpu_share']}/"
            f"{w['emulator_cpu_share']}/{w.get('client_cpu_share', '-')}"
        )
        waits = ", ".join(
            f"{name} {stage['mean_ms']} ms ({stage['over_1s']} > 1 s)"
            for name, stage in w.get("stages", {}).items()
            if name != "request"
        )
        if waits:
            lines.append(f"    stages: {waits}")
    if "soak" in document:
        lines.append("soak: " + ", ".join(f"{k}={v}" for k, v in document["soak"].items() if k != "restarts"))
    return "\n".join(lines)


# --- the soak -------------------------------------------------------------------------------------


@dataclass
class _Writes:
    """One client's writes: names whose PUT answered 2xx, whose DELETE answered 2xx, and whose DELETE got
    no answer (it may or may not have happened: neither present nor absent is a loss)."""

    created: set[str]
    deleted: set[str]
    unsure: set[str]


async def soak(
    ctx: workloads.Context, gateways: list[Gateway], users: list[BenchUser], plan: Plan, say: Progress
) -> dict[str, Any]:
    """The mix for ``plan.soak_minutes`` while one replica after another is SIGKILLed and restarted
    every ``plan.restart_every_s``; then every acknowledged write is checked through the gateway.

    An error counts as *in flight* when its request went to the replica killed while it was being
    answered (sent before the kill, failed after it); every other failed request is an error.
    """
    rotation = dav.Rotation([g.base_url for g in gateways])
    journal: list[dav.Sent] = []
    clients = [dav.DavClient(rotation, u, ctx.session) for u in users]
    gate = asyncio.Semaphore(4)
    tokens = await asyncio.gather(*(load.prepare(c, gate, ctx.month) for c in clients))
    for client in clients:
        client.journal = journal
    kills: list[tuple[str, float]] = []  # (replica URL, monotonic time of the SIGKILL)
    deadline = time.monotonic() + plan.soak_minutes * 60
    say(f"soak: {len(clients)} clients, {len(gateways)} replicas, {plan.soak_minutes:g} min")

    async def killer() -> None:
        began, turn = time.monotonic(), 0
        # on a fixed schedule (every restart_every_s from the start), not drifting by the restart times
        while began + (turn + 1) * plan.restart_every_s < deadline:
            await asyncio.sleep(max(0.0, began + (turn + 1) * plan.restart_every_s - time.monotonic()))
            victim = gateways[turn % len(gateways)]
            turn += 1
            kills.append((victim.base_url, time.monotonic()))
            victim.restart(kill=True)
            rotation.down.add(victim.base_url)  # the balancer's health check notices
            await wait_ready(victim, ctx.session)
            rotation.down.discard(victim.base_url)
            say(
                f"soak: replica {victim.base_url} killed and back after {time.monotonic() - kills[-1][1]:.1f} s"
            )

    writes = [_Writes(set(), set(), set()) for _ in clients]
    killing = asyncio.create_task(killer())
    batches = await asyncio.gather(
        *(
            _soak_client(ctx, c, t, w, deadline, random.Random(n))
            for n, (c, t, w) in enumerate(zip(clients, tokens, writes, strict=True))
        )
    )
    await killing
    for client in clients:
        client.journal = None
    in_flight = sum(
        1
        for sent in journal
        if not sent.ok and any(url == sent.url and sent.started <= at <= sent.ended for url, at in kills)
    )
    failed = sum(not sent.ok for sent in journal)
    lost, resurrected = await _check_writes(clients, writes)
    return {
        "minutes": plan.soak_minutes,
        "replicas": len(gateways),
        "clients": len(clients),
        "requests": len(journal),
        "restarts": len(kills),
        "errors_in_flight_on_killed_replica": in_flight,
        "errors_other": failed - in_flight,
        "acknowledged_creates": sum(len(w.created) for w in writes),
        "acknowledged_deletes": sum(len(w.deleted) for w in writes),
        "deletes_without_answer": sum(len(w.unsure) for w in writes),
        "lost_writes": lost,
        "deleted_but_present": resurrected,
        "operations": sum(batches),
        "target_met": failed == in_flight and lost == 0 and resurrected == 0,
    }


async def _soak_client(
    ctx: workloads.Context,
    client: dav.DavClient,
    token: str,
    writes: _Writes,
    deadline: float,
    rng: random.Random,
) -> int:
    """One client of the soak: the concurrency mix, with creates that are kept (half of them deleted)."""
    start, end = ctx.month
    done = 0
    while time.monotonic() < deadline:
        choice = rng.choices(range(5), (2, 3, 3, 1, 1))[0]
        with contextlib.suppress(dav.DavFailure, aiohttp.ClientError, TimeoutError):
            if choice == 0:
                await client.month_view(start, end)
            elif choice == 1:
                await client.ctag()
            elif choice == 2:
                await client.sync(token)
            elif choice == 3:
                name = f"soak-{uuid.uuid4()}.ics"
                when = start + timedelta(days=rng.randrange(28), hours=rng.randrange(8, 18))
                created = await client.put(name, dav.event_ics(name[:-4], when, "Soak"))
                writes.created.add(name)
                if rng.random() < 0.5:
                    etag = await client.etag_after_put(name, created)
                    writes.unsure.add(name)
                    await client.delete(name, etag)
                    writes.unsure.discard(name)
                    writes.deleted.add(name)
            else:
                await client.outbox(ctx.fb_emails[:FREEBUSY_ATTENDEES], start, start + timedelta(days=30))
        done += 1
    return done


async def _check_writes(clients: list[dav.DavClient], writes: list[_Writes]) -> tuple[int, int]:
    """(acknowledged creates missing, acknowledged deletions still present), read through the gateway
    with an initial sync-collection (RFC 6578 §3.2: no token lists every member)."""
    lost = resurrected = 0
    for client, mine in zip(clients, writes, strict=True):
        answer = await client.sync("")
        present = {href.rsplit("/", 1)[-1] for href in dav.changed_hrefs(answer.body)}
        lost += len(mine.created - mine.deleted - mine.unsure - present)
        resurrected += len(mine.deleted & present)
    return lost, resurrected
