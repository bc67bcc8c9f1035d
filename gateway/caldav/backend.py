"""The small interface the CalDAV protocol layer needs from a calendar store.

``gateway/caldav`` speaks only to :class:`Backend` and :class:`Authenticator`;
``gateway/ews/backend/`` implements them over Exchange, and the tests have an
in-memory double. Nothing here knows about HTTP or EWS.

Identifiers:
- a calendar is named by ``calendar_id``: one URL path segment, stable, URL-safe,
  never ``inbox`` or ``outbox`` (those names are the scheduling collections);
- a calendar object resource is named by ``name``: its last URL path segment
  (usually ``<something>.ics``), stable across reads and restarts;
- ETags are opaque strings **without** the surrounding quotes; the protocol layer
  adds quotes on the wire and strips them from ``If-Match``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Literal, Protocol

RESERVED_CALENDAR_IDS = frozenset({"inbox", "outbox"})


@dataclass(frozen=True)
class Principal:
    """An authenticated gateway user (RFC 3744 principal)."""

    user_id: str
    username: str  # the URL segment of the principal and calendar home
    display_name: str
    emails: tuple[str, ...] = ()  # the connected mailboxes' addresses, primary first
    # The calendar the user chose for new events (RFC 6638 §9.2 schedule-default-calendar-URL); None when
    # the user has no calendar yet.
    default_calendar_id: str | None = None


CalendarUserType = Literal["INDIVIDUAL", "GROUP", "RESOURCE", "ROOM", "UNKNOWN"]


@dataclass(frozen=True)
class Person:
    """Someone of the directory a principal search found (RFC 3744 §9.4): a person, a room or a group,
    with their RFC 6638 §2.4.2 calendar-user-type."""

    email: str
    display_name: str
    user_type: CalendarUserType = "INDIVIDUAL"


@dataclass(frozen=True)
class CalendarInfo:
    """A calendar collection (RFC 4791 §4.2) as the protocol presents it."""

    calendar_id: str
    display_name: str
    ctag: str  # changes exactly when the collection's content changes
    sync_token: str  # an RFC 6578 token (a URI) for the current state
    owner_email: str = ""
    description: str = ""
    color: str | None = None  # "#RRGGBB" or "#RRGGBBAA" (Apple calendar-color)
    order: int = 0  # Apple calendar-order
    timezone: str | None = None  # a VCALENDAR text holding one VTIMEZONE (calendar-timezone)
    components: tuple[str, ...] = ("VEVENT",)  # ("VTODO",) for a task list
    writable: bool = True
    primary: bool = False  # the mailbox's own Calendar (or Tasks) folder: cannot be deleted


@dataclass(frozen=True)
class CalendarObject:
    """A calendar object resource (RFC 4791 §4.1)."""

    name: str
    etag: str
    data: str | None = None  # the iCalendar text; None when only the ETag was asked for


@dataclass(frozen=True)
class ChangeSet:
    """The answer to an RFC 6578 sync-collection request."""

    sync_token: str
    changed: list[CalendarObject] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)  # names of removed resources
    truncated: bool = False  # more changes remain: the client must ask again with sync_token
    # The collection as seen by this change check (saves the protocol layer a second look-up), if the
    # backend provides it.
    calendar: CalendarInfo | None = None


@dataclass(frozen=True)
class PutResult:
    """``etag`` only when the stored object is octet-identical to the request (RFC 4791 §5.3.4)."""

    etag: str | None
    created: bool


FreeBusyType = Literal["BUSY", "BUSY-TENTATIVE", "BUSY-UNAVAILABLE", "FREE"]


@dataclass(frozen=True)
class BusyPeriod:
    start: datetime  # aware, UTC
    end: datetime  # aware, UTC
    fbtype: FreeBusyType = "BUSY"


@dataclass(frozen=True)
class WorkingPeriod:
    """Working time on some weekdays (EWS ``t:WorkingPeriod``), in minutes after local midnight."""

    weekdays: tuple[int, ...]  # 0 = Monday … 6 = Sunday
    start_minute: int
    end_minute: int


@dataclass(frozen=True)
class WorkingHours:
    """A mailbox's working hours as Exchange keeps them (EWS ``t:WorkingHours``): periods in ``zone``,
    the mailbox's own time zone."""

    zone: tzinfo
    periods: tuple[WorkingPeriod, ...]


@dataclass(frozen=True)
class FreeBusyResult:
    """One recipient's answer (RFC 6638 §3.2.10 request-status codes).

    ``status`` is ``"2.0"`` on success, ``"3.7"`` for an unknown calendar user,
    ``"3.8"`` when the user may not read that calendar, ``"5.1"``/``"5.3"`` when
    Exchange could not answer. ``no_data`` marks a mailbox Exchange returned no
    data for: it must not be presented as free.
    """

    attendee: str  # mailto: address as the request named it
    status: str
    periods: list[BusyPeriod] = field(default_factory=list)
    message: str = ""
    no_data: bool = False
    working_hours: WorkingHours | None = None  # the mailbox's, when Exchange said (GetUserAvailability)


@dataclass(frozen=True)
class Availability:
    """A user's own availability over a window, for a scheduling tool (the booking API).

    ``busy`` merges every calendar the user checks for conflicts, across all connected accounts;
    ``working_hours`` are those of the first account's mailbox (None when Exchange gave none);
    ``attendees`` holds the free/busy of other people asked for, in order.
    """

    busy: list[BusyPeriod]
    working_hours: WorkingHours | None
    attendees: list[FreeBusyResult] = field(default_factory=list)


@dataclass(frozen=True)
class Booking:
    """A meeting to create for a scheduling tool: the user organises it, the invitee is invited."""

    start: datetime  # aware
    end: datetime
    subject: str
    invitee_email: str
    invitee_name: str = ""
    description: str = ""
    location: str = ""
    uid: str = ""  # the event's UID (RFC 5545 §3.8.4.7), chosen by the caller so a retry can find it; "": any


@dataclass(frozen=True)
class Booked:
    """A created booking: where it is, and the backend's own handle to cancel it (opaque)."""

    calendar_id: str
    name: str  # the resource name in that calendar (RFC 4791 §4.1)
    handle: str


# --- errors a backend raises; the protocol layer maps each to a status code ------------


class BackendError(Exception):
    """Base class. ``str(error)`` is a sentence a human can read (no secrets)."""


class NotFound(BackendError):
    """The calendar or object does not exist (404)."""


class PreconditionFailed(BackendError):
    """``If-Match``/``If-None-Match`` did not hold, or the item changed meanwhile (412)."""


class Forbidden(BackendError):
    """The operation is not allowed (403), e.g. deleting the primary calendar.

    ``precondition`` names a CalDAV/WebDAV precondition element in Clark notation
    (``{urn:ietf:params:xml:ns:caldav}supported-calendar-component``) when one applies.
    """

    def __init__(self, message: str, precondition: str | None = None) -> None:
        super().__init__(message)
        self.precondition = precondition


class InvalidCalendarData(BackendError):
    """The iCalendar body cannot be stored as given (400/403 with a CalDAV precondition)."""

    def __init__(self, message: str, precondition: str, status: int = 403) -> None:
        super().__init__(message)
        self.precondition = precondition
        self.status = status


class UidConflict(BackendError):
    """RFC 4791 §5.3.2.1 no-uid-conflict: another resource in the collection already holds this UID, or
    the PUT would change the UID of the existing resource ``existing_name``."""

    def __init__(self, message: str, existing_name: str) -> None:
        super().__init__(message)
        self.existing_name = existing_name


class InvalidSyncToken(BackendError):
    """The sync-token is unknown or expired (RFC 6578 §3.2 valid-sync-token)."""


class InsufficientStorage(BackendError):
    """The mailbox is over its quota (507)."""


class BackendUnavailable(BackendError):
    """Exchange is unreachable or failing (503 with Retry-After)."""

    def __init__(self, message: str, retry_after: int = 30) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Backend(Protocol):
    """What the CalDAV layer asks of a calendar store. Every method is a coroutine."""

    async def calendars(self, principal: Principal) -> list[CalendarInfo]:
        """All calendars of the principal, the primary calendar of the first account first."""

    async def calendar(self, principal: Principal, calendar_id: str, *, fresh: bool = True) -> CalendarInfo:
        """One calendar; raises NotFound (also for another user's calendar).

        ``fresh=False`` means the caller needs the collection's identity, not an
        up-to-date ctag/sync-token: the backend may then skip asking the store
        for changes (a round trip to Exchange).
        """

    async def list_objects(self, principal: Principal, calendar_id: str) -> list[CalendarObject]:
        """Every object's name and ETag (data None): the Depth-1 PROPFIND listing."""

    async def query(
        self,
        principal: Principal,
        calendar_id: str,
        start: datetime | None,
        end: datetime | None,
        with_data: bool,
    ) -> list[CalendarObject]:
        """Objects with an instance overlapping [start, end) (RFC 4791 §9.9; None = open).

        A recurring series is returned whole (master + overrides) when any instance
        overlaps. The protocol layer applies the finer filters itself.
        """

    async def get(
        self, principal: Principal, calendar_id: str, names: Sequence[str]
    ) -> dict[str, CalendarObject | None]:
        """Objects with data, by name; None for a name that does not exist (multiget, GET)."""

    async def changes(
        self, principal: Principal, calendar_id: str, sync_token: str | None, limit: int | None
    ) -> ChangeSet:
        """RFC 6578: everything (token None) or what changed since the token, data None.

        Raises InvalidSyncToken for a token it does not know.
        """

    async def put(
        self,
        principal: Principal,
        calendar_id: str,
        name: str,
        ical: str,
        if_match: str | None,
        if_none_match: bool,
    ) -> PutResult:
        """Create or replace an object (RFC 4791 §5.3.2). if_none_match means ``If-None-Match: *``.

        Raises UidConflict (RFC 4791 §5.3.2.1 no-uid-conflict) when another resource holds the body's UID,
        or when ``name`` exists with another UID (``existing_name`` is then ``name``): a UID is never
        changed by a PUT.
        """

    async def delete(self, principal: Principal, calendar_id: str, name: str, if_match: str | None) -> None:
        """Delete an object (a recurring series whole)."""

    async def create_calendar(
        self,
        principal: Principal,
        calendar_id: str,
        display_name: str,
        properties: dict[str, str],
        *,
        components: tuple[str, ...] = ("VEVENT",),
    ) -> CalendarInfo:
        """MKCALENDAR / extended MKCOL (RFC 4791 §5.3.1, RFC 5689).

        ``properties`` holds the other writable properties the request set, keyed by Clark
        name as in :meth:`update_calendar`. ``components`` is what the collection holds:
        ``("VEVENT",)`` for a calendar, ``("VTODO",)`` for a task list.
        """

    async def update_calendar(
        self, principal: Principal, calendar_id: str, properties: dict[str, str | None]
    ) -> None:
        """PROPPATCH of writable collection properties (None removes).

        Only the properties the CalDAV layer's registry marks writable are handed over
        (``gateway.caldav.properties.writable``), so a backend stores what it gets. Keys are Clark
        names: ``{DAV:}displayname``, ``{http://apple.com/ns/ical/}calendar-color``,
        ``{http://apple.com/ns/ical/}calendar-order``, ``{urn:ietf:params:xml:ns:caldav}calendar-description``;
        values are the elements' texts.
        """

    async def delete_calendar(self, principal: Principal, calendar_id: str) -> None:
        """DELETE of a calendar collection; Forbidden for the primary calendar."""

    async def calendar_free_busy(
        self, principal: Principal, calendar_id: str, start: datetime, end: datetime
    ) -> list[BusyPeriod]:
        """free-busy-query REPORT on one collection (RFC 4791 §7.10)."""

    async def free_busy(
        self, principal: Principal, attendees: Sequence[str], start: datetime, end: datetime
    ) -> list[FreeBusyResult]:
        """Free/busy of several calendar users, one result per attendee in order (RFC 6638 §3.2).

        An attendee that is one of the principal's own addresses gets the merged
        free/busy of every calendar the principal selected for conflict checking.
        """

    async def inbox_items(self, principal: Principal) -> list[CalendarObject]:
        """The scheduling inbox (RFC 6638 §2.2): one resource per meeting request or cancellation waiting
        in the principal's mailboxes, names and ETags (data None)."""

    async def inbox_get(self, principal: Principal, names: Sequence[str]) -> dict[str, CalendarObject | None]:
        """Inbox resources with their iTIP text (RFC 5546: METHOD:REQUEST, or METHOD:CANCEL with
        STATUS:CANCELLED), by name; None for a name that is not in the inbox."""

    async def delete_inbox_item(self, principal: Principal, name: str, if_match: str | None) -> None:
        """Remove a message from the inbox (NotFound if absent, PreconditionFailed if ``if_match`` is not
        its ETag); the meeting it is about stays in the calendar."""

    async def search_principals(self, principal: Principal, text: str, limit: int) -> list[Person]:
        """People of the directory whose name or address matches ``text`` (non-empty), at most ``limit``
        (RFC 3744 §9.4 principal-property-search; also a directory principal's PROPFIND by address)."""

    async def availability(
        self,
        principal: Principal,
        start: datetime,
        end: datetime,
        attendees: Sequence[str] = (),
        *,
        working_hours: bool = True,
    ) -> Availability:
        """The principal's busy time (every conflict calendar merged), their mailbox's working hours and
        the other ``attendees``' free/busy, asked of the store now (no cache). ``working_hours=False``: the
        caller has its own (``Availability.working_hours`` may then be None), which may spare a request.
        Raises BackendUnavailable when the principal's own busy time cannot be known."""

    async def book(self, principal: Principal, booking: Booking) -> Booked:
        """Create the meeting in the calendar the principal chose for new events (RFC 6638 §9.2
        schedule-default-calendar-URL), inviting the invitee; NotFound without such a calendar."""

    async def find_booked(self, principal: Principal, booking: Booking) -> Booked | None:
        """The meeting with ``booking.uid`` at the booking's time in the calendar for new events, if it is
        there: a booking whose answer was lost may have been made all the same."""

    async def cancel(self, principal: Principal, booked: Booked) -> None:
        """Delete a booking's meeting, cancelling it for the invitee; nothing when it is already gone."""


class TooManyFailures(Exception):
    """Too many failed sign-ins lately: refused without checking the password (429, RFC 6585 §4).

    ``str()`` is a sentence for the client; ``retry_after`` is in whole seconds.
    """

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Authenticator(Protocol):
    async def authenticate(self, username: str, password: str, client: str = "") -> Principal | None:
        """The principal for a gateway username + app password, or None.

        ``client`` is the client's address; raises :class:`TooManyFailures` when it or the user has
        failed too often lately.
        """

    async def authenticate_token(self, token: str, client: str = "") -> Principal | None:
        """The principal for an API token scoped to free/busy and booking (never accepted by CalDAV), or
        None; raises :class:`TooManyFailures` as :meth:`authenticate`."""
