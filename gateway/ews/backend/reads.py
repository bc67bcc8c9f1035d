"""Reads: a time range is a FindItem CalendarView plus batched GetItems; names go through the index.

A recurring master is addressed through its occurrence with RecurringMasterItemId, so a month
view needs no index look-up; exception items not met in the view and not cached cost one more
batched GetItem. A change key names one version of an item, so renderings of singles and fetched
exceptions are kept by (ItemId, ChangeKey) and stay exact as long as the view shows that key.
Both caches are bounded by entries and by bytes (``[limits] item_cache_bytes``, half each), and
rendering (CPU proportional to the events' size) runs in a worker thread unless it is small.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime

from exchangelib import CalendarItem
from exchangelib.folders import Folder
from exchangelib.properties import BaseItemId, ItemId, RecurringMasterItemId

from gateway.caldav.backend import CalendarObject
from gateway.ews import mapping
from gateway.ews.backend.calls import EwsCalls
from gateway.ews.backend.records import LRU, MailboxCalendar
from gateway.ews.backend.tracking import ChangeTracker
from gateway.ews.calendar_ids import derived_name
from gateway.ews.exchange import CALDAV_NAME, CALDAV_RESIDUAL, ViewEntry, calendar_view
from gateway.ews.index import ItemIndex

GETITEM_BATCH = 100
DEFAULT_CACHE_BYTES = 32 * 1024 * 1024
# Rendering a typical event takes ~0.3 ms: a few stay on the loop, more (or large ones) go to a thread.
RENDER_INLINE_ITEMS = 4
RENDER_INLINE_BYTES = 65_536
ITEM_FIELDS = [*mapping.READ_FIELDS, CALDAV_NAME, CALDAV_RESIDUAL]  # what a rendering needs of an item
_VersionKey = tuple[str, str]  # (ItemId, ChangeKey): one version of an item


class Reader:
    """Calendar objects read from Exchange (FindItem CalendarView, GetItem), renderings cached."""

    def __init__(
        self,
        calls: EwsCalls,
        index: ItemIndex,
        tracker: ChangeTracker,
        *,
        cache_size: int,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
    ) -> None:
        self._calls = calls
        self._index = index
        self._tracker = tracker
        # exceptions of series, per version
        self._items: LRU[_VersionKey, CalendarItem] = LRU(
            cache_size, max_bytes=cache_bytes // 2, weigh=item_bytes
        )
        # the CalendarObject of a single (non-recurring) event, per version
        self._singles: LRU[_VersionKey, CalendarObject] = LRU(
            cache_size, max_bytes=cache_bytes // 2, weigh=_object_bytes
        )

    def cache_sizes(self) -> dict[str, tuple[int, int]]:
        """(entries, bytes) of each cache, for ``/metrics``."""
        return {
            "exceptions": (len(self._items), self._items.bytes),
            "singles": (len(self._singles), self._singles.bytes),
        }

    async def query(
        self, cal: MailboxCalendar, start: datetime | None, end: datetime | None, with_data: bool
    ) -> list[CalendarObject]:
        """RFC 4791 §9.9 time range: FindItem CalendarView, then GetItem of what is not cached (with
        data) or SyncFolderItems for the ETags (without). An open range lists every object."""
        if start is None or end is None:
            # Open ranges: every object, filtered by the protocol layer.
            objects = await self._tracker.objects(cal)
            if not with_data:
                return objects
            found = await self.get(cal, [o.name for o in objects])
            return [o for o in found.values() if o is not None]
        view = await self._calls.run(
            cal.account, "FindItem", lambda: calendar_view(cal.account, cal.folder, start, end)
        )
        if not with_data:
            await self._tracker.refresh(cal)
            uids = {item.uid for item in view}
            return [
                CalendarObject(i.name, i.changekey) for i in await self._index.items(cal.key) if i.uid in uids
            ]
        return await self._view_objects(cal, view)

    async def _view_objects(self, cal: MailboxCalendar, view: list[ViewEntry]) -> list[CalendarObject]:
        """The resources of a CalendarView: cached singles as they are, one GetItem batch for the rest."""
        ids: dict[str | None, BaseItemId] = {}
        known: dict[str | None, CalendarObject] = {}
        in_view_exceptions = []
        for item in view:
            if item.type == "Single":
                rendered = self._singles.hit((item.id, item.changekey))
                if rendered is not None:
                    known[item.uid] = rendered  # this version was read before: no GetItem for it
                else:
                    ids.setdefault(item.uid, ItemId(item.id, item.changekey))
            else:
                ids.setdefault(item.uid, RecurringMasterItemId(item.id, item.changekey))
                if item.type == "Exception":
                    in_view_exceptions.append(ItemId(item.id, item.changekey))
        return list(known.values()) + await self._render(cal, list(ids.values()), in_view_exceptions)

    async def get(self, cal: MailboxCalendar, names: Sequence[str]) -> dict[str, CalendarObject | None]:
        """Objects by name: the index gives their ItemIds (after a SyncFolderItems only for a name it
        lacks), then batched GetItem."""
        located = await self._tracker.locate(cal, names)
        ids: list[BaseItemId] = [
            ItemId(located[name].item_id) for name in dict.fromkeys(names) if name in located
        ]
        rendered = {o.name: o for o in await self._render(cal, ids, [])}
        return {name: rendered.get(name) for name in names}

    async def _render(
        self, cal: MailboxCalendar, ids: list[BaseItemId], known_exceptions: list[ItemId]
    ) -> list[CalendarObject]:
        """GetItem the masters/singles (and exceptions) in batches and turn each into one resource."""
        if not ids:
            return []
        batch = ids + known_exceptions
        fetched = await self._calls.run(
            cal.account, "GetItem", lambda: fetch_items(cal.folder, batch, ITEM_FIELDS)
        )
        # The exceptions this rendering uses are held here, not only in the cache, which may not keep
        # them all (it is bounded in bytes).
        exceptions = self._keep_exceptions(fetched[len(ids) :])
        masters = [item for item in fetched[: len(ids)] if item is not None]
        missing = [
            ItemId(occ.id, occ.changekey)
            for master in masters
            for occ in master.modified_occurrences or ()
            if (occ.id, occ.changekey) not in self._items and (occ.id, occ.changekey) not in exceptions
        ]
        if missing:
            exceptions |= self._keep_exceptions(
                await self._calls.run(
                    cal.account, "GetItem", lambda: fetch_items(cal.folder, missing, ITEM_FIELDS)
                )
            )
        jobs = [(master, self._exceptions_of(master, exceptions)) for master in masters]
        texts = await _render_texts(jobs, cal.record.email)
        return [self._keep(master, text) for (master, _), text in zip(jobs, texts, strict=True)]

    def _keep_exceptions(self, items: list[CalendarItem | None]) -> dict[_VersionKey, CalendarItem]:
        """Cache fetched exception items; returns them by version."""
        kept = {}
        for item in items:
            if item is not None:
                self._items.put((item.id, item.changekey), item)
                kept[(item.id, item.changekey)] = item
        return kept

    def _exceptions_of(
        self, master: CalendarItem, fetched: dict[_VersionKey, CalendarItem]
    ) -> list[CalendarItem]:
        """The exception items of a master: fetched for this rendering, or cached."""
        found = []
        for occurrence in master.modified_occurrences or ():
            key = (occurrence.id, occurrence.changekey)
            item = fetched.get(key) or self._items.hit(key)
            if item is not None:
                found.append(item)
        return found

    def _keep(self, master: CalendarItem, text: str) -> CalendarObject:
        """One resource from its rendering; a single event's is cached for its version."""
        name = master.caldav_name or derived_name(master.uid)
        rendered = CalendarObject(name, master.changekey, text)
        if master.type == "Single":
            self._singles.put((master.id, master.changekey), rendered)
        return rendered


async def _render_texts(jobs: list[tuple[CalendarItem, list[CalendarItem]]], owner: str) -> list[str]:
    """The iCalendar text of each (master, exceptions), in a worker thread unless there is little;
    ``owner``'s ATTENDEE shows the owner's own answer to an invitation (MyResponseType)."""

    def render() -> list[str]:
        texts = []
        for master, exceptions in jobs:
            for item in (master, *exceptions):
                mapping.show_own_response(item, owner)
            texts.append(mapping.to_ical(master, exceptions, residual=master.caldav_residual))
        return texts

    weight = sum(item_bytes(master) + sum(item_bytes(e) for e in exceptions) for master, exceptions in jobs)
    if len(jobs) <= RENDER_INLINE_ITEMS and weight <= RENDER_INLINE_BYTES:
        return render()
    return await asyncio.to_thread(render)


def item_bytes(item: CalendarItem) -> int:
    """About how much memory an item read with ITEM_FIELDS holds: its texts plus a fixed part for the
    rest (times, zones, recurrence) and each attendee."""
    texts = sum(len(str(getattr(item, name, None) or "")) for name in ("body", "subject", "location"))
    people = sum(
        len(getattr(item, name, None) or ())
        for name in ("required_attendees", "optional_attendees", "resources")
    )
    return 2048 + texts + 256 * people


def _object_bytes(obj: CalendarObject) -> int:
    return 256 + len(obj.data or "")


def fetch_items(folder: Folder, ids: Sequence[BaseItemId], fields: list[str]) -> list[CalendarItem | None]:
    """Batched GetItem (≤ 100 ids a request) of items of ``folder``'s account; None where Exchange has no such item.

    The folder only validates ``fields``: without one exchangelib would first fetch the root folder.
    """
    result = []
    for item in folder.account.fetch(ids=ids, folder=folder, only_fields=fields, chunk_size=GETITEM_BATCH):
        result.append(None if isinstance(item, Exception) else item)
    return result
