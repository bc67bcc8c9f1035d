"""The calendar store's data: calendar items, folders and what the store reports about them.

It models what EWS exposes of an Exchange mailbox's calendars (types.xsd ``CalendarItemType``,
``CalendarFolderType``): recurring masters hold their exceptions and deleted occurrences, and
each folder keeps the change journal SyncFolderItems reads. Nothing here knows about XML;
``items.py`` translates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from gateway.common.timezones import windows_to_iana
from gateway.ews.emulator.recurrence import Recurrence
from gateway.ews.emulator.soap import EwsError

if TYPE_CHECKING:  # tasks.py builds on this module; task folders hold its items
    from gateway.ews.emulator.tasks import Task

FREE_BUSY_TYPES = ("Free", "Tentative", "Busy", "OOF", "WorkingElsewhere", "NoData")
CALENDAR_CLASS = "IPF.Appointment"
DEFAULT_TIME_ZONE = "UTC"


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


# The GUIDs of the distinguished property sets (MS-OXPROPS §1.3.2), so that a property addressed by
# PropertySetId names the same property as by DistinguishedPropertySetId.
PROPERTY_SETS = {
    "00020329-0000-0000-c000-000000000046": "publicstrings",
    "00062002-0000-0000-c000-000000000046": "appointment",
    "00062003-0000-0000-c000-000000000046": "task",
    "00062004-0000-0000-c000-000000000046": "address",
    "00062008-0000-0000-c000-000000000046": "common",
    "00020386-0000-0000-c000-000000000046": "internetheaders",
    "6ed8da90-450b-101b-98da-00aa003f1305": "meeting",
}

PropertyId = tuple[str | int, ...]


def property_id(attrs: dict[str, str]) -> PropertyId:
    """Which MAPI property an ``ExtendedFieldURI`` names, whatever its spelling.

    ``PropertyTag="0x37"``, ``"0x0037"`` and ``"55"`` are one tag; a distinguished set may be named
    by ``DistinguishedPropertySetId`` or by its GUID; PropertyId is decimal (types.xsd).
    """
    try:
        tag = attrs.get("PropertyTag")
        if tag is not None:
            tag = tag.strip().lower()
            return ("tag", int(tag, 16) if tag.startswith("0x") else int(tag))
        guid = attrs.get("PropertySetId", "").lower()
        space = attrs.get("DistinguishedPropertySetId", "").lower() or PROPERTY_SETS.get(guid, guid)
        if "PropertyId" in attrs:
            return ("id", space, int(attrs["PropertyId"]))
    except ValueError:
        raise StoreError("ErrorInvalidExtendedProperty", "The extended property URI is invalid.") from None
    return ("name", space, attrs.get("PropertyName", ""))


def uri_key(attrs: dict[str, str]) -> PropertyId:
    """Normalised identity of an ``ExtendedFieldURI`` as stored: the property and its type."""
    return (*property_id(attrs), attrs.get("PropertyType", ""))


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


@dataclass(frozen=True)
class Change:
    """One SyncFolderItems change: kind is Create, Update or Delete."""

    kind: str
    item_id: str
    seq: int
    item: CalendarItem | None = None


@dataclass
class Folder:
    """A calendar folder (``CalendarFolderType``) or a structural folder (root, msgfolderroot)."""

    folder_id: str
    change_key: str
    name: str
    parent_id: str | None
    distinguished: str | None = None
    folder_class: str | None = CALENDAR_CLASS
    items: dict[str, CalendarItem | Task] = field(default_factory=dict)
    # SyncFolderItems journal: a counter and the tombstones of deleted items (id -> created, deleted).
    seq: int = 0
    tombstones: dict[str, tuple[int, int]] = field(default_factory=dict)
    # PR_LOCAL_COMMIT_TIME_MAX: when anything in the folder last changed (DavMail's ctag). EWS shows it
    # to the second; ``commit_time_shown`` says a client has seen the current value (see bump).
    commit_time: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0))
    commit_time_shown: bool = False

    @property
    def is_calendar(self) -> bool:
        return self.folder_class == CALENDAR_CLASS

    def bump(self) -> int:
        """Advance the journal: the position of the change being recorded; the commit time moves too.

        Exchange's commit time has one-second resolution, so a client that read it and then changed
        the folder within that second would see no change. The emulator dates such a change one second
        later instead: tests are then not at the mercy of the clock, and the value still only grows.
        """
        self.seq += 1
        now = datetime.now(UTC).replace(microsecond=0)
        if self.commit_time_shown and now <= self.commit_time:
            now = self.commit_time + timedelta(seconds=1)
        self.commit_time, self.commit_time_shown = max(now, self.commit_time), False
        return self.seq

    def show_commit_time(self) -> datetime:
        """PR_LOCAL_COMMIT_TIME_MAX as a client reads it (remembered as seen, see :meth:`bump`)."""
        self.commit_time_shown = True
        return self.commit_time

    def changes_since(self, seq: int) -> list[Change]:
        """SyncFolderItems changes after journal position ``seq``, oldest first, one per item."""
        changes = [
            Change("Create" if item.created_seq > seq else "Update", item.item_id, item.modified_seq, item)
            for item in self.items.values()
            if item.modified_seq > seq
        ]
        changes.extend(
            Change("Delete", item_id, deleted)
            for item_id, (created, deleted) in self.tombstones.items()
            if deleted > seq >= created
        )
        changes.sort(key=lambda c: c.seq)
        return changes


@dataclass(frozen=True)
class BusyEvent:
    """An occurrence as GetUserAvailability reports it (see docs/EMULATOR-INTERNALS.md)."""

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


@dataclass
class SentMessage:
    """A meeting message the emulator sent (a request, update, cancellation or response)."""

    kind: str  # Invitation | Update | Cancellation | Accept | Tentative | Decline
    sender: str
    recipients: list[str]
    subject: str
    uid: str
    sent: datetime
