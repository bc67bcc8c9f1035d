"""What the booking API asks of Exchange: availability with working hours, a booking, its cancellation.

- availability: one GetUserAvailability per connected account (the first account's mailbox always, for
  its WorkingHours and for the other attendees; another account's only when its primary calendar is
  checked for conflicts) plus one FindItem CalendarView per checked sub-calendar, run concurrently;
- a booking: one CreateItem in the calendar chosen for new events, with the invitee as required
  attendee and ``SendMeetingInvitations=SendToAllAndSaveCopy`` (Exchange sends the invitation). The
  account's ``invitations`` option is for CalDAV clients that may send their own; the booking API
  has only Exchange to send it, so it always asks Exchange;
- a booking whose answer was lost: one FindItem CalendarView over its time, looking for its UID;
- a cancellation: one DeleteItem with ``SendMeetingCancellations=SendToAllAndSaveCopy``.

The created item carries a resource name and UID like a CalDAV PUT's, and is indexed at once, so
CalDAV clients see it in their next sync as any other event.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import datetime

from exchangelib import CalendarItem
from exchangelib.items import SEND_TO_ALL_AND_SAVE_COPY
from exchangelib.properties import Attendee, ItemId, Mailbox

from gateway.caldav.backend import (
    Availability,
    BackendUnavailable,
    Booked,
    Booking,
    FreeBusyResult,
    NotFound,
    Principal,
)
from gateway.ews.backend.busy import FreeBusy, merge_own
from gateway.ews.backend.calendars import CalendarDirectory
from gateway.ews.backend.calls import EwsCalls, raise_first_error
from gateway.ews.backend.tracking import ChangeTracker
from gateway.ews.exchange import calendar_view, ews_datetime
from gateway.ews.freebusy import mailbox_address
from gateway.ews.index import ItemChange


class Bookings:
    """Availability, bookings and cancellations over the principal's connected accounts."""

    def __init__(
        self, calls: EwsCalls, directory: CalendarDirectory, busy: FreeBusy, tracker: ChangeTracker
    ) -> None:
        self._calls = calls
        self._directory = directory
        self._busy = busy
        self._tracker = tracker

    async def availability(
        self, principal: Principal, start: datetime, end: datetime, attendees: Sequence[str] = ()
    ) -> Availability:
        """Busy time of every conflict calendar merged, the first mailbox's working hours, and the
        attendees' free/busy (asked through the first account, in the same GetUserAvailability)."""
        entries = await self._calls.connected(principal)
        if not entries:
            raise NotFound(f"{principal.username} has no Exchange account connected.")
        selected = await self._busy.conflict_calendars(principal)
        primaries = {c.record.account_id for c in selected if c.primary}
        own = {entry.record.email.lower() for entry in entries}
        others = list(dict.fromkeys(m for m in map(mailbox_address, attendees) if m not in own))

        async def ask(position: int) -> list[FreeBusyResult]:
            record = entries[position].record
            mailboxes = [record.email.lower()] + (others if position == 0 else [])
            account = self._calls.account(entries[position])
            return await self._busy.ask_availability(account, mailboxes, start, end, record.working_elsewhere)

        asked = [i for i, e in enumerate(entries) if i == 0 or e.record.account_id in primaries]
        subs = [cal for cal in selected if not cal.primary]
        accounts_answers, sub_answers = await asyncio.gather(  # all at once: one round trip's wait
            asyncio.gather(*(ask(i) for i in asked)),
            asyncio.gather(*(self._busy.sub_calendar_busy(cal, start, end) for cal in subs)),
        )
        by_account = dict(zip(asked, accounts_answers, strict=True))
        parts = [by_account[i][0] for i in asked if entries[i].record.account_id in primaries]
        parts += sub_answers
        mine = merge_own(parts)
        if mine.status != "2.0" or mine.no_data:
            raise BackendUnavailable(mine.message or "Exchange could not tell your free/busy time.")
        first = by_account[0]
        results = dict(zip(others, first[1:], strict=True))
        return Availability(
            busy=mine.periods,
            working_hours=first[0].working_hours,
            attendees=[_addressed(a, results.get(mailbox_address(a))) for a in attendees],
        )

    async def book(self, principal: Principal, booking: Booking) -> Booked:
        """One CreateItem in the calendar for new events; Exchange invites the invitee."""
        if principal.default_calendar_id is None:
            raise NotFound(f"{principal.username} has no calendar chosen for new events.")
        cal = await self._directory.resolve(principal, principal.default_calendar_id)
        uid = booking.uid or str(uuid.uuid4())
        name = f"{uid}.ics"
        item = CalendarItem(
            account=cal.account,
            folder=cal.folder,
            subject=booking.subject,
            start=ews_datetime(booking.start),
            end=ews_datetime(booking.end),
            body=booking.description or None,
            location=booking.location or None,
            uid=uid,
            legacy_free_busy_status="Busy",
            required_attendees=[
                Attendee(
                    mailbox=Mailbox(email_address=booking.invitee_email, name=booking.invitee_name or None),
                    response_type="Unknown",
                )
            ],
        )
        item.caldav_name = name
        await self._calls.run(
            cal.account, "CreateItem", lambda: item.save(send_meeting_invitations=SEND_TO_ALL_AND_SAVE_COPY)
        )
        await self._tracker.record_created(cal, ItemChange(item.id, item.changekey, name, uid))
        return Booked(calendar_id=cal.calendar_id, name=name, handle=item.id)

    async def find_booked(self, principal: Principal, booking: Booking) -> Booked | None:
        """One FindItem CalendarView of the calendar for new events over the booking's time: the item with
        the booking's UID, if Exchange made it (its CreateItem answer may have been lost)."""
        if principal.default_calendar_id is None or not booking.uid:
            return None
        cal = await self._directory.resolve(principal, principal.default_calendar_id)
        view = await self._calls.run(
            cal.account,
            "FindItem",
            lambda: calendar_view(cal.account, cal.folder, booking.start, booking.end),
        )
        entry = next((e for e in view if e.uid == booking.uid), None)
        if entry is None:
            return None
        name = f"{booking.uid}.ics"
        await self._tracker.record_created(cal, ItemChange(entry.id, entry.changekey, name, booking.uid))
        return Booked(calendar_id=cal.calendar_id, name=name, handle=entry.id)

    async def cancel(self, principal: Principal, booked: Booked) -> None:
        """One DeleteItem; Exchange sends the invitee the cancellation. Already gone: nothing to do."""
        try:
            cal = await self._directory.resolve(principal, booked.calendar_id)
        except NotFound:
            return  # the calendar itself is gone, and the meeting with it
        account = cal.account
        try:
            results = await self._calls.run(
                account,
                "DeleteItem",
                lambda: list(
                    account.bulk_delete(
                        [ItemId(booked.handle)], send_meeting_cancellations=SEND_TO_ALL_AND_SAVE_COPY
                    )
                ),
            )
            raise_first_error(results)
        except NotFound:
            pass  # deleted in Outlook meanwhile: the booking is cancelled either way
        await self._tracker.record_deleted(cal, booked.handle)


def _addressed(attendee: str, result: FreeBusyResult | None) -> FreeBusyResult:
    if result is None:  # one of the principal's own addresses: they are the one being booked
        return FreeBusyResult(attendee, "2.0")
    return FreeBusyResult(attendee, result.status, result.periods, result.message, result.no_data)
