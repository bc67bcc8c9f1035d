"""Writes: PUT (RFC 4791 §5.3.2) as CreateItem or UpdateItem, occurrences, DELETE, and who is invited.

- PUT: SyncFolderItems (duplicate check) + CreateItem, or GetItem + UpdateItem; a series'
  overrides cost one more UpdateItem (all occurrences in one request) and new EXDATEs one DeleteItem.
  The answer carries no ETag: Exchange re-renders the event, so it is never octet-identical to the
  request (RFC 4791 §5.3.4) and the client fetches it before changing it again. A created item is
  indexed at once, so that GET is one GetItem;
- DELETE: GetItem (only for If-Match or invitations) + DeleteItem.

``If-Match`` is checked by Exchange itself (``ConflictResolution=NeverOverwrite``), so a change made
in Outlook between the client's read and its write is never overwritten.
"""

from __future__ import annotations

import time
from datetime import datetime

from exchangelib import Account, CalendarItem
from exchangelib.errors import ErrorCalendarOccurrenceIsDeletedFromRecurrence
from exchangelib.items import (
    ALWAYS_OVERWRITE,
    NEVER_OVERWRITE,
    SEND_ONLY_TO_ALL,
    SEND_TO_ALL_AND_SAVE_COPY,
    SEND_TO_NONE,
)
from exchangelib.properties import ItemId, OccurrenceItemId

from gateway.caldav.backend import (
    InvalidCalendarData,
    NotFound,
    PreconditionFailed,
    PutResult,
    UidConflict,
)
from gateway.common.timezones import to_utc
from gateway.ews import mapping
from gateway.ews.backend.calls import EwsCalls, raise_first_error
from gateway.ews.backend.reads import ITEM_FIELDS, fetch_items
from gateway.ews.backend.records import MailboxCalendar, MailboxRecord
from gateway.ews.backend.tracking import ChangeTracker
from gateway.ews.exchange import address_occurrence, occurrence_id
from gateway.ews.index import IndexedItem, ItemChange, ItemIndex

_DELETE_FIELDS = ["changekey", "organizer", "is_meeting"]  # what a DELETE checks before DeleteItem
# How long after the gateway sent a DeleteItem a DELETE of the same object counts as its retry.
RETRY_WINDOW_SECONDS = 3600.0


class Writer:
    """Creates, updates and deletes calendar objects in Exchange, keeping the index in step."""

    def __init__(self, calls: EwsCalls, index: ItemIndex, tracker: ChangeTracker, *, default_tz: str) -> None:
        self._calls = calls
        self._index = index
        self._tracker = tracker
        self._default_tz = default_tz

    async def put(
        self, cal: MailboxCalendar, name: str, ical: str, if_match: str | None, if_none_match: bool
    ) -> PutResult:
        """Create (CreateItem) or replace (GetItem + UpdateItem) the object ``name``."""
        resource = mapping.from_ical(ical, default_tz=self._default_tz)
        if if_none_match:
            # A create: the name and UID are checked against Exchange's current state in any case, so the
            # sync comes first and one index look-up follows.
            await self._tracker.refresh(cal)
            existing, holder = await self._index.by_name_and_uid(cal.key, name, resource.uid)
        else:
            existing, holder = await self._index.by_name_and_uid(cal.key, name, resource.uid)
            if existing is None:
                await self._tracker.refresh(cal)  # also makes a retried PUT find the item it created
                existing, holder = await self._index.by_name_and_uid(cal.key, name, resource.uid)
        if holder is not None and (existing is None or holder.item_id != existing.item_id):
            raise UidConflict(
                f"The UID {resource.uid!r} is already used by another resource in this calendar.", holder.name
            )
        if existing is None:
            if if_match:
                raise PreconditionFailed("The resource does not exist, so If-Match cannot hold.")
            await self._create(cal, name, resource)
            return PutResult(etag=None, created=True)  # Exchange re-renders: never octet-identical
        if if_none_match:
            raise PreconditionFailed("A resource with this name already exists (If-None-Match: *).")
        await self._update(cal, existing.item_id, resource, if_match)
        return PutResult(etag=None, created=False)

    async def _create(self, cal: MailboxCalendar, name: str, resource: mapping.EventResource) -> None:
        """CreateItem of the master (it carries the client's resource name), then its occurrences."""
        item = resource.master
        item.account, item.folder = cal.account, cal.folder
        item.caldav_name = name
        send = _invitations(cal.record, resource)
        await self._calls.run(cal.account, "CreateItem", lambda: item.save(send_meeting_invitations=send))
        self._tracker.record_created(cal, ItemChange(item.id, item.changekey, name, resource.uid))
        if resource.overrides or resource.exdates:
            await self._apply_occurrences(cal, item, resource, send, set())

    async def _update(
        self, cal: MailboxCalendar, item_id: str, resource: mapping.EventResource, if_match: str | None
    ) -> None:
        """GetItem of the current version, UpdateItem of the changed fields, then the occurrences."""
        current = (
            await self._calls.run(
                cal.account, "GetItem", lambda: fetch_items(cal.folder, [ItemId(item_id)], ITEM_FIELDS)
            )
        )[0]
        if current is None:
            raise PreconditionFailed("The resource changed or vanished in Exchange meanwhile; read it again.")
        if if_match and if_match != current.changekey:
            raise PreconditionFailed("The resource was changed since you read it (ETag mismatch).")
        # Exchange drops every exception of a series whose Recurrence is written, so it is only
        # written when the rule changed or an override must go (EWS cannot revert one occurrence);
        # the exceptions are then re-applied from the body.
        kept = {to_utc(o.original_start) for o in current.modified_occurrences or ()}
        wanted = {to_utc(o.recurrence_id) for o in resource.overrides}
        reset = resource.master.recurrence != current.recurrence or bool(kept - wanted)
        fields = [f for f in mapping.WRITE_FIELDS if reset or f != "recurrence"]
        already_deleted = set() if reset else {to_utc(d.start) for d in current.deleted_occurrences or ()}
        for field in fields:
            setattr(current, field, getattr(resource.master, field))
        send = SEND_ONLY_TO_ALL if _invitations(cal.record, resource) != SEND_TO_NONE else SEND_TO_NONE
        conflict = NEVER_OVERWRITE if if_match else ALWAYS_OVERWRITE
        await self._calls.run(
            cal.account,
            "UpdateItem",
            lambda: current.save(
                update_fields=fields, conflict_resolution=conflict, send_meeting_invitations=send
            ),
        )
        if resource.overrides or resource.exdates:
            await self._apply_occurrences(cal, current, resource, send, already_deleted)

    async def _apply_occurrences(
        self,
        cal: MailboxCalendar,
        master: CalendarItem,
        resource: mapping.EventResource,
        send: str,
        already_deleted: set[datetime],
    ) -> None:
        """RECURRENCE-ID overrides → UpdateItem on occurrences; EXDATEs → DeleteItem of occurrences."""
        updates = _overrides(cal, master, resource)
        deletions = [
            occurrence_id(master, index)
            for exdate in resource.exdates
            if (index := mapping.occurrence_index(master, exdate)) is not None
            and to_utc(exdate) not in already_deleted
        ]
        account = cal.account
        if updates:
            raise_first_error(
                await self._calls.run(account, "UpdateItem", lambda: _update_all(account, updates, send))
            )
        if deletions:
            raise_first_error(
                await self._calls.run(
                    account, "DeleteItem", lambda: _delete_occurrences(account, deletions, send)
                )
            )

    async def delete(self, cal: MailboxCalendar, name: str, if_match: str | None) -> None:
        """DeleteItem of the object (a series whole); GetItem first only for If-Match or invitations.

        The deletion is indexed at once. A retried DELETE whose first answer was lost is 204 when the
        gateway can tell it deleted the item itself (module docstring), else a vanished item is 404.
        """
        await self._tracker.creates_recorded(cal)  # a DELETE right after the PUT finds the new row
        entry = await self._index.by_name(cal.key, name)
        if entry is None:
            if await self._deleted_here(cal, name):
                return
            await self._tracker.refresh(cal)
            entry = await self._index.by_name(cal.key, name)
        if entry is None:
            raise NotFound("No such calendar object.")
        account = cal.account
        send = SEND_TO_NONE
        if if_match or cal.record.invitations == "auto":
            current = (
                await self._calls.run(
                    account,
                    "GetItem",
                    lambda: fetch_items(cal.folder, [ItemId(entry.item_id)], _DELETE_FIELDS),
                )
            )[0]
            if current is None:
                return await self._vanished(cal, entry)
            if if_match and if_match != current.changekey:
                raise PreconditionFailed("The resource was changed since you read it (ETag mismatch).")
            send = _cancellations(cal.record, current)
        await self._index.request_delete(cal.key, entry.item_id, time.time())
        try:
            results = await self._calls.run(
                account,
                "DeleteItem",
                lambda: list(account.bulk_delete([ItemId(entry.item_id)], send_meeting_cancellations=send)),
            )
            raise_first_error(results)
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
        """Whether a recent DELETE through the gateway removed the object named ``name``."""
        return any(
            _recent(row.delete_requested_at) for row in await self._index.deleted_by_name(cal.key, name)
        )


def _recent(requested_at: float | None) -> bool:
    return requested_at is not None and time.time() - requested_at < RETRY_WINDOW_SECONDS


def _invitations(record: MailboxRecord, resource: mapping.EventResource) -> str:
    """RFC 6638 implicit scheduling: Exchange sends invitations when the owner organises a meeting."""
    organiser = (resource.organizer_email or "").lower()
    if record.invitations == "auto" and resource.attendee_emails and organiser == record.email.lower():
        return SEND_TO_ALL_AND_SAVE_COPY
    return SEND_TO_NONE


def _cancellations(record: MailboxRecord, current: CalendarItem) -> str:
    """RFC 6638 implicit scheduling: deleting a meeting the owner organises cancels it for the attendees."""
    organiser = getattr(current.organizer, "email_address", "") or ""
    if record.invitations == "auto" and current.is_meeting and organiser.lower() == record.email.lower():
        return SEND_TO_ALL_AND_SAVE_COPY
    return SEND_TO_NONE


def _overrides(
    cal: MailboxCalendar, master: CalendarItem, resource: mapping.EventResource
) -> list[tuple[CalendarItem, list[str]]]:
    """Each RECURRENCE-ID override as (occurrence item, fields to write); an override replaces the whole occurrence."""
    updates = []
    for override in resource.overrides:
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
