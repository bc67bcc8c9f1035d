"""The scheduling inbox as a collection (RFC 6638 §2.2): its messages are calendar object resources.

The inbox is addressed like a calendar whose id is ``inbox`` (``/dav/calendars/{user}/inbox/{name}``),
so PROPFIND, GET, DELETE, calendar-multiget, calendar-query and sync-collection need no code of their
own: :class:`InboxRouting` stands in front of the backend for one request and answers the calendar
methods for that id from the backend's inbox methods. The inbox is read once per request (one
listing), its getctag and sync-token are a digest of the names and ETags it lists, and a PUT into it is
refused (RFC 6638 §2.2: clients do not store into an inbox; the server delivers).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime

from .backend import (
    Backend,
    CalendarInfo,
    CalendarObject,
    ChangeSet,
    Forbidden,
    InvalidSyncToken,
    Principal,
    PutResult,
)

INBOX = "inbox"
TOKEN_PREFIX = "urn:x-gateway:inbox:"
# Listings by user and token, so a sync-collection from a recent token can name what left the inbox; a
# token not kept here (a restart, an old one) is answered with valid-sync-token and the client syncs afresh.
_KEPT_TOKENS = 1024
_listings: dict[tuple[str, str], dict[str, str]] = {}


def token_of(user_id: str, objects: Sequence[CalendarObject]) -> str:
    """The inbox's sync-token (and ctag) for a listing: it changes exactly when a name or an ETag does."""
    listing = {o.name: o.etag for o in objects}
    digest = hashlib.sha256(repr(sorted(listing.items())).encode("utf-8")).hexdigest()[:32]
    token = TOKEN_PREFIX + digest
    if (user_id, token) not in _listings:
        if len(_listings) >= _KEPT_TOKENS:
            del _listings[next(iter(_listings))]
        _listings[(user_id, token)] = listing
    return token


def info(user_id: str, objects: Sequence[CalendarObject]) -> CalendarInfo:
    """The inbox as a collection: read-only, its ctag and sync-token from the listing."""
    return _described(token_of(user_id, objects))


def _described(token: str) -> CalendarInfo:
    return CalendarInfo(
        INBOX, "Inbox", ctag=token, sync_token=token, components=("VEVENT", "VFREEBUSY"), writable=False
    )


class InboxRouting:
    """A request's backend: calendar methods for the id ``inbox`` go to the inbox methods; every other
    call goes to the backend unchanged (``__getattr__``)."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._listing: list[CalendarObject] | None = None

    def __getattr__(self, name: str) -> object:
        return getattr(self._backend, name)

    async def _items(self, principal: Principal) -> list[CalendarObject]:
        if self._listing is None:  # one listing per request (a Depth-1 PROPFIND asks twice)
            self._listing = await self._backend.inbox_items(principal)
        return self._listing

    async def calendar(self, principal: Principal, calendar_id: str, *, fresh: bool = True) -> CalendarInfo:
        if calendar_id != INBOX:
            return await self._backend.calendar(principal, calendar_id, fresh=fresh)
        if not fresh and self._listing is None:
            # The caller needs the collection, not its state (a multiget): no listing for that.
            return _described("")
        return info(principal.user_id, await self._items(principal))

    async def list_objects(self, principal: Principal, calendar_id: str) -> list[CalendarObject]:
        if calendar_id != INBOX:
            return await self._backend.list_objects(principal, calendar_id)
        return list(await self._items(principal))

    async def query(
        self,
        principal: Principal,
        calendar_id: str,
        start: datetime | None,
        end: datetime | None,
        with_data: bool,
    ) -> list[CalendarObject]:
        """An inbox holds a few messages: all of them, the protocol layer filters."""
        if calendar_id != INBOX:
            return await self._backend.query(principal, calendar_id, start, end, with_data)
        listed = await self._items(principal)
        if not with_data:
            return list(listed)
        found = await self._backend.inbox_get(principal, [o.name for o in listed])
        return [o for o in found.values() if o is not None]

    async def get(
        self, principal: Principal, calendar_id: str, names: Sequence[str]
    ) -> dict[str, CalendarObject | None]:
        if calendar_id != INBOX:
            return await self._backend.get(principal, calendar_id, names)
        return await self._backend.inbox_get(principal, names)

    async def changes(
        self, principal: Principal, calendar_id: str, sync_token: str | None, limit: int | None
    ) -> ChangeSet:
        """RFC 6578 §3 on the inbox: against the listing a kept token names (the limit is not needed:
        an inbox holds a few messages)."""
        if calendar_id != INBOX:
            return await self._backend.changes(principal, calendar_id, sync_token, limit)
        listed = await self._items(principal)
        current = info(principal.user_id, listed)
        if sync_token is None:
            return ChangeSet(current.sync_token, list(listed), calendar=current)
        before = _listings.get((principal.user_id, sync_token))
        if before is None:
            raise InvalidSyncToken("The sync-token is unknown or too old; sync the inbox afresh.")
        changed = [o for o in listed if before.get(o.name) != o.etag]
        now = {o.name for o in listed}
        deleted = [name for name in before if name not in now]
        return ChangeSet(current.sync_token, changed, deleted, calendar=current)

    async def put(
        self,
        principal: Principal,
        calendar_id: str,
        name: str,
        ical: str,
        if_match: str | None,
        if_none_match: bool,
    ) -> PutResult:
        if calendar_id == INBOX:
            raise Forbidden(
                "The scheduling inbox receives invitations from Exchange; it cannot be written to."
            )
        return await self._backend.put(principal, calendar_id, name, ical, if_match, if_none_match)

    async def delete(self, principal: Principal, calendar_id: str, name: str, if_match: str | None) -> None:
        """DELETE of an inbox resource removes the message, not the meeting (RFC 6638 §4)."""
        if calendar_id != INBOX:
            return await self._backend.delete(principal, calendar_id, name, if_match)
        await self._backend.delete_inbox_item(principal, name, if_match)
        self._listing = None
