"""The gateway's DAV URL space (RFC 4918 resources, RFC 4791 §4, RFC 6638 §2.1-2.2, RFC 6764).

``/dav/``                                   base collection: answers current-user-principal
``/dav/principals/``                        principal collection
``/dav/principals/{user}/``                 the user's principal
``/dav/principals/directory/{email}/``      someone of the directory a principal search found (read-only)
``/dav/calendars/{user}/``                  calendar home
``/dav/calendars/{user}/inbox/``            scheduling inbox (its calendar_id is ``inbox``)
``/dav/calendars/{user}/inbox/{name}``      a meeting request or cancellation in it (an OBJECT)
``/dav/calendars/{user}/outbox/``           scheduling outbox (free/busy POST)
``/dav/calendars/{user}/{calendar_id}/``    a calendar collection
``/dav/calendars/{user}/{calendar_id}/{name}``  a calendar object resource
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import quote

from .backend import RESERVED_CALENDAR_IDS

BASE = "/dav/"
WELL_KNOWN = "/.well-known/caldav"


class Kind(StrEnum):
    ROOT = "root"
    PRINCIPALS = "principals"
    PRINCIPAL = "principal"
    DIRECTORY = "directory"  # a directory principal: ``name`` is its address
    HOME = "home"
    INBOX = "inbox"
    OUTBOX = "outbox"
    CALENDAR = "calendar"
    OBJECT = "object"


COLLECTIONS = frozenset(Kind) - {Kind.OBJECT}


@dataclass(frozen=True)
class Resource:
    """One addressed resource: its kind and the identifiers in its path (decoded)."""

    kind: Kind
    user: str = ""
    calendar_id: str = ""
    name: str = ""

    @property
    def url(self) -> str:
        """The canonical (percent-encoded) path of this resource."""
        match self.kind:
            case Kind.ROOT:
                return BASE
            case Kind.PRINCIPALS:
                return BASE + "principals/"
            case Kind.PRINCIPAL:
                return principal_url(self.user)
            case Kind.DIRECTORY:
                return directory_url(self.name)
            case Kind.HOME:
                return home_url(self.user)
            case Kind.INBOX | Kind.OUTBOX:
                return home_url(self.user) + f"{self.kind.value}/"
            case Kind.CALENDAR:
                return calendar_url(self.user, self.calendar_id)
            case _:
                return calendar_url(self.user, self.calendar_id) + _seg(self.name)


def _seg(value: str) -> str:
    return quote(value, safe="@+:")


def principal_url(user: str) -> str:
    return f"{BASE}principals/{_seg(user)}/"


def directory_url(email: str) -> str:
    return f"{BASE}principals/directory/{_seg(email)}/"


def home_url(user: str) -> str:
    return f"{BASE}calendars/{_seg(user)}/"


def calendar_url(user: str, calendar_id: str) -> str:
    return f"{home_url(user)}{_seg(calendar_id)}/"


def inbox_url(user: str) -> str:
    return home_url(user) + "inbox/"


def outbox_url(user: str) -> str:
    return home_url(user) + "outbox/"


def resolve(path: str) -> Resource | None:
    """The resource a decoded request path names, or None when it names nothing in the DAV space."""
    if path == "/":
        return Resource(Kind.ROOT)  # the server root stands in for the base in discovery
    if not (path == BASE.rstrip("/") or path.startswith(BASE)):
        return None
    parts = [p for p in path[len(BASE) :].split("/") if p]
    if not parts:
        return Resource(Kind.ROOT)
    head, rest = parts[0], parts[1:]
    if head == "principals":
        if not rest:
            return Resource(Kind.PRINCIPALS)
        if len(rest) == 2 and rest[0] == "directory":
            return Resource(Kind.DIRECTORY, name=rest[1])
        return Resource(Kind.PRINCIPAL, rest[0]) if len(rest) == 1 else None
    if head != "calendars" or not rest or len(rest) > 3:
        return None
    user = rest[0]
    if len(rest) == 1:
        return Resource(Kind.HOME, user)
    collection = rest[1]
    if collection == "inbox":  # the scheduling inbox holds objects as a calendar does (caldav/inbox.py)
        return Resource(Kind.INBOX, user, collection) if len(rest) == 2 else Resource(Kind.OBJECT, *rest)
    if collection in RESERVED_CALENDAR_IDS:
        return Resource(Kind(collection), user) if len(rest) == 2 else None
    if len(rest) == 2:
        return Resource(Kind.CALENDAR, user, collection)
    return Resource(Kind.OBJECT, user, collection, rest[2])
