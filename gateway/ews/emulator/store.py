"""The emulator's calendar store: every mailbox's folders and calendar items.

``MailboxStore`` holds one mailbox (EWS folder and item operations act on it); ``CalendarStore``
holds them all and moves meetings between them. The data types are in ``model.py``, ids in
``ids.py``, series rules in ``series.py``; nothing here knows about XML (``items.py`` translates).
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import TYPE_CHECKING

from gateway.ews.emulator.ids import IdFactory, parse_occurrence_id
from gateway.ews.emulator.meetings import receive_meeting
from gateway.ews.emulator.model import (
    CALENDAR_CLASS,
    DEFAULT_TIME_ZONE,
    BusyEvent,
    CalendarItem,
    Folder,
    SentMessage,
    StoreError,
)
from gateway.ews.emulator.recurrence import instances
from gateway.ews.emulator.series import check_boundaries, expand_item, make_occurrence, normalise_series

if TYPE_CHECKING:  # tasks.py builds on this module
    from gateway.ews.emulator.tasks import Task


class MailboxStore:
    """The folders and items of one mailbox."""

    def __init__(self, email: str, time_zone: str) -> None:
        self.email = email.lower()
        self.time_zone = time_zone
        self.ids = IdFactory(self.email)
        self.folders: dict[str, Folder] = {}
        self.distinguished: dict[str, str] = {}
        self.item_folder: dict[str, str] = {}
        self.sent: list[SentMessage] = []
        root = self._add_folder("Root", None, "root", None)
        top = self._add_folder("Top of Information Store", root.folder_id, "msgfolderroot", "IPF.Note")
        self._add_folder("Calendar", top.folder_id, "calendar", CALENDAR_CLASS)
        # The other folders every Exchange mailbox has, empty: clients open them (exchangelib saves sent
        # meeting responses in Sent Items; DavMail reads every one at sign-in, and Tasks on each calendar
        # request).
        for name, distinguished, folder_class in (
            ("Inbox", "inbox", "IPF.Note"),
            ("Sent Items", "sentitems", "IPF.Note"),
            ("Deleted Items", "deleteditems", "IPF.Note"),
            ("Contacts", "contacts", "IPF.Contact"),
            ("Drafts", "drafts", "IPF.Note"),
            ("Junk Email", "junkemail", "IPF.Note"),
            ("Outbox", "outbox", "IPF.Note"),
            ("Tasks", "tasks", "IPF.Task"),
        ):
            self._add_folder(name, top.folder_id, distinguished, folder_class)

    def _add_folder(
        self, name: str, parent: str | None, distinguished: str | None, cls: str | None
    ) -> Folder:
        folder = Folder(self.ids.folder_id(), self.ids.change_key(), name, parent, distinguished, cls)
        self.folders[folder.folder_id] = folder
        if distinguished:
            self.distinguished[distinguished] = folder.folder_id
        return folder

    @property
    def calendar(self) -> Folder:
        return self.folders[self.distinguished["calendar"]]

    # -- folders (CreateFolder / UpdateFolder / DeleteFolder / FindFolder) --------------------------

    def folder(self, folder_id: str) -> Folder:
        folder = self.folders.get(folder_id)
        if folder is None:
            raise StoreError("ErrorFolderNotFound", "The specified folder could not be found in the store.")
        return folder

    def distinguished_folder(self, name: str) -> Folder:
        folder_id = self.distinguished.get(name)
        if folder_id is None:
            raise StoreError("ErrorFolderNotFound", "The specified folder could not be found in the store.")
        return self.folders[folder_id]

    def children(self, folder_id: str, deep: bool = False) -> list[Folder]:
        """Child folders (Shallow) or all descendants depth-first (Deep) of a folder."""
        found: list[Folder] = []
        for child in self.folders.values():
            if child.parent_id == folder_id:
                found.append(child)
                if deep:
                    found.extend(self.children(child.folder_id, deep=True))
        return found

    def create_folder(self, parent_id: str, name: str, folder_class: str | None) -> Folder:
        """CreateFolder: a new folder under ``parent_id``; names are unique among siblings."""
        self.folder(parent_id)
        self._check_name_free(parent_id, name, None)
        return self._add_folder(name, parent_id, None, folder_class)

    def _check_name_free(self, parent_id: str, name: str, renamed: str | None) -> None:
        """Exchange refuses a second folder of the same name (case-insensitively) under one parent."""
        if any(f.name.lower() == name.lower() and f.folder_id != renamed for f in self.children(parent_id)):
            raise StoreError("ErrorFolderExists", "A folder with the specified name already exists.")

    def rename_folder(self, folder_id: str, name: str) -> Folder:
        """UpdateFolder (SetFolderField folder:DisplayName): sibling names stay unique."""
        folder = self.folder(folder_id)
        if folder.parent_id is not None:
            self._check_name_free(folder.parent_id, name, folder_id)
        folder.name = name
        folder.change_key = self.ids.change_key()
        return folder

    def delete_folder(self, folder_id: str) -> None:
        """DeleteFolder: distinguished folders cannot be deleted (ErrorDeleteDistinguishedFolder)."""
        folder = self.folder(folder_id)
        if folder.distinguished:
            raise StoreError("ErrorDeleteDistinguishedFolder", "Distinguished folders cannot be deleted.")
        for child in [folder, *self.children(folder_id, deep=True)]:
            for item_id in child.items:
                self.item_folder.pop(item_id, None)
            del self.folders[child.folder_id]

    # -- items ---------------------------------------------------------------------------------------

    def new_item(self, folder_id: str, now: datetime) -> CalendarItem:
        """A blank item in a folder, not yet stored (fill it, then :meth:`add_item`)."""
        self.folder(folder_id)
        return CalendarItem(
            item_id=self.ids.item_id(),
            change_key=self.ids.change_key(),
            folder_id=folder_id,
            start_tz=self.time_zone,
            end_tz=self.time_zone,
            created=now,
            modified=now,
        )

    def add_item(self, item: CalendarItem) -> CalendarItem:
        """Store a new item (CreateItem); a recurring item starts on its first occurrence."""
        folder = self.folder(item.folder_id)
        normalise_series(item)
        item.created_seq = item.modified_seq = folder.bump()
        folder.items[item.item_id] = item
        self.item_folder[item.item_id] = folder.folder_id
        return item

    def get(self, item_id: str) -> CalendarItem:
        """An item, an occurrence or an exception by id (GetItem), or ErrorItemNotFound."""
        occurrence = parse_occurrence_id(item_id)
        if occurrence is not None:
            master_id, index = occurrence
            return self.occurrence(self._stored(master_id), index)
        return self._stored(item_id)

    def _stored(self, item_id: str) -> CalendarItem:
        folder_id = self.item_folder.get(item_id)
        if folder_id is None:
            raise StoreError("ErrorItemNotFound", "The specified object was not found in the store.")
        return self.folders[folder_id].items[item_id]

    def occurrence(self, master: CalendarItem, index: int) -> CalendarItem:
        """Occurrence ``index`` (1-based) of a series: its exception if modified, else a generated one."""
        if master.recurrence is None or not isinstance(master, CalendarItem):  # tasks have no occurrence ids
            raise StoreError("ErrorCalendarOccurrenceIsDeletedFromRecurrence", "Item is not recurring.")
        if index in master.deleted:
            raise StoreError(
                "ErrorCalendarOccurrenceIsDeletedFromRecurrence",
                "Occurrence was deleted from the recurrence.",
            )
        if index in master.exceptions:
            return master.exceptions[index]
        for inst in instances(master.recurrence, master.start, master.end, master.zone):
            if inst.index == index:
                return make_occurrence(master, inst)
            if inst.index > index:
                break
        raise StoreError(
            "ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange",
            "Occurrence index is out of recurrence range.",
        )

    def master_of(self, item: CalendarItem) -> CalendarItem:
        """The recurring master of an occurrence or exception (ErrorItemNotFound for others)."""
        if item.master_id is None:
            raise StoreError("ErrorItemNotFound", "The item is not an occurrence of a series.")
        return self._stored(item.master_id)

    def touch(self, item: CalendarItem | Task, now: datetime) -> None:
        """Record a modification: new ChangeKey, LastModifiedTime, and a journal entry.

        Occurrences and exceptions live inside their master, so the master changes too.
        """
        item.change_key = self.ids.change_key()
        item.modified = now
        if item.master_id is not None:
            item = self._stored(item.master_id)
            item.change_key = self.ids.change_key()
            item.modified = now
        item.modified_seq = self.folders[item.folder_id].bump()

    def commit_occurrence(self, occurrence: CalendarItem, now: datetime) -> CalendarItem:
        """Store a changed occurrence as an exception of its master."""
        master = self.master_of(occurrence)
        check_boundaries(master, occurrence)
        if occurrence.item_type == "Occurrence":
            occurrence.item_type = "Exception"
        assert occurrence.instance_index is not None
        master.exceptions[occurrence.instance_index] = occurrence
        self.touch(occurrence, now)
        return occurrence

    def delete(self, item_id: str, now: datetime) -> CalendarItem:
        """DeleteItem of an item, or of one occurrence (recorded as a deleted occurrence on the master)."""
        item = self.get(item_id)
        if item.master_id is not None:
            master = self.master_of(item)
            assert item.instance_index is not None and item.original_start is not None
            master.exceptions.pop(item.instance_index, None)
            master.deleted[item.instance_index] = item.original_start
            self.touch(master, now)
            return item
        folder = self.folders[item.folder_id]
        del folder.items[item.item_id]
        del self.item_folder[item.item_id]
        folder.tombstones[item.item_id] = (item.created_seq, folder.bump())
        return item

    # -- views ---------------------------------------------------------------------------------------

    def expand(self, folder_id: str, start: datetime, end: datetime) -> list[CalendarItem]:
        """CalendarView: singles, occurrences and exceptions overlapping [start, end), by start time."""
        folder = self.folder(folder_id)
        if folder.folder_class == "IPF.Task":
            raise StoreError(
                "ErrorCalendarFolderIsInvalidForCalendarView", "A CalendarView needs a calendar folder."
            )
        found: list[CalendarItem] = []
        for item in folder.items.values():
            if isinstance(item, CalendarItem):  # a calendar view shows calendar items only
                found.extend(expand_item(item, start, end))
        found.sort(key=lambda i: (i.start, i.end, i.subject))
        return found


class CalendarStore:
    """All mailboxes' calendars (the store half of ``EmulatorState``)."""

    def __init__(self) -> None:
        self.mailboxes: dict[str, MailboxStore] = {}
        # Distinguishes this store from the one before a reset (SyncFolderItems states name it).
        self.epoch = secrets.token_hex(8)
        self.seeded = False

    @classmethod
    def from_seed(cls, seed: dict, now: datetime) -> CalendarStore:
        """Build the store from a seed (format in docs/EMULATOR-CALENDARS.md)."""
        from gateway.ews.emulator.seed import load_calendars  # seed.py builds on this module

        store = cls()
        load_calendars(store, seed, now)
        store.seeded = True
        for box in store.mailboxes.values():
            box.ids.epoch = store.epoch.encode()
        return store

    def mailbox(self, email: str, time_zone: str | None = None) -> MailboxStore:
        """The store of a mailbox, created empty on first use."""
        key = email.lower()
        if key not in self.mailboxes:
            box = self.mailboxes[key] = MailboxStore(key, time_zone or DEFAULT_TIME_ZONE)
            if self.seeded:
                box.ids.epoch = self.epoch.encode()
        return self.mailboxes[key]

    def deliver(self, master: CalendarItem, now: datetime, cancelled: bool = False) -> None:
        """Update every attendee mailbox of this store with the organizer's current meeting."""
        organizer = master.organizer.email if master.organizer else None
        for attendee in master.attendees():
            box = self.mailboxes.get(attendee.email)
            if box is not None and attendee.email != organizer:
                receive_meeting(box, master, attendee, now, cancelled)

    def busy_events(self, email: str, start: datetime, end: datetime) -> list[BusyEvent]:
        """Occurrences in the primary Calendar overlapping [start, end), for GetUserAvailability."""
        box = self.mailboxes.get(email.lower())
        if box is None:
            return []
        return [
            BusyEvent(
                start=item.start,
                end=item.end,
                busy_type=item.free_busy,
                subject=item.subject,
                location=item.location,
                is_meeting=item.is_meeting,
                is_recurring=item.item_type in ("Occurrence", "Exception"),
                is_exception=item.item_type == "Exception",
                is_reminder_set=item.reminder_is_set,
                is_private=item.sensitivity in ("Private", "Confidential"),
                item_id=item.item_id,
            )
            for item in box.expand(box.calendar.folder_id, start, end)
            if not item.is_cancelled
        ]

    def stats(self) -> dict:
        """Counts for ``/_emulator/stats``: calendar folders, their items, tasks, and the meeting messages sent."""
        return {
            email: {
                "folders": sum(1 for f in box.folders.values() if f.is_calendar),
                "items": sum(len(f.items) for f in box.folders.values() if f.is_calendar),
                "tasks": sum(len(f.items) for f in box.folders.values() if f.folder_class == "IPF.Task"),
                "sent": [
                    {"kind": m.kind, "recipients": m.recipients, "subject": m.subject, "uid": m.uid}
                    for m in box.sent
                ],
            }
            for email, box in self.mailboxes.items()
        }
