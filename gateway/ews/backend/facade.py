"""The CalDAV backend over EWS: implements ``gateway.caldav.backend.Backend``.

Round trips are what users feel, so every method names the EWS calls it makes. The work is done by
the parts this facade wires together:

- :mod:`.calendars`: which calendars a principal has (GetFolder + FindFolder per mailbox, cached);
- :mod:`.tracking`: change detection, one SyncFolderItems per calendar: the ctag, the sync-token
  and the name↔ItemId index (:mod:`gateway.ews.index`) all come from it;
- :mod:`.reads`: a time range is a FindItem CalendarView plus batched GetItems; GET/multiget are
  batched GetItem (≤ 100 ids a request);
- :mod:`.writes`: PUT and DELETE (CreateItem, UpdateItem, DeleteItem), invitations;
- :mod:`.tasks`: the same for task lists (task folders, VTODO ⇄ Task items);
- :mod:`.collections`: MKCALENDAR, PROPPATCH, DELETE of calendars and their description;
- :mod:`.busy`: free/busy (FindItem CalendarView, GetUserAvailability);
- :mod:`.people`: principal searches (ResolveNames);
- :mod:`.booking`: the booking API's availability (GetUserAvailability with working hours), bookings
  (CreateItem) and cancellations (DeleteItem).
- :mod:`.inbox`: the scheduling inbox (FindItem on each Inbox, GetItem, DeleteItem).

The ETag of a resource is the ChangeKey of its item (a recurring master's ChangeKey changes when any
occurrence changes), so ``If-Match`` is checked by Exchange itself. Every EWS failure leaves as a
``gateway.caldav.backend`` error (:func:`gateway.ews.errors.backend_error`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from gateway.caldav.backend import (
    Availability,
    Booked,
    Booking,
    BusyPeriod,
    CalendarInfo,
    CalendarObject,
    ChangeSet,
    FreeBusyResult,
    Person,
    Principal,
    PutResult,
)
from gateway.ews.backend.booking import Bookings
from gateway.ews.backend.busy import FreeBusy
from gateway.ews.backend.calendars import CalendarDirectory
from gateway.ews.backend.calls import EwsCalls
from gateway.ews.backend.collections import Collections
from gateway.ews.backend.inbox import SchedulingInbox, find
from gateway.ews.backend.people import People
from gateway.ews.backend.reads import DEFAULT_CACHE_BYTES, Reader
from gateway.ews.backend.records import AccountDirectory
from gateway.ews.backend.tasks import TaskLists
from gateway.ews.backend.tracking import ChangeTracker
from gateway.ews.backend.writes import Writer
from gateway.ews.client import EwsClient
from gateway.ews.exchange import register_item_fields
from gateway.ews.index import ItemIndex


class EwsBackend:
    """``gateway.caldav.backend.Backend`` over Exchange Web Services."""

    def __init__(
        self,
        accounts: AccountDirectory,
        client: EwsClient,
        index: ItemIndex,
        *,
        default_timezone: str = "UTC",
        folder_cache_seconds: float = 3600.0,
        item_cache_size: int = 20_000,
        item_cache_bytes: int = DEFAULT_CACHE_BYTES,
        live_accounts: int = 300,
    ) -> None:
        register_item_fields()  # CalendarItem.caldav_name, read and written by every part below
        calls = EwsCalls(accounts, client)
        self._directory = CalendarDirectory(
            calls, index, folder_ttl=folder_cache_seconds, live_accounts=live_accounts
        )
        self._tracker = ChangeTracker(calls, index)
        self._collections = Collections(
            calls, index, self._directory, self._tracker, live_accounts=live_accounts
        )
        self._reader = Reader(
            calls, index, self._tracker, cache_size=item_cache_size, cache_bytes=item_cache_bytes
        )
        self._writer = Writer(calls, index, self._tracker, default_tz=default_timezone)
        self._tasks = TaskLists(calls, index, self._tracker, default_tz=default_timezone)
        self._busy = FreeBusy(calls, self._directory)
        self._people = People(calls)
        self._bookings = Bookings(calls, self._directory, self._busy, self._tracker)
        self._inbox = SchedulingInbox(calls)

    def render_prometheus(self) -> str:
        """The read caches' entries and bytes (bounded by ``item_cache_bytes``), Prometheus text format."""
        sizes = self._reader.cache_sizes()
        lines = [
            "# HELP gateway_item_cache_bytes About how much memory the event caches hold, per cache.",
            "# TYPE gateway_item_cache_bytes gauge",
            *(f'gateway_item_cache_bytes{{cache="{name}"}} {size}' for name, (_, size) in sizes.items()),
            "# HELP gateway_item_cache_entries Entries (item versions) the event caches hold, per cache.",
            "# TYPE gateway_item_cache_entries gauge",
            *(f'gateway_item_cache_entries{{cache="{name}"}} {count}' for name, (count, _) in sizes.items()),
        ]
        return "\n".join(lines) + "\n"

    async def drain(self) -> None:
        """Let every create still being indexed finish (at shutdown, before the database closes)."""
        await self._tracker.drain()

    # --- calendars ---------------------------------------------------------------------------

    async def calendars(self, principal: Principal) -> list[CalendarInfo]:
        """The home listing: FindFolder per account, then one SyncFolderItems per calendar."""
        return await self._collections.calendars(principal)

    async def calendar(self, principal: Principal, calendar_id: str, *, fresh: bool = True) -> CalendarInfo:
        """One SyncFolderItems for the ctag/sync-token; none without ``fresh`` (the index answers)."""
        return await self._collections.calendar(principal, calendar_id, fresh=fresh)

    async def create_calendar(
        self,
        principal: Principal,
        calendar_id: str,
        display_name: str,
        properties: dict[str, str],
        *,
        components: tuple[str, ...] = ("VEVENT",),
    ) -> CalendarInfo:
        """MKCALENDAR / extended MKCOL → CreateFolder under the first account's Calendar (its Tasks
        folder for a VTODO collection)."""
        tasks = components == ("VTODO",)
        return await self._collections.create(principal, calendar_id, display_name, properties, tasks)

    async def update_calendar(
        self, principal: Principal, calendar_id: str, properties: dict[str, str | None]
    ) -> None:
        """PROPPATCH: a sub-calendar's displayname → UpdateFolder; the rest is kept by the gateway."""
        await self._collections.update(principal, calendar_id, properties)

    async def delete_calendar(self, principal: Principal, calendar_id: str) -> None:
        """DELETE of a sub-calendar → DeleteFolder (the primary calendar is refused)."""
        await self._collections.delete(principal, calendar_id)

    # --- objects -----------------------------------------------------------------------------

    async def list_objects(self, principal: Principal, calendar_id: str) -> list[CalendarObject]:
        """Names and ETags: one SyncFolderItems, then the index."""
        cal = await self._directory.resolve(principal, calendar_id)
        return await self._tracker.objects(cal)

    async def changes(
        self, principal: Principal, calendar_id: str, sync_token: str | None, limit: int | None
    ) -> ChangeSet:
        """RFC 6578 §3: one SyncFolderItems, then the index answers; the calendar is described as well."""
        cal = await self._directory.resolve(principal, calendar_id)
        epoch, seq = await self._tracker.refresh(cal)
        info = await self._collections.described(cal, epoch, seq, principal)
        return await self._tracker.change_set(cal, info, epoch, seq, sync_token, limit)

    async def query(
        self,
        principal: Principal,
        calendar_id: str,
        start: datetime | None,
        end: datetime | None,
        with_data: bool,
    ) -> list[CalendarObject]:
        """RFC 4791 §9.9: FindItem CalendarView + batched GetItem (SyncFolderItems without data)."""
        cal = await self._directory.resolve(principal, calendar_id)
        if cal.tasks:
            return await self._tasks.query(cal, start, end, with_data)
        return await self._reader.query(cal, start, end, with_data)

    async def get(
        self, principal: Principal, calendar_id: str, names: Sequence[str]
    ) -> dict[str, CalendarObject | None]:
        """GET / calendar-multiget: batched GetItem (SyncFolderItems first only for an unknown name)."""
        cal = await self._directory.resolve(principal, calendar_id)
        if cal.tasks:
            return await self._tasks.get(cal, names)
        return await self._reader.get(cal, names)

    async def put(
        self,
        principal: Principal,
        calendar_id: str,
        name: str,
        ical: str,
        if_match: str | None,
        if_none_match: bool,
    ) -> PutResult:
        """RFC 4791 §5.3.2: SyncFolderItems + CreateItem, or GetItem + UpdateItem (+ occurrences)."""
        cal = await self._directory.resolve(principal, calendar_id)
        if cal.tasks:
            return await self._tasks.put(cal, name, ical, if_match, if_none_match)
        return await self._writer.put(cal, name, ical, if_match, if_none_match)

    async def delete(self, principal: Principal, calendar_id: str, name: str, if_match: str | None) -> None:
        """DeleteItem (GetItem first only for If-Match or invitations)."""
        cal = await self._directory.resolve(principal, calendar_id)
        if cal.tasks:
            return await self._tasks.delete(cal, name, if_match)
        await self._writer.delete(cal, name, if_match)

    # --- free/busy ---------------------------------------------------------------------------

    async def calendar_free_busy(
        self, principal: Principal, calendar_id: str, start: datetime, end: datetime
    ) -> list[BusyPeriod]:
        """RFC 4791 §7.10 on one collection: a FindItem CalendarView of that folder."""
        cal = await self._directory.resolve(principal, calendar_id)
        if cal.tasks:
            return []  # tasks take no time in a schedule (RFC 4791 §7.10 counts VEVENTs and VFREEBUSYs)
        return await self._busy.folders_busy([cal], start, end)

    async def free_busy(
        self, principal: Principal, attendees: Sequence[str], start: datetime, end: datetime
    ) -> list[FreeBusyResult]:
        """RFC 6638 §3.2: GetUserAvailability per account, FindItem CalendarView per own sub-calendar."""
        return await self._busy.free_busy(principal, attendees, start, end)

    # --- the scheduling inbox ------------------------------------------------------------------

    async def inbox_items(self, principal: Principal) -> list[CalendarObject]:
        """One FindItem per account (the meeting messages of its Inbox)."""
        return [m.listed for m in await self._inbox.messages(principal)]

    async def inbox_get(self, principal: Principal, names: Sequence[str]) -> dict[str, CalendarObject | None]:
        """The listing, then per account GetItem of the messages and of their meetings (not for renderings
        kept from before)."""
        messages = await self._inbox.messages(principal)
        wanted = set(names)
        found = await self._inbox.read([m for m in messages if m.name in wanted])
        return {name: found.get(name) for name in names}

    async def delete_inbox_item(self, principal: Principal, name: str, if_match: str | None) -> None:
        """The listing, then DeleteItem (MoveToDeletedItems) of the message."""
        await self._inbox.delete(find(await self._inbox.messages(principal), name), if_match)

    async def search_principals(self, principal: Principal, text: str, limit: int) -> list[Person]:
        """One ResolveNames through the first account."""
        return await self._people.search(principal, text, limit)

    # --- the booking API -----------------------------------------------------------------------

    async def availability(
        self,
        principal: Principal,
        start: datetime,
        end: datetime,
        attendees: Sequence[str] = (),
        *,
        working_hours: bool = True,
    ) -> Availability:
        """One request per account (GetUserAvailability or one FindItem CalendarView of its checked folders),
        the first account's GetUserAvailability for its WorkingHours and the attendees."""
        return await self._bookings.availability(
            principal, start, end, attendees, working_hours=working_hours
        )

    async def book(self, principal: Principal, booking: Booking) -> Booked:
        """One CreateItem in the calendar for new events, sending the invitation."""
        return await self._bookings.book(principal, booking)

    async def find_booked(self, principal: Principal, booking: Booking) -> Booked | None:
        """One FindItem CalendarView over the booking's time, matched by UID."""
        return await self._bookings.find_booked(principal, booking)

    async def cancel(self, principal: Principal, booked: Booked) -> None:
        """One DeleteItem, sending the cancellation."""
        await self._bookings.cancel(principal, booked)
