"""``python -m gateway bench --peer davmail``: the gateway and DavMail side by side on one emulator.

Both are CalDAV-to-EWS gateways. The same emulator (generated 2,000-event mailbox, the run's added
latency) serves both; the same CalDAV requests go to each, round by round, gateway then DavMail, for the
same mailbox: the month view (calendar-query with calendar-data), an unchanged poll (ctag PROPFIND), a
GET of one event, a PUT that creates one, its DELETE, and scheduling-outbox free/busy of 1 and 10
attendees over 30 days. Each row gives the median and p95 time of both, the EWS round trips each
caused (the emulator's counters for the mailbox, plus the requests it answered 401: DavMail
authenticates each request after a challenge) and whether both gave the same result (for the month
view: the same occurrences, expanded from the answers). The first request of each warms up (DavMail's
sign-in reads a dozen folders).
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import icalendar
import recurring_ical_events
from lxml import etree

from gateway.bench import CAL_DOMAIN, FB_DOMAIN, LIGHT_SPAN_DAYS, Profile, month_of
from gateway.benchmarks import dav
from gateway.benchmarks import davmail as davmail_process
from gateway.benchmarks.report import Progress, machine, ms, percentile
from gateway.benchmarks.stack import (
    BenchUser,
    Gateway,
    provision,
    start_stack,
    wait_ready,
)
from gateway.ews.emulator.generator import generate_mailboxes

FREEBUSY_DAYS = 30
NOT_EWS = frozenset({"Autodiscover"})
CALDAV_DATA = "{urn:ietf:params:xml:ns:caldav}calendar-data"


@dataclass(frozen=True)
class PeerAccount:
    """A mailbox as DavMail's CalDAV clients address it: the Exchange address and password."""

    email: str
    app_password: str

    @property
    def username(self) -> str:
        return self.email

    @property
    def calendar_path(self) -> str:
        return f"/users/{self.email}/calendar/"

    @property
    def outbox_path(self) -> str:
        return f"/users/{self.email}/outbox/"


@dataclass
class PeerRow:
    """One workload: samples (seconds) and EWS calls per operation, for the gateway and for DavMail."""

    name: str
    gateway: list[float] = field(default_factory=list)
    peer: list[float] = field(default_factory=list)
    gateway_calls: list[int] = field(default_factory=list)
    peer_calls: list[int] = field(default_factory=list)
    peer_challenged: list[int] = field(default_factory=list)  # DavMail's requests answered 401
    same: list[bool] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        gw, pr = percentile(self.gateway, 50), percentile(self.peer, 50)
        return {
            "name": self.name,
            "rounds": len(self.gateway),
            "gateway_ms": {"median": ms(gw), "p95": ms(percentile(self.gateway, 95))},
            "davmail_ms": {"median": ms(pr), "p95": ms(percentile(self.peer, 95))},
            "davmail_over_gateway": round(pr / gw, 2) if gw else None,
            "gateway_ews_calls": _mean(self.gateway_calls),
            "davmail_ews_calls": _mean(self.peer_calls),
            "davmail_401_legs": _mean(self.peer_challenged),
            "same_result": all(self.same) if self.same else None,
        }


def _mean(values: list[int]) -> float | None:
    return round(sum(values) / len(values), 2) if values else None


class Side:
    """One CalDAV front (the gateway or DavMail) and how to count the EWS calls it causes."""

    def __init__(self, client: dav.DavClient, emulator_url: str, email: str) -> None:
        self.client = client
        self.emulator_url = emulator_url
        self.email = email

    async def _calls(self) -> tuple[int, int]:
        """EWS requests so far: authenticated ones of the mailbox, and those answered 401 (any caller:
        the workloads run one request at a time)."""
        async with self.client.session.get(self.emulator_url + "/_emulator/stats") as response:
            stats = await response.json()
        counts = stats["mailboxes"].get(self.email, {})
        return sum(n for op, n in counts.items() if op not in NOT_EWS), stats.get("unauthenticated", 0)

    async def timed(self, op: Callable[[], Awaitable[Any]]) -> tuple[float, int, int, Any]:
        """(seconds, EWS round trips including 401 legs, of which 401 legs, result) of one request."""
        calls, challenged = await self._calls()
        started = time.perf_counter()
        result = await op()
        elapsed = time.perf_counter() - started
        after, challenged_after = await self._calls()
        legs = challenged_after - challenged
        return elapsed, after - calls + legs, legs, result


def occurrences(body: bytes, start: datetime, end: datetime) -> set[tuple]:
    """(UID, start, end) of every occurrence in [start, end) of a multistatus' calendar objects."""
    found = set()
    for data in etree.fromstring(body).iter(CALDAV_DATA):
        for event in recurring_ical_events.of(icalendar.Calendar.from_ical(data.text)).between(start, end):
            begin, finish = event.decoded("DTSTART"), event.decoded("DTEND")
            if isinstance(begin, datetime):
                begin, finish = begin.astimezone(UTC), finish.astimezone(UTC)
            found.add((str(event["UID"]), begin, finish))
    return found


def _single_events(body: bytes) -> dict[str, str]:
    """UID → href of the calendar objects of a multistatus that are one plain event each."""
    found = {}
    for response in etree.fromstring(body).iter("{DAV:}response"):
        data = response.find(f".//{CALDAV_DATA}")
        if data is None or data.text is None:
            continue
        events = icalendar.Calendar.from_ical(data.text).walk("VEVENT")
        if len(events) == 1 and "RRULE" not in events[0]:
            found[str(events[0]["UID"])] = response.findtext("{DAV:}href")
    return found


async def _measure(
    row: PeerRow,
    sides: tuple[Side, Side],
    op: Callable[[int, Side], Awaitable[Any]],
    same: Callable[[Any, Any], bool] | None = None,
) -> list[Any]:
    """One round of a workload: the gateway's request, then DavMail's, each timed and counted."""
    results = []
    for index, side in enumerate(sides):
        elapsed, count, legs, result = await side.timed(lambda i=index, s=side: op(i, s))
        (row.gateway if index == 0 else row.peer).append(elapsed)
        (row.gateway_calls if index == 0 else row.peer_calls).append(count)
        if index == 1:
            row.peer_challenged.append(legs)
        results.append(result)
    if same is not None:
        row.same.append(same(*results))
    return results


async def workloads(
    sides: tuple[Side, Side], rounds: int, month: tuple[datetime, datetime], attendees: list[str]
) -> list[PeerRow]:
    """Every workload ``rounds`` times, gateway then DavMail each time, after one unrecorded round that
    warms both up (DavMail's first request signs in: a dozen folder reads)."""
    rows = [PeerRow(name) for name in _NAMES]
    for number in range(rounds + 1):
        await _one_round(sides, rows if number else [PeerRow(name) for name in _NAMES], month, attendees)
    return rows


async def _one_round(
    sides: tuple[Side, Side], rows: list[PeerRow], month: tuple[datetime, datetime], attendees: list[str]
) -> None:
    view, poll, get, create, delete, fb_one, fb_many = rows
    start, end = month
    answers = await _measure(
        view,
        sides,
        lambda i, side: side.client.month_view(start, end),
        lambda a, b: occurrences(a.body, start, end) == occurrences(b.body, start, end),
    )
    await _measure(poll, sides, lambda i, side: side.client.ctag())
    singles = [_single_events(a.body) for a in answers]
    uid = sorted(set(singles[0]) & set(singles[1]))[0]  # the same event, by each one's href
    await _measure(
        get,
        sides,
        lambda i, side: side.client.send("GET", _path(singles[i][uid]), expect=(200,)),
        lambda a, b: _same_event(a.body, b.body),
    )
    when = start + timedelta(days=5, hours=7)
    uids = [f"peer-{uuid.uuid4()}" for _ in sides]
    await _measure(
        create,
        sides,
        lambda i, side: side.client.put(f"{uids[i]}.ics", dav.event_ics(uids[i], when, "Peer")),
        lambda a, b: a.status == b.status == 201,
    )
    await _measure(
        delete,
        sides,
        lambda i, side: side.client.send(
            "DELETE", f"{side.client.user.calendar_path}{uids[i]}.ics", expect=(200, 204)
        ),
    )
    window = (start, start + timedelta(days=FREEBUSY_DAYS))
    await _measure(fb_one, sides, lambda i, side: side.client.outbox(attendees[:1], *window))
    await _measure(fb_many, sides, lambda i, side: side.client.outbox(attendees, *window))


_NAMES = (
    "1 month view",
    "2 unchanged poll (ctag)",
    "3 GET one event",
    "4 PUT create",
    "5 DELETE",
    "6 free/busy, 1 attendee (30 days)",
    "6 free/busy, 10 attendees (30 days)",
)


def _path(href: str) -> str:
    return re.sub(r"^https?://[^/]+", "", href)


def _same_event(a: bytes, b: bytes) -> bool:
    def key(text: bytes) -> tuple:
        (event,) = icalendar.Calendar.from_ical(text).walk("VEVENT")
        begin, finish = event.decoded("DTSTART"), event.decoded("DTEND")
        if isinstance(begin, datetime):
            begin, finish = begin.astimezone(UTC), finish.astimezone(UTC)
        return str(event["UID"]), begin, finish, str(event["SUMMARY"])

    return key(a) == key(b)


# --- the run ------------------------------------------------------------------------------------


def build_seed(profile: Profile, today: date, attendees: int) -> dict[str, Any]:
    """One 2,000-event mailbox (as the benchmark's) and ``attendees`` free/busy mailboxes of its density."""
    seed = generate_mailboxes(
        1, profile.events_per_mailbox, profile.span_days, seed=1, today=today, domain=CAL_DOMAIN
    )
    others = generate_mailboxes(
        attendees, profile.light_events, LIGHT_SPAN_DAYS, seed=2, today=today, domain=FB_DOMAIN
    )
    seed["mailboxes"] += others["mailboxes"]
    seed["autodiscover"].update(others["autodiscover"])
    return seed


def versions(installation: davmail_process.Installation | None, log: str) -> dict[str, str]:
    """What ran: DavMail's version (from its start-up line) and Java's."""
    found = re.search(r"DavMail Gateway (\S+)", log)
    java = ""
    if installation is not None:
        done = subprocess.run([installation.java, "-version"], capture_output=True, text=True, timeout=30)
        java = (done.stderr or done.stdout).splitlines()[0] if (done.stderr or done.stdout) else ""
    return {"davmail": found.group(1) if found else "unknown", "java": java}


async def compare(profile: Profile, latency_ms: int, workdir: Path, attendees: int = 10) -> dict[str, Any]:
    """Start the emulator, the gateway and DavMail; run the workloads; the JSON document."""
    today = datetime.now(UTC).date()
    seed = build_seed(profile, today, attendees)
    mailbox = seed["mailboxes"][0]
    fb = [m["email"] for m in seed["mailboxes"][1:]]
    say = Progress()
    say(f"starting the emulator ({profile.events_per_mailbox} events, {latency_ms} ms per EWS request)")
    emulator, emulator_url, gateway = await start_stack(seed, workdir, latency_ms, [CAL_DOMAIN, FB_DOMAIN])
    peer = None
    try:
        peer = await asyncio.to_thread(
            davmail_process.start, emulator_url + "/EWS/Exchange.asmx", workdir / "davmail"
        )
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
            await wait_ready(gateway, session)
            (user,) = await provision(gateway, session, "peer0001", [mailbox])
            sides = _sides(gateway, peer, user, session, emulator_url)
            await sides[0].client.sign_in()
            say(f"gateway and DavMail {peer.base_url} ready; {profile.rounds} rounds after a warm-up")
            rows = await workloads(sides, profile.rounds, month_of(today), fb)
        say("done")
        return {
            "machine": machine(),
            "versions": versions(davmail_process.find_installation(), peer.process.output()),
            "profile": profile.name,
            "events": profile.events_per_mailbox,
            "attendees": attendees,
            "latency_ms": latency_ms,
            "month": [d.isoformat() for d in month_of(today)],
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "workloads": [r.summary() for r in rows],
        }
    finally:
        if peer is not None:
            peer.stop()
        gateway.process.stop()
        emulator.stop()


def _sides(gateway: Gateway, peer: Any, user: BenchUser, session: aiohttp.ClientSession, emulator_url: str):
    account = PeerAccount(user.email, user.exchange_password)
    return (
        Side(dav.DavClient(gateway.base_url, user, session), emulator_url, user.email),
        Side(dav.DavClient(peer.base_url, account, session), emulator_url, user.email),  # type: ignore[arg-type]
    )


def table(document: dict[str, Any]) -> str:
    """The side-by-side table printed at the end, and the month view's ratio."""
    lines = [
        f"{'workload':<38} {'gateway ms':>10} {'p95':>8} {'DavMail ms':>11} {'p95':>9} {'DavMail/gw':>10} "
        f"{'EWS gw':>7} {'DavMail':>8} {'(401)':>6}  same",
    ]
    for row in document["workloads"]:
        gw, pr = row["gateway_ms"], row["davmail_ms"]
        same = {True: "yes", False: "NO", None: "-"}[row["same_result"]]
        lines.append(
            f"{row['name']:<38} {gw['median']:>10.1f} {gw['p95']:>8.1f} {pr['median']:>11.1f} {pr['p95']:>9.1f} "
            f"{row['davmail_over_gateway'] or 0:>10.2f} {row['gateway_ews_calls']:>7.2f} {row['davmail_ews_calls']:>8.2f} {row['davmail_401_legs']:>6.1f}  {same}"
        )
    view, host = document["workloads"][0], document["machine"]
    lines.append(
        f"month view of the {document['events']:,}-event mailbox: DavMail/gateway = {view['davmail_over_gateway']} "
        f"({view['davmail_ms']['median']:.0f} ms and {view['davmail_ews_calls']:.0f} EWS calls against "
        f"{view['gateway_ms']['median']:.0f} ms and {view['gateway_ews_calls']:.0f})"
    )
    lines.append(
        f"DavMail {document['versions']['davmail']} on {document['versions']['java']}; {host['nproc']} CPUs "
        f"({host['cpu_model']}), Python {host['python']}, {document['latency_ms']} ms per EWS request"
    )
    return "\n".join(lines)
