"""Finding people and rooms of the organisation's directory (RFC 3744 §9.4 principal-property-search)."""

from __future__ import annotations

import logging
import time

from exchangelib import Account

from gateway.caldav.backend import BackendError, CalendarUserType, Person, Principal
from gateway.ews.backend.calls import EwsCalls

log = logging.getLogger(__name__)

# EWS MailboxType -> RFC 6638 §2.4.2 calendar-user-type. ResolveNames calls a room a Mailbox too: rooms
# are told by the room lists (GetRoomLists, GetRooms).
_USER_TYPES: dict[str, CalendarUserType] = {
    "Mailbox": "INDIVIDUAL",
    "Contact": "INDIVIDUAL",
    "OneOff": "INDIVIDUAL",
    "PublicDL": "GROUP",
    "PrivateDL": "GROUP",
    "GroupMailbox": "GROUP",
}
ROOMS_SECONDS = 3600.0  # rooms are added rarely; their list is asked again after this


class People:
    """The directory as the principal's first account sees it."""

    def __init__(self, calls: EwsCalls) -> None:
        self._calls = calls
        self._rooms: dict[str, tuple[float, frozenset[str]]] = {}  # EWS URL -> (expiry, room addresses)

    async def search(self, principal: Principal, text: str, limit: int) -> list[Person]:
        """One ResolveNames (Active Directory only, not the user's contacts) through the first account;
        Exchange matches the start of names and addresses and returns at most 100 candidates. The
        first search of an organisation (per hour) also reads its rooms: GetRoomLists + GetRooms a list."""
        entries = await self._calls.connected(principal)
        if not entries:
            return []
        account = self._calls.account(entries[0])

        def resolve(acc: Account = account) -> list[object]:
            return list(acc.protocol.resolve_names([text], search_scope="ActiveDirectory"))

        people: list[Person] = []
        for found in await self._calls.run(account, "ResolveNames", resolve):
            address = getattr(found, "email_address", None)  # ErrorNameResolutionNoResults comes as an item
            if not address:
                continue
            kind = _USER_TYPES.get(getattr(found, "mailbox_type", None) or "", "UNKNOWN")
            people.append(Person(address, getattr(found, "name", None) or address, kind))
        if people:
            rooms = await self._room_addresses(account)
            people = [
                Person(p.email, p.display_name, "ROOM") if p.email.lower() in rooms else p for p in people
            ]
        return people[:limit]

    async def _room_addresses(self, account: Account) -> frozenset[str]:
        """Every room of every room list of the organisation, cached; none (not cached) when Exchange
        cannot say."""
        key = account.protocol.service_endpoint
        cached = self._rooms.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]

        def room_lists(acc: Account = account) -> list[str]:
            return [r.email_address for r in acc.protocol.get_roomlists() if r.email_address]

        def rooms_of(room_list: str, acc: Account = account) -> list[str]:
            return [r.email_address.lower() for r in acc.protocol.get_rooms(room_list) if r.email_address]

        found: set[str] = set()
        try:
            for room_list in await self._calls.run(account, "GetRoomLists", room_lists):
                found.update(await self._calls.run(account, "GetRooms", lambda r=room_list: rooms_of(r)))
        except BackendError as exc:  # a search without room types is still an answer; asked again next time
            log.warning("could not read the room lists: %s", exc)
            return frozenset()
        rooms = frozenset(found)
        self._rooms[key] = (time.monotonic() + ROOMS_SECONDS, rooms)
        return rooms
