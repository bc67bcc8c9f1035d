"""Which calendars a principal has: discovery of each mailbox's calendar folders, cached.

One GetFolder (the mailbox's Calendar) and one FindFolder (its sub-calendars) per mailbox, then
kept for ``folder_cache_seconds``; their names follow :mod:`gateway.ews.calendar_ids`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from exchangelib import Account
from exchangelib.fields import FieldPath
from exchangelib.folders import Calendar, Folder, Root
from exchangelib.folders.collections import FolderCollection

from gateway.caldav.backend import NotFound, Principal
from gateway.ews.backend.calls import EwsCalls
from gateway.ews.backend.records import LRU, ConnectedMailbox, MailboxCalendar, MailboxRecord
from gateway.ews.calendar_ids import primary_calendar_id, sub_calendar_id
from gateway.ews.exchange import distinguished_calendar
from gateway.ews.index import ItemIndex
from gateway.store.notify import FOLDERS


@dataclass(frozen=True)
class FolderRef:
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

    account: Account
    refs: tuple[FolderRef, ...]
    folders: tuple[Folder, ...]


class CalendarDirectory:
    """The calendar folders of each mailbox (GetFolder + FindFolder), cached per account."""

    def __init__(self, calls: EwsCalls, index: ItemIndex, *, folder_ttl: float, live_accounts: int) -> None:
        self._calls = calls
        self._index = index
        self._folder_ttl = folder_ttl
        # account id -> (loaded at, its calendar folders): small, so many more than live accounts
        self._folders: LRU[str, tuple[float, tuple[FolderRef, ...]]] = LRU(max(1000, 20 * live_accounts))
        self._bound: LRU[str, _Bound] = LRU(live_accounts)
        # a folder made, renamed or deleted through any replica drops the list (gateway/store/notify.py)
        index.invalidations.subscribe(FOLDERS, self._drop)

    async def resolve(self, principal: Principal, calendar_id: str) -> MailboxCalendar:
        """The principal's calendar with this id (only their own accounts are searched, in order, and
        only until it is found; an exchangelib Account is needed only for the one that holds it)."""
        entries = await self._calls.connected(principal)
        for refreshed in (False, True):
            if refreshed:  # a sub-calendar made in Outlook meanwhile
                self.forget([entry.record for entry in entries])
            for entry in entries:
                refs = await self._folder_refs(entry)
                for position, ref in enumerate(refs):
                    if ref.calendar_id == calendar_id:
                        return self._calendar(entry, refs, position)
        raise NotFound("No such calendar.")

    async def calendars_of(self, principal: Principal) -> list[MailboxCalendar]:
        """Every calendar of the principal's accounts, in account order, each primary first."""
        result = []
        for entry in await self._calls.connected(principal):
            refs = await self._folder_refs(entry)
            result += [self._calendar(entry, refs, position) for position in range(len(refs))]
        return result

    def forget(self, records: Sequence[MailboxRecord]) -> None:
        """Discover these accounts' folders afresh on next use (a folder was made, renamed or deleted)."""
        for record in records:
            self._index.invalidations.drop(FOLDERS, record.account_id)

    def _drop(self, account_id: str | None) -> None:
        if account_id is None:
            self._folders.clear()
        else:
            self._folders.pop(account_id, None)

    def _cached_refs(self, record: MailboxRecord) -> tuple[FolderRef, ...] | None:
        loop = asyncio.get_running_loop()
        cached = self._folders.hit(record.account_id)
        if cached and loop.time() - cached[0] < self._folder_ttl:
            return cached[1]
        return None

    async def _folder_refs(self, entry: ConnectedMailbox) -> tuple[FolderRef, ...]:
        """The calendar folders of one mailbox: GetFolder + FindFolder, cached for ``folder_cache_seconds``.

        A sub-calendar made with MKCALENDAR keeps the URL segment its client chose
        (an alias in the index); one made in Outlook gets a name derived from its folder id.
        """
        record = entry.record
        refs = self._cached_refs(record)
        if refs is not None:
            return refs
        # Parallel first requests of a user discover each mailbox once; across replicas, a discovery never
        # runs between a MKCALENDAR's CreateFolder and its alias (collections.py holds the same lock).
        async with self._index.discovery_lock(record.account_id):
            refs = self._cached_refs(record)
            if refs is not None:
                return refs
            return await self._discover(record, self._calls.account(entry))

    async def _discover(self, record: MailboxRecord, account: Account) -> tuple[FolderRef, ...]:
        """GetFolder of the Calendar + FindFolder of its calendar children, in one worker call."""
        loop = asyncio.get_running_loop()
        token = self._index.invalidations.token(FOLDERS, record.account_id)
        aliases = await self._index.aliases(record.account_id)
        loaded = await self._calls.run(account, "FindFolder", lambda: _load_folders(account, record, aliases))
        refs = tuple(ref for ref, _ in loaded)
        if self._index.invalidations.still(
            token, FOLDERS, record.account_id
        ):  # no folder changed while they were read
            self._folders.put(record.account_id, (loop.time(), refs))
        self._bound.put(record.account_id, _Bound(account, refs, tuple(folder for _, folder in loaded)))
        return refs

    def _calendar(
        self, entry: ConnectedMailbox, refs: tuple[FolderRef, ...], position: int
    ) -> MailboxCalendar:
        """The calendar ``refs[position]`` of a connected account, its folder bound to the current Account
        (the client's LRU may have re-created the Account since the folders were discovered)."""
        record = entry.record
        account = self._calls.account(entry)
        bound = self._bound.hit(record.account_id)
        if bound is None or bound.account is not account or bound.refs is not refs:
            bound = _Bound(account, refs, tuple(_bind(account, ref) for ref in refs))
            self._bound.put(record.account_id, bound)
        ref = refs[position]
        return MailboxCalendar(
            ref.calendar_id, record, account, bound.folders[position], ref.name, ref.primary
        )


def _load_folders(
    account: Account, record: MailboxRecord, aliases: dict[str, str]
) -> list[tuple[FolderRef, Folder]]:
    """GetFolder of the mailbox's Calendar, FindFolder of its children (blocking; runs in the pool)."""
    primary = distinguished_calendar(account)
    cid = primary_calendar_id(record.account_id)
    found = [(FolderRef(cid, primary.id, primary.changekey, primary.name or "Calendar", True), primary)]
    children = FolderCollection(account=account, folders=[primary]).find_folders(
        additional_fields={
            FieldPath(field=Folder.get_field_by_fieldname(n)) for n in ("name", "folder_class")
        }
    )
    for child in children:
        if isinstance(child, Exception) or (child.folder_class or "IPF.Appointment") != "IPF.Appointment":
            continue
        cid = aliases.get(child.id) or sub_calendar_id(record.account_id, child.id)
        found.append((FolderRef(cid, child.id, child.changekey, child.name or "Calendar", False), child))
    return found


def _bind(account: Account, ref: FolderRef) -> Folder:
    """A folder object for ``account`` from what discovery stored (no network traffic). Its root is the
    mailbox's distinguished root, which EWS addresses by name, so no GetFolder is needed."""
    return Calendar(root=Root(account=account), id=ref.folder_id, changekey=ref.changekey, name=ref.name)
