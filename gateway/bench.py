"""``python -m gateway bench [--quick] [--json FILE]``: the performance benchmark (docs/PERFORMANCE.md).

It starts the EWS emulator with a generated mailbox set and an added latency per EWS request,
starts the gateway as users run it (its own process, real HTTP, SQLite store), connects users over
the admin API, and runs the workloads: month view (cold, warm), unchanged poll, delta sync, writes,
free/busy, CPU per month view, concurrent clients and memory with many accounts. Each timed
workload is compared with the floor: the same EWS calls made directly with exchangelib.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.ews.emulator.generator import generate_mailboxes

if TYPE_CHECKING:
    import aiohttp

    from gateway.benchmarks import workloads
    from gateway.benchmarks.report import Progress, Row
    from gateway.benchmarks.stack import BenchUser, Gateway

CAL_DOMAIN = "bench.example.com"
FB_DOMAIN = "fb.bench.example.com"
MEM_DOMAIN = "mem.bench.example.com"
LIGHT_SPAN_DAYS = 60  # free/busy and memory mailboxes: the same event density, only around today


@dataclass(frozen=True)
class Profile:
    """The sizes of one run."""

    name: str
    cold_rounds: int = 3  # each needs its own 2,000-event mailbox
    events_per_mailbox: int = 2000
    span_days: int = 730
    freebusy_mailboxes: int = 200  # also the concurrent clients' accounts
    memory_accounts: int = 1000
    memory_events: int = 20  # over LIGHT_SPAN_DAYS: memory per account is measured, not per event
    accounts_per_memory_user: int = 10  # one app password (scrypt) per user keeps set-up short
    rounds: int = 10
    heavy_rounds: int = 3  # free/busy of 100 attendees
    visitors: int = 100  # booking page visitors asking at once (workload 9)
    warmup: int = 1
    concurrent_clients: tuple[int, ...] = (50, 100)  # one window per count
    concurrency_seconds: float = 30.0
    cpu_views: int = 10
    connect_parallel: int = 8
    memory_parallel: int = 6

    @property
    def calendar_mailboxes(self) -> int:
        """2,000-event mailboxes: one per cold round and one for the warm workloads."""
        return self.cold_rounds + 1

    @property
    def light_events(self) -> int:
        """Events of a free/busy or memory mailbox: the density of the big ones over LIGHT_SPAN_DAYS."""
        return max(10, round(self.events_per_mailbox * LIGHT_SPAN_DAYS / self.span_days))


PROFILES = {
    "full": Profile("full"),
    "quick": Profile(
        "quick",
        cold_rounds=1,
        freebusy_mailboxes=100,
        memory_accounts=20,
        accounts_per_memory_user=5,
        rounds=3,
        heavy_rounds=1,
        concurrent_clients=(10,),
        concurrency_seconds=5,
        cpu_views=3,
    ),
    # The test suite's end-to-end check of the harness itself: every workload, tiny sizes.
    "smoke": Profile(
        "smoke",
        cold_rounds=1,
        events_per_mailbox=300,
        freebusy_mailboxes=5,
        memory_accounts=4,
        accounts_per_memory_user=2,
        rounds=2,
        heavy_rounds=1,
        concurrent_clients=(3,),
        concurrency_seconds=2,
        cpu_views=2,
        visitors=10,
    ),
}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``bench`` sub-command."""
    parser = subparsers.add_parser("bench", help="benchmark the gateway against the EWS emulator")
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--quick",
        action="store_const",
        const="quick",
        dest="profile",
        help="smaller mailbox set, fewer rounds (under a minute)",
    )
    size.add_argument(
        "--smoke",
        action="store_const",
        const="smoke",
        dest="profile",
        help="tiny sizes: checks that the harness works, figures mean little",
    )
    parser.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    parser.add_argument(
        "--latency-ms", type=int, default=20, help="latency the emulator adds per EWS request"
    )
    parser.add_argument(
        "--workdir", type=Path, help="keep seed, config, logs and database here (default: temporary)"
    )
    parser.add_argument(
        "--peer",
        choices=["davmail"],
        help="instead of the workloads, compare the gateway with DavMail on the same emulator "
        "(needs java and DavMail: apt-get install davmail-server default-jre-headless)",
    )
    scale = parser.add_argument_group(
        "scale-out (docs/PERFORMANCE.md): instead of the workloads, the concurrency mix alone"
    )
    scale.add_argument(
        "--load",
        type=_counts,
        metavar="CLIENTS",
        help="the concurrency mix with these client counts (e.g. 50,100) on one SQLite gateway",
    )
    scale.add_argument(
        "--replicas",
        type=_counts,
        metavar="N",
        help="the mix against N gateway replicas on one PostgreSQL server for each N (e.g. 1,2,3), "
        "and on one SQLite gateway for comparison",
    )
    scale.add_argument(
        "--soak",
        type=float,
        metavar="MINUTES",
        help="the mix for MINUTES against the largest --replicas count (default 2) on PostgreSQL, one "
        "replica SIGKILLed and restarted every --restart-every seconds; counts errors and lost writes",
    )
    scale.add_argument(
        "--cold",
        action="store_true",
        help="no warm-up: each client's sign-in and first sync inside the window, as a load test starts",
    )
    scale.add_argument(
        "--sticky",
        action="store_true",
        help="each client keeps to one replica (session affinity) instead of taking them in turn",
    )
    scale.add_argument("--seconds", type=float, default=30.0, help="length of each load window (default 30)")
    scale.add_argument(
        "--restart-every", type=float, default=120.0, help="soak: seconds between replica kills (default 120)"
    )
    parser.set_defaults(func=run, profile="full")


def _counts(text: str) -> tuple[int, ...]:
    """``"1,2,3"`` -> (1, 2, 3): positive whole numbers."""
    try:
        counts = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: every count must be at least 1")
    return counts


def run(args: argparse.Namespace) -> int:
    # Imported here so the other commands start without loading aiohttp's client and exchangelib.
    from gateway.benchmarks.report import table
    from gateway.benchmarks.stack import StackError

    profile = PROFILES[args.profile]
    runner = bench
    if args.peer:  # gateway/benchmarks/peer.py: the side-by-side comparison, its own table
        from gateway.benchmarks import peer

        runner, table = peer.compare, peer.table
    elif args.load or args.replicas or args.soak:  # gateway/benchmarks/scaleout.py
        from gateway.benchmarks import scaleout

        plan = scaleout.Plan(
            clients=args.load or ((50,) if args.soak else (50, 100)),
            seconds=0.0 if args.soak else args.seconds,  # --soak runs the soak alone
            replicas=args.replicas or (),
            soak_minutes=args.soak or 0.0,
            restart_every_s=args.restart_every,
            latency_ms=args.latency_ms,
            cold=args.cold,
            sticky=args.sticky,
        )
        table = scaleout.table

        async def runner(_profile: Profile, _latency_ms: int, workdir: Path) -> dict[str, Any]:
            return await scaleout.run(plan, workdir)

    try:
        if args.workdir:
            args.workdir.mkdir(parents=True, exist_ok=True)
            document = asyncio.run(runner(profile, args.latency_ms, args.workdir))
        else:
            with tempfile.TemporaryDirectory(prefix="gateway-bench-") as tmp:
                document = asyncio.run(runner(profile, args.latency_ms, Path(tmp)))
    except (StackError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(table(document))
    if args.json:
        args.json.write_text(json.dumps(document, indent=2), encoding="utf-8")
        print(f"JSON written to {args.json}")
    return 0


def build_seed(profile: Profile, today: date) -> dict[str, Any]:
    """Three deterministic mailbox sets in one seed: 2,000-event calendars, free/busy, memory."""
    sets = [
        generate_mailboxes(
            profile.calendar_mailboxes,
            profile.events_per_mailbox,
            profile.span_days,
            seed=1,
            today=today,
            domain=CAL_DOMAIN,
        ),
        generate_mailboxes(
            profile.freebusy_mailboxes,
            profile.light_events,
            LIGHT_SPAN_DAYS,
            seed=2,
            today=today,
            domain=FB_DOMAIN,
        ),
        generate_mailboxes(
            profile.memory_accounts,
            profile.memory_events,
            LIGHT_SPAN_DAYS,
            seed=3,
            today=today,
            domain=MEM_DOMAIN,
        ),
    ]
    seed = sets[0]
    for extra in sets[1:]:
        seed["mailboxes"] += extra["mailboxes"]
        seed["autodiscover"].update(extra["autodiscover"])
    return seed


def month_of(today: date) -> tuple[datetime, datetime]:
    """The calendar month containing ``today`` (UTC midnight to midnight)."""
    start = datetime(today.year, today.month, 1, tzinfo=UTC)
    end = datetime(today.year + today.month // 12, today.month % 12 + 1, 1, tzinfo=UTC)
    return start, end


async def bench(profile: Profile, latency_ms: int, workdir: Path) -> dict[str, Any]:
    """Run every workload of ``profile``; returns the JSON document (see docs/PERFORMANCE.md)."""
    import aiohttp

    from gateway.benchmarks import workloads
    from gateway.benchmarks.report import Progress
    from gateway.benchmarks.stack import start_stack, wait_ready

    say = Progress()
    today = datetime.now(UTC).date()
    seed = build_seed(profile, today)
    by_domain: dict[str, list[dict[str, Any]]] = {}
    for mailbox in seed["mailboxes"]:
        by_domain.setdefault(mailbox["email"].split("@")[1], []).append(mailbox)
    say(f"starting the emulator: {len(seed['mailboxes'])} mailboxes, {latency_ms} ms per EWS request")
    emulator, emulator_url, gateway = await start_stack(
        seed, workdir, latency_ms, [CAL_DOMAIN, FB_DOMAIN, MEM_DOMAIN]
    )
    timeout = aiohttp.ClientTimeout(total=120)
    try:
        async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as session:
            await wait_ready(gateway, session)
            say(f"gateway ready (pid {gateway.pid}); connecting {profile.calendar_mailboxes} accounts")
            users = await _provision_all(
                gateway, session, [[m] for m in by_domain[CAL_DOMAIN]], "cal", profile.connect_parallel
            )
            ctx = workloads.Context(
                gateway,
                emulator_url,
                session,
                users,
                [m["email"] for m in by_domain[FB_DOMAIN]],
                month_of(today),
                profile.rounds,
                profile.warmup,
                profile.cold_rounds,
                profile.heavy_rounds,
                emulator.pid,
            )
            document = _header(profile, latency_ms, ctx)
            rows = []
            steps = (
                workloads.month_view,
                workloads.polls,
                workloads.task_list,
                workloads.writes,
                workloads.free_busy,
            )
            for step in steps:
                say(f"workload {step.__name__}")
                rows += await step(ctx)
            say("workload booking")
            rows += await _booking(ctx, by_domain[FB_DOMAIN], profile.visitors)
            document["workloads"] = [r.summary() for r in rows]
            say("workload cpu")
            document["cpu"] = await workloads.cpu(ctx, profile.cpu_views)
            document["concurrency"] = await _concurrency(profile, ctx, by_domain[FB_DOMAIN], say)
            document["memory"] = await _memory(profile, ctx, by_domain[MEM_DOMAIN], say)
            say("done")
            return document
    finally:
        gateway.process.stop()
        emulator.stop()


async def _provision_all(
    gateway: Gateway,
    session: aiohttp.ClientSession,
    groups: list[list[dict[str, Any]]],
    prefix: str,
    parallel: int,
) -> list[BenchUser]:
    """One gateway user per group of mailboxes, ``parallel`` connects at a time, in order."""
    from gateway.benchmarks.stack import provision

    gate = asyncio.Semaphore(parallel)

    async def one(number: int, group: list[dict[str, Any]]) -> list[BenchUser]:
        async with gate:
            return await provision(gateway, session, f"{prefix}{number:04d}", group)

    done = await asyncio.gather(*(one(n, g) for n, g in enumerate(groups, 1)))
    return [user for group in done for user in group]


async def _booking(ctx: workloads.Context, mailboxes: list[dict[str, Any]], visitors: int) -> list[Row]:
    """Workload 9 on the last two mailboxes of the free/busy set (the concurrency workload takes the first
    ones); the first mailbox of the set is the invitee."""
    from gateway.benchmarks.booking import booking

    return await booking(ctx, mailboxes[-2:], mailboxes[0]["email"], visitors)


async def _concurrency(
    profile: Profile, ctx: workloads.Context, mailboxes: list[dict[str, Any]], say: Progress
) -> list[dict[str, Any]]:
    """Workload 6 on accounts of the free/busy set, one window per client count of the profile.

    Their mailboxes have the 2,000-event density around today, so the month views are the same,
    without 50 first-time index builds of 2,000 items dominating the set-up.
    """
    from gateway.benchmarks import load

    most = max(profile.concurrent_clients)
    say(f"workload concurrency: connecting {most} accounts")
    load_users = await _provision_all(
        ctx.gateway, ctx.session, [[m] for m in mailboxes[:most]], "load", profile.connect_parallel
    )
    windows = []
    for clients in profile.concurrent_clients:
        say(f"{clients} clients for {profile.concurrency_seconds:.0f} s")
        windows.append(await load.concurrency(ctx, load_users[:clients], profile.concurrency_seconds))
    return windows


async def _memory(
    profile: Profile, ctx: workloads.Context, mailboxes: list[dict[str, Any]], say: Progress
) -> dict[str, Any]:
    """Workload 7: restart the gateway, connect the memory accounts, one month view each."""
    from gateway.benchmarks import load
    from gateway.benchmarks.stack import memory_kb, wait_ready

    per_user = profile.accounts_per_memory_user
    groups = [mailboxes[i : i + per_user] for i in range(0, len(mailboxes), per_user)]
    # A fresh gateway process (same data and key, as after a restart): the peak is this workload's alone.
    say("workload memory: restarting the gateway")
    ctx.gateway.restart()
    ctx.clients.clear()
    await wait_ready(ctx.gateway, ctx.session)
    fresh_mb = memory_kb(ctx.gateway.pid)["VmRSS"] / 1024
    say(f"connecting {len(mailboxes)} accounts ({len(groups)} users)")
    started = time.monotonic()
    users = await _provision_all(ctx.gateway, ctx.session, groups, "mem", profile.connect_parallel)
    connect_s = time.monotonic() - started
    say(f"connected in {connect_s:.0f} s; one month view per account")
    result = await load.memory(ctx, users, parallel=profile.memory_parallel)
    result.update(
        users=len(groups), connect_seconds=round(connect_s, 1), rss_fresh_process_mb=round(fresh_mb, 1)
    )
    return result


def _header(profile: Profile, latency_ms: int, ctx: workloads.Context) -> dict[str, Any]:
    from gateway.benchmarks.report import machine

    return {
        "machine": machine(),
        "profile": {
            **asdict(profile),
            "calendar_mailboxes": profile.calendar_mailboxes,
            "light_events": profile.light_events,
        },
        "latency_ms": latency_ms,
        "month": [ctx.month[0].isoformat(), ctx.month[1].isoformat()],
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
