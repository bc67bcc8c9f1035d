"""What a write of the owner's calendar sends to attendees (RFC 6638 §3.2 implicit scheduling).

Exchange sends the invitations, updates and cancellations itself (CreateItem/UpdateItem/DeleteItem's
SendMeetingInvitations…); the gateway only chooses the value, from the account's ``invitations``
option and who organises the meeting.
"""

from __future__ import annotations

from exchangelib import CalendarItem
from exchangelib.items import SEND_ONLY_TO_ALL, SEND_TO_ALL_AND_SAVE_COPY, SEND_TO_NONE

from gateway.ews import mapping
from gateway.ews.backend.records import MailboxRecord


def on_create(record: MailboxRecord, resource: mapping.EventResource) -> str:
    """RFC 6638 implicit scheduling: Exchange sends invitations when the owner organises a meeting."""
    organiser = (resource.organizer_email or "").lower()
    if record.invitations == "auto" and resource.attendee_emails and organiser == record.email.lower():
        return SEND_TO_ALL_AND_SAVE_COPY
    return SEND_TO_NONE


def on_update(record: MailboxRecord, resource: mapping.EventResource) -> str:
    """What an update sends: updates to every attendee when the owner organises the meeting."""
    return SEND_ONLY_TO_ALL if on_create(record, resource) != SEND_TO_NONE else SEND_TO_NONE


def on_delete(record: MailboxRecord, current: CalendarItem) -> str:
    """RFC 6638 implicit scheduling: deleting a meeting the owner organises cancels it for the attendees."""
    organiser = getattr(current.organizer, "email_address", "") or ""
    if record.invitations == "auto" and current.is_meeting and organiser.lower() == record.email.lower():
        return SEND_TO_ALL_AND_SAVE_COPY
    return SEND_TO_NONE
