"""Meeting delivery between mailboxes of the emulator (what Exchange's calendar attendant does).

When an organizer sends a meeting, each attendee that is a mailbox here gets (or updates) its
own copy: its own ItemId, the organizer's UID, times, attendees and exceptions, and the
attendee's response.
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import TYPE_CHECKING

from gateway.ews.emulator.ids import occurrence_id
from gateway.ews.emulator.inbox import deliver_message
from gateway.ews.emulator.model import Attendee, CalendarItem
from gateway.ews.emulator.series import normalise_series

if TYPE_CHECKING:  # store.py calls into this module
    from gateway.ews.emulator.store import MailboxStore

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


def receive_meeting(
    box: MailboxStore, master: CalendarItem, attendee: Attendee, now: datetime, cancelled: bool
) -> None:
    """Create or refresh ``attendee``'s copy of a meeting in ``box``'s Calendar.

    An unanswered invitation shows as Tentative. A cancellation marks the copy cancelled (it
    stays, free, in the calendar); a declined meeting is not put in at all.
    """
    existing = next((i for i in box.calendar.items.values() if i.uid == master.uid), None)
    if attendee.response_type == "Decline" or (existing is None and cancelled):
        return
    target = existing or box.new_item(box.calendar.folder_id, now)
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
        box.add_item(target)
    else:
        normalise_series(target)
        box.touch(target, now)
    if existing is not None or target.my_response_type == "NoResponseReceived":
        # A meeting that arrives answered (only the seed delivers such) leaves no request waiting.
        deliver_message(box, target, master, new=existing is None, cancelled=cancelled, now=now)


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
