"""Schedule tags (RFC 6638 §3.2.10, §3.3, §8.2, §8.3): what If-Schedule-Tag-Match compares.

A scheduling object resource (RFC 6638 §3.1: one with an ORGANIZER) carries a schedule tag that, unlike
the ETag, does not change when only attendees' participation changes: an organizer's client that sends
``If-Schedule-Tag-Match`` with the tag it read may overwrite the event although replies arrived since
(they changed the ETag), but not after a "consequential" change (a new time, a new title, another
attendee list).

Derivation: the tag is a hash of the served iCalendar text without what a reply changes. The stamps
(DTSTAMP, CREATED, LAST-MODIFIED) are left out: Exchange updates the item, and so its ETag, when it
records a response; so is X-MICROSOFT-CDO-BUSYSTATUS, which Exchange sets on an invitee's copy from the
invitee's own answer (RFC 6638 §3.2.10: an attendee's answer is not a change by the organizer). Of the ORGANIZER and ATTENDEE lines only who is invited counts, as Exchange keeps
it: each address (case-insensitively) and whether the attendee is required, optional or a resource,
as a set per component. Their other parameters (PARTSTAT, RSVP, CN, CUTYPE, their order) are how a
reply is spelled: once Exchange has recorded one, its own rendering of the people replaces the
client's (docs/MAPPING.md, "When the event is changed in Outlook"). Any other change of the event
changes the tag. It needs no storage, is the same on every gateway replica and for every store, and is
computed from the text a GET returns, so the tag on a GET, in a PROPFIND and in a REPORT always agree.
The answer to a PUT carries the tag of what was stored (methods.py reads a re-rendered event back).
"""

from __future__ import annotations

import asyncio
import hashlib
import re

# An ORGANIZER property at the start of a line (RFC 5545 §3.1: names are case-insensitive).
_ORGANIZER = re.compile(r"^ORGANIZER[;:]", re.I | re.M)
_FOLD = re.compile(r"\r?\n[ \t]")
# Left out of the tag: the stamps, and the busy status Exchange derives from the owner's own answer
# (an unanswered invitation shows Tentative, an accepted one the organizer's status).
_STAMPS = frozenset({"DTSTAMP", "CREATED", "LAST-MODIFIED", "X-MICROSOFT-CDO-BUSYSTATUS"})
_PEOPLE = frozenset({"ORGANIZER", "ATTENDEE"})
HASHED_INLINE_CHARS = 65_536  # larger texts are hashed in a worker thread


def is_scheduling_object(data: str) -> bool:
    """RFC 6638 §3.1: a calendar object with an ORGANIZER is a scheduling object resource."""
    return _ORGANIZER.search(data) is not None


def schedule_tag(data: str | None) -> str | None:
    """The schedule tag of a calendar object's text, None when it is not a scheduling object."""
    if data is None or not is_scheduling_object(data):
        return None
    digest = hashlib.sha256()
    people: list[set[str]] = [set()]  # who is invited, per open component
    for line in _FOLD.sub("", data).splitlines():
        name, params, value = _split(line)
        if name in _STAMPS:
            continue
        if name in _PEOPLE:
            people[-1].add(f"{name}:{_invited_as(name, params)}:{value.strip().lower()}")
            continue
        if name == "BEGIN":
            people.append(set())
        elif name == "END" and len(people) > 1:
            for person in sorted(people.pop()):
                digest.update(person.encode("utf-8") + b"\n")
        digest.update(line.encode("utf-8") + b"\n")
    return "st-" + digest.hexdigest()[:24]


async def schedule_tag_off_loop(data: str | None) -> str | None:
    """:func:`schedule_tag`, in a worker thread for a large text."""
    if data is None or len(data) <= HASHED_INLINE_CHARS:
        return schedule_tag(data)
    return await asyncio.to_thread(schedule_tag, data)


def _split(line: str) -> tuple[str, dict[str, str], str]:
    """A content line's upper-cased name, its parameters (names upper-cased, values unquoted) and its
    value (after the first ':' outside a quoted parameter value, RFC 5545 §3.1)."""
    quoted, cut = False, len(line)
    for index, char in enumerate(line):
        if char == '"':
            quoted = not quoted
        elif char == ":" and not quoted:
            cut = index
            break
    head, value = line[:cut], line[cut + 1 :]
    parts, quoted, start = [], False, 0
    for index, char in enumerate(head):
        if char == '"':
            quoted = not quoted
        elif char == ";" and not quoted:
            parts.append(head[start:index])
            start = index + 1
    parts.append(head[start:])
    params = {}
    for part in parts[1:]:
        key, _, val = part.partition("=")
        params[key.strip().upper()] = val.strip().strip('"')
    return parts[0].strip().upper(), params, value


def _invited_as(name: str, params: dict[str, str]) -> str:
    """What Exchange keeps of a calendar user besides the address: required, optional or resource
    (RFC 5545 §3.2.3 CUTYPE, §3.2.16 ROLE, whose default is REQ-PARTICIPANT)."""
    if name == "ORGANIZER":
        return "organizer"
    if params.get("CUTYPE", "").upper() in {"RESOURCE", "ROOM"}:
        return "resource"
    if params.get("ROLE", "").upper() in {"OPT-PARTICIPANT", "NON-PARTICIPANT"}:
        return "optional"
    return "required"


def matches(header: str | None, tag: str | None) -> bool:
    """Whether an ``If-Schedule-Tag-Match`` value (RFC 6638 §8.3: one quoted opaque tag) names ``tag``."""
    if header is None or tag is None:
        return False
    value = header.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    return value == tag
