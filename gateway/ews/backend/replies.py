"""Invitation replies: a PUT that answers an invitation becomes AcceptItem, TentativelyAcceptItem or
DeclineItem (RFC 6638 §3.2.2, "Attendee" behaviour; EWS CreateItem with response objects).

An attendee's client answers an invitation by changing the PARTSTAT of its own ATTENDEE and storing the
event again. Written back as an ordinary UpdateItem, that would change nothing the organizer sees. So a
PUT on an item the owner was invited to (the organizer is someone else) whose body differs from what
Exchange holds only in the owner's own PARTSTAT (ACCEPTED, TENTATIVE, DECLINED) — and perhaps a COMMENT,
which becomes the response's text — is sent as the matching response objects, in one CreateItem: on the
item for the main VEVENT's PARTSTAT, on an occurrence for an override's (RECURRENCE-ID) own PARTSTAT
that differs from the series'. Exchange then records the answer, tells the organizer (whose item takes
the attendee's response) and, for a decline of the meeting, takes it out of the calendar, which the
client learns through sync (the resource is gone: 404, and sync-collection reports it removed); a
declined occurrence becomes a deleted occurrence (an EXDATE on the next read).

What counts as "only the PARTSTAT" (:func:`answers`): every field the mapping writes, compared as
:mod:`.replay` compares them (attendees by address), is what Exchange holds, except the free/busy
status (Exchange sets it from the answer), on the master and on each override (against the occurrence
Exchange holds: one GetItem of the overridden and modified occurrences, a look-up); the EXDATEs are the
deleted occurrences. The body's unmapped properties (X- properties, DTSTAMP, …) are not written: the
answer is the one write. A PUT that changes more than that keeps the ordinary path (UpdateItem, nothing
sent).

Not sent, but recorded in the calendar (``MessageDisposition=SaveOnly``; Exchange keeps the unsent
response in Drafts) when the client asks to schedule itself (``SCHEDULE-AGENT`` other than SERVER on
the ORGANIZER, RFC 6638 §7.1, or on the owner's ATTENDEE) or when the account's invitation policy is
"never".

A reply whose answer was lost is not sent twice: its retry finds the answers in Exchange already
(:func:`answers` gives none to send) and succeeds without writing, even with the ETag read before the
reply (RFC 9110 §13.1.1); a decline of the meeting notes the time in the index row before DeclineItem,
as a DELETE does, so the retry of a decline whose item is gone succeeds too
(:meth:`Replies.declined_here`).

A DELETE of an invitation declines it the same way (RFC 6638 §3.2.2): one DeclineItem instead of
DeleteItem, unless there is nothing to answer or the client schedules itself
(:func:`declines_on_delete`, :meth:`Replies.decline`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime

from exchangelib import CalendarItem
from exchangelib.items import AcceptItem, DeclineItem, TentativelyAcceptItem
from exchangelib.properties import Body, ReferenceItemId
from icalendar import Calendar, Event

from gateway.ews import mapping
from gateway.ews.backend import replay
from gateway.ews.backend.calls import EwsCalls, raise_first_error
from gateway.ews.backend.reads import ITEM_FIELDS, fetch_items
from gateway.ews.backend.records import MailboxCalendar, MailboxRecord
from gateway.ews.backend.tracking import ChangeTracker
from gateway.ews.exchange import CALDAV_RESIDUAL, occurrence_id, send_meeting_response
from gateway.ews.index import IndexedItem, ItemIndex

# The owner's answers a reply can carry (EWS ResponseType), and the response object of each.
_RESPONSE_OBJECTS = {"Accept": AcceptItem, "Tentative": TentativelyAcceptItem, "Decline": DeclineItem}
# Fields compared: all the mapping writes except the free/busy status, which Exchange sets from the answer.
_COMPARED = tuple(f for f in mapping.WRITE_FIELDS if f != "legacy_free_busy_status")
_OCCURRENCE_COMPARED = tuple(f for f in mapping.OCCURRENCE_FIELDS if f != "legacy_free_busy_status")
IndexOf = Callable[[datetime | date], int | None]


@dataclass(frozen=True)
class Answer:
    """One response object to send: the EWS ResponseType, for the meeting (``index`` None) or one
    occurrence of its series (its 1-based instance index)."""

    response: str
    index: int | None = None


@dataclass(frozen=True)
class Reply:
    """What a PUT sends: its answers, their texts (COMMENT, by index), whether the organizer hears them,
    and the ItemIds of the occurrences answered on their own."""

    answers: tuple[Answer, ...]
    comments: dict[int | None, str]
    send: bool = True
    occurrences: dict[int, str] = field(default_factory=dict)


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


def overridden(resource: mapping.EventResource, index_of: IndexOf) -> dict[int | None, CalendarItem]:
    """The body's overrides by the instance index of their occurrence (None: names no occurrence)."""
    return {index_of(o.recurrence_id): o.item for o in resource.overrides}


def answers(
    owner: str,
    current: CalendarItem,
    resource: mapping.EventResource,
    occurrences: dict[int, CalendarItem],
    index_of: IndexOf,
) -> list[Answer] | None:
    """The answers a PUT gives to an invitation when its body differs from what Exchange holds only in
    the owner's PARTSTATs (module docstring): [] when Exchange holds them all already (a retry); None
    for any other PUT, or one that answers nothing. Pure.

    ``occurrences`` are the occurrences Exchange holds for the body's overrides and the series'
    exceptions, by instance index. An override's answer is sent for its occurrence when it differs from
    what the occurrence will hold: the series' new answer, or else its own.
    """
    if not invited(owner, current, resource) or replay.differences(resource.master, current, _COMPARED):
        return None
    overrides = overridden(resource, index_of)
    deleted = {index_of(d.start) for d in current.deleted_occurrences or ()}
    modified = {index_of(o.original_start) for o in current.modified_occurrences or ()}
    # An occurrence declined on its own is deleted in Exchange: its override may stay in a retried body.
    gone = {i for i, item in overrides.items() if i in deleted and own_answer(item, owner) == "Decline"}
    excluded = {index_of(d) for d in resource.exdates}
    if None in overrides or modified - set(overrides) or excluded != deleted - gone:
        return None
    master = own_answer(resource.master, owner)
    given = [master, *(("Decline",) * len(gone))]
    found = [Answer(master)] if master in _RESPONSE_OBJECTS and master != current.my_response_type else []
    series = found[0].response if found else None
    for index, item in overrides.items():
        if index in gone:
            continue
        held = occurrences.get(index)
        if held is None or replay.differences(item, held, _OCCURRENCE_COMPARED):
            return None
        answer = own_answer(item, owner)
        given.append(answer)
        if (
            answer in _RESPONSE_OBJECTS
            and series != "Decline"
            and answer != (series or held.my_response_type)
        ):
            found.append(Answer(answer, index))
    return found if any(a in _RESPONSE_OBJECTS for a in given) else None


def reply_options(
    ical: str, owner: str, policy: str, index_of: IndexOf
) -> tuple[dict[int | None, str], bool]:
    """(the COMMENT of each VEVENT by instance index, None for the main one; whether to send): not sent
    when the client schedules itself (SCHEDULE-AGENT other than SERVER on the ORGANIZER or the owner's
    ATTENDEE, RFC 6638 §7.1) or the account's policy is "never"."""
    comments: dict[int | None, str] = {}
    agents = []
    for event in Calendar.from_ical(ical).walk("VEVENT"):
        rid = event.get("RECURRENCE-ID")
        index = index_of(rid.dt) if rid is not None else None
        agents.extend(_agents(event, owner))
        found = event.get("COMMENT", [])
        texts = [str(c) for c in (found if isinstance(found, list) else [found]) if str(c).strip()]
        if texts and (rid is None or index is not None):
            comments[index] = "\n".join(texts)
    by_server = all(str(a or "SERVER").upper() == "SERVER" for a in agents)
    return comments, by_server and policy == "auto"


def _agents(event: Event, owner: str) -> list[str | None]:
    """The SCHEDULE-AGENT parameters (RFC 6638 §7.1) of a VEVENT's ORGANIZER and the owner's ATTENDEE."""
    agents = []
    organizer = event.get("ORGANIZER")
    if organizer is not None:
        agents.append(organizer.params.get("SCHEDULE-AGENT"))
    attendees = event.get("ATTENDEE", [])
    for attendee in attendees if isinstance(attendees, list) else [attendees]:
        if str(attendee).lower().removeprefix("mailto:") == owner.lower():
            agents.append(attendee.params.get("SCHEDULE-AGENT"))
    return agents


def declines_on_delete(record: MailboxRecord, current: CalendarItem) -> bool:
    """Whether a DELETE of ``current`` is sent as a DeclineItem (RFC 6638 §3.2.2: an attendee removing
    an invitation declines it): a meeting someone else organises, neither cancelled nor declined already,
    on an account whose policy is "auto", and no SCHEDULE-AGENT other than SERVER on the ORGANIZER or the
    owner's ATTENDEE as the client last stored them (kept in the residual: RFC 6638 §7.1)."""
    organizer, owner = _email(current.organizer), record.email.lower()
    if (
        record.invitations != "auto"
        or not current.is_meeting
        or current.is_cancelled
        or not organizer
        or organizer == owner
        or current.my_response_type in ("Organizer", "Decline")
    ):
        return False
    residual = getattr(current, CALDAV_RESIDUAL, None)
    if not residual:
        return True
    try:
        events = Calendar.from_ical(residual).walk("VEVENT")
    except ValueError:  # an unreadable residual says nothing about who schedules
        return True
    agents = [a for event in events for a in _agents(event, owner)]
    return all(str(a or "SERVER").upper() == "SERVER" for a in agents)


def declines(owner: str, resource: mapping.EventResource) -> bool:
    """Whether a body is an invitation from someone else whose meeting the owner declines."""
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
        self, cal: MailboxCalendar, current: CalendarItem, resource: mapping.EventResource, ical: str
    ) -> tuple[Reply | None, bool]:
        """(the reply a PUT sends, whether Exchange already holds every answer it gives — a retry);
        (None, False) for a PUT that is not only an answer.

        A series costs one GetItem of the occurrences its overrides name and of its exceptions."""
        owner = cal.record.email
        given = [resource.master, *(o.item for o in resource.overrides)]
        if (
            not invited(owner, current, resource)
            or not any(own_answer(item, owner) in _RESPONSE_OBJECTS for item in given)
            or replay.differences(resource.master, current, _COMPARED)
        ):
            return None, False  # decided without looking the occurrences up: an ordinary update costs no more

        def index_of(value: datetime | date) -> int | None:
            return mapping.occurrence_index(current, value)

        occurrences = await self._occurrences(cal, current, resource, index_of)
        found = answers(owner, current, resource, occurrences, index_of)
        if not found:
            return None, found is not None
        comments, send = reply_options(ical, owner, cal.record.invitations, index_of)
        ids = {a.index: occurrences[a.index].id for a in found if a.index is not None}
        return Reply(tuple(found), comments, send, ids), False

    async def send(self, cal: MailboxCalendar, current: CalendarItem, reply: Reply) -> None:
        """One CreateItem of the response objects; a declined meeting leaves the index."""
        declined = any(a.response == "Decline" and a.index is None for a in reply.answers)
        if declined:
            # Noted before sending, so the retry of a decline whose answer was lost is recognised.
            await self._index.request_delete(cal.key, current.id, time.time())
        objects = []
        for answer in reply.answers:
            if answer.index is None:
                reference = ReferenceItemId(id=current.id, changekey=current.changekey)
            else:  # the series' answer, if any, goes first and changes its ChangeKey
                reference = ReferenceItemId(id=reply.occurrences[answer.index])
            text = reply.comments.get(answer.index)
            objects.append(
                _RESPONSE_OBJECTS[answer.response](
                    account=cal.account, reference_item_id=reference, body=Body(text) if text else None
                )
            )
        raise_first_error(
            await self._calls.run(
                cal.account, "CreateItem", lambda: send_meeting_response(cal.account, objects, reply.send)
            )
        )
        if declined:
            await self._tracker.record_deleted(cal, current.id)

    async def decline(self, cal: MailboxCalendar, current: CalendarItem) -> None:
        """One CreateItem of a DeclineItem sent to the organizer (``SendAndSaveCopy``): what a DELETE of an
        invitation does instead of DeleteItem (:func:`declines_on_delete`); Exchange then removes the
        meeting from the calendar. The caller keeps the index, as for DeleteItem."""
        reference = ReferenceItemId(id=current.id, changekey=current.changekey)
        objects = [DeclineItem(account=cal.account, reference_item_id=reference)]
        raise_first_error(
            await self._calls.run(
                cal.account, "CreateItem", lambda: send_meeting_response(cal.account, objects, True)
            )
        )

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

    async def _occurrences(
        self, cal: MailboxCalendar, current: CalendarItem, resource: mapping.EventResource, index_of: IndexOf
    ) -> dict[int, CalendarItem]:
        """The occurrences the body's overrides name and the series' exceptions, by index (one GetItem)."""
        deleted = {index_of(d.start) for d in current.deleted_occurrences or ()}
        wanted = {i for i in overridden(resource, index_of) if i is not None and i not in deleted}
        wanted |= {i for o in current.modified_occurrences or () if (i := index_of(o.original_start))}
        if not wanted or current.recurrence is None:
            return {}
        order = sorted(wanted)
        ids = [occurrence_id(current, i) for i in order]
        fetched = await self._calls.run(
            cal.account, "GetItem", lambda: fetch_items(cal.folder, ids, ITEM_FIELDS)
        )
        return {i: item for i, item in zip(order, fetched, strict=True) if item is not None}
