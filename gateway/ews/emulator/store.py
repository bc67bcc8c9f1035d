"""The emulator's calendar store: per-mailbox calendar folders and calendar items.

It models what EWS exposes of an Exchange mailbox's calendars (types.xsd ``CalendarItemType``,
``CalendarFolderType``): opaque ItemIds and ChangeKeys (a new ChangeKey on every change),
recurring masters holding their exceptions and deleted occurrences, and a per-folder change
journal for SyncFolderItems. Nothing here knows about XML; ``items.py`` translates.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from gateway.common.timezones import windows_to_iana
from gateway.ews.emulator.recurrence import Instance, Recurrence, instances
from gateway.ews.emulator.soap import EwsError

FREE_BUSY_TYPES = ("Free", "Tentative", "Busy", "OOF", "WorkingElsewhere", "NoData")
CALENDAR_CLASS = "IPF.Appointment"
DEFAULT_TIME_ZONE = "UTC"
# Item id kinds, the first byte of the raw id (mirrors Exchange's leading 0x00 for store ids).
_KIND_STORE = 0
_KIND_OCCURRENCE = 1


class StoreError(EwsError):
    """A request the store refuses; ``code`` is the EWS ResponseCode to answer with."""


@dataclass
class Attendee:
    """An attendee or organizer (types.xsd ``AttendeeType`` / ``SingleRecipientType``)."""

    email: str
    name: str = ""
    response_type: str = "Unknown"
    last_response_time: datetime | None = None


@dataclass
class ExtendedValue:
    """An extended property exactly as a client wrote it (``ExtendedFieldURI`` attributes + value(s))."""

    uri: tuple[tuple[str, str], ...]
    values: list[str]
    is_array: bool = False


def uri_key(attrs: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """Normalised identity of an ``ExtendedFieldURI`` (attribute order and GUID case do not matter)."""
    return tuple(
        sorted((k, v.lower() if k in ("PropertySetId", "PropertyTag") else v) for k, v in attrs.items())
    )


@dataclass
class CalendarItem:
    """A calendar item: a single appointment, a recurring master, or a stored exception."""

    item_id: str
    change_key: str
    folder_id: str
    subject: str = ""
    body: str = ""
    body_type: str = "Text"
    location: str = ""
    uid: str = ""
    start: datetime = field(default_factory=lambda: datetime.now(UTC))
    end: datetime = field(default_factory=lambda: datetime.now(UTC))
    is_all_day: bool = False
    free_busy: str = "Busy"
    sensitivity: str = "Normal"
    importance: str = "Normal"
    categories: list[str] = field(default_factory=list)
    reminder_is_set: bool = True
    reminder_minutes: int = 15
    organizer: Attendee | None = None
    required: list[Attendee] = field(default_factory=list)
    optional: list[Attendee] = field(default_factory=list)
    resources: list[Attendee] = field(default_factory=list)
    my_response_type: str = "Organizer"
    sequence: int = 0
    is_cancelled: bool = False
    start_tz: str = DEFAULT_TIME_ZONE
    end_tz: str = DEFAULT_TIME_ZONE
    recurrence: Recurrence | None = None
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    modified: datetime = field(default_factory=lambda: datetime.now(UTC))
    extended: dict[tuple[tuple[str, str], ...], ExtendedValue] = field(default_factory=dict)
    # Exceptions by instance index (each a full item of type Exception) and deleted instances.
    exceptions: dict[int, CalendarItem] = field(default_factory=dict)
    deleted: dict[int, datetime] = field(default_factory=dict)
    item_type: str = "Single"  # Single | RecurringMaster | Occurrence | Exception
    instance_index: int | None = None
    original_start: datetime | None = None
    master_id: str | None = None
    # Journal positions for SyncFolderItems.
    created_seq: int = 0
    modified_seq: int = 0

    @property
    def is_meeting(self) -> bool:
        return bool(self.required or self.optional or self.resources)

    @property
    def zone(self) -> ZoneInfo:
        return zone_for(self.start_tz)

    def attendees(self) -> list[Attendee]:
        return [*self.required, *self.optional, *self.resources]


def zone_known(windows_id: str) -> bool:
    """Whether a Windows time zone id is one the emulator can expand in."""
    try:
        windows_to_iana(windows_id)
    except KeyError:
        return False
    return True


def zone_for(windows_id: str) -> ZoneInfo:
    """The IANA zone behind a Windows time zone id (UTC when unknown)."""
    try:
        return ZoneInfo(windows_to_iana(windows_id))
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


@dataclass
class Folder:
    """A calendar folder (``CalendarFolderType``) or a structural folder (root, msgfolderroot)."""

    folder_id: str
    change_key: str
    name: str
    parent_id: str | None
    distinguished: str | None = None
    folder_class: str | None = CALENDAR_CLASS
    items: dict[str, CalendarItem] = field(default_factory=dict)
    # SyncFolderItems journal: a counter and the tombstones of deleted items (id -> created, deleted).
    seq: int = 0
    tombstones: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def is_calendar(self) -> bool:
        return self.folder_class == CALENDAR_CLASS

    def bump(self) -> int:
        self.seq += 1
        return self.seq


@dataclass(frozen=True)
class Change:
    """One SyncFolderItems change: kind is Create, Update or Delete."""

    kind: str
    item_id: str
    seq: int
    item: CalendarItem | None = None


@dataclass(frozen=True)
class BusyEvent:
    """An occurrence as GetUserAvailability reports it (see docs/TEAM-CONTRACTS.md)."""

    start: datetime
    end: datetime
    busy_type: str
    subject: str
    location: str
    is_meeting: bool
    is_recurring: bool
    is_exception: bool
    is_reminder_set: bool
    is_private: bool
    item_id: str


class IdFactory:
    """Deterministic, Exchange-looking opaque ids: the same seed gives the same ids after a reset."""

    def __init__(self, email: str) -> None:
        self._salt = hashlib.sha256(email.lower().encode()).digest()
        self._counter = 0
        # Set once the seed is loaded: ids made later never repeat ids made before a reset.
        self.epoch = b""

    def _raw(self, kind: bytes) -> bytes:
        self._counter += 1
        digest = hashlib.sha256(self._salt + self.epoch + kind + self._counter.to_bytes(8, "big")).digest()
        # 3 header bytes + mailbox part + item part: 152 base64 characters, like Exchange's.
        tail = hashlib.sha256(digest).digest() + digest[:8]
        return bytes([_KIND_STORE, 3, 0x24]) + self._salt + kind + digest + tail + b"\x00\x00"

    def item_id(self) -> str:
        return base64.b64encode(self._raw(b"\x46\x00\x00")).decode()

    def folder_id(self) -> str:
        return base64.b64encode(self._raw(b"\x2e\x00\x00")).decode()

    def change_key(self) -> str:
        self._counter += 1
        digest = hashlib.sha256(self._salt + b"ck" + self._counter.to_bytes(8, "big")).digest()
        return base64.b64encode(b"\x0f\x00\x00\x00\x16\x00\x00\x00" + digest[:32]).decode()


def new_uid(item_id: str) -> str:
    """An Outlook-style UID (the hex GlobalObjectId form) for an item created without one."""
    digest = hashlib.sha256(item_id.encode()).hexdigest().upper()[:32]
    return f"040000008200E00074C5B7101A82E00800000000{digest}"


def occurrence_id(master_id: str, index: int) -> str:
    """The ItemId of occurrence ``index`` of a series (stable, decodable by :func:`parse_occurrence_id`)."""
    raw = base64.b64decode(master_id)
    return base64.b64encode(bytes([_KIND_OCCURRENCE]) + index.to_bytes(4, "big") + raw).decode()


def parse_occurrence_id(item_id: str) -> tuple[str, int] | None:
    """(master id, instance index) for an occurrence id, None for a store id.

    Raises ``StoreError(ErrorInvalidIdMalformed)`` when the id is not one of ours at all.
    """
    try:
        raw = base64.b64decode(item_id, validate=True)
    except ValueError as exc:
        raise StoreError("ErrorInvalidIdMalformed", "Id is malformed.") from exc
    if len(raw) < 8:
        raise StoreError("ErrorInvalidIdMalformed", "Id is malformed.")
    if raw[0] == _KIND_OCCURRENCE:
        return base64.b64encode(raw[5:]).decode(), int.from_bytes(raw[1:5], "big")
    return None


@dataclass
class SentMessage:
    """A meeting message the emulator sent (a request, update, cancellation or response)."""

    kind: str  # Invitation | Update | Cancellation | Accept | Tentative | Decline
    sender: str
    recipients: list[str]
    subject: str
    uid: str
    sent: datetime


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
        # The mail folders clients expect to exist (exchangelib saves sent meeting responses in Sent Items).
        for name, distinguished in (
            ("Inbox", "inbox"),
            ("Sent Items", "sentitems"),
            ("Deleted Items", "deleteditems"),
        ):
            self._add_folder(name, top.folder_id, distinguished, "IPF.Note")

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
        if any(f.name.lower() == name.lower() for f in self.children(parent_id)):
            raise StoreError("ErrorFolderExists", "A folder with the specified name already exists.")
        return self._add_folder(name, parent_id, None, folder_class)

    def rename_folder(self, folder_id: str, name: str) -> Folder:
        """UpdateFolder (SetFolderField folder:DisplayName)."""
        folder = self.folder(folder_id)
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
        if master.recurrence is None:
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

    def touch(self, item: CalendarItem, now: datetime) -> None:
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
        _check_boundaries(master, occurrence)
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

    def receive_meeting(
        self, master: CalendarItem, attendee: Attendee, now: datetime, cancelled: bool
    ) -> None:
        """Create or refresh this attendee's copy of a meeting (what Exchange's calendar attendant does).

        The copy has its own ItemId, the organizer's UID, exceptions and deleted occurrences, and the
        attendee's response: an unanswered invitation shows as Tentative. A cancellation marks the
        copy cancelled (it stays, free, in the calendar); a declined meeting is not put in at all.
        """
        existing = next((i for i in self.calendar.items.values() if i.uid == master.uid), None)
        if attendee.response_type == "Decline" or (existing is None and cancelled):
            return
        target = existing or self.new_item(self.calendar.folder_id, now)
        for attr in _MEETING_FIELDS:
            setattr(target, attr, copy.deepcopy(getattr(master, attr)))
        if existing is None:
            answered = attendee.response_type in ("Accept", "Tentative")
            target.my_response_type = attendee.response_type if answered else "NoResponseReceived"
        if target.my_response_type != "Accept":
            target.free_busy = "Tentative"
        target.is_cancelled = cancelled
        target.exceptions = {i: _rehomed(e, target) for i, e in master.exceptions.items()}
        target.deleted = dict(master.deleted)
        if existing is None:
            self.add_item(target)
        else:
            normalise_series(target)
            self.touch(target, now)

    # -- views ---------------------------------------------------------------------------------------

    def expand(self, folder_id: str, start: datetime, end: datetime) -> list[CalendarItem]:
        """CalendarView: singles, occurrences and exceptions overlapping [start, end), by start time."""
        found: list[CalendarItem] = []
        for item in self.folder(folder_id).items.values():
            found.extend(expand_item(item, start, end))
        found.sort(key=lambda i: (i.start, i.end, i.subject))
        return found

    def changes_since(self, folder_id: str, seq: int) -> list[Change]:
        """SyncFolderItems changes after journal position ``seq``, oldest first, one per item."""
        folder = self.folder(folder_id)
        changes = [
            Change("Create" if item.created_seq > seq else "Update", item.item_id, item.modified_seq, item)
            for item in folder.items.values()
            if item.modified_seq > seq
        ]
        changes.extend(
            Change("Delete", item_id, deleted)
            for item_id, (created, deleted) in folder.tombstones.items()
            if deleted > seq >= created
        )
        changes.sort(key=lambda c: c.seq)
        return changes


# What an attendee's copy of a meeting takes from the organizer's item.
_MEETING_FIELDS = (
    "subject",
    "body",
    "body_type",
    "location",
    "uid",
    "start",
    "end",
    "is_all_day",
    "free_busy",
    "sensitivity",
    "importance",
    "organizer",
    "required",
    "optional",
    "resources",
    "sequence",
    "start_tz",
    "end_tz",
    "recurrence",
)


def _rehomed(exception: CalendarItem, master: CalendarItem) -> CalendarItem:
    """A copy of an organizer's exception, belonging to an attendee's copy of the series."""
    assert exception.instance_index is not None
    moved = copy.deepcopy(exception)
    moved.item_id = occurrence_id(master.item_id, exception.instance_index)
    moved.master_id, moved.folder_id = master.item_id, master.folder_id
    moved.my_response_type, moved.is_cancelled = master.my_response_type, master.is_cancelled
    if master.my_response_type != "Accept":
        moved.free_busy = "Tentative"
    return moved


def normalise_series(item: CalendarItem) -> None:
    """Make a recurring item a RecurringMaster whose Start/End is its first occurrence (as Exchange does)."""
    if item.recurrence is None:
        item.item_type = "Single"
        return
    item.item_type = "RecurringMaster"
    first = next(instances(item.recurrence, _on_date(item), _on_date(item, end=True), item.zone), None)
    if first is None:
        raise StoreError("ErrorRecurrenceHasNoOccurrence", "The recurrence pattern has no occurrence.")
    item.start, item.end = first.start, first.end


def _on_date(item: CalendarItem, end: bool = False) -> datetime:
    """The item's start (or end) moved to the series' StartDate, keeping its local wall-clock time."""
    assert item.recurrence is not None
    zone = item.zone
    local_start = item.start.astimezone(zone)
    shift = item.recurrence.start_date - local_start.date()
    value = item.end if end else item.start
    naive = value.astimezone(zone).replace(tzinfo=None) + shift
    return naive.replace(tzinfo=zone).astimezone(UTC)


def _check_boundaries(master: CalendarItem, occurrence: CalendarItem) -> None:
    """An occurrence must stay strictly between the days of its neighbours (ErrorOccurrenceCrossingBoundary).

    Outlook and Exchange refuse a move onto or past the day of the previous or next occurrence.
    """
    assert master.recurrence is not None and occurrence.instance_index is not None
    zone = master.zone
    day = occurrence.start.astimezone(zone).date()
    before = after = None
    for inst in instances(master.recurrence, master.start, master.end, zone):
        if inst.index in master.deleted or inst.index == occurrence.instance_index:
            continue
        current = master.exceptions[inst.index].start if inst.index in master.exceptions else inst.start
        if inst.index < occurrence.instance_index:
            before = current.astimezone(zone).date()
        else:
            after = current.astimezone(zone).date()
            break
    if (before is not None and day <= before) or (after is not None and day >= after):
        raise StoreError(
            "ErrorOccurrenceCrossingBoundary",
            "An occurrence cannot be moved onto or past the day of another occurrence.",
        )


def make_occurrence(master: CalendarItem, inst: Instance) -> CalendarItem:
    """A generated (unmodified) occurrence of a series."""
    occ = copy.copy(master)
    occ.item_id = occurrence_id(master.item_id, inst.index)
    occ.item_type = "Occurrence"
    occ.start, occ.end = inst.start, inst.end
    occ.original_start = inst.start
    occ.instance_index = inst.index
    occ.master_id = master.item_id
    occ.exceptions, occ.deleted = {}, {}
    # Copies of mutable fields, so that editing the occurrence never edits the master.
    occ.categories = list(master.categories)
    occ.required = copy.deepcopy(master.required)
    occ.optional = copy.deepcopy(master.optional)
    occ.resources = copy.deepcopy(master.resources)
    occ.extended = copy.deepcopy(master.extended)
    return occ


def expand_item(item: CalendarItem, start: datetime, end: datetime) -> Iterator[CalendarItem]:
    """The parts of one stored item overlapping [start, end): itself, or its occurrences and exceptions."""
    if item.recurrence is None:
        if overlaps(item.start, item.end, start, end):
            yield item
        return
    for exc in item.exceptions.values():
        if overlaps(exc.start, exc.end, start, end):
            yield exc
    # A DST-safe bound: no occurrence starting a day after the window can overlap it.
    for inst in instances(item.recurrence, item.start, item.end, item.zone, until=end + timedelta(days=1)):
        if inst.index in item.deleted or inst.index in item.exceptions:
            continue
        if overlaps(inst.start, inst.end, start, end):
            yield make_occurrence(item, inst)


def overlaps(a_start: datetime, a_end: datetime, b_start: datetime, b_end: datetime) -> bool:
    """Half-open overlap; a zero-length item overlaps a window that contains its instant."""
    if a_start == a_end:
        return b_start <= a_start < b_end
    return a_start < b_end and a_end > b_start


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
                box.receive_meeting(master, attendee, now, cancelled)

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
        """Counts for ``/_emulator/stats``: folders, items and the meeting messages that would be sent."""
        return {
            email: {
                "folders": sum(1 for f in box.folders.values() if f.is_calendar),
                "items": sum(len(f.items) for f in box.folders.values()),
                "sent": [
                    {"kind": m.kind, "recipients": m.recipients, "subject": m.subject, "uid": m.uid}
                    for m in box.sent
                ],
            }
            for email, box in self.mailboxes.items()
        }
