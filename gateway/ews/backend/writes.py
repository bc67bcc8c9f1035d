"""Writes: PUT (RFC 4791 §5.3.2) as CreateItem or UpdateItem, occurrences, DELETE, and who is invited.

- PUT: SyncFolderItems (duplicate check) + CreateItem, or GetItem + UpdateItem; a series'
  overrides cost one more UpdateItem (all occurrences in one request) and new EXDATEs one DeleteItem.
  The answer carries no ETag: Exchange re-renders the event, so it is never octet-identical to the
  request (RFC 4791 §5.3.4) and the client fetches it before changing it again. A created item is
  indexed at once, so that GET is one GetItem;
- a PUT that only answers an invitation: GetItem + one CreateItem of AcceptItem, TentativelyAcceptItem
  or DeclineItem (:mod:`.replies`);
- DELETE: GetItem (only for If-Match or invitations) + DeleteItem, or for an invitation (the organizer
  is someone else) one CreateItem of a DeclineItem instead (:func:`.replies.declines_on_delete`).

``If-Match`` is checked by Exchange itself (``ConflictResolution=NeverOverwrite``), so a change made
in Outlook between the client's read and its write is never overwritten.

When Exchange fails (docs/WRITES.md has the whole picture):

- A write whose answer is lost (a broken connection, a timeout, an HTTP error after Exchange did the
  work) answers 503 and is never repeated by the gateway, which cannot tell whether it was done. The
  client's retry of the same request then succeeds:

  * a PUT whose content Exchange already holds succeeds without writing (RFC 9110 §13.1.1: the
    final state is already reflected), even with the old ETag in ``If-Match`` or with
    ``If-None-Match: *`` — :mod:`.replay` tells it by the body's fingerprint stored with the item and
    by comparing the item's fields with the body's; a series whose master was written but not all
    its occurrences gets the rest written. Anything else keeps its 412.
  * a DELETE of an object already gone is 204 when the gateway itself sent a DeleteItem for it in
    the last :data:`RETRY_WINDOW_SECONDS` (noted in the index before sending); otherwise 404.
- Exchange refusing a write as busy (ErrorServerBusy) means it did not do it: the gateway waits as
  asked and runs the whole request again within its retry budget — looking before writing, as a
  client's retry does, so whatever got done is not done twice.
- A create is all or nothing: if Exchange fails between CreateItem and the occurrence writes, the new
  item is deleted again (with cancellations if invitations went out). Should that fail too, the
  retry finishes the series. An update cannot be undone in EWS (Exchange drops a series' exceptions
  when its recurrence is rewritten); until the client's retry finishes it, the series shows the new
  master with the occurrence changes that were written.
- One PUT never creates two items: CreateItem is sent again only after Exchange refused it, and
  only when a fresh SyncFolderItems shows no item with that name.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import TypeVar

from exchangelib import Account, CalendarItem
from exchangelib.errors import ErrorCalendarOccurrenceIsDeletedFromRecurrence
from exchangelib.items import (
    ALWAYS_OVERWRITE,
    NEVER_OVERWRITE,
    SEND_TO_ALL_AND_SAVE_COPY,
    SEND_TO_NONE,
)
from exchangelib.properties import ItemId, OccurrenceItemId

from gateway.caldav.backend import (
    BackendError,
    InvalidCalendarData,
    NotFound,
    PreconditionFailed,
    PutResult,
    UidConflict,
)
from gateway.ews import mapping
from gateway.ews.backend import invitations, replay
from gateway.ews.backend.calls import EwsCalls, ExchangeRefused, raise_first_error
from gateway.ews.backend.reads import ITEM_FIELDS, fetch_items
from gateway.ews.backend.records import MailboxCalendar
from gateway.ews.backend.replies import Replies, declines_on_delete
from gateway.ews.backend.tracking import ChangeTracker
from gateway.ews.exchange import CALDAV_FINGERPRINT, CALDAV_RESIDUAL, address_occurrence, occurrence_id
from gateway.ews.index import IndexedItem, ItemChange, ItemIndex
from gateway.store import locks

log = logging.getLogger(__name__)
T = TypeVar("T")

# What a DELETE checks before DeleteItem, or DeclineItem for an invitation (replies.declines_on_delete).
_DELETE_FIELDS = ["changekey", "organizer", "is_meeting", "is_cancelled", "my_response_type", CALDAV_RESIDUAL]
_CURRENT_FIELDS = [*ITEM_FIELDS, CALDAV_FINGERPRINT]  # what a PUT reads of the item it replaces
INLINE_BODY_CHARS = 16_384  # larger bodies are mapped off the event loop (gateway.caldav.validation too)
# How long after the gateway sent a DeleteItem a DELETE of the same object counts as its retry.
RETRY_WINDOW_SECONDS = 3600.0


@dataclass(frozen=True)
class _Put:
    """One PUT request, as every attempt at it sees it."""

    name: str
    ical: str
    resource: mapping.EventResource
    fingerprint: str
    if_match: str | None
    if_none_match: bool


class Writer:
    """Creates, updates and deletes calendar objects in Exchange, keeping the index in step."""

    def __init__(self, calls: EwsCalls, index: ItemIndex, tracker: ChangeTracker, *, default_tz: str) -> None:
        self._calls = calls
        self._index = index
        self._tracker = tracker
        self._default_tz = default_tz
        # A create holds its calendar's create lock while its look-up takes the index lock: two lock
        # connections (gateway/store/locks.py). At most half the lock connections go to create locks, so
        # the holders always find one for the index lock they wait for (else all could hold one, wait
        # for a second, and starve until the pool gives up).
        self._creating = asyncio.Semaphore(max(1, (locks.LOCK_POOL_SIZE + locks.LOCK_POOL_OVERFLOW) // 2))
        self._replies = Replies(calls, index, tracker, _recent)  # PUTs that answer invitations

    async def put(
        self, cal: MailboxCalendar, name: str, ical: str, if_match: str | None, if_none_match: bool
    ) -> PutResult:
        """Create (CreateItem) or replace (GetItem + UpdateItem) the object ``name``."""
        resource = await _from_ical(ical, self._default_tz)
        _check_overrides(resource)  # before any write: a create is not left half done by bad input
        request = _Put(name, ical, resource, replay.fingerprint(ical), if_match, if_none_match)
        await self._tracker.creates_recorded(cal)  # a PUT right after a PUT finds the new row

        async def attempt(number: int) -> PutResult:
            nonlocal request
            if number:  # the items of an attempt carry what Exchange made of them (ids): start afresh
                request = replace(request, resource=await _from_ical(ical, self._default_tz))
            return await self._put_once(cal, request)

        return await _repeating(self._calls.retry_budget_s, attempt)

    async def _put_once(self, cal: MailboxCalendar, put: _Put) -> PutResult:
        for _ in range(2):  # once more if the indexed item turns out to be gone from Exchange
            result = await self._put_located(cal, put)
            if result is not None:
                return result
        raise PreconditionFailed("The resource changed or vanished in Exchange meanwhile; read it again.")

    async def _put_located(self, cal: MailboxCalendar, put: _Put) -> PutResult | None:
        """The PUT against the item named like the request and the item with its UID; None when the
        indexed item was gone from Exchange (the index has learnt it).

        An item the index knows is written at once. Otherwise Exchange's current state is looked up
        (a SyncFolderItems: a create is checked against it in any case, and a retried PUT finds the
        item its first attempt created) and the item created under the calendar's create lock, held
        in every replica: two PUTs of one new name or UID sent at once would otherwise both find
        nothing and both create (RFC 4791 §5.3.2.1 no-uid-conflict; docs/WRITES.md rule 6)."""
        if not put.if_none_match:
            existing, holder = await self._index.by_name_and_uid(cal.key, put.name, put.resource.uid)
            if existing is not None:
                return await self._write(cal, put, existing, holder)
        async with self._creating, self._index.create_lock(cal.key):
            await self._tracker.refresh(cal)
            existing, holder = await self._index.by_name_and_uid(cal.key, put.name, put.resource.uid)
            return await self._write(cal, put, existing, holder)

    async def _write(
        self, cal: MailboxCalendar, put: _Put, existing: IndexedItem | None, holder: IndexedItem | None
    ) -> PutResult | None:
        if existing is not None and existing.uid is not None and existing.uid != put.resource.uid:
            # RFC 4791 §5.3.2.1 (CALDAV:no-uid-conflict) forbids both a UID another resource holds and
            # overwriting "an existing calendar object resource with one that has a different UID":
            # the resource named is then the one addressed, which keeps its UID.
            raise UidConflict(
                f"This resource holds the event with UID {existing.uid!r}; a PUT cannot change it to "
                f"{put.resource.uid!r}. Store the new event under a new name.",
                put.name,
            )
        if holder is not None and (existing is None or holder.item_id != existing.item_id):
            raise UidConflict(
                f"The UID {put.resource.uid!r} is already used by another resource in this calendar.",
                holder.name,
            )
        if existing is None:
            if await self._replies.declined_here(cal, put.resource, None, put.name):
                return PutResult(etag=None, created=False)  # the retry of a decline that went through
            if put.if_match:
                raise PreconditionFailed("The resource does not exist, so If-Match cannot hold.")
            await self._create(cal, put)
            return PutResult(etag=None, created=True)  # Exchange re-renders: never octet-identical
        current = await _fetch(self._calls, cal, existing.item_id, _CURRENT_FIELDS)
        if current is not None:
            await self._replace(cal, current, put)
            return PutResult(etag=None, created=False)
        if await self._replies.declined_here(cal, put.resource, existing, put.name):
            return PutResult(etag=None, created=False)
        await self._tracker.record_deleted(cal, existing.item_id)  # the index learns it is gone
        return None

    async def _replace(self, cal: MailboxCalendar, current: CalendarItem, put: _Put) -> None:
        """Nothing when Exchange already holds the body (its retry), else, after the preconditions, the
        answer to an invitation (:mod:`.replies`) or UpdateItem."""
        if current.caldav_fingerprint == put.fingerprint and await self._replayed(cal, current, put):
            return
        reply, answered = await self._replies.decide(cal, current, put.resource, put.ical)
        if answered and put.if_match and put.if_match != current.changekey:
            return  # the retry of an answer Exchange holds already (RFC 9110 §13.1.1)
        if put.if_none_match:
            raise PreconditionFailed("A resource with this name already exists (If-None-Match: *).")
        if put.if_match and put.if_match != current.changekey:
            raise PreconditionFailed("The resource was changed since you read it (ETag mismatch).")
        if reply is not None:
            return await self._replies.send(cal, current, reply)
        await self._update(cal, current, put)

    async def _create(self, cal: MailboxCalendar, put: _Put) -> None:
        """CreateItem of the master (it carries the client's resource name), then its occurrences; if
        those fail, the new item is deleted again."""
        resource = put.resource
        item = resource.master
        item.account, item.folder = cal.account, cal.folder
        item.caldav_name, item.caldav_fingerprint = put.name, put.fingerprint
        item.caldav_residual = resource.residual
        send = invitations.on_create(cal.record, resource)
        await self._calls.run(cal.account, "CreateItem", lambda: item.save(send_meeting_invitations=send))
        await self._tracker.record_created(cal, ItemChange(item.id, item.changekey, put.name, resource.uid))
        if not (resource.overrides or resource.exdates):
            return
        try:
            await _write_occurrences(self._calls, cal, item, resource.overrides, resource.exdates, send)
        except BackendError:
            await self._undo_create(cal, item, send)
            raise

    async def _undo_create(self, cal: MailboxCalendar, item: CalendarItem, send: str) -> None:
        """DeleteItem of an item this PUT created but could not finish; if that fails too, the client's
        retry of the PUT finishes the series instead."""
        cancel = SEND_TO_ALL_AND_SAVE_COPY if send != SEND_TO_NONE else SEND_TO_NONE
        account = cal.account
        try:
            results = await self._calls.run(
                account,
                "DeleteItem",
                lambda: list(account.bulk_delete([ItemId(item.id)], send_meeting_cancellations=cancel)),
            )
            raise_first_error(results)
        except BackendError as exc:
            log.warning("undoing a half-written create failed; the client's retry finishes it: %s", exc)
            return
        await self._tracker.record_deleted(cal, item.id)

    async def _update(self, cal: MailboxCalendar, current: CalendarItem, put: _Put) -> None:
        """UpdateItem of the changed fields of the current version, then the occurrences."""
        resource = put.resource
        reset, deleted = _reset(current, resource)
        fields = [f for f in mapping.WRITE_FIELDS if reset or f != "recurrence"]
        wanted = _index_in(resource.master)
        exdates = resource.exdates if reset else [d for d in resource.exdates if wanted(d) not in deleted]
        for field in fields:
            setattr(current, field, getattr(resource.master, field))
        current.caldav_fingerprint = put.fingerprint
        current.caldav_residual = resource.residual  # replaces what the previous PUT kept
        send = invitations.on_update(cal.record, resource)
        conflict = NEVER_OVERWRITE if put.if_match else ALWAYS_OVERWRITE
        await self._calls.run(
            cal.account,
            "UpdateItem",
            lambda: current.save(
                update_fields=[*fields, CALDAV_RESIDUAL, CALDAV_FINGERPRINT],
                conflict_resolution=conflict,
                send_meeting_invitations=send,
            ),
        )
        await _write_occurrences(self._calls, cal, current, resource.overrides, exdates, send)

    async def _replayed(self, cal: MailboxCalendar, current: CalendarItem, put: _Put) -> bool:
        """Whether Exchange holds what ``put`` asks for, once the occurrence writes a failed attempt of
        it left undone are done (:mod:`.replay`); False when the item differs otherwise."""
        resource = put.resource
        if replay.differences(resource.master, current, mapping.WRITE_FIELDS):
            return False
        if not (resource.overrides or resource.exdates or current.modified_occurrences):
            return not current.deleted_occurrences
        exceptions = await _exceptions(self._calls, cal, current)
        plan = replay.occurrence_plan(
            current,
            exceptions,
            [(o.recurrence_id, o.item) for o in resource.overrides],
            resource.exdates,
            lambda value: mapping.occurrence_index(current, value),
            mapping.OCCURRENCE_FIELDS,
        )
        if plan is None:
            return False
        rewrite, exdates = plan
        overrides = [o for o in resource.overrides if o.recurrence_id in rewrite]
        send = invitations.on_update(cal.record, resource)
        await _write_occurrences(self._calls, cal, current, overrides, exdates, send)
        return True

    async def delete(self, cal: MailboxCalendar, name: str, if_match: str | None) -> None:
        """DeleteItem of the object (a series whole), or DeclineItem of an invitation; GetItem first only
        for If-Match or invitations.

        The deletion is indexed at once. A retried DELETE whose first answer was lost is 204 when the
        gateway can tell it deleted the item itself (module docstring), else a vanished item is 404.
        """
        await self._tracker.creates_recorded(cal)  # a DELETE right after the PUT finds the new row
        await _repeating(self._calls.retry_budget_s, lambda _: self._delete_once(cal, name, if_match))

    async def _delete_once(self, cal: MailboxCalendar, name: str, if_match: str | None) -> None:
        entry = await self._index.by_name(cal.key, name)
        if entry is None:
            if await self._deleted_here(cal, name):
                return
            await self._tracker.refresh(cal)
            entry = await self._index.by_name(cal.key, name)
        if entry is None:
            raise NotFound("No such calendar object.")
        send, current = SEND_TO_NONE, None
        if if_match or cal.record.invitations == "auto":
            current = await _fetch(self._calls, cal, entry.item_id, _DELETE_FIELDS)
            if current is None:
                return await self._vanished(cal, entry)
            if if_match and if_match != current.changekey:
                raise PreconditionFailed("The resource was changed since you read it (ETag mismatch).")
            send = invitations.on_delete(cal.record, current)
        await self._index.request_delete(cal.key, entry.item_id, time.time())
        try:
            if current is not None and declines_on_delete(cal.record, current):
                await self._replies.decline(cal, current)  # the organizer hears (RFC 6638 §3.2.2)
            else:
                await _delete_item(self._calls, cal, entry.item_id, send)
        except NotFound:
            await self._index.request_delete(cal.key, entry.item_id, entry.delete_requested_at)
            return await self._vanished(cal, entry)
        await self._tracker.record_deleted(cal, entry.item_id)

    async def _vanished(self, cal: MailboxCalendar, entry: IndexedItem) -> None:
        """The item is no longer in Exchange: the index learns it at once; the DELETE succeeds only
        if the gateway itself sent a DeleteItem for it recently (a retry whose first answer was lost)."""
        await self._tracker.record_deleted(cal, entry.item_id)
        if not _recent(entry.delete_requested_at):
            raise NotFound("The calendar object no longer exists in Exchange.")

    async def _deleted_here(self, cal: MailboxCalendar, name: str) -> bool:
        """Whether the last object named ``name`` was removed by a recent DELETE through the gateway."""
        rows = await self._index.deleted_by_name(cal.key, name)
        return bool(rows) and _recent(max(rows, key=lambda row: row.seq).delete_requested_at)


async def _repeating(budget_s: float, attempt: Callable[[int], Awaitable[T]]) -> T:
    """Run a whole write again while Exchange refuses it as busy, within the retry budget."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + budget_s
    number = 0
    while True:
        try:
            return await attempt(number)
        except ExchangeRefused as refused:
            if loop.time() + refused.back_off > deadline:
                raise
            await asyncio.sleep(refused.back_off)
        number += 1


async def _exceptions(calls: EwsCalls, cal: MailboxCalendar, master: CalendarItem) -> dict[int, CalendarItem]:
    """The series' modified occurrences (one GetItem), by instance index."""
    ids = [ItemId(o.id, o.changekey) for o in master.modified_occurrences or ()]
    if not ids:
        return {}
    fetched = await calls.run(cal.account, "GetItem", lambda: fetch_items(cal.folder, ids, ITEM_FIELDS))
    found = {}
    for item in fetched:
        if item is not None and (index := mapping.occurrence_index(master, item.original_start)):
            found[index] = item
    return found


async def _write_occurrences(
    calls: EwsCalls,
    cal: MailboxCalendar,
    master: CalendarItem,
    overrides: list[mapping.Override],
    exdates: list[datetime | date],
    send: str,
) -> None:
    """RECURRENCE-ID overrides → UpdateItem on occurrences; EXDATEs → DeleteItem of occurrences."""
    updates = _overrides(cal, master, overrides)
    deletions = [
        occurrence_id(master, index)
        for exdate in exdates
        if (index := mapping.occurrence_index(master, exdate)) is not None
    ]
    account = cal.account
    if updates:
        raise_first_error(await calls.run(account, "UpdateItem", lambda: _update_all(account, updates, send)))
    if deletions:
        raise_first_error(
            await calls.run(account, "DeleteItem", lambda: _delete_occurrences(account, deletions, send))
        )


async def _delete_item(calls: EwsCalls, cal: MailboxCalendar, item_id: str, send: str) -> None:
    """DeleteItem of one item (a series whole), sending cancellations as ``send`` says."""
    account = cal.account
    results = await calls.run(
        account,
        "DeleteItem",
        lambda: list(account.bulk_delete([ItemId(item_id)], send_meeting_cancellations=send)),
    )
    raise_first_error(results)


async def _fetch(
    calls: EwsCalls, cal: MailboxCalendar, item_id: str, fields: list[str]
) -> CalendarItem | None:
    """GetItem of one item; None when Exchange no longer has it."""
    return (
        await calls.run(cal.account, "GetItem", lambda: fetch_items(cal.folder, [ItemId(item_id)], fields))
    )[0]


def _index_in(master: CalendarItem) -> Callable[[datetime | date], int | None]:
    """The instance index (in ``master``'s series) of an occurrence given by its original start."""
    return lambda value: mapping.occurrence_index(master, value)


def _reset(current: CalendarItem, resource: mapping.EventResource) -> tuple[bool, set[int | None]]:
    """(whether the update must write the recurrence, the indexes of the occurrences deleted now).

    Exchange drops every exception and deleted occurrence of a series whose recurrence pattern
    changes, so the pattern is only written when it changed or an exception or a deletion must go
    (EWS cannot revert one occurrence); the occurrences are then re-applied from the body.
    Occurrences are compared by instance index, however their times are written.
    """
    now, wanted = _index_in(current), _index_in(resource.master)
    deleted = {now(d.start) for d in current.deleted_occurrences or ()}
    modified = {now(o.original_start) for o in current.modified_occurrences or ()}
    reset = (
        not replay.same_recurrence(resource.master.recurrence, current.recurrence)
        or bool(modified - {wanted(o.recurrence_id) for o in resource.overrides})
        or bool(deleted - {wanted(d) for d in resource.exdates})
    )
    return reset, deleted


def _recent(requested_at: float | None) -> bool:
    return requested_at is not None and time.time() - requested_at < RETRY_WINDOW_SECONDS


def _check_overrides(resource: mapping.EventResource) -> None:
    """Every RECURRENCE-ID must name an occurrence of the series as Exchange will number it."""
    for override in resource.overrides:
        if mapping.occurrence_index(resource.master, override.recurrence_id) is None:
            raise InvalidCalendarData(
                f"RECURRENCE-ID {override.recurrence_id} is not an occurrence of the series.",
                mapping.VALID_OBJECT,
            )


async def _from_ical(ical: str, default_tz: str) -> mapping.EventResource:
    """The body mapped for Exchange; a large one in a worker thread (CPU proportional to its size)."""
    if len(ical) <= INLINE_BODY_CHARS:
        return mapping.from_ical(ical, default_tz=default_tz)
    return await asyncio.to_thread(mapping.from_ical, ical, default_tz=default_tz)


def _overrides(
    cal: MailboxCalendar, master: CalendarItem, overrides: list[mapping.Override]
) -> list[tuple[CalendarItem, list[str]]]:
    """Each RECURRENCE-ID override as (occurrence item, fields to write); an override replaces the whole occurrence."""
    updates = []
    for override in overrides:
        index = mapping.occurrence_index(master, override.recurrence_id)
        if index is None:
            raise InvalidCalendarData(
                f"RECURRENCE-ID {override.recurrence_id} is not an occurrence of the series.",
                mapping.VALID_OBJECT,
            )
        occurrence = override.item
        occurrence.account, occurrence.folder = cal.account, cal.folder
        address_occurrence(occurrence, master, index)
        updates.append((occurrence, list(mapping.OCCURRENCE_FIELDS)))
    return updates


def _update_all(account: Account, updates: list[tuple[CalendarItem, list[str]]], send: str) -> list[object]:
    """UpdateItem of every override in one request (blocking; runs in the pool)."""
    return list(
        account.bulk_update(
            updates, conflict_resolution=ALWAYS_OVERWRITE, send_meeting_invitations_or_cancellations=send
        )
    )


def _delete_occurrences(account: Account, ids: list[OccurrenceItemId], send: str) -> list[object]:
    """DeleteItem of occurrences; one that is already gone is what the EXDATE asks for."""
    try:
        results = list(account.bulk_delete(ids, send_meeting_cancellations=send))
    except ErrorCalendarOccurrenceIsDeletedFromRecurrence:
        return []
    return [r for r in results if not isinstance(r, ErrorCalendarOccurrenceIsDeletedFromRecurrence)]
