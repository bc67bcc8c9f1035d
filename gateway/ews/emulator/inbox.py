"""Meeting messages in an attendee's Inbox, beside the calendar copy Exchange's attendant keeps.

With each invitation or update Exchange delivers a meeting request (ItemClass
``IPM.Schedule.Meeting.Request``) to the attendee's Inbox, and with a cancellation a meeting
cancellation (``IPM.Schedule.Meeting.Canceled``). The calendar attendant removes the older messages
of the same meeting when a newer one arrives (Set-CalendarProcessing RemoveOldMeetingMessages, on by
default), and answering a request (AcceptItem, TentativelyAcceptItem, DeclineItem) moves it to
Deleted Items. FindItem, GetItem, SyncFolderItems and DeleteItem show them as ``t:MeetingRequest`` /
``t:MeetingCancellation`` (types.xsd MeetingRequestMessageType and MeetingCancellationMessageType,
which extend MeetingMessageType, MessageType and ItemType), elements in the schema's sequence order.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from lxml import etree

from gateway.ews.emulator.calendar_types import mailbox_xml
from gateway.ews.emulator.fields import CALENDAR_ITEM_FIELDS, Field
from gateway.ews.emulator.model import Attendee, CalendarItem
from gateway.ews.emulator.soap import T, success_message
from gateway.ews.emulator.xsd import fmt_bool

if TYPE_CHECKING:  # store.py and items.py build on this module
    from gateway.ews.emulator.items import Shape
    from gateway.ews.emulator.store import MailboxStore

REQUEST_CLASS = "IPM.Schedule.Meeting.Request"
CANCELLATION_CLASS = "IPM.Schedule.Meeting.Canceled"


@dataclasses.dataclass
class MeetingMessage(CalendarItem):
    """A meeting request or cancellation in a mailbox: the meeting's fields as the organizer sent them,
    and the message's own (types.xsd MeetingMessageType)."""

    cancellation: bool = False
    associated_id: str = ""  # the attendee's calendar item of this meeting (AssociatedCalendarItemId)
    sender: Attendee | None = None
    request_type: str = "NewMeetingRequest"  # MeetingRequestTypeType: NewMeetingRequest | FullUpdate
    intended_free_busy: str = "Busy"  # what the organizer's item shows (IntendedFreeBusyStatus)
    is_read: bool = False

    @property
    def item_class(self) -> str:
        return CANCELLATION_CLASS if self.cancellation else REQUEST_CLASS


def deliver_message(
    box: MailboxStore,
    meeting: CalendarItem,
    organizer_item: CalendarItem,
    new: bool,
    cancelled: bool,
    now: datetime,
) -> MeetingMessage:
    """Put the message of a delivered meeting (``meeting``: the attendee's calendar copy) in the Inbox;
    the older messages of the same meeting go to Deleted Items."""
    discard_messages(box, meeting.uid, now)
    values = {f.name: copy.deepcopy(getattr(meeting, f.name)) for f in dataclasses.fields(CalendarItem)}
    values.update(
        item_id=box.ids.item_id(),
        change_key=box.ids.change_key(),
        folder_id=box.distinguished["inbox"],
        created=now,
        modified=now,
        extended={},
        created_seq=0,
        modified_seq=0,
    )
    message = MeetingMessage(
        **values,
        cancellation=cancelled,
        associated_id=meeting.item_id,
        sender=copy.deepcopy(meeting.organizer),
        request_type="NewMeetingRequest" if new else "FullUpdate",
        intended_free_busy=organizer_item.free_busy,
    )
    box.add_item(message)
    return message


def discard_messages(box: MailboxStore, uid: str, now: datetime) -> None:
    """Move the Inbox's meeting messages of meeting ``uid`` to Deleted Items (the meeting was answered,
    or a newer message replaces them)."""
    inbox = box.folders[box.distinguished["inbox"]]
    for message in [m for m in inbox.items.values() if isinstance(m, MeetingMessage) and m.uid == uid]:
        _move_to_deleted(box, message, now)


def delete_message(
    box: MailboxStore, message: MeetingMessage, delete_type: str, now: datetime
) -> etree._Element:
    """DeleteItem of a meeting message: MoveToDeletedItems moves it (out of Deleted Items it is gone),
    HardDelete and SoftDelete remove it; the meeting in the calendar stays."""
    if delete_type == "MoveToDeletedItems" and message.folder_id != box.distinguished["deleteditems"]:
        _move_to_deleted(box, message, now)
    else:
        box.delete(message.item_id, now)
    return success_message("DeleteItem")


def _move_to_deleted(box: MailboxStore, message: MeetingMessage, now: datetime) -> None:
    # A moved item gets a new ItemId in Exchange.
    box.delete(message.item_id, now)
    moved = dataclasses.replace(
        message,
        item_id=box.ids.item_id(),
        change_key=box.ids.change_key(),
        folder_id=box.distinguished["deleteditems"],
        modified=now,
    )
    box.add_item(moved)


# -- XML ------------------------------------------------------------------------------------------------

_BY_NAME: dict[str, Field] = {f.name: f for f in CALENDAR_ITEM_FIELDS}
# ItemType's part of the sequence: the same elements as a calendar item's, up to IsAssociated.
_ITEM_PART = CALENDAR_ITEM_FIELDS[: [f.name for f in CALENDAR_ITEM_FIELDS].index("IsAssociated") + 1]
_REQUEST_PART = [
    _BY_NAME[n]
    for n in (
        "Start",
        "End",
        "OriginalStart",
        "IsAllDayEvent",
        "LegacyFreeBusyStatus",
        "Location",
        "IsMeeting",
        "IsCancelled",
        "IsRecurring",
        "MeetingRequestWasSent",
        "CalendarItemType",
        "MyResponseType",
        "Organizer",
        "RequiredAttendees",
        "OptionalAttendees",
        "Resources",
        "Duration",
        "AppointmentSequenceNumber",
        "AppointmentState",
        "Recurrence",
        "FirstOccurrence",
        "LastOccurrence",
        "ModifiedOccurrences",
        "DeletedOccurrences",
        "MeetingTimeZone",
        "StartTimeZone",
        "EndTimeZone",
    )
]
_CANCELLATION_PART = [_BY_NAME[n] for n in ("Start", "End", "Location", "Recurrence", "CalendarItemType")]


def message_xml(message: MeetingMessage, shape: Shape) -> etree._Element:
    """A ``t:MeetingRequest`` or ``t:MeetingCancellation`` with the fields ``shape`` asks for."""
    elem = T("MeetingCancellation" if message.cancellation else "MeetingRequest")
    elem.append(T.ItemId(Id=message.item_id, ChangeKey=message.change_key))
    if shape.base == "IdOnly" and not shape.fields and not shape.extended:
        return elem
    for declared in _ITEM_PART:
        _append(elem, declared.emit(message, shape))
    sender = message.sender
    wanted = _wanted(shape)
    if sender is not None and wanted("message:Sender"):
        elem.append(T.Sender(mailbox_xml(sender)))
    if sender is not None and wanted("message:From"):
        elem.append(T.From(mailbox_xml(sender)))
    own = [
        ("message:IsRead", "IsRead", fmt_bool(message.is_read)),
        ("message:IsResponseRequested", "IsResponseRequested", fmt_bool(not message.cancellation)),
    ]
    _append_texts(elem, wanted, own)
    if wanted("meeting:AssociatedCalendarItemId") and message.associated_id:
        elem.append(T.AssociatedCalendarItemId(Id=message.associated_id))
    meeting = [
        ("meeting:IsDelegated", "IsDelegated", "false"),
        ("meeting:IsOutOfDate", "IsOutOfDate", "false"),
        ("meeting:HasBeenProcessed", "HasBeenProcessed", "true"),
        ("meeting:ResponseType", "ResponseType", message.my_response_type),
    ]
    _append_texts(elem, wanted, meeting)
    for name in ("UID", "DateTimeStamp"):
        _append(elem, _BY_NAME[name].emit(message, shape))
    if message.cancellation:
        parts = _CANCELLATION_PART
    else:
        request = [
            ("meetingRequest:MeetingRequestType", "MeetingRequestType", message.request_type),
            ("meetingRequest:IntendedFreeBusyStatus", "IntendedFreeBusyStatus", message.intended_free_busy),
        ]
        _append_texts(elem, wanted, request)
        parts = _REQUEST_PART
    for declared in parts:
        _append(elem, declared.emit(message, shape))
    return elem


def _wanted(shape: Shape) -> Callable[[str], bool]:
    """Whether a message field is in the response: every base shape but IdOnly carries them."""
    return lambda uri: shape.base != "IdOnly" or uri in shape.fields


def _append_texts(
    elem: etree._Element, wanted: Callable[[str], bool], values: list[tuple[str, str, str]]
) -> None:
    for uri, name, value in values:
        if wanted(uri):
            elem.append(T(name, value))


def _append(parent: etree._Element, value: etree._Element | list[etree._Element] | None) -> None:
    if value is None:
        return
    for part in value if isinstance(value, list) else [value]:
        parent.append(part)
