"""Meeting responses (CreateItem of AcceptItem, TentativelyAcceptItem, DeclineItem): what the invitee's
calendar and the organizer's item record, for a whole meeting or for one occurrence of a series.

Exchange keeps an answer per occurrence: a response whose ReferenceItemId is an occurrence (or an
exception) answers that occurrence only — accepted or tentative, it becomes an exception of the
invitee's series carrying the answer; declined, it is deleted from the invitee's series — and the
organizer's series records the answer on that occurrence. A response to the series answers every
occurrence, exceptions included; declined, the meeting leaves the calendar.
"""

from __future__ import annotations

import copy
from datetime import datetime

from gateway.ews.emulator.model import CalendarItem
from gateway.ews.emulator.store import MailboxStore


def shown_as(response: str, organizer_item: CalendarItem | None) -> str:
    """The free/busy status an answered meeting shows: Tentative, else the organizer's (Busy when unknown)."""
    if response == "Tentative":
        return "Tentative"
    return organizer_item.free_busy if organizer_item is not None else "Busy"


def take_answer(
    box: MailboxStore, item: CalendarItem, response: str, organizer_item: CalendarItem | None, now: datetime
) -> None:
    """The invitee's calendar takes the answer: ``item`` is the meeting, or one occurrence of it."""
    if response == "Decline":
        box.delete(item.item_id, now)
        return
    status = shown_as(response, organizer_item)
    if item.master_id is not None:
        occurrence = copy.deepcopy(item)
        occurrence.my_response_type, occurrence.free_busy = response, status
        box.commit_occurrence(occurrence, now)
        return
    item.my_response_type, item.free_busy = response, status
    for exception in item.exceptions.values():
        exception.my_response_type, exception.free_busy = response, status
        box.touch(exception, now)  # each exception is a new version too (its ChangeKey)
    box.touch(item, now)


def record_answer(
    box: MailboxStore,
    organizer_item: CalendarItem,
    attendee: str,
    response: str,
    index: int | None,
    now: datetime,
) -> None:
    """The organizer's item records ``attendee``'s answer: on the series, or on occurrence ``index``."""
    target = organizer_item
    if index is not None and organizer_item.recurrence is not None:
        target = copy.deepcopy(box.occurrence(organizer_item, index))
    for person in target.attendees():
        if person.email == attendee:
            person.response_type, person.last_response_time = response, now
    if target is organizer_item:
        box.touch(organizer_item, now)
    else:
        box.commit_occurrence(target, now)
