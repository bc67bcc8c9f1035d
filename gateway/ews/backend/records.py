"""What the EWS backend reads of the accounts beside it, and the calendar a request works on.

``gateway.accounts`` stores the connected mailboxes; the backend must not import it (it sits
beside the backend, and imports no exchangelib), so the attributes the backend reads are declared
here as Protocols that ``AccountService`` and its records satisfy.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from exchangelib import Account
from exchangelib.folders import Folder

from gateway.ews.calendar_ids import calendar_key
from gateway.ews.connection import ConnectionInfo, Credentials

K = TypeVar("K")
V = TypeVar("V")


class MailboxRecord(Protocol):
    """A connected Exchange mailbox as stored (``gateway.accounts.service.AccountRecord``)."""

    @property
    def account_id(self) -> str: ...
    @property
    def email(self) -> str: ...
    @property
    def ews_url(self) -> str: ...
    @property
    def auth_type(self) -> str: ...
    @property
    def username(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def build(self) -> str: ...
    @property
    def display_name(self) -> str | None: ...
    @property
    def working_elsewhere(self) -> str:
        """The FBTYPE a WorkingElsewhere period becomes: "FREE", "BUSY-TENTATIVE" or "BUSY"."""
        ...

    @property
    def invitations(self) -> str:
        """ "auto" (Exchange sends invitations for meetings the owner organises) or "never"."""
        ...


class ConnectedMailbox(Protocol):
    """A mailbox with its decrypted credentials (``gateway.accounts.service.ConnectedAccount``)."""

    @property
    def record(self) -> MailboxRecord: ...
    @property
    def credentials(self) -> Credentials: ...


class CalendarSettings(Protocol):
    """The user's calendar choices (``gateway.accounts.service.UserSettings``)."""

    @property
    def conflict_calendar_ids(self) -> tuple[str, ...] | None:
        """The calendars checked for conflicts; None means every account's primary calendar."""
        ...


class AccountDirectory(Protocol):
    """What the backend needs from ``gateway.accounts`` (see AccountService)."""

    async def connected_accounts(self, user_id: str, *, fresh: bool = False) -> Sequence[ConnectedMailbox]:
        """The user's accounts in order, each with ``record`` and decrypted ``credentials`` (cached)."""
        ...

    def forget_credentials(self, user_id: str) -> None:
        """Exchange refused the credentials: read them afresh next time."""
        ...

    async def settings(self, user_id: str) -> CalendarSettings:
        """The user's settings (which calendars count for their own free/busy)."""
        ...


@dataclass
class MailboxCalendar:
    """A resolved calendar: the account's record, its exchangelib Account and the folder."""

    calendar_id: str
    record: MailboxRecord
    account: Account
    folder: Folder
    display_name: str
    primary: bool
    tasks: bool = (
        False  # a task folder: a VTODO collection (gateway/ews/backend/tasks.py reads and writes it)
    )

    @property
    def key(self) -> str:
        """The calendar's key in the item index and for its lock."""
        return calendar_key(self.record.account_id, self.calendar_id)


def connection_info(record: MailboxRecord) -> ConnectionInfo:
    """The stored connection of a mailbox, as the client builds an exchangelib Account from it."""
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


class LRU(OrderedDict[K, V], Generic[K, V]):
    """A dict that keeps the ``size`` most recently used entries and, given ``weigh``, at most
    ``max_bytes`` of them by weight (an entry heavier than that alone is not kept).

    Entries are added with :meth:`put` (which keeps the count and the weight); ``bytes`` is the weight
    held. Caches of event data need the byte bound: a few events of a megabyte each would otherwise
    stay in memory as long as their count is small.
    """

    def __init__(
        self, size: int, *, max_bytes: int | None = None, weigh: Callable[[V], int] | None = None
    ) -> None:
        super().__init__()
        self.size = size
        self.max_bytes = max_bytes
        self.bytes = 0
        self._weigh = weigh
        self._weights: dict[K, int] = {}

    def hit(self, key: K) -> V | None:
        """The value for ``key`` (None if absent), now the most recently used."""
        value = self.get(key)
        if value is not None:
            self.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        weight = self._weigh(value) if self._weigh is not None else 0
        self.discard(key)
        if self.max_bytes is not None and weight > self.max_bytes:
            return  # keeping it would evict everything else and still exceed the budget
        self[key] = value
        self._weights[key] = weight
        self.bytes += weight
        while len(self) > self.size or (self.max_bytes is not None and self.bytes > self.max_bytes):
            oldest, _ = self.popitem(last=False)
            self.bytes -= self._weights.pop(oldest, 0)

    def discard(self, key: K) -> None:
        """Remove ``key`` if present."""
        if key in self:
            del self[key]
            self.bytes -= self._weights.pop(key, 0)
