"""An in-memory :class:`gateway.caldav.backend.Backend` for protocol tests.

Stores iCalendar texts per calendar with ETags and a change log (sync tokens), filters
by time range with recurring_ical_events, and derives free/busy from TRANSP and
X-MICROSOFT-CDO-BUSYSTATUS the way Exchange would report it.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime

import recurring_ical_events
from icalendar import Calendar

from gateway.caldav.backend import (
    Availability,
    Booked,
    Booking,
    BusyPeriod,
    CalendarInfo,
    CalendarObject,
    ChangeSet,
    Forbidden,
    FreeBusyResult,
    FreeBusyType,
    InvalidSyncToken,
    NotFound,
    Person,
    PreconditionFailed,
    Principal,
    PutResult,
    UidConflict,
    WorkingHours,
)

FAR_PAST = datetime(1900, 1, 1, tzinfo=UTC)
BUSY_STATUS: dict[str, FreeBusyType | None] = {
    "FREE": None,
    "TENTATIVE": "BUSY-TENTATIVE",
    "BUSY": "BUSY",
    "OOF": "BUSY-UNAVAILABLE",
    "WORKINGELSEWHERE": "BUSY-TENTATIVE",
}
_epochs = itertools.count(1)


@dataclass
class _Object:
    etag: str
    data: str
    uid: str


@dataclass
class MemoryCalendar:
    info: CalendarInfo
    objects: dict[str, _Object] = field(default_factory=dict)
    log: list[tuple[int, str]] = field(default_factory=list)  # (sequence, name) of every change
    seq: int = 0
    epoch: int = field(default_factory=lambda: next(_epochs))

    def token(self, seq: int | None = None) -> str:
        return f"urn:x-memory-sync:{self.epoch}:{self.seq if seq is None else seq}"

    def touch(self, name: str) -> None:
        self.seq += 1
        self.log.append((self.seq, name))
        self.info = replace(self.info, ctag=str(self.seq), sync_token=self.token())


def _uid(ical: str) -> str:
    parsed = Calendar.from_ical(ical)
    return str((parsed.walk("VEVENT") or parsed.walk("VTODO"))[0]["UID"])


def _etag(data: str) -> str:
    return hashlib.sha256(data.encode("utf-8")).hexdigest()[:20]


def _utc(value: date | datetime) -> datetime:
    if not isinstance(value, datetime):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class MemoryBackend:
    """Calendars keyed by principal username; ``fail`` maps a method name to an exception to raise."""

    def __init__(self) -> None:
        self.homes: dict[str, dict[str, MemoryCalendar]] = {}
        self.emails: dict[str, str] = {}  # email (lower) -> username, for free/busy of others
        self.no_data: set[str] = set()  # emails Exchange "has no data" for
        self.fail: dict[str, Exception] = {}
        self.free_busy_calls: list[tuple[list[str], datetime, datetime]] = []
        self.directory: list[Person] = []  # who search_principals finds
        self.searches: list[str] = []
        self.working_hours: WorkingHours | None = None  # what availability() reports for every user
        self.bookings: list[Booking] = []
        self.inboxes: dict[str, dict[str, str]] = {}  # username -> name -> iTIP text (scheduling inbox)

    # --- setup helpers -----------------------------------------------------------------------

    def add_user(self, principal: Principal, calendars: Sequence[str] = ("calendar",)) -> None:
        home = self.homes.setdefault(principal.username, {})
        for email in principal.emails:
            self.emails[email.lower()] = principal.username
        for index, calendar_id in enumerate(calendars):
            home[calendar_id] = self._new_calendar(
                calendar_id,
                calendar_id.title(),
                {},
                primary=index == 0,
                owner=principal.emails[0] if principal.emails else "",
            )

    def seed(self, username: str, calendar_id: str, name: str, ical: str) -> str:
        """Store an object directly; returns its ETag."""
        cal = self.homes[username][calendar_id]
        uid = _uid(ical)
        cal.objects[name] = _Object(_etag(ical), ical, uid)
        cal.touch(name)
        return cal.objects[name].etag

    def _new_calendar(
        self, calendar_id: str, name: str, props: dict[str, str], primary: bool = False, owner: str = ""
    ) -> MemoryCalendar:
        info = CalendarInfo(
            calendar_id=calendar_id,
            display_name=name,
            ctag="0",
            sync_token="",
            owner_email=owner,
            primary=primary,
        )
        cal = MemoryCalendar(info)
        cal.info = replace(self._apply(info, props), sync_token=cal.token())
        return cal

    @staticmethod
    def _apply(info: CalendarInfo, props: dict[str, str | None]) -> CalendarInfo:
        changes: dict[str, object] = {}
        for key, value in props.items():
            match key:
                case "{DAV:}displayname":
                    changes["display_name"] = value or info.calendar_id
                case "{http://apple.com/ns/ical/}calendar-color":
                    changes["color"] = value
                case "{http://apple.com/ns/ical/}calendar-order":
                    changes["order"] = int(value or 0)
                case "{urn:ietf:params:xml:ns:caldav}calendar-description":
                    changes["description"] = value or ""
        return replace(info, **changes)  # type: ignore[arg-type]

    def _cal(self, principal: Principal, calendar_id: str, method: str) -> MemoryCalendar:
        if method in self.fail:
            raise self.fail[method]
        try:
            return self.homes[principal.username][calendar_id]
        except KeyError:
            raise NotFound(f"There is no calendar {calendar_id!r}.") from None

    # --- Backend ----------------------------------------------------------------------------------

    async def calendars(self, principal: Principal) -> list[CalendarInfo]:
        if "calendars" in self.fail:
            raise self.fail["calendars"]
        return [c.info for c in self.homes.get(principal.username, {}).values()]

    async def calendar(self, principal: Principal, calendar_id: str, *, fresh: bool = True) -> CalendarInfo:
        return self._cal(principal, calendar_id, "calendar").info

    async def list_objects(self, principal: Principal, calendar_id: str) -> list[CalendarObject]:
        cal = self._cal(principal, calendar_id, "list_objects")
        return [CalendarObject(name, o.etag) for name, o in cal.objects.items()]

    async def query(
        self,
        principal: Principal,
        calendar_id: str,
        start: datetime | None,
        end: datetime | None,
        with_data: bool,
    ) -> list[CalendarObject]:
        cal = self._cal(principal, calendar_id, "query")
        found = []
        for name, obj in cal.objects.items():
            if start is None and end is None or self._overlaps(obj.data, start, end):
                found.append(CalendarObject(name, obj.etag, obj.data if with_data else None))
        return found

    @staticmethod
    def _overlaps(data: str, start: datetime | None, end: datetime | None) -> bool:
        query = recurring_ical_events.of(Calendar.from_ical(data))
        if end is None:
            return next(iter(query.after(start or FAR_PAST)), None) is not None
        return bool(query.between(start or FAR_PAST, end))

    async def get(
        self, principal: Principal, calendar_id: str, names: Sequence[str]
    ) -> dict[str, CalendarObject | None]:
        cal = self._cal(principal, calendar_id, "get")
        result: dict[str, CalendarObject | None] = {}
        for name in names:
            obj = cal.objects.get(name)
            result[name] = CalendarObject(name, obj.etag, obj.data) if obj else None
        return result

    async def changes(
        self, principal: Principal, calendar_id: str, sync_token: str | None, limit: int | None
    ) -> ChangeSet:
        cal = self._cal(principal, calendar_id, "changes")
        since = 0 if sync_token is None else self._parse_token(cal, sync_token)
        latest: dict[str, int] = {}
        for seq, name in cal.log:
            if seq > since:
                latest[name] = seq
        if sync_token is None:
            latest = {n: s for n, s in latest.items() if n in cal.objects}
        ordered = sorted(latest.items(), key=lambda item: item[1])
        truncated = limit is not None and len(ordered) > limit
        if truncated:
            ordered = ordered[:limit]
        token = cal.token(ordered[-1][1]) if truncated else cal.token()
        changed = [CalendarObject(n, cal.objects[n].etag) for n, _ in ordered if n in cal.objects]
        deleted = [n for n, _ in ordered if n not in cal.objects]
        return ChangeSet(token, changed, deleted, truncated)

    @staticmethod
    def _parse_token(cal: MemoryCalendar, token: str) -> int:
        prefix = f"urn:x-memory-sync:{cal.epoch}:"
        if not token.startswith(prefix) or not token[len(prefix) :].isdigit():
            raise InvalidSyncToken("The sync token is not one this calendar issued.")
        seq = int(token[len(prefix) :])
        if seq > cal.seq:
            raise InvalidSyncToken("The sync token is from the future.")
        return seq

    async def put(
        self,
        principal: Principal,
        calendar_id: str,
        name: str,
        ical: str,
        if_match: str | None,
        if_none_match: bool,
    ) -> PutResult:
        cal = self._cal(principal, calendar_id, "put")
        existing = cal.objects.get(name)
        if if_none_match and existing:
            raise PreconditionFailed("The object already exists.")
        if if_match is not None and (existing is None or existing.etag != if_match):
            raise PreconditionFailed("The object changed since you read it.")
        uid = _uid(ical)
        if existing is not None and existing.uid != uid:
            raise UidConflict("A PUT cannot change the UID of an existing resource.", name)
        for other_name, other in cal.objects.items():
            if other.uid == uid and other_name != name:
                raise UidConflict("Another object in this calendar already has this UID.", other_name)
        cal.objects[name] = _Object(_etag(ical), ical, uid)
        cal.touch(name)
        return PutResult(cal.objects[name].etag, existing is None)

    async def delete(self, principal: Principal, calendar_id: str, name: str, if_match: str | None) -> None:
        cal = self._cal(principal, calendar_id, "delete")
        existing = cal.objects.get(name)
        if existing is None:
            raise NotFound("No such calendar object.")
        if if_match is not None and existing.etag != if_match:
            raise PreconditionFailed("The object changed since you read it.")
        del cal.objects[name]
        cal.touch(name)

    async def create_calendar(
        self,
        principal: Principal,
        calendar_id: str,
        display_name: str,
        properties: dict[str, str],
        *,
        components: tuple[str, ...] = ("VEVENT",),
    ) -> CalendarInfo:
        if "create_calendar" in self.fail:
            raise self.fail["create_calendar"]
        home = self.homes.setdefault(principal.username, {})
        cal = self._new_calendar(calendar_id, display_name, properties)
        cal.info = replace(cal.info, components=components)
        home[calendar_id] = cal
        return cal.info

    async def update_calendar(
        self, principal: Principal, calendar_id: str, properties: dict[str, str | None]
    ) -> None:
        cal = self._cal(principal, calendar_id, "update_calendar")
        cal.info = self._apply(cal.info, properties)

    async def delete_calendar(self, principal: Principal, calendar_id: str) -> None:
        cal = self._cal(principal, calendar_id, "delete_calendar")
        if cal.info.primary:
            raise Forbidden("The mailbox's main calendar cannot be deleted.")
        del self.homes[principal.username][calendar_id]

    async def calendar_free_busy(
        self, principal: Principal, calendar_id: str, start: datetime, end: datetime
    ) -> list[BusyPeriod]:
        cal = self._cal(principal, calendar_id, "calendar_free_busy")
        return self._busy([cal], start, end)

    async def free_busy(
        self, principal: Principal, attendees: Sequence[str], start: datetime, end: datetime
    ) -> list[FreeBusyResult]:
        if "free_busy" in self.fail:
            raise self.fail["free_busy"]
        self.free_busy_calls.append((list(attendees), start, end))
        return [self._one(principal, a, start, end) for a in attendees]

    # --- the scheduling inbox: messages put there with ``deliver`` ------------------------------

    def deliver(self, username: str, name: str, itip: str) -> None:
        """A meeting message arrives in a user's scheduling inbox."""
        self.inboxes.setdefault(username, {})[name] = itip

    async def inbox_items(self, principal: Principal) -> list[CalendarObject]:
        return [CalendarObject(n, _etag(d)) for n, d in self.inboxes.get(principal.username, {}).items()]

    async def inbox_get(self, principal: Principal, names: Sequence[str]) -> dict[str, CalendarObject | None]:
        inbox = self.inboxes.get(principal.username, {})
        return {n: CalendarObject(n, _etag(inbox[n]), inbox[n]) if n in inbox else None for n in names}

    async def delete_inbox_item(self, principal: Principal, name: str, if_match: str | None) -> None:
        inbox = self.inboxes.get(principal.username, {})
        if name not in inbox:
            raise NotFound("No such message in the scheduling inbox.")
        if if_match is not None and _etag(inbox[name]) != if_match:
            raise PreconditionFailed("The message changed since you read it.")
        del inbox[name]

    async def search_principals(self, principal: Principal, text: str, limit: int) -> list[Person]:
        """As Exchange's ResolveNames: the start of an address or of a word of the name."""
        self.searches.append(text)
        needle = text.lower()
        return [
            p
            for p in self.directory
            if p.email.lower().startswith(needle)
            or any(w.lower().startswith(needle) for w in p.display_name.split())
        ][:limit]

    async def availability(
        self,
        principal: Principal,
        start: datetime,
        end: datetime,
        attendees: Sequence[str] = (),
        *,
        working_hours: bool = True,
    ) -> Availability:
        """Every own calendar counts for conflicts; attendees as :meth:`free_busy` answers them."""
        if "availability" in self.fail:
            raise self.fail["availability"]
        own = list(self.homes.get(principal.username, {}).values())
        others = [self._one(principal, a, start, end) for a in attendees]
        return Availability(self._busy(own, start, end), self.working_hours, others)

    async def book(self, principal: Principal, booking: Booking) -> Booked:
        """An event with the invitee as attendee in the default calendar (else the first)."""
        home = self.homes[principal.username]
        calendar_id = principal.default_calendar_id or next(iter(home))
        uid = booking.uid or f"booking-{len(self.bookings) + 1}"
        ical = (
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//memory//EN\r\nBEGIN:VEVENT\r\n"
            f"UID:{uid}\r\nDTSTAMP:20250101T000000Z\r\nSUMMARY:{booking.subject}\r\n"
            f"DTSTART:{booking.start.astimezone(UTC):%Y%m%dT%H%M%SZ}\r\n"
            f"DTEND:{booking.end.astimezone(UTC):%Y%m%dT%H%M%SZ}\r\n"
            f"ATTENDEE:mailto:{booking.invitee_email}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
        )
        self.bookings.append(booking)
        self.seed(principal.username, calendar_id, f"{uid}.ics", ical)
        return Booked(calendar_id, f"{uid}.ics", f"{uid}.ics")

    async def find_booked(self, principal: Principal, booking: Booking) -> Booked | None:
        home = self.homes[principal.username]
        calendar_id = principal.default_calendar_id or next(iter(home))
        name = f"{booking.uid}.ics"
        return Booked(calendar_id, name, name) if name in home[calendar_id].objects else None

    async def cancel(self, principal: Principal, booked: Booked) -> None:
        cal = self.homes[principal.username].get(booked.calendar_id)
        if cal is not None and cal.objects.pop(booked.handle, None) is not None:
            cal.touch(booked.handle)

    def _one(self, principal: Principal, attendee: str, start: datetime, end: datetime) -> FreeBusyResult:
        email = attendee.lower().removeprefix("mailto:")
        if email in self.no_data:
            return FreeBusyResult(attendee, "2.0", no_data=True, message="Exchange returned no data.")
        username = self.emails.get(email)
        if username is None:
            return FreeBusyResult(attendee, "3.7", message="Unknown calendar user.")
        calendars = list(self.homes.get(username, {}).values())
        if username != principal.username:
            calendars = [c for c in calendars if c.info.primary]
        return FreeBusyResult(attendee, "2.0", self._busy(calendars, start, end))

    @staticmethod
    def _busy(calendars: list[MemoryCalendar], start: datetime, end: datetime) -> list[BusyPeriod]:
        periods = []
        for cal in calendars:
            for obj in cal.objects.values():
                for event in recurring_ical_events.of(Calendar.from_ical(obj.data)).between(start, end):
                    fbtype = _fbtype(event)
                    if fbtype and "DTSTART" in event:
                        s = _utc(event.decoded("DTSTART"))
                        e = _utc(event.decoded("DTEND")) if "DTEND" in event else s
                        periods.append(BusyPeriod(max(s, start), min(e, end), fbtype))
        return periods


def _fbtype(event) -> FreeBusyType | None:
    if str(event.get("STATUS", "")).upper() == "CANCELLED":
        return None
    status = str(event.get("X-MICROSOFT-CDO-BUSYSTATUS", "")).upper()
    if status in BUSY_STATUS:
        return BUSY_STATUS[status]
    if str(event.get("TRANSP", "OPAQUE")).upper() == "TRANSPARENT":
        return None
    return "BUSY-TENTATIVE" if str(event.get("STATUS", "")).upper() == "TENTATIVE" else "BUSY"


class MemoryAuthenticator:
    """Username + password → principal, counting verifications (to test the cache)."""

    def __init__(self) -> None:
        self.users: dict[str, tuple[str, Principal]] = {}
        self.tokens: dict[str, Principal] = {}  # API tokens scoped to free/busy and booking
        self.calls = 0

    def add(self, principal: Principal, password: str) -> None:
        self.users[principal.username] = (password, principal)

    async def authenticate(self, username: str, password: str, client: str = "") -> Principal | None:
        self.calls += 1
        entry = self.users.get(username)
        return entry[1] if entry and entry[0] == password else None

    async def authenticate_token(self, token: str, client: str = "") -> Principal | None:
        self.calls += 1
        return self.tokens.get(token)


ALICE = Principal("u1", "alice", "Alice Adams", ("alice@example.com", "alice@other.example"))
BOB = Principal("u2", "bob", "Bob Brown", ("bob@example.com",))


def sample() -> tuple[MemoryBackend, MemoryAuthenticator]:
    """Alice (calendars "calendar" and "projects") and Bob (one calendar), passwords ``<name>-app-pw``."""
    backend, authenticator = MemoryBackend(), MemoryAuthenticator()
    backend.add_user(ALICE, ["calendar", "projects"])
    backend.add_user(BOB)
    authenticator.add(ALICE, "alice-app-pw")
    authenticator.add(BOB, "bob-app-pw")
    return backend, authenticator
