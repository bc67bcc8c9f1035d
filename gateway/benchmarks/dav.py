"""The CalDAV requests of the workloads, sent over real HTTP like a client would (RFC 4791, 6578, 6638)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiohttp
from lxml import etree

from gateway.benchmarks.stack import BenchUser

DAV = "{DAV:}"
CS = "{http://calendarserver.org/ns/}"
XML = {"Content-Type": "application/xml; charset=utf-8"}


class DavFailure(RuntimeError):
    """The gateway answered a workload request with an unexpected status."""


def stamp(value: datetime) -> str:
    """An iCalendar UTC DATE-TIME (RFC 5545 §3.3.5 form 2)."""
    return value.strftime("%Y%m%dT%H%M%SZ")


def month_query(start: datetime, end: datetime, component: str = "VEVENT") -> str:
    """calendar-query (RFC 4791 §7.8) for VEVENTs (VTODOs) in [start, end) with calendar-data: a month view."""
    return (
        '<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
        "<D:prop><D:getetag/><C:calendar-data/></D:prop>"
        f'<C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="{component}">'
        f'<C:time-range start="{stamp(start)}" end="{stamp(end)}"/>'
        "</C:comp-filter></C:comp-filter></C:filter></C:calendar-query>"
    )


CTAG_PROPFIND = (
    '<D:propfind xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/">'
    "<D:prop><CS:getctag/><D:sync-token/></D:prop></D:propfind>"
)
PRINCIPAL_PROPFIND = '<D:propfind xmlns:D="DAV:"><D:prop><D:displayname/></D:prop></D:propfind>'


def sync_collection(token: str) -> str:
    """RFC 6578 §3.2 sync-collection asking for ETags only (clients multiget what changed)."""
    return (
        f'<D:sync-collection xmlns:D="DAV:"><D:sync-token>{token}</D:sync-token>'
        "<D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>"
    )


def multiget(hrefs: list[str]) -> str:
    """calendar-multiget (RFC 4791 §7.9) with calendar-data."""
    refs = "".join(f"<D:href>{h}</D:href>" for h in hrefs)
    return (
        '<C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
        f"<D:prop><D:getetag/><C:calendar-data/></D:prop>{refs}</C:calendar-multiget>"
    )


def task_ics(uid: str, due: datetime, summary: str) -> str:
    """A VTODO due on a day (what a task client writes)."""
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//caldav-gateway bench//EN\r\nBEGIN:VTODO\r\n"
        f"UID:{uid}\r\nDTSTAMP:{stamp(due)}\r\nDUE;VALUE=DATE:{due:%Y%m%d}\r\nSUMMARY:{summary}\r\n"
        "END:VTODO\r\nEND:VCALENDAR\r\n"
    )


def event_ics(uid: str, start: datetime, summary: str) -> str:
    """A plain one-hour VEVENT as clients PUT it."""
    return "\r\n".join(
        [
            "BEGIN:VCALENDAR",
            "VERSION:2.0",
            "PRODID:-//caldav-gateway bench//EN",
            "BEGIN:VEVENT",
            f"UID:{uid}",
            f"DTSTAMP:{stamp(start)}",
            f"DTSTART:{stamp(start)}",
            f"DTEND:{stamp(start + timedelta(hours=1))}",
            f"SUMMARY:{summary}",
            "END:VEVENT",
            "END:VCALENDAR",
            "",
        ]
    )


def freebusy_request(organizer: str, attendees: list[str], start: datetime, end: datetime) -> str:
    """A VFREEBUSY METHOD:REQUEST for the scheduling outbox (RFC 6638 §3.2.4), as Thunderbird sends it."""
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//caldav-gateway bench//EN",
        "METHOD:REQUEST",
        "BEGIN:VFREEBUSY",
        f"UID:{uuid.uuid4()}",
        f"DTSTAMP:{stamp(start)}",
        f"DTSTART:{stamp(start)}",
        f"DTEND:{stamp(end)}",
        f"ORGANIZER:mailto:{organizer}",
    ]
    lines += [f"ATTENDEE:mailto:{a}" for a in attendees]
    return "\r\n".join([*lines, "END:VFREEBUSY", "END:VCALENDAR", ""])


@dataclass
class Timed:
    """One answered request: wall time, status and body."""

    seconds: float
    status: int
    body: bytes
    headers: Mapping[str, str]  # case-insensitive


class Rotation:
    """Gateway replicas' base URLs taken in turn for each request, as a round-robin load balancer
    (without sticky sessions) sends them; a replica marked down (its health check failing) is skipped.
    One URL: every request goes there."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        self.down: set[str] = set()
        self._turn = 0

    def take(self) -> str:
        for _ in self.urls:
            url = self.urls[self._turn % len(self.urls)]
            self._turn += 1
            if url not in self.down:
                return url
        return self.urls[0]  # all down: the request fails, as it would behind a balancer


@dataclass
class Sent:
    """Where a request went and when, for the soak's accounting of requests a killed replica held."""

    url: str
    started: float  # time.monotonic()
    ended: float
    ok: bool


class DavClient:
    """One user's CalDAV client (its own connection pool, Basic auth with the app password), to one
    gateway or to replicas in turn (a :class:`Rotation`); ``journal`` (if set) gets every request."""

    def __init__(self, base_url: str | Rotation, user: BenchUser, session: aiohttp.ClientSession) -> None:
        self.rotation = base_url if isinstance(base_url, Rotation) else Rotation([base_url])
        self.journal: list[Sent] | None = None
        self.user = user
        self.session = session
        self.auth = aiohttp.BasicAuth(user.username, user.app_password)

    async def send(
        self,
        method: str,
        path: str,
        body: str = "",
        headers: dict[str, str] | None = None,
        expect: tuple[int, ...] = (200, 207),
    ) -> Timed:
        """Send one request; the time covers sending it and reading the whole answer."""
        base_url = self.rotation.take()
        started, began = time.perf_counter(), time.monotonic()
        ok = False
        try:
            async with self.session.request(
                method, base_url + path, data=body.encode(), headers=headers, auth=self.auth
            ) as response:
                data = await response.read()
                elapsed = time.perf_counter() - started
                if response.status not in expect:
                    raise DavFailure(f"{method} {path}: HTTP {response.status}")
                ok = True
                return Timed(elapsed, response.status, data, response.headers.copy())
        finally:
            if self.journal is not None:
                self.journal.append(Sent(base_url, began, time.monotonic(), ok))

    @property
    def base_url(self) -> str:
        """The first (or only) gateway's base URL."""
        return self.rotation.urls[0]

    async def month_view(self, start: datetime, end: datetime) -> Timed:
        # a task list's month view asks for tasks (DavMail's side of `bench --peer` has calendars only)
        component = "VTODO" if getattr(self.user, "collection", "calendar") == "tasks" else "VEVENT"
        return await self.send(
            "REPORT", self.user.calendar_path, month_query(start, end, component), {**XML, "Depth": "1"}
        )

    async def ctag(self) -> Timed:
        return await self.send("PROPFIND", self.user.calendar_path, CTAG_PROPFIND, {**XML, "Depth": "0"})

    async def sync(self, token: str) -> Timed:
        return await self.send("REPORT", self.user.calendar_path, sync_collection(token), XML)

    async def multiget(self, hrefs: list[str]) -> Timed:
        return await self.send("REPORT", self.user.calendar_path, multiget(hrefs), {**XML, "Depth": "1"})

    async def sign_in(self) -> Timed:
        """A principal PROPFIND: the app password is verified (slow hash) once, outside the timings."""
        return await self.send(
            "PROPFIND", f"/dav/principals/{self.user.username}/", PRINCIPAL_PROPFIND, {**XML, "Depth": "0"}
        )

    async def put(self, name: str, ics: str, etag: str | None = None) -> Timed:
        headers = {"Content-Type": "text/calendar; charset=utf-8"}
        headers.update({"If-Match": etag} if etag else {"If-None-Match": "*"})
        return await self.send("PUT", self.user.calendar_path + name, ics, headers, expect=(201, 204))

    async def etag_after_put(self, name: str, answer: Timed) -> str:
        """The ETag a PUT answered with, or (RFC 4791 §5.3.4: none when the server changed the data) a GET's."""
        etag = answer.headers.get("ETag")
        if etag:
            return etag
        return (await self.send("GET", self.user.calendar_path + name, expect=(200,))).headers["ETag"]

    async def delete(self, name: str, etag: str) -> Timed:
        return await self.send(
            "DELETE", self.user.calendar_path + name, "", {"If-Match": etag}, expect=(204,)
        )

    async def outbox(self, attendees: list[str], start: datetime, end: datetime) -> Timed:
        body = freebusy_request(self.user.email, attendees, start, end)
        return await self.send(
            "POST", self.user.outbox_path, body, {"Content-Type": "text/calendar; charset=utf-8"}
        )


def responses(body: bytes) -> int:
    """How many DAV:response elements a multistatus holds."""
    return len(etree.fromstring(body).findall(f"{DAV}response"))


def sync_token_of(body: bytes) -> str:
    """The DAV:sync-token of a sync-collection answer or of a PROPFIND."""
    root = etree.fromstring(body)
    token = root.findtext(f"{DAV}sync-token") or root.findtext(f".//{DAV}sync-token")
    if not token:
        raise DavFailure("no sync-token in the answer")
    return token


def changed_hrefs(body: bytes) -> list[str]:
    """The hrefs of a sync-collection answer that were changed (not deleted)."""
    hrefs = []
    for response in etree.fromstring(body).findall(f"{DAV}response"):
        if response.find(f"{DAV}propstat") is not None:
            hrefs.append(response.findtext(f"{DAV}href"))
    return hrefs
