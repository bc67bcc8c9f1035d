"""Schedule tags (RFC 6638 §3.2.10, §3.3, §8.2, §8.3): what If-Schedule-Tag-Match compares.

A scheduling object resource (RFC 6638 §3.1: one with an ORGANIZER) carries a schedule tag that, unlike
the ETag, does not change when only attendees' participation changes: an organizer's client that sends
``If-Schedule-Tag-Match`` with the tag it read may overwrite the event although replies arrived since
(they changed the ETag), but not after a "consequential" change (a new time, a new title, another
attendee list).

Derivation: the tag is a hash of the served iCalendar text without what a reply changes: the parameters
of every ATTENDEE and of the ORGANIZER (PARTSTAT, and what recording a response re-renders with it: RSVP,
ROLE, CN as Exchange writes them once the client's own rendering of the people no longer matches, see
gateway/ews/mapping/merge.py) and the DTSTAMP / CREATED / LAST-MODIFIED stamps (Exchange updates the
item, and so its ETag, when it records a response). The people's addresses stay in the hash, so inviting
or removing someone, like any other change of the event, changes the tag. It needs no storage, is
the same on every gateway replica and for every store, and is computed from the text a GET returns,
so the tag on a GET, in a PROPFIND and in a REPORT always agree. A PUT answer carries it only when the
store kept the body as sent (as with the ETag, RFC 4791 §5.3.4: Exchange re-renders every event, so
the client learns the new tag from its next GET, which it needs for the new ETag anyway).
"""

from __future__ import annotations

import asyncio
import hashlib
import re

# An ORGANIZER property at the start of a line (RFC 5545 §3.1: names are case-insensitive).
_ORGANIZER = re.compile(r"^ORGANIZER[;:]", re.I | re.M)
_FOLD = re.compile(r"\r?\n[ \t]")
_STAMPS = ("DTSTAMP", "LAST-MODIFIED", "CREATED")
_PEOPLE = ("ATTENDEE", "ORGANIZER")
HASHED_INLINE_CHARS = 65_536  # larger texts are hashed in a worker thread


def is_scheduling_object(data: str) -> bool:
    """RFC 6638 §3.1: a calendar object with an ORGANIZER is a scheduling object resource."""
    return _ORGANIZER.search(data) is not None


def schedule_tag(data: str | None) -> str | None:
    """The schedule tag of a calendar object's text, None when it is not a scheduling object."""
    if data is None or not is_scheduling_object(data):
        return None
    digest = hashlib.sha256()
    for line in _FOLD.sub("", data).splitlines():
        name = _name(line)
        if name in _STAMPS:
            continue
        if name in _PEOPLE:
            line = f"{name}:{_value(line)}"
        digest.update(line.encode("utf-8"))
        digest.update(b"\n")
    return "st-" + digest.hexdigest()[:24]


async def schedule_tag_off_loop(data: str | None) -> str | None:
    """:func:`schedule_tag`, in a worker thread for a large text."""
    if data is None or len(data) <= HASHED_INLINE_CHARS:
        return schedule_tag(data)
    return await asyncio.to_thread(schedule_tag, data)


def _name(line: str) -> str:
    end = len(line)
    for sep in (";", ":"):
        at = line.find(sep)
        if at != -1:
            end = min(end, at)
    return line[:end].upper()


def _value(line: str) -> str:
    """A content line's value: what follows the first ':' outside a quoted parameter value (RFC 5545 §3.1),
    compared case-insensitively for a calendar address."""
    quoted = False
    for index, char in enumerate(line):
        if char == '"':
            quoted = not quoted
        elif char == ":" and not quoted:
            return line[index + 1 :].lower()
    return line


def matches(header: str | None, tag: str | None) -> bool:
    """Whether an ``If-Schedule-Tag-Match`` value (RFC 6638 §8.3: one quoted opaque tag) names ``tag``."""
    if header is None or tag is None:
        return False
    value = header.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    return value == tag
