"""Finding people and rooms of the organisation's directory (RFC 3744 §9.4 principal-property-search)."""

from __future__ import annotations

from exchangelib import Account

from gateway.caldav.backend import CalendarUserType, Person, Principal
from gateway.ews.backend.calls import EwsCalls

# EWS MailboxType -> RFC 6638 §2.4.2 calendar-user-type. ResolveNames calls a room a Mailbox too.
_USER_TYPES: dict[str, CalendarUserType] = {
    "Mailbox": "INDIVIDUAL",
    "Contact": "INDIVIDUAL",
    "OneOff": "INDIVIDUAL",
    "PublicDL": "GROUP",
    "PrivateDL": "GROUP",
    "GroupMailbox": "GROUP",
}


class People:
    """The directory as the principal's first account sees it."""

    def __init__(self, calls: EwsCalls) -> None:
        self._calls = calls

    async def search(self, principal: Principal, text: str, limit: int) -> list[Person]:
        """One ResolveNames (Active Directory only, not the user's contacts) through the first account;
        Exchange matches the start of names and addresses and returns at most 100 candidates."""
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
        return people[:limit]
