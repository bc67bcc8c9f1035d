"""The floor: the EWS calls of each workload made directly with exchangelib, in the same run.

A CalDAV gateway cannot answer faster than the EWS round trips it needs, so each workload's
gateway time is divided by the time of the same calls made straight from this process to the
emulator: FindItem (CalendarView) + batched GetItem for a month view, SyncFolderItems for a poll,
SyncFolderItems + CreateItem / GetItem + UpdateItem / GetItem + DeleteItem for writes, and
GetUserAvailability for free/busy. The ratio is the gateway's own overhead (HTTP, DAV XML,
iCalendar mapping, its database), independent of the latency the emulator adds.

Every function here blocks; the harness runs them in a worker thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from datetime import time as dt_time
from typing import Any, TypeVar

from exchangelib import BASIC, DELEGATE, NTLM, Account, CalendarItem, Configuration, Credentials, Q
from exchangelib.ewsdatetime import UTC as EWS_UTC
from exchangelib.ewsdatetime import EWSDateTime
from exchangelib.folders.collections import FolderCollection, SyncCompleted
from exchangelib.items import ALWAYS_OVERWRITE, ID_ONLY, SEND_TO_ALL_AND_SAVE_COPY, SEND_TO_NONE, SHALLOW
from exchangelib.properties import (
    Attendee,
    DaylightTime,
    ItemId,
    Mailbox,
    RecurringMasterItemId,
    StandardTime,
    TimeZone,
)
from exchangelib.protocol import BaseProtocol
from exchangelib.version import Build, Version

from gateway.ews.exchange import (
    CALDAV_NAME,
    CALDAV_RESIDUAL,
    CALDAV_UID,
    ChunkedReadAdapter,
    calendar_view,
    register_item_fields,
)
from gateway.ews.freebusy import request_availability
from gateway.ews.mapping import READ_FIELDS
from gateway.ews.mapping.tasks import TASK_READ_FIELDS

# The floor reads EWS answers as the gateway does (stock exchangelib reads them a byte at a time), so the
# ratio shows the gateway's own work, not a cheaper way of reading the same bytes.
BaseProtocol.HTTP_ADAPTER_CLS = ChunkedReadAdapter

T = TypeVar("T")
FIELDS = [*READ_FIELDS, CALDAV_NAME, CALDAV_RESIDUAL]
SYNC_FIELDS = ["uid", CALDAV_NAME]
TASK_FIELDS = [*TASK_READ_FIELDS, CALDAV_NAME, CALDAV_RESIDUAL, CALDAV_UID]
_AUTH = {"basic": BASIC, "ntlm": NTLM}
_UTC_ZONE = TimeZone(  # a UTC SerializableTimeZone, as the gateway sends (bias 0, no-op transitions)
    bias=0,
    standard_time=StandardTime(bias=0, time=dt_time(0), occurrence=1, iso_month=1, weekday=7),
    daylight_time=DaylightTime(bias=0, time=dt_time(0), occurrence=1, iso_month=1, weekday=7),
)


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    """Seconds ``fn`` took and its result."""
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def ews_dt(value: datetime) -> EWSDateTime:
    return EWSDateTime.from_datetime(value).astimezone(EWS_UTC)


class DirectMailbox:
    """exchangelib straight at the emulator for one mailbox (same login and auth type as the gateway)."""

    def __init__(self, ews_url: str, email: str, password: str, auth_type: str) -> None:
        register_item_fields()  # the gateway reads and writes caldav_name, so the floor does too
        config = Configuration(
            service_endpoint=ews_url,
            credentials=Credentials(email, password),
            auth_type=_AUTH.get(auth_type, BASIC),
            version=Version(build=Build(15, 1, 2507, 6)),  # what the gateway stored at connect: no probe
        )
        self.account = Account(email, config=config, autodiscover=False, access_type=DELEGATE)
        self.folder = self.account.calendar

    def month_view(self, start: datetime, end: datetime) -> int:
        """FindItem CalendarView (ids, UID, type) + GetItem of the singles/masters and in-view exceptions."""
        view = calendar_view(self.account, self.folder, start, end)  # read as the gateway reads it
        ids: dict[str, Any] = {}
        exceptions = []
        for item in view:
            if isinstance(item, Exception):
                continue
            if item.type == "Single":
                ids.setdefault(item.uid, ItemId(item.id, item.changekey))
            else:
                ids.setdefault(item.uid, RecurringMasterItemId(item.id, item.changekey))
                if item.type == "Exception":
                    exceptions.append(ItemId(item.id, item.changekey))
        return len(self.get(list(ids.values()) + exceptions))

    def get(self, ids: list[Any], fields: list[str] | None = None) -> list[Any]:
        """Batched GetItem (≤ 100 ids a request, as the gateway batches)."""
        return [
            i
            for i in self.account.fetch(ids=ids, only_fields=fields or FIELDS, chunk_size=100)
            if not isinstance(i, Exception)
        ]

    def sync(self, state: str | None) -> tuple[str, list[tuple[str, Any]]]:
        """SyncFolderItems until the last page: the new state and the (change type, item) pairs."""
        changes: list[tuple[str, Any]] = []
        try:
            for change in FolderCollection(account=self.account, folders=[self.folder]).sync_items(
                sync_state=state, only_fields=SYNC_FIELDS, max_changes_returned=512
            ):
                changes.append(change)
        except SyncCompleted as done:
            return done.sync_state, changes
        return state or "", changes

    def task_month_view(self) -> int:
        """A task list's month view as the gateway makes it: FindItem (ids) of the Tasks folder + GetItem."""
        found = FolderCollection(account=self.account, folders=[self.account.tasks]).find_items(
            q=Q(), shape=ID_ONLY, depth=SHALLOW
        )
        ids = [ItemId(*entry) if isinstance(entry, tuple) else ItemId(entry.id) for entry in found]
        return len(self.get(ids, TASK_FIELDS)) if ids else 0

    def task_sync(self, state: str | None) -> str:
        """SyncFolderItems of the Tasks folder until the last page: the new state."""
        try:
            for _ in FolderCollection(account=self.account, folders=[self.account.tasks]).sync_items(
                sync_state=state, only_fields=[CALDAV_UID, CALDAV_NAME], max_changes_returned=512
            ):
                pass
        except SyncCompleted as done:
            return done.sync_state
        return state or ""

    def delta(self, state: str) -> str:
        """A delta sync: SyncFolderItems, then GetItem of what changed (a client's multiget)."""
        new_state, changes = self.sync(state)
        ids = [ItemId(item.id) for kind, item in changes if kind in ("create", "update")]
        if ids:
            self.get(ids)
        return new_state

    def create(self, state: str, subject: str, start: datetime, end: datetime) -> tuple[str, CalendarItem]:
        """SyncFolderItems (the gateway's duplicate check) + CreateItem."""
        new_state, _ = self.sync(state)
        item = CalendarItem(
            account=self.account, folder=self.folder, subject=subject, start=ews_dt(start), end=ews_dt(end)
        )
        item.save(send_meeting_invitations=SEND_TO_NONE)
        return new_state, item

    def update(self, item: CalendarItem, subject: str) -> None:
        """GetItem (current ChangeKey, If-Match) + UpdateItem."""
        current = self.get([ItemId(item.id)])[0]
        current.subject = subject
        current.save(
            update_fields=["subject"],
            conflict_resolution=ALWAYS_OVERWRITE,
            send_meeting_invitations=SEND_TO_NONE,
        )

    def delete(self, item: CalendarItem) -> None:
        """GetItem (If-Match) + DeleteItem."""
        current = self.get([ItemId(item.id)], ["changekey", "organizer", "is_meeting"])[0]
        list(self.account.bulk_delete([ItemId(current.id)], send_meeting_cancellations=SEND_TO_NONE))

    def availability(self, emails: list[str], start: datetime, end: datetime) -> int:
        """One GetUserAvailability (DetailedMerged, UTC), asked and read as the gateway does; returns the views."""
        return len(request_availability(self.account, emails, start, end))

    def folder_busy(self, name: str, start: datetime, end: datetime) -> int:
        """One FindItem CalendarView of a sub-calendar (found by name; cached after the first look)."""
        folder = self.sub_calendar(name)
        fields = ("start", "end", "legacy_free_busy_status", "is_cancelled")
        return len(list(folder.view(start=ews_dt(start), end=ews_dt(end)).only(*fields)))

    def sub_calendar(self, name: str) -> Any:
        if not hasattr(self, "_subs"):
            self._subs = {f.name: f for f in self.folder.children}
        return self._subs[name]

    def book(self, name: str, start: datetime, end: datetime, invitee: str) -> CalendarItem:
        """CreateItem of a meeting in a sub-calendar, Exchange sending the invitation."""
        item = CalendarItem(
            account=self.account,
            folder=self.sub_calendar(name),
            subject="Bench booking",
            start=ews_dt(start),
            end=ews_dt(end),
            required_attendees=[Attendee(mailbox=Mailbox(email_address=invitee), response_type="Unknown")],
        )
        item.save(send_meeting_invitations=SEND_TO_ALL_AND_SAVE_COPY)
        return item

    def cancel(self, item: CalendarItem) -> None:
        """DeleteItem, Exchange sending the cancellation."""
        list(
            self.account.bulk_delete([ItemId(item.id)], send_meeting_cancellations=SEND_TO_ALL_AND_SAVE_COPY)
        )

    def touch(self, subject: str) -> None:
        """A change made "in Outlook": the subject of one single (non-recurring) item."""
        item = next(i for i in self.folder.all().only("subject", "is_recurring")[:50] if not i.is_recurring)
        item.subject = subject
        item.save(update_fields=["subject"])
