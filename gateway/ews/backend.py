"""The CalDAV backend over EWS: implements ``gateway.caldav.backend.Backend``.

Round trips are what users feel, so every method names the EWS calls it makes:

- change detection is one SyncFolderItems per calendar (``_refresh``): the ctag,
  the sync-token and the name↔ItemId index (``index.py``) all come from it;
- a time-range query is a FindItem CalendarView plus one batched GetItem for the
  singles and the recurring masters (a master is addressed through its occurrence
  with RecurringMasterItemId, so no index look-up is needed); exception items not
  met in the view and not cached cost one more batched GetItem;
- GET/multiget: batched GetItem (≤ 100 ids a request);
- PUT: SyncFolderItems (duplicate check) + CreateItem, or GetItem + UpdateItem; a series'
  overrides cost one more UpdateItem (all occurrences in one request) and new EXDATEs one DeleteItem.
  The answer carries no ETag: Exchange re-renders the event, so it is never octet-identical to the
  request (RFC 4791 §5.3.4) and the client fetches it before changing it again. A created item is
  indexed at once, so that GET is one GetItem;
- DELETE: GetItem (only for If-Match or invitations) + DeleteItem.

The ETag of a resource is the ChangeKey of its item (a recurring master's
ChangeKey changes when any occurrence changes), so ``If-Match`` is checked by
Exchange itself (``ConflictResolution=NeverOverwrite``) and a change made in
Outlook between the client's read and its write is never overwritten.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from exchangelib import CalendarItem, ExtendedProperty
from exchangelib.errors import ErrorCalendarOccurrenceIsDeletedFromRecurrence
from exchangelib.ewsdatetime import EWSDateTime, EWSTimeZone
from exchangelib.fields import FieldPath
from exchangelib.folders import Calendar, Folder, Root
from exchangelib.folders.collections import FolderCollection, SyncCompleted
from exchangelib.items import (
    ALWAYS_OVERWRITE,
    ID_ONLY,
    NEVER_OVERWRITE,
    SEND_ONLY_TO_ALL,
    SEND_TO_ALL_AND_SAVE_COPY,
    SEND_TO_NONE,
    SHALLOW,
)
from exchangelib.properties import CalendarView, ItemId, OccurrenceItemId, RecurringMasterItemId
from exchangelib.services import FindItem

from gateway.caldav.backend import (
    BackendError,
    BackendUnavailable,
    BusyPeriod,
    CalendarInfo,
    CalendarObject,
    ChangeSet,
    Forbidden,
    FreeBusyResult,
    InsufficientStorage,
    InvalidCalendarData,
    InvalidSyncToken,
    NotFound,
    PreconditionFailed,
    Principal,
    PutResult,
    UidConflict,
)
from gateway.common.timezones import to_utc
from gateway.ews import errors as ews_errors
from gateway.ews import mapping
from gateway.ews.client import EWS_TYPES, ConnectionInfo, distinguished_calendar
from gateway.ews.freebusy import availability, coalesce, fbtype_for, mailbox_address
from gateway.ews.index import ItemChange, ItemIndex

log = logging.getLogger(__name__)
T = TypeVar("T")
# The user a request works for, so an EWS authentication failure can drop their cached credentials.
_requester: ContextVar[str | None] = ContextVar("ews_backend_requester", default=None)

CALDAV_NS = "{urn:ietf:params:xml:ns:caldav}"
SYNC_TOKEN_PREFIX = "http://exchange-caldav-gateway.invalid/sync/"
PRIMARY_SUFFIX = "calendar"
GETITEM_BATCH = 100
SYNC_PAGE = 512
PROPERTY_CACHE_SECONDS = 60.0
UNSYNCED = "unsynced"  # the epoch shown for a calendar whose index was never built
APPLE_NS = "{http://apple.com/ns/ical/}"
STORED_PROPERTIES = (
    f"{APPLE_NS}calendar-color",
    f"{APPLE_NS}calendar-order",
    f"{CALDAV_NS}calendar-description",
)
_SAFE_NAME = re.compile(r"^[A-Za-z0-9._@+=-]{1,200}$")


class CalDAVResourceName(ExtendedProperty):
    """The CalDAV resource name a client chose, stored with the item itself.

    A named MAPI property in the gateway's own property set, so every replica and
    every restart sees the same href (DavMail keeps it in PR_URL_COMP_NAME).
    """

    property_set_id = "8d6a0b4e-4b0e-4d35-9a3b-5c1f0e2b7c11"
    property_name = "CalDAVResourceName"
    property_type = "String"


if "caldav_name" not in {f.name for f in CalendarItem.FIELDS}:
    CalendarItem.register("caldav_name", CalDAVResourceName)


class AccountDirectory(Protocol):
    """What the backend needs from ``gateway.accounts`` (see AccountService)."""

    async def connected_accounts(self, user_id: str, *, fresh: bool = False) -> list[Any]:
        """The user's accounts in order, each with ``record`` and decrypted ``credentials`` (cached)."""
        ...

    def forget_credentials(self, user_id: str) -> None:
        """Exchange refused the credentials: read them afresh next time."""
        ...

    async def settings(self, user_id: str) -> Any: ...


@dataclass
class _Calendar:
    """A resolved calendar: the account, its exchangelib Account and the folder."""

    calendar_id: str
    record: Any  # AccountRecord
    account: Any  # exchangelib.Account
    folder: Folder
    display_name: str
    primary: bool

    @property
    def key(self) -> str:
        return f"{self.record.account_id}/{self.calendar_id}"


@dataclass(frozen=True)
class _FolderRef:
    """A calendar folder of a mailbox as discovered (GetFolder + FindFolder), tied to no Account object,
    so an Account re-created after the client's LRU dropped it needs no second discovery."""

    calendar_id: str
    folder_id: str
    changekey: str | None
    name: str
    primary: bool


@dataclass(frozen=True)
class _Bound:
    """Folder objects bound to one exchangelib Account (building them costs ~0.2 ms, so they are kept)."""

    account: Any
    refs: tuple[_FolderRef, ...]
    folders: tuple[Folder, ...]


def derived_name(uid: str) -> str:
    """The deterministic resource name of an item no client named (created in Outlook)."""
    if _SAFE_NAME.match(uid) and not uid.startswith("."):
        return f"{uid}.ics"
    return hashlib.sha1(uid.encode("utf-8")).hexdigest() + ".ics"


def sub_calendar_suffix(folder_id: str) -> str:
    return hashlib.sha1(folder_id.encode("ascii")).hexdigest()[:12]


def sync_token(epoch: str, seq: int) -> str:
    return f"{SYNC_TOKEN_PREFIX}{epoch}-{seq}"


def parse_sync_token(token: str) -> tuple[str, int]:
    if not token.startswith(SYNC_TOKEN_PREFIX):
        raise InvalidSyncToken("This sync-token was not issued by this server.")
    epoch, _, seq = token[len(SYNC_TOKEN_PREFIX) :].rpartition("-")
    if not epoch or not seq.isdigit():
        raise InvalidSyncToken("This sync-token is malformed.")
    return epoch, int(seq)


class _LRU(OrderedDict):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def hit(self, key):
        """The value for ``key`` (None if absent), now the most recently used."""
        value = self.get(key)
        if value is not None:
            self.move_to_end(key)
        return value

    def put(self, key, value) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


class EwsBackend:
    """``gateway.caldav.backend.Backend`` over Exchange Web Services."""

    def __init__(
        self,
        accounts: AccountDirectory,
        client: Any,  # gateway.ews.client.EwsClient
        index: ItemIndex,
        *,
        default_timezone: str = "UTC",
        folder_cache_seconds: float = 3600.0,
        item_cache_size: int = 20_000,
        live_accounts: int = 300,
    ) -> None:
        self._accounts = accounts
        self._client = client
        self._index = index
        self._default_tz = default_timezone
        self._folder_ttl = folder_cache_seconds
        # account id -> (loaded at, its calendar folders): small, so many more than live accounts
        self._folders: _LRU = _LRU(max(1000, 20 * live_accounts))
        self._bound: _LRU = _LRU(live_accounts)  # account id -> _Bound
        self._stored_properties: _LRU = _LRU(max(1000, 20 * live_accounts))  # account id -> (read at, values)
        self._items = _LRU(item_cache_size)  # (item_id, changekey) -> CalendarItem (exceptions)
        # (item_id, changekey) -> CalendarObject of a single (non-recurring) event. A change key names one
        # version of an item, so a month view's FindItem tells which renderings are still exact.
        self._singles = _LRU(item_cache_size)
        # one lock per calendar while its index is written (a sync, a recorded create); gone when none holds it
        self._index_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._discovery_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        # calendar key -> creates still being indexed after their PUT was answered (see _record_created)
        self._recording: dict[str, set[asyncio.Task[None]]] = {}

    # ------------------------------------------------------------------ plumbing

    async def _ews(self, account: Any, operation: str, fn: Callable[[], T]) -> T:
        """Run one blocking exchangelib call in the client's pool, translating errors."""
        try:
            return await self._client.run(account, operation, fn)
        except ews_errors.EwsAuthError as exc:
            user_id = _requester.get()
            if user_id is not None:  # perhaps a password changed elsewhere: read it afresh next time
                self._accounts.forget_credentials(user_id)
            raise translate_error(exc) from exc
        except ews_errors.EwsError as exc:
            raise translate_error(exc) from exc

    def _exchange_account(self, entry: Any) -> Any:
        """The exchangelib Account of a connected account (the client's LRU; no network traffic)."""
        return self._client.account(connection_info(entry.record), entry.credentials)

    async def _connected(self, principal: Principal, *, fresh: bool = False) -> list[Any]:
        """The principal's connected accounts (records + credentials; cached by the AccountService)."""
        _requester.set(principal.user_id)
        return await self._accounts.connected_accounts(principal.user_id, fresh=fresh)

    def _cached_refs(self, record: Any) -> tuple[_FolderRef, ...] | None:
        loop = asyncio.get_running_loop()
        cached = self._folders.hit(record.account_id)
        if cached and loop.time() - cached[0] < self._folder_ttl:
            return cached[1]
        return None

    async def _folder_refs(self, entry: Any) -> tuple[_FolderRef, ...]:
        """The calendar folders of one mailbox: GetFolder + FindFolder, cached for ``folder_cache_seconds``.

        A sub-calendar made with MKCALENDAR keeps the URL segment its client chose
        (an alias in the index); one made in Outlook gets a name derived from its folder id.
        """
        record = entry.record
        refs = self._cached_refs(record)
        if refs is not None:
            return refs
        lock = self._discovery_locks.get(record.account_id)
        if lock is None:
            lock = self._discovery_locks[record.account_id] = asyncio.Lock()
        async with lock:  # parallel first requests of a user discover each mailbox once
            refs = self._cached_refs(record)
            if refs is not None:
                return refs
            return await self._discover(record, self._exchange_account(entry))

    async def _discover(self, record: Any, account: Any) -> tuple[_FolderRef, ...]:
        loop = asyncio.get_running_loop()
        aliases = await self._index.aliases(record.account_id)

        def load() -> list[tuple[_FolderRef, Folder]]:
            primary = distinguished_calendar(account)
            cid = f"{record.account_id}-{PRIMARY_SUFFIX}"
            found = [
                (_FolderRef(cid, primary.id, primary.changekey, primary.name or "Calendar", True), primary)
            ]
            children = FolderCollection(account=account, folders=[primary]).find_folders(
                additional_fields={
                    FieldPath(field=Folder.get_field_by_fieldname(n)) for n in ("name", "folder_class")
                }
            )
            for child in children:
                if (
                    isinstance(child, Exception)
                    or (child.folder_class or "IPF.Appointment") != "IPF.Appointment"
                ):
                    continue
                cid = aliases.get(child.id) or f"{record.account_id}-{sub_calendar_suffix(child.id)}"
                found.append(
                    (_FolderRef(cid, child.id, child.changekey, child.name or "Calendar", False), child)
                )
            return found

        loaded = await self._ews(account, "FindFolder", load)
        refs = tuple(ref for ref, _ in loaded)
        self._folders.put(record.account_id, (loop.time(), refs))
        self._bound.put(record.account_id, _Bound(account, refs, tuple(folder for _, folder in loaded)))
        return refs

    async def _account_calendars(self, entry: Any) -> list[_Calendar]:
        """One connected account's calendars, with folder objects bound to its current Account."""
        refs = await self._folder_refs(entry)
        return [self._calendar(entry, refs, position) for position in range(len(refs))]

    def _calendar(self, entry: Any, refs: tuple[_FolderRef, ...], position: int) -> _Calendar:
        """The calendar ``refs[position]`` of a connected account, its folder bound to the current Account
        (the client's LRU may have re-created the Account since the folders were discovered)."""
        record = entry.record
        account = self._exchange_account(entry)
        bound = self._bound.hit(record.account_id)
        if bound is None or bound.account is not account or bound.refs is not refs:
            bound = _Bound(account, refs, tuple(_bind(account, ref) for ref in refs))
            self._bound.put(record.account_id, bound)
        ref = refs[position]
        return _Calendar(ref.calendar_id, record, account, bound.folders[position], ref.name, ref.primary)

    async def _calendars_of(self, principal: Principal) -> list[_Calendar]:
        result = []
        for entry in await self._connected(principal):
            result += await self._account_calendars(entry)
        return result

    def _forget_folders(self, records: Sequence[Any]) -> None:
        for record in records:
            self._folders.pop(record.account_id, None)

    async def _resolve(self, principal: Principal, calendar_id: str) -> _Calendar:
        """The principal's calendar with this id (only their own accounts are searched, in order, and
        only until it is found; an exchangelib Account is needed only for the one that holds it)."""
        entries = await self._connected(principal)
        for refreshed in (False, True):
            if refreshed:  # a sub-calendar made in Outlook meanwhile
                self._forget_folders([entry.record for entry in entries])
            for entry in entries:
                refs = await self._folder_refs(entry)
                for position, ref in enumerate(refs):
                    if ref.calendar_id == calendar_id:
                        return self._calendar(entry, refs, position)
        raise NotFound("No such calendar.")

    # ------------------------------------------------------------- change tracking

    def _index_lock(self, cal: _Calendar) -> asyncio.Lock:
        """Serialises this calendar's index writes: a sync and a recorded write never interleave."""
        lock = self._index_locks.get(cal.key)
        if lock is None:
            lock = self._index_locks[cal.key] = asyncio.Lock()
        return lock

    async def _refresh(self, cal: _Calendar) -> tuple[str, int]:
        """One SyncFolderItems (more only while Exchange says more changes wait); returns (epoch, seq)."""
        async with self._index_lock(cal):
            state = await self._index.state(cal.key)
            epoch = state.epoch if state else uuid.uuid4().hex
            sync_state = state.sync_state if state else None

            def sync() -> tuple[str, list[ItemChange]]:
                return _sync_folder(cal.folder, sync_state)

            try:
                new_state, changes = await self._ews(cal.account, "SyncFolderItems", sync)
            except InvalidSyncToken:
                # Exchange forgot our state: rebuild the index under a new epoch, old tokens become invalid.
                await self._index.forget_calendar(cal.key)
                epoch, sync_state = uuid.uuid4().hex, None
                new_state, changes = await self._ews(
                    cal.account, "SyncFolderItems", lambda: _sync_folder(cal.folder, None)
                )
            if state and new_state == state.sync_state and not changes:
                return epoch, state.seq
            seq = await self._index.apply(cal.key, new_state, _dedupe_names(changes), epoch)
            return epoch, seq

    async def _properties(self, account_id: str) -> dict[str, dict[str, str]]:
        """The collection properties clients set on the account's calendars (colour, order, description).

        Read on every PROPFIND of a calendar but written rarely, so kept for PROPERTY_CACHE_SECONDS:
        a change made through this process shows at once, one made through another replica within that time.
        """
        loop = asyncio.get_running_loop()
        cached = self._stored_properties.hit(account_id)
        if cached and loop.time() - cached[0] < PROPERTY_CACHE_SECONDS:
            return cached[1]
        found = await self._index.properties(account_id)
        self._stored_properties.put(account_id, (loop.time(), found))
        return found

    async def _set_properties(self, account_id: str, calendar_id: str, values: dict[str, str | None]) -> None:
        self._stored_properties.pop(account_id, None)
        try:
            await self._index.set_properties(account_id, calendar_id, values)
        finally:
            self._stored_properties.pop(account_id, None)  # a read meanwhile may have cached the old values

    async def _described(self, cal: _Calendar, epoch: str, seq: int) -> CalendarInfo:
        stored = (await self._properties(cal.record.account_id)).get(cal.calendar_id, {})
        order = stored.get(f"{APPLE_NS}calendar-order", "0" if cal.primary else "1")
        return CalendarInfo(
            calendar_id=cal.calendar_id,
            display_name=cal.display_name,
            ctag=f"{epoch}-{seq}",
            sync_token=sync_token(epoch, seq),
            owner_email=cal.record.email,
            description=stored.get(
                f"{CALDAV_NS}calendar-description", f"Exchange calendar of {cal.record.email}"
            ),
            color=stored.get(f"{APPLE_NS}calendar-color"),
            order=int(order) if order.lstrip("-").isdigit() else 0,
            primary=cal.primary,
        )

    # ------------------------------------------------------------------ Backend API

    async def calendars(self, principal: Principal) -> list[CalendarInfo]:
        """The home listing: accounts are read from the database and folders listed afresh (FindFolder),
        so changes made elsewhere (another replica, Outlook's new calendars) appear."""
        entries = await self._connected(principal, fresh=True)
        self._forget_folders([entry.record for entry in entries])
        infos = []
        for cal in await self._calendars_of(principal):
            epoch, seq = await self._refresh(cal)
            infos.append(await self._described(cal, epoch, seq))
        return infos

    async def calendar(self, principal: Principal, calendar_id: str, *, fresh: bool = True) -> CalendarInfo:
        """The ctag/sync-token come from one SyncFolderItems; without ``fresh``, from the index."""
        cal = await self._resolve(principal, calendar_id)
        if not fresh:
            # Identity only: even a calendar never synced yet costs no EWS call here (its first
            # month view stays FindItem + GetItem; the index is built when changes are asked for).
            state = await self._index.state(cal.key)
            return await self._described(cal, state.epoch if state else UNSYNCED, state.seq if state else 0)
        epoch, seq = await self._refresh(cal)
        return await self._described(cal, epoch, seq)

    async def list_objects(self, principal: Principal, calendar_id: str) -> list[CalendarObject]:
        cal = await self._resolve(principal, calendar_id)
        await self._refresh(cal)
        return [CalendarObject(i.name, i.changekey) for i in await self._index.items(cal.key)]

    async def changes(
        self, principal: Principal, calendar_id: str, sync_token_value: str | None, limit: int | None
    ) -> ChangeSet:
        """RFC 6578 §3: one SyncFolderItems, then the index answers; the calendar is described as well."""
        cal = await self._resolve(principal, calendar_id)
        epoch, seq = await self._refresh(cal)
        info = await self._described(cal, epoch, seq)
        since = 0
        if sync_token_value:
            token_epoch, since = parse_sync_token(sync_token_value)
            if token_epoch != epoch or since > seq:
                raise InvalidSyncToken("This sync-token is no longer valid; start a fresh sync.")
        rows = await self._index.items(cal.key, since_seq=since, include_deleted=bool(sync_token_value))
        truncated = limit is not None and len(rows) > limit
        if truncated:
            rows = rows[:limit]
            seq = rows[-1].seq if rows else since
        return ChangeSet(
            sync_token=sync_token(epoch, seq),
            changed=[CalendarObject(r.name, r.changekey) for r in rows if not r.deleted],
            deleted=[r.name for r in rows if r.deleted],
            truncated=truncated,
            calendar=info,
        )

    async def query(
        self,
        principal: Principal,
        calendar_id: str,
        start: datetime | None,
        end: datetime | None,
        with_data: bool,
    ) -> list[CalendarObject]:
        cal = await self._resolve(principal, calendar_id)
        if start is None or end is None:
            # Open ranges: every object, filtered by the protocol layer.
            objects = await self.list_objects(principal, calendar_id)
            if not with_data:
                return objects
            found = await self._fetch_by_names(cal, [o.name for o in objects])
            return [o for o in found.values() if o is not None]
        view = await self._ews(
            cal.account, "FindItem", lambda: calendar_view(cal.account, cal.folder, start, end)
        )
        if not with_data:
            await self._refresh(cal)
            uids = {item.uid for item in view}
            return [
                CalendarObject(i.name, i.changekey) for i in await self._index.items(cal.key) if i.uid in uids
            ]
        ids: dict[str, Any] = {}
        known: dict[str, CalendarObject] = {}
        in_view_exceptions = []
        for item in view:
            if item.type == "Single":
                rendered = self._singles.hit((item.id, item.changekey))
                if rendered is not None:
                    known[item.uid] = rendered  # this version was read before: no GetItem for it
                else:
                    ids.setdefault(item.uid, ItemId(item.id, item.changekey))
            else:
                ids.setdefault(item.uid, RecurringMasterItemId(item.id, item.changekey))
                if item.type == "Exception":
                    in_view_exceptions.append(ItemId(item.id, item.changekey))
        return list(known.values()) + await self._render(cal, list(ids.values()), in_view_exceptions)

    async def get(
        self, principal: Principal, calendar_id: str, names: Sequence[str]
    ) -> dict[str, CalendarObject | None]:
        cal = await self._resolve(principal, calendar_id)
        return await self._fetch_by_names(cal, names)

    async def _fetch_by_names(self, cal: _Calendar, names: Sequence[str]) -> dict[str, CalendarObject | None]:
        located = await self._index.by_names(cal.key, names)
        if any(name not in located for name in names) and await self._creates_recorded(cal):
            located = await self._index.by_names(cal.key, names)  # a PUT just created it
        if any(name not in located for name in names):
            await self._refresh(cal)
            located = await self._index.by_names(cal.key, names)
        ids = [ItemId(located[name].item_id) for name in dict.fromkeys(names) if name in located]
        rendered = {o.name: o for o in await self._render(cal, ids, [])}
        return {name: rendered.get(name) for name in names}

    async def _render(
        self, cal: _Calendar, ids: list[Any], known_exceptions: list[ItemId]
    ) -> list[CalendarObject]:
        """GetItem the masters/singles (and exceptions) in batches and turn each into one resource."""
        if not ids:
            return []
        fields = [*mapping.READ_FIELDS, "caldav_name"]
        batch = ids + known_exceptions
        fetched = await self._ews(cal.account, "GetItem", lambda: _fetch(cal.folder, batch, fields))
        for item in fetched[len(ids) :]:
            if item is not None:
                self._items.put((item.id, item.changekey), item)
        masters = [item for item in fetched[: len(ids)] if item is not None]
        missing = []
        for master in masters:
            for occ in master.modified_occurrences or ():
                if (occ.id, occ.changekey) not in self._items:
                    missing.append(ItemId(occ.id, occ.changekey))
        if missing:
            for item in await self._ews(cal.account, "GetItem", lambda: _fetch(cal.folder, missing, fields)):
                if item is not None:
                    self._items.put((item.id, item.changekey), item)
        objects = []
        for master in masters:
            exceptions = [
                self._items[(o.id, o.changekey)]
                for o in master.modified_occurrences or ()
                if (o.id, o.changekey) in self._items
            ]
            name = master.caldav_name or derived_name(master.uid)
            rendered = CalendarObject(name, master.changekey, mapping.to_ical(master, exceptions))
            if master.type == "Single":
                self._singles.put((master.id, master.changekey), rendered)
            objects.append(rendered)
        return objects

    # ---------------------------------------------------------------------- writes

    async def put(
        self,
        principal: Principal,
        calendar_id: str,
        name: str,
        ical: str,
        if_match: str | None,
        if_none_match: bool,
    ) -> PutResult:
        cal = await self._resolve(principal, calendar_id)
        resource = mapping.from_ical(ical, default_tz=self._default_tz)
        if if_none_match:
            # A create: the name and UID are checked against Exchange's current state in any case, so the
            # sync comes first and one index look-up follows.
            await self._refresh(cal)
            existing, holder = await self._index.by_name_and_uid(cal.key, name, resource.uid)
        else:
            existing, holder = await self._index.by_name_and_uid(cal.key, name, resource.uid)
            if existing is None:
                await self._refresh(cal)  # also makes a retried PUT find the item it created
                existing, holder = await self._index.by_name_and_uid(cal.key, name, resource.uid)
        if holder is not None and (existing is None or holder.item_id != existing.item_id):
            raise UidConflict(
                f"The UID {resource.uid!r} is already used by another resource in this calendar.", holder.name
            )
        if existing is None:
            if if_match:
                raise PreconditionFailed("The resource does not exist, so If-Match cannot hold.")
            await self._create(cal, name, resource)
            return PutResult(etag=None, created=True)  # Exchange re-renders: never octet-identical
        if if_none_match:
            raise PreconditionFailed("A resource with this name already exists (If-None-Match: *).")
        await self._update(cal, existing.item_id, resource, if_match)
        return PutResult(etag=None, created=False)

    def _invitations(self, cal: _Calendar, resource: Any) -> str:
        """RFC 6638 implicit scheduling: Exchange sends invitations when the owner organises a meeting."""
        organiser = (resource.organizer_email or "").lower()
        if (
            cal.record.invitations == "auto"
            and resource.attendee_emails
            and organiser == cal.record.email.lower()
        ):
            return SEND_TO_ALL_AND_SAVE_COPY
        return SEND_TO_NONE

    async def _create(self, cal: _Calendar, name: str, resource: Any) -> None:
        item = resource.master
        item.account, item.folder = cal.account, cal.folder
        item.caldav_name = name
        send = self._invitations(cal, resource)
        await self._ews(cal.account, "CreateItem", lambda: item.save(send_meeting_invitations=send))
        self._record_created(cal, ItemChange(item.id, item.changekey, name, resource.uid))
        if resource.overrides or resource.exdates:
            await self._apply_occurrences(cal, item, resource, send, set())

    def _record_created(self, cal: _Calendar, change: ItemChange) -> None:
        """Index a created item while the PUT is answered.

        The client's GET of the new resource then finds it without a SyncFolderItems (it waits for
        this in :meth:`_fetch_by_names`), and the PUT does not wait for the database. If the record
        fails, the next sync brings the item. (Occurrences written next may give a series a newer
        ChangeKey, which the next sync then records as one more change.)
        """

        async def record() -> None:
            async with self._index_lock(cal):
                await self._index.record_created(cal.key, change)

        task = asyncio.create_task(record())
        pending = self._recording.setdefault(cal.key, set())
        pending.add(task)

        def done(finished: asyncio.Task[None]) -> None:
            pending.discard(finished)
            if not pending and self._recording.get(cal.key) is pending:
                del self._recording[cal.key]
            if not finished.cancelled() and finished.exception() is not None:
                log.warning(
                    "indexing a created item failed; the next sync brings it: %r", finished.exception()
                )

        task.add_done_callback(done)

    async def _creates_recorded(self, cal: _Calendar) -> bool:
        """Wait until this calendar's creates are indexed; whether any were still being indexed."""
        pending = self._recording.get(cal.key)
        if not pending:
            return False
        await asyncio.wait(set(pending))  # not cancelled with the waiting request
        return True

    async def drain(self) -> None:
        """Let every create still being indexed finish (at shutdown, before the database closes)."""
        pending = {task for tasks in self._recording.values() for task in tasks}
        if pending:
            await asyncio.wait(pending)

    async def _update(self, cal: _Calendar, item_id: str, resource: Any, if_match: str | None) -> None:
        fields = [*mapping.READ_FIELDS, "caldav_name"]
        current = (
            await self._ews(cal.account, "GetItem", lambda: _fetch(cal.folder, [ItemId(item_id)], fields))
        )[0]
        if current is None:
            raise PreconditionFailed("The resource changed or vanished in Exchange meanwhile; read it again.")
        if if_match and if_match != current.changekey:
            raise PreconditionFailed("The resource was changed since you read it (ETag mismatch).")
        # Exchange drops every exception of a series whose Recurrence is written, so it is only
        # written when the rule changed or an override must go (EWS cannot revert one occurrence);
        # the exceptions are then re-applied from the body.
        kept = {to_utc(o.original_start) for o in current.modified_occurrences or ()}
        wanted = {to_utc(o.recurrence_id) for o in resource.overrides}
        reset = resource.master.recurrence != current.recurrence or bool(kept - wanted)
        fields = [f for f in mapping.WRITE_FIELDS if reset or f != "recurrence"]
        already_deleted = set() if reset else {to_utc(d.start) for d in current.deleted_occurrences or ()}
        for field in fields:
            setattr(current, field, getattr(resource.master, field))
        send = SEND_ONLY_TO_ALL if self._invitations(cal, resource) != SEND_TO_NONE else SEND_TO_NONE
        conflict = NEVER_OVERWRITE if if_match else ALWAYS_OVERWRITE
        await self._ews(
            cal.account,
            "UpdateItem",
            lambda: current.save(
                update_fields=fields, conflict_resolution=conflict, send_meeting_invitations=send
            ),
        )
        if resource.overrides or resource.exdates:
            await self._apply_occurrences(cal, current, resource, send, already_deleted)

    async def _apply_occurrences(
        self, cal: _Calendar, master: CalendarItem, resource: Any, send: str, already_deleted: set[datetime]
    ) -> None:
        """RECURRENCE-ID overrides → UpdateItem on occurrences; EXDATEs → DeleteItem of occurrences."""
        updates, deletions = [], []
        for override in resource.overrides:
            index = mapping.occurrence_index(master, override.recurrence_id)
            if index is None:
                raise InvalidCalendarData(
                    f"RECURRENCE-ID {override.recurrence_id} is not an occurrence of the series.",
                    f"{CALDAV_NS}valid-calendar-object-resource",
                )
            occurrence = override.item
            occurrence.account, occurrence.folder = cal.account, cal.folder
            occurrence._id = OccurrenceItemId(id=master.id, changekey=master.changekey, instance_index=index)
            updates.append(
                (occurrence, list(mapping.OCCURRENCE_FIELDS))
            )  # an override replaces the whole occurrence
        for exdate in resource.exdates:
            index = mapping.occurrence_index(master, exdate)
            if index is not None and to_utc(exdate) not in already_deleted:
                deletions.append(
                    OccurrenceItemId(id=master.id, changekey=master.changekey, instance_index=index)
                )
        account = cal.account
        if updates:
            results = await self._ews(
                account,
                "UpdateItem",
                lambda: list(
                    account.bulk_update(
                        updates,
                        conflict_resolution=ALWAYS_OVERWRITE,
                        send_meeting_invitations_or_cancellations=send,
                    )
                ),
            )
            _raise_first_error(results)
        if deletions:
            results = await self._ews(
                account, "DeleteItem", lambda: _delete_occurrences(account, deletions, send)
            )
            _raise_first_error(results)

    async def delete(self, principal: Principal, calendar_id: str, name: str, if_match: str | None) -> None:
        cal = await self._resolve(principal, calendar_id)
        entry = await self._index.by_name(cal.key, name)
        if entry is None:
            await self._refresh(cal)
            entry = await self._index.by_name(cal.key, name)
        if entry is None:
            raise NotFound("No such calendar object.")
        account = cal.account
        send = SEND_TO_NONE
        if if_match or cal.record.invitations == "auto":
            current = (
                await self._ews(
                    account,
                    "GetItem",
                    lambda: _fetch(
                        cal.folder, [ItemId(entry.item_id)], ["changekey", "organizer", "is_meeting"]
                    ),
                )
            )[0]
            if current is None:
                raise NotFound("The calendar object no longer exists in Exchange.")
            if if_match and if_match != current.changekey:
                raise PreconditionFailed("The resource was changed since you read it (ETag mismatch).")
            organiser = getattr(current.organizer, "email_address", "") or ""
            if (
                cal.record.invitations == "auto"
                and current.is_meeting
                and organiser.lower() == cal.record.email.lower()
            ):
                send = SEND_TO_ALL_AND_SAVE_COPY
        results = await self._ews(
            account,
            "DeleteItem",
            lambda: list(account.bulk_delete([ItemId(entry.item_id)], send_meeting_cancellations=send)),
        )
        _raise_first_error(results)

    # ----------------------------------------------------------------- collections

    async def create_calendar(
        self, principal: Principal, calendar_id: str, display_name: str, properties: dict[str, str]
    ) -> CalendarInfo:
        """MKCALENDAR / extended MKCOL → CreateFolder under the first account's Calendar."""
        entries = await self._connected(principal)
        if not entries:
            raise Forbidden("Connect an Exchange account before creating calendars.")
        record = entries[0].record
        account = self._exchange_account(entries[0])

        def create() -> Folder:
            folder = Folder(
                parent=distinguished_calendar(account),
                name=display_name or calendar_id,
                folder_class="IPF.Appointment",
            )
            folder.save()
            return folder

        folder = await self._ews(account, "CreateFolder", create)
        await self._index.add_alias(record.account_id, calendar_id, folder.id)
        stored = {k: v for k, v in properties.items() if k in STORED_PROPERTIES}
        if stored:
            await self._set_properties(record.account_id, calendar_id, stored)
        self._folders.pop(record.account_id, None)
        cal = _Calendar(calendar_id, record, account, folder, folder.name, False)
        epoch, seq = await self._refresh(cal)
        return await self._described(cal, epoch, seq)

    async def update_calendar(
        self, principal: Principal, calendar_id: str, properties: dict[str, str | None]
    ) -> None:
        """PROPPATCH: displayname → UpdateFolder; colour, order and description are kept by the gateway."""
        cal = await self._resolve(principal, calendar_id)
        name = properties.get("{DAV:}displayname")
        if "{DAV:}displayname" in properties and name != cal.display_name:
            if cal.primary or not name:
                raise Forbidden(
                    "The primary Exchange calendar cannot be renamed, and a calendar needs a name."
                )
            folder = cal.folder
            folder.name = name
            await self._ews(cal.account, "UpdateFolder", lambda: folder.save(update_fields=["name"]))
            self._folders.pop(cal.record.account_id, None)
        stored = {k: v for k, v in properties.items() if k in STORED_PROPERTIES}
        if stored:
            await self._set_properties(cal.record.account_id, calendar_id, stored)

    async def delete_calendar(self, principal: Principal, calendar_id: str) -> None:
        cal = await self._resolve(principal, calendar_id)
        if cal.primary:
            raise Forbidden("The primary Exchange calendar cannot be deleted.")
        await self._ews(cal.account, "DeleteFolder", lambda: cal.folder.delete())
        self._folders.pop(cal.record.account_id, None)
        await self._index.forget_calendar(cal.key)
        await self._index.drop_alias(cal.record.account_id, calendar_id)
        await self._set_properties(cal.record.account_id, calendar_id, dict.fromkeys(STORED_PROPERTIES))

    # ------------------------------------------------------------------- free/busy

    async def calendar_free_busy(
        self, principal: Principal, calendar_id: str, start: datetime, end: datetime
    ) -> list[BusyPeriod]:
        """RFC 4791 §7.10 on one collection: a FindItem CalendarView of that folder."""
        cal = await self._resolve(principal, calendar_id)
        return await self._folder_busy(cal, start, end)

    async def _folder_busy(self, cal: _Calendar, start: datetime, end: datetime) -> list[BusyPeriod]:
        """One FindItem CalendarView of the folder; each instance's LegacyFreeBusyStatus becomes an FBTYPE."""
        account, folder = cal.account, cal.folder
        fields = ("start", "end", "legacy_free_busy_status", "is_cancelled")

        def view() -> list[Any]:
            return list(folder.view(start=_ews_dt(start), end=_ews_dt(end)).only(*fields))

        periods = []
        for item in await self._ews(account, "FindItem", view):
            if item.is_cancelled:
                continue  # a cancelled meeting stays in the attendee's calendar but is not busy (as in GetUserAvailability)
            fbtype = fbtype_for(item.legacy_free_busy_status, cal.record.working_elsewhere)
            if fbtype is not None:
                periods.append(BusyPeriod(max(to_utc(item.start), start), min(to_utc(item.end), end), fbtype))
        return periods

    async def free_busy(
        self, principal: Principal, attendees: Sequence[str], start: datetime, end: datetime
    ) -> list[FreeBusyResult]:
        """RFC 6638 §3.2: one GetUserAvailability per account (≤ 100 mailboxes per window chunk).

        Other people are asked through the first account; the principal's own addresses get the
        merged free/busy of the calendars selected for conflict checking (primaries in the same
        GetUserAvailability, sub-calendars by a FindItem CalendarView each).
        """
        entries = await self._connected(principal)
        records = [entry.record for entry in entries]
        if not records:
            return [FreeBusyResult(a, "3.8", message="No Exchange account is connected.") for a in attendees]
        own = {r.email.lower() for r in records}
        others = list(dict.fromkeys(mailbox_address(a) for a in attendees if mailbox_address(a) not in own))
        wants_own = any(mailbox_address(a) in own for a in attendees)
        selected = await self._conflict_calendars(principal) if wants_own else []
        primaries = {c.record.account_id for c in selected if c.primary}
        results: dict[str, FreeBusyResult] = {}
        own_parts: list[FreeBusyResult] = []
        for position, (entry, record) in enumerate(zip(entries, records, strict=True)):
            mailboxes = (others if position == 0 else []) + (
                [record.email.lower()] if record.account_id in primaries else []
            )
            if not mailboxes:
                continue
            account = self._exchange_account(entry)
            answers = await self._availability(account, mailboxes, start, end, record.working_elsewhere)
            for mailbox, answer in zip(mailboxes, answers, strict=True):
                if record.account_id in primaries and mailbox == record.email.lower():
                    own_parts.append(answer)
                else:
                    results[mailbox] = answer
        own_parts += [await self._sub_calendar_busy(cal, start, end) for cal in selected if not cal.primary]
        mine = _merge_own(own_parts)
        return [
            _answer_for(a, mine if mailbox_address(a) in own else results[mailbox_address(a)])
            for a in attendees
        ]

    async def _sub_calendar_busy(self, cal: _Calendar, start: datetime, end: datetime) -> FreeBusyResult:
        """One selected sub-calendar's part of the own free/busy; a failure fails only the own answer."""
        try:
            return FreeBusyResult(cal.record.email, "2.0", await self._folder_busy(cal, start, end))
        except BackendError as exc:
            reason = f"The calendar {cal.display_name!r} could not be read: {exc}"
            return FreeBusyResult(cal.record.email, "5.1", message=reason)

    async def _availability(
        self, account: Any, mailboxes: list[str], start: datetime, end: datetime, working_elsewhere: str
    ) -> list[FreeBusyResult]:
        try:
            return await availability(
                self._client, account, mailboxes, start, end, working_elsewhere=working_elsewhere
            )
        except ews_errors.EwsError as exc:
            raise translate_error(exc) from exc

    async def _conflict_calendars(self, principal: Principal) -> list[_Calendar]:
        """The calendars the user checks for conflicts (UserSettings); by default every primary."""
        settings = await self._accounts.settings(principal.user_id)
        calendars = await self._calendars_of(principal)
        chosen = settings.conflict_calendar_ids
        if chosen is None:
            return [c for c in calendars if c.primary]
        return [c for c in calendars if c.calendar_id in set(chosen)]


# ----------------------------------------------------------------------- helpers


def _merge_own(parts: list[FreeBusyResult]) -> FreeBusyResult:
    """The own free/busy from its parts: the first failure wins (a partial answer would look free)."""
    failed = next((p for p in parts if not p.status.startswith("2")), None)
    if failed is not None:
        return FreeBusyResult("", failed.status, message=failed.message)
    no_data = next((p for p in parts if p.no_data), None)
    periods = coalesce(period for part in parts for period in part.periods)
    return FreeBusyResult("", "2.0", periods, no_data.message if no_data else "", no_data=no_data is not None)


def _answer_for(attendee: str, result: FreeBusyResult) -> FreeBusyResult:
    """``result`` addressed to the attendee as the request spelled it."""
    return FreeBusyResult(attendee, result.status, result.periods, result.message, result.no_data)


def connection_info(record: Any) -> ConnectionInfo:
    return ConnectionInfo(
        email=record.email,
        ews_url=record.ews_url,
        auth_type=record.auth_type,
        username=record.username,
        version=record.version,
        build=record.build,
        display_name=record.display_name,
        via="stored",
    )


def translate_error(exc: Exception) -> Exception:
    """EWS failures → the CalDAV backend's errors (never a bare 503 for everything)."""
    message = str(exc) or "Exchange reported an error."
    if isinstance(exc, ews_errors.EwsConflict):
        return PreconditionFailed("The item was changed in Exchange meanwhile; read it again.")
    if isinstance(exc, ews_errors.EwsNotFound):
        return NotFound("The item no longer exists in Exchange.")
    if isinstance(exc, ews_errors.EwsQuotaExceeded):
        return InsufficientStorage("The Exchange mailbox is over its size quota.")
    if isinstance(exc, ews_errors.EwsAccessDenied):
        return Forbidden(f"Exchange denied access: {message}")
    if isinstance(exc, ews_errors.EwsInvalidRequest):
        if "SyncState" in getattr(exc, "code", ""):
            return InvalidSyncToken("Exchange no longer knows this synchronisation state.")
        return InvalidCalendarData(
            f"Exchange refused the event: {message}", f"{CALDAV_NS}valid-calendar-object-resource"
        )
    if isinstance(exc, ews_errors.EwsUnavailable):
        return BackendUnavailable(message, retry_after=int(getattr(exc, "retry_after", 30) or 30))
    return BackendUnavailable(f"Exchange could not be reached or failed: {message}")


def _bind(account: Any, ref: _FolderRef) -> Folder:
    """A folder object for ``account`` from what discovery stored (no network traffic). Its root is the
    mailbox's distinguished root, which EWS addresses by name, so no GetFolder is needed."""
    return Calendar(root=Root(account=account), id=ref.folder_id, changekey=ref.changekey, name=ref.name)


def _sync_folder(folder: Folder, sync_state: str | None) -> tuple[str, list[ItemChange]]:
    """SyncFolderItems until IncludesLastItemInRange (blocking; runs in the pool)."""
    changes: list[ItemChange] = []
    new_state = sync_state
    try:
        for change_type, item in FolderCollection(account=folder.account, folders=[folder]).sync_items(
            sync_state=sync_state,
            only_fields=["uid", "caldav_name"],
            max_changes_returned=SYNC_PAGE,
        ):
            if change_type == "delete":
                changes.append(ItemChange(item_id=item.id))
            elif change_type in ("create", "update"):
                uid = item.uid or item.id
                changes.append(
                    ItemChange(item.id, item.changekey, item.caldav_name or derived_name(uid), uid)
                )
    except SyncCompleted as done:
        new_state = done.sync_state
    return new_state or "", changes


def _dedupe_names(changes: list[ItemChange]) -> list[ItemChange]:
    """Two items whose names collide (same UID in Outlook) keep distinct hrefs."""
    seen: dict[str, str] = {}
    out = []
    for c in changes:
        if c.name and seen.setdefault(c.name, c.item_id) != c.item_id:
            c = ItemChange(
                c.item_id, c.changekey, f"{c.name[:-4]}-{sub_calendar_suffix(c.item_id)}.ics", c.uid
            )
        out.append(c)
    return out


@dataclass(frozen=True)
class ViewEntry:
    """One item of a CalendarView: what a month view needs before its GetItem."""

    id: str
    changekey: str
    uid: str | None
    type: str | None  # CalendarItemType: Single, Occurrence, Exception, RecurringMaster


class _CalendarViewItems(FindItem):
    """FindItem whose answer is read with lxml into :class:`ViewEntry` values.

    A month's CalendarView holds hundreds of occurrences; exchangelib builds a full CalendarItem
    for each, which was a third of a month view's CPU, for four values per item.
    """

    def _elem_to_obj(self, elem: Any) -> ViewEntry:
        item_id = elem.find(EWS_TYPES + "ItemId")
        return ViewEntry(
            item_id.get("Id") if item_id is not None else "",
            item_id.get("ChangeKey") if item_id is not None else "",
            elem.findtext(EWS_TYPES + "UID"),
            elem.findtext(EWS_TYPES + "CalendarItemType"),
        )


def calendar_view(account: Any, folder: Folder, start: datetime, end: datetime) -> list[ViewEntry]:
    """FindItem with a CalendarView asking for UID and CalendarItemType (no GetItem follows).

    exchangelib's query sets refuse text fields such as UID in FindItem and would add a
    GetItem per page; Exchange returns calendar:UID in FindItem, so the service is called directly.
    """
    additional = {FieldPath(field=CalendarItem.get_field_by_fieldname(n)) for n in ("uid", "type")}
    items = _CalendarViewItems(account=account).call(
        folders=[folder],
        additional_fields=additional,
        restriction=None,
        order_fields=None,
        shape=ID_ONLY,
        query_string=None,
        depth=SHALLOW,
        calendar_view=CalendarView(start=_ews_dt(start), end=_ews_dt(end)),
        max_items=None,
        offset=0,
    )
    return [i for i in items if not isinstance(i, Exception)]


def _fetch(folder: Folder, ids: list[Any], fields: list[str]) -> list[Any]:
    """Batched GetItem (≤ 100 ids a request) of items of ``folder``'s account; None where Exchange has no such item.

    The folder only validates ``fields``: without one exchangelib would first fetch the root folder.
    """
    result = []
    for item in folder.account.fetch(ids=ids, folder=folder, only_fields=fields, chunk_size=GETITEM_BATCH):
        result.append(None if isinstance(item, Exception) else item)
    return result


def _delete_occurrences(account: Any, ids: list[OccurrenceItemId], send: str) -> list[Any]:
    """DeleteItem of occurrences; one that is already gone is what the EXDATE asks for."""
    try:
        results = list(account.bulk_delete(ids, send_meeting_cancellations=send))
    except ErrorCalendarOccurrenceIsDeletedFromRecurrence:
        return []
    return [r for r in results if not isinstance(r, ErrorCalendarOccurrenceIsDeletedFromRecurrence)]


def _raise_first_error(results: list[Any]) -> None:
    for result in results:
        if isinstance(result, Exception):
            raise ews_errors.translate(result)


def _ews_dt(value: datetime) -> EWSDateTime:
    return EWSDateTime.from_datetime(value.astimezone(UTC)).astimezone(EWSTimeZone("UTC"))
