"""Calendar collections: how each is described (RFC 4791 §4.2), made, changed and deleted.

The display name is the Exchange folder's name. Every mailbox's primary is "Calendar" in Exchange, so
for a user with several accounts each primary is shown with its mailbox, "Calendar (alice@example.com)",
and nothing is renamed in Exchange. A name a client sets on a primary (which Exchange does not let
anyone rename) is kept by the gateway and shown instead; a sub-calendar's name is renamed in Exchange.
The other properties a client sets (colour, order, description: whatever the CalDAV layer hands over
as writable) are kept by the gateway in its database, keyed by account and calendar id.

Exchange refuses two folders of one name under Calendar (ErrorFolderExists, case-insensitively); CalDAV
display names need not be unique. A name that is taken gives the folder the first free "Name (n)", and
the gateway keeps the client's name with the folder name it gave: the calendar shows the client's name
while the folder has that name, and the folder's own name once it was renamed in Outlook.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping

from exchangelib import Account
from exchangelib.errors import ErrorFolderExists
from exchangelib.folders import Folder

from gateway.caldav.backend import CalendarInfo, Forbidden, Principal
from gateway.ews.backend.calendars import CalendarDirectory
from gateway.ews.backend.calls import EwsCalls
from gateway.ews.backend.records import LRU, MailboxCalendar
from gateway.ews.backend.tracking import ChangeTracker, sync_token
from gateway.ews.exchange import distinguished_calendar
from gateway.ews.index import ItemIndex
from gateway.store.notify import FOLDERS, PROPERTIES

PROPERTY_CACHE_SECONDS = 60.0
# The collection properties (Clark names, see Backend.update_calendar) read back into CalendarInfo.
DISPLAYNAME = "{DAV:}displayname"
DESCRIPTION = "{urn:ietf:params:xml:ns:caldav}calendar-description"
COLOR = "{http://apple.com/ns/ical/}calendar-color"
ORDER = "{http://apple.com/ns/ical/}calendar-order"
# The folder name the gateway gave when the client's display name was taken (kept with that name).
FOLDER_NAME = "{urn:x-caldav-gateway}exchange-folder-name"
NUMBERED_NAMES = 50  # "Name", "Name (2)", … "Name (50)": after that the name is refused


class Collections:
    """The calendar collections of a principal: listing (FindFolder + SyncFolderItems), CreateFolder,
    UpdateFolder, DeleteFolder, and the client-set properties kept beside them."""

    def __init__(
        self,
        calls: EwsCalls,
        index: ItemIndex,
        directory: CalendarDirectory,
        tracker: ChangeTracker,
        *,
        live_accounts: int,
    ) -> None:
        self._calls = calls
        self._index = index
        self._directory = directory
        self._tracker = tracker
        # account id -> (read at, calendar id -> {Clark name: value})
        self._stored: LRU[str, tuple[float, dict[str, dict[str, str]]]] = LRU(max(1000, 20 * live_accounts))
        index.invalidations.subscribe(PROPERTIES, self._drop)

    def _drop(self, account_id: str | None) -> None:
        if account_id is None:
            self._stored.clear()
        else:
            self._stored.pop(account_id, None)

    async def calendars(self, principal: Principal) -> list[CalendarInfo]:
        """The home listing: accounts are read from the database and folders listed afresh (FindFolder),
        so changes made elsewhere (another replica, Outlook's new calendars) appear; one SyncFolderItems
        per calendar gives its ctag."""
        entries = await self._calls.connected(principal, fresh=True)
        self._directory.forget([entry.record for entry in entries])
        infos = []
        for cal in await self._directory.calendars_of(principal):
            epoch, seq = await self._tracker.refresh(cal)
            infos.append(await self.described(cal, epoch, seq, principal))
        return infos

    async def calendar(self, principal: Principal, calendar_id: str, *, fresh: bool) -> CalendarInfo:
        """The ctag/sync-token come from one SyncFolderItems; without ``fresh``, from the index."""
        cal = await self._directory.resolve(principal, calendar_id)
        if not fresh:
            # Identity only: even a calendar never synced yet costs no EWS call here (its first
            # month view stays FindItem + GetItem; the index is built when changes are asked for).
            epoch, seq = await self._tracker.known_state(cal)
            return await self.described(cal, epoch, seq, principal)
        epoch, seq = await self._tracker.refresh(cal)
        return await self.described(cal, epoch, seq, principal)

    async def described(
        self, cal: MailboxCalendar, epoch: str, seq: int, principal: Principal
    ) -> CalendarInfo:
        """The collection as of state (epoch, seq), with the properties clients set on it."""
        stored = (await self._properties(cal.record.account_id)).get(cal.calendar_id, {})
        order = stored.get(ORDER, "0" if cal.primary else "1")
        return CalendarInfo(
            calendar_id=cal.calendar_id,
            display_name=_shown_name(cal, principal, stored),
            ctag=f"{epoch}-{seq}",
            sync_token=sync_token(epoch, seq),
            owner_email=cal.record.email,
            description=stored.get(DESCRIPTION, f"Exchange calendar of {cal.record.email}"),
            color=stored.get(COLOR),
            order=int(order) if order.lstrip("-").isdigit() else 0,
            primary=cal.primary,
        )

    async def create(
        self, principal: Principal, calendar_id: str, display_name: str, properties: Mapping[str, str]
    ) -> CalendarInfo:
        """CreateFolder under the first account's Calendar (GetFolder of that first), then SyncFolderItems."""
        entries = await self._calls.connected(principal)
        if not entries:
            raise Forbidden("Connect an Exchange account before creating calendars.")
        record = entries[0].record
        account = self._calls.account(entries[0])
        wanted = display_name or calendar_id
        # One CreateFolder, more only while the name is taken. No discovery (of any replica) runs between
        # it and the alias, or it would name the new folder by its id until the folder list is read again.
        async with self._index.discovery_lock(record.account_id):
            folder = await self._calls.run(account, "CreateFolder", lambda: _create_folder(account, wanted))
            await self._index.add_alias(record.account_id, calendar_id, folder.id)
        stored: dict[str, str | None] = {k: v for k, v in properties.items() if k != DISPLAYNAME}
        if folder.name != wanted:
            stored |= {DISPLAYNAME: wanted, FOLDER_NAME: folder.name}
        if stored:
            await self._store(
                record.account_id, self._index.set_properties(record.account_id, calendar_id, stored)
            )
        self._directory.forget([record])
        cal = MailboxCalendar(calendar_id, record, account, folder, folder.name, False)
        epoch, seq = await self._tracker.refresh(cal)
        return await self.described(cal, epoch, seq, principal)

    async def update(
        self, principal: Principal, calendar_id: str, properties: Mapping[str, str | None]
    ) -> None:
        """displayname of a sub-calendar → UpdateFolder; of a primary (Exchange renames no mailbox's
        Calendar), and the other properties, are kept by the gateway. The name shown already (a client
        writing back what it read) changes nothing."""
        cal = await self._directory.resolve(principal, calendar_id)
        account_id = cal.record.account_id
        stored: dict[str, str | None] = {k: v for k, v in properties.items() if k != DISPLAYNAME}
        if DISPLAYNAME in properties:
            name = properties[DISPLAYNAME]
            shown = _shown_name(cal, principal, (await self._properties(account_id)).get(calendar_id, {}))
            if cal.primary:
                if name != shown:
                    stored[DISPLAYNAME] = name or None  # removing it shows the default name again
            elif name != shown:
                if not name:
                    raise Forbidden("A calendar needs a name.")
                folder = cal.folder
                given = await self._calls.run(
                    cal.account, "UpdateFolder", lambda: _rename_folder(folder, name)
                )
                await self._index.invalidations.publish(FOLDERS, account_id)  # every replica's list
                taken = given != name
                stored |= {DISPLAYNAME: name if taken else None, FOLDER_NAME: given if taken else None}
        if stored:
            await self._store(account_id, self._index.set_properties(account_id, calendar_id, stored))

    async def delete(self, principal: Principal, calendar_id: str) -> None:
        """DeleteFolder; the primary calendar cannot be deleted. The calendar's index, alias and
        properties go with it."""
        cal = await self._directory.resolve(principal, calendar_id)
        if cal.primary:
            raise Forbidden("The primary Exchange calendar cannot be deleted.")
        await self._calls.run(cal.account, "DeleteFolder", lambda: cal.folder.delete())
        account_id = cal.record.account_id
        self._directory.forget([cal.record])
        async with self._index.lock(cal.key):  # no replica's sync of it writes rows back meanwhile
            await self._index.forget_calendar(cal.key)
        await self._index.drop_alias(account_id, calendar_id)
        await self._store(account_id, self._index.drop_properties(account_id, calendar_id))

    async def _properties(self, account_id: str) -> dict[str, dict[str, str]]:
        """The collection properties clients set on the account's calendars.

        Read on every PROPFIND of a calendar but written rarely, so kept for PROPERTY_CACHE_SECONDS; a
        change shows at once in every replica (the writes announce it: gateway/store/notify.py).
        """
        loop = asyncio.get_running_loop()
        cached = self._stored.hit(account_id)
        if cached and loop.time() - cached[0] < PROPERTY_CACHE_SECONDS:
            return cached[1]
        token = self._index.invalidations.token(PROPERTIES, account_id)
        found = await self._index.properties(account_id)
        if self._index.invalidations.still(
            token, PROPERTIES, account_id
        ):  # not written (by any replica) while it was read
            self._stored.put(account_id, (loop.time(), found))
        return found

    async def _store(self, account_id: str, write: Awaitable[None]) -> None:
        """Run a write of the account's stored properties, dropping the cached ones around it."""
        self._index.invalidations.drop(PROPERTIES, account_id)
        try:
            await write
        finally:
            self._index.invalidations.drop(PROPERTIES, account_id)  # a read meanwhile is not cached


def _shown_name(cal: MailboxCalendar, principal: Principal, stored: Mapping[str, str]) -> str:
    """The display name. A name the gateway keeps: a primary's as a client set it; a sub-calendar's when
    it was taken, while the folder has the name the gateway gave it instead. Otherwise the folder's name,
    a primary's with its mailbox when the user has several accounts (each would be "Calendar")."""
    kept = stored.get(DISPLAYNAME)
    if kept and (cal.primary or stored.get(FOLDER_NAME) == cal.display_name):
        return kept
    if cal.primary and len(principal.emails) > 1:
        return f"{cal.display_name} ({cal.record.email})"
    return cal.display_name


def _numbered(name: str) -> list[str]:
    return [name] + [f"{name} ({n})" for n in range(2, NUMBERED_NAMES + 1)]


def _create_folder(account: Account, name: str) -> Folder:
    """CreateFolder under the mailbox's Calendar, named ``name`` or, while that is taken, "name (n)"
    (blocking; runs in the pool). When all NUMBERED_NAMES are taken, ErrorFolderExists goes on."""
    *first, last = _numbered(name)
    for candidate in first:
        try:
            return _new_folder(account, candidate)
        except ErrorFolderExists:
            continue
    return _new_folder(account, last)


def _new_folder(account: Account, name: str) -> Folder:
    folder = Folder(parent=distinguished_calendar(account), name=name, folder_class="IPF.Appointment")
    folder.save()
    return folder


def _rename_folder(folder: Folder, name: str) -> str:
    """UpdateFolder to ``name`` or, while a sibling has it, "name (n)"; returns the name given
    (blocking). When all NUMBERED_NAMES are taken, ErrorFolderExists goes on."""
    current = folder.name or ""
    candidates = _numbered(name)
    for candidate in candidates:
        if candidate != name and candidate.lower() == current.lower():
            return current  # the folder has this numbered name already, so no sibling has it
        folder.name = candidate
        try:
            folder.save(update_fields=["name"])
            return candidate
        except ErrorFolderExists:
            folder.name = current
            if candidate == candidates[-1]:
                raise
    return current  # not reached: the last candidate returns or raises
