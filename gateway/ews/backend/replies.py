"""Invitation replies: a PUT that answers an invitation becomes AcceptItem, TentativelyAcceptItem or
DeclineItem (RFC 6638 §3.2.2, "Attendee" behaviour; EWS CreateItem with a response object).

An attendee's client answers an invitation by changing the PARTSTAT of its own ATTENDEE and storing the
event again. Written back as an ordinary UpdateItem, that would change nothing the organizer sees. So a
PUT on an item the owner was invited to (the organizer is someone else) whose body differs from what
Exchange holds only in the owner's own PARTSTAT (ACCEPTED, TENTATIVE, DECLINED) — and perhaps a COMMENT,
which becomes the response's text — is sent as the matching response object on that item: one
CreateItem. Exchange then records the answer, tells the organizer (whose item takes the attendee's
response) and, for a decline, takes the meeting out of the calendar, which the client learns through
sync (the resource is gone: 404, and sync-collection reports it removed).

What counts as "only the PARTSTAT" (:func:`answer_of`): every field the mapping writes, compared as
:mod:`.replay` compares them (attendees by address), is what Exchange holds, except the free/busy
status (Exchange sets it from the answer); a series' overrides are what its exceptions hold and its
EXDATEs its deleted occurrences. The body's other unmapped properties (X- properties, DTSTAMP, …) are not
written: the reply is the one write. A PUT that changes more than that keeps the ordinary path
(UpdateItem, nothing sent). An answer to a single occurrence (only an override's PARTSTAT changed) also
keeps the ordinary path: see docs/WRITES.md.

Not sent, but recorded in the calendar (``MessageDisposition=SaveOnly``; Exchange keeps the unsent
response in Drafts) when the client asks to schedule itself (``SCHEDULE-AGENT=CLIENT`` on the ORGANIZER,
RFC 6638 §7.1, or on the owner's ATTENDEE) or when the account's invitation policy is "never".

A reply whose answer was lost is not sent twice: its retry finds the answer in Exchange already
(:func:`settled`: the same body, the owner's response already the body's) and succeeds without writing,
even with the ETag read before the reply (RFC 9110 §13.1.1); a decline notes the time in the index row
before DeclineItem, as a DELETE does, so the retry of a decline whose item is gone succeeds too
(:meth:`Replies.declined_here`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from exchangelib import CalendarItem
from exchangelib.items import AcceptItem, DeclineItem, TentativelyAcceptItem
from exchangelib.properties import Body, ReferenceItemId
from icalendar import Calendar

from gateway.ews import mapping
from gateway.ews.backend import replay
from gateway.ews.backend.calls import EwsCalls
from gateway.ews.backend.records import MailboxCalendar
from gateway.ews.backend.tracking import ChangeTracker
from gateway.ews.exchange import send_meeting_response
from gateway.ews.index import IndexedItem, ItemIndex

# The owner's answers a reply can carry (EWS ResponseType), and the response object of each.
_RESPONSE_OBJECTS = {"Accept": AcceptItem, "Tentative": TentativelyAcceptItem, "Decline": DeclineItem}
# Fields compared: all the mapping writes except the free/busy status, which Exchange sets from the answer.
_COMPARED = tuple(f for f in mapping.WRITE_FIELDS if f != "legacy_free_busy_status")
_OCCURRENCE_COMPARED = tuple(f for f in mapping.OCCURRENCE_FIELDS if f != "legacy_free_busy_status")


@dataclass(frozen=True)
class Reply:
    """An answer to send: the EWS ResponseType, the response's text, and whether the organizer hears it."""

    response: str
    comment: str | None = None
    send: bool = True


def _email(value: object) -> str:
    return (getattr(value, "email_address", None) or "").lower()


def own_answer(item: CalendarItem, owner: str) -> str | None:
    """The response (EWS ResponseType) the owner's ATTENDEE of a mapped body gives; None if not invited."""
    wanted = owner.lower()
    for people in (item.required_attendees, item.optional_attendees, item.resources):
        for attendee in people or ():
            if _email(attendee.mailbox) == wanted:
                return attendee.response_type
    return None


def invited(owner: str, current: CalendarItem, resource: mapping.EventResource) -> bool:
    """Whether ``current`` is an invitation to the owner, and the body keeps its organizer."""
    organizer = _email(current.organizer)
    return (
        bool(organizer)
        and organizer != owner.lower()
        and current.my_response_type != "Organizer"
        and (resource.organizer_email or "").lower() == organizer
    )


def answer_of(owner: str, current: CalendarItem, resource: mapping.EventResource) -> str | None:
    """The answer a PUT gives to an invitation when the body differs from what Exchange holds only in
    the owner's PARTSTAT (the master's fields; see the module docstring); None for any other PUT.

    Pure: a series' overrides are checked by the caller against the exceptions (:func:`same_occurrences`)."""
    if not invited(owner, current, resource):
        return None
    answer = own_answer(resource.master, owner)
    if answer not in _RESPONSE_OBJECTS or answer == current.my_response_type:
        return None
    return None if replay.differences(resource.master, current, _COMPARED) else answer


def settled(owner: str, current: CalendarItem, resource: mapping.EventResource) -> bool:
    """Whether Exchange already holds the body's answer and nothing else differs (the retry of a reply)."""
    return (
        invited(owner, current, resource)
        and own_answer(resource.master, owner) in _RESPONSE_OBJECTS
        and own_answer(resource.master, owner) == current.my_response_type
        and not replay.differences(resource.master, current, _COMPARED)
    )


def same_occurrences(
    current: CalendarItem, exceptions: dict[int, CalendarItem], resource: mapping.EventResource
) -> bool:
    """Whether the body's overrides are the series' exceptions and its EXDATEs its deleted occurrences."""
    plan = replay.occurrence_plan(
        current,
        exceptions,
        [(o.recurrence_id, o.item) for o in resource.overrides],
        resource.exdates,
        lambda value: mapping.occurrence_index(current, value),
        _OCCURRENCE_COMPARED,
    )
    return plan == ([], [])


def reply_options(ical: str, owner: str, policy: str) -> tuple[str | None, bool]:
    """(the COMMENT of the body's main VEVENT, whether to send): not sent when the client schedules
    itself (SCHEDULE-AGENT other than SERVER, RFC 6638 §7.1) or the account's policy is "never"."""
    calendar = Calendar.from_ical(ical)
    event = next((e for e in calendar.walk("VEVENT") if e.get("RECURRENCE-ID") is None), None)
    if event is None:
        return None, False
    agents = []
    organizer = event.get("ORGANIZER")
    if organizer is not None:
        agents.append(organizer.params.get("SCHEDULE-AGENT"))
    attendees = event.get("ATTENDEE", [])
    for attendee in attendees if isinstance(attendees, list) else [attendees]:
        address = str(attendee).lower().removeprefix("mailto:")
        if address == owner.lower():
            agents.append(attendee.params.get("SCHEDULE-AGENT"))
    by_server = all(str(a or "SERVER").upper() == "SERVER" for a in agents)
    comments = event.get("COMMENT", [])
    texts = [str(c) for c in (comments if isinstance(comments, list) else [comments]) if str(c).strip()]
    return ("\n".join(texts) or None), by_server and policy == "auto"


def declines(owner: str, resource: mapping.EventResource) -> bool:
    """Whether a body is an invitation from someone else that the owner declines."""
    organizer = (resource.organizer_email or "").lower()
    return bool(organizer) and organizer != owner.lower() and own_answer(resource.master, owner) == "Decline"


class Replies:
    """Sends the answers PUTs give to invitations, keeping the index in step."""

    def __init__(
        self,
        calls: EwsCalls,
        index: ItemIndex,
        tracker: ChangeTracker,
        recent: Callable[[float | None], bool],
    ) -> None:
        self._calls = calls
        self._index = index
        self._tracker = tracker
        self._recent = recent  # whether a DeleteItem noted at that time is recent enough to be retried

    async def decide(
        self,
        cal: MailboxCalendar,
        current: CalendarItem,
        resource: mapping.EventResource,
        ical: str,
        exceptions: Callable[[], Awaitable[dict[int, CalendarItem]]],
    ) -> Reply | bool:
        """The reply a PUT makes; True when Exchange already holds its answer (a retry); False otherwise.

        A series with overrides or exceptions costs one GetItem of the exceptions (``exceptions``: a
        look-up)."""
        owner = cal.record.email
        answer = answer_of(owner, current, resource)
        done = answer is None and settled(owner, current, resource)
        if answer is None and not done:
            return False
        series = resource.overrides or current.modified_occurrences or current.deleted_occurrences
        if series and not same_occurrences(current, await exceptions(), resource):
            return False
        if done:
            return True
        assert answer is not None
        comment, send = reply_options(ical, owner, cal.record.invitations)
        return Reply(answer, comment, send)

    async def send(self, cal: MailboxCalendar, current: CalendarItem, reply: Reply) -> None:
        """CreateItem of the response object on the item; a decline takes it out of the index."""
        if reply.response == "Decline":
            # Noted before sending, so the retry of a decline whose answer was lost is recognised.
            await self._index.request_delete(cal.key, current.id, time.time())
        response = _RESPONSE_OBJECTS[reply.response](
            account=cal.account,
            reference_item_id=ReferenceItemId(id=current.id, changekey=current.changekey),
            body=Body(reply.comment) if reply.comment else None,
        )
        await self._calls.run(
            cal.account, "CreateItem", lambda: send_meeting_response(cal.account, response, reply.send)
        )
        if reply.response == "Decline":
            await self._tracker.record_deleted(cal, current.id)

    async def declined_here(
        self, cal: MailboxCalendar, resource: mapping.EventResource, entry: IndexedItem | None, name: str
    ) -> bool:
        """Whether a PUT that declines an invitation whose item is gone repeats a recent decline made
        through the gateway (``entry``: the item's index row, or None when the index lost it already)."""
        if not declines(cal.record.email, resource):
            return False
        if entry is None:
            rows = await self._index.deleted_by_name(cal.key, name)
            entry = max(rows, key=lambda row: row.seq) if rows else None
        if entry is None or not self._recent(entry.delete_requested_at):
            return False
        if not entry.deleted:
            await self._tracker.record_deleted(cal, entry.item_id)
        return True
