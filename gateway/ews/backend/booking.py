"""What the booking API asks of Exchange: availability with working hours, a booking, its cancellation.

- availability: one request per connected account, run concurrently: GetUserAvailability when only its
  primary calendar is checked for conflicts, else one FindItem CalendarView naming every checked folder;
  the first account's mailbox is asked with GetUserAvailability whenever its WorkingHours or other
  attendees are wanted (nothing else tells them), and its checked sub-calendars are then one FindItem more;
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
from dataclasses import dataclass
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
from gateway.ews.backend.records import MailboxCalendar
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
        self,
        principal: Principal,
        start: datetime,
        end: datetime,
        attendees: Sequence[str] = (),
        *,
        working_hours: bool = True,
    ) -> Availability:
        """Busy time of every conflict calendar merged, the first mailbox's working hours (unless
        ``working_hours`` is False: the caller has its own) and the attendees' free/busy.

        Each account is one request, run concurrently: a GetUserAvailability when only its primary calendar
        is checked, else one FindItem CalendarView of every checked folder. The first account is asked
        with GetUserAvailability whenever its working hours or other attendees are wanted (only that
        operation tells them), and then its checked sub-calendars are a second request: it reads only the
        primary calendar."""
        entries = await self._calls.connected(principal)
        if not entries:
            raise NotFound(f"{principal.username} has no Exchange account connected.")
        selected = await self._busy.conflict_calendars(principal)
        own = {entry.record.email.lower() for entry in entries}
        others = list(dict.fromkeys(m for m in map(mailbox_address, attendees) if m not in own))
        plans = [
            _plan(
                [c for c in selected if c.record.account_id == entry.record.account_id],
                wanted=position == 0 and (working_hours or bool(others)),
            )
            for position, entry in enumerate(entries)
        ]

        async def ask(position: int) -> list[FreeBusyResult]:
            record = entries[position].record
            mailboxes = [record.email.lower()] + (others if position == 0 else [])
            account = self._calls.account(entries[position])
            return await self._busy.ask_availability(account, mailboxes, start, end, record.working_elsewhere)

        asked = [i for i, plan in enumerate(plans) if plan.asks_availability]
        viewed = [plan.viewed for plan in plans if plan.viewed]
        accounts_answers, view_answers = await asyncio.gather(  # all at once: one round trip's wait
            asyncio.gather(*(ask(i) for i in asked)),
            asyncio.gather(*(self._busy.calendars_busy(cals, start, end) for cals in viewed)),
        )
        by_account = dict(zip(asked, accounts_answers, strict=True))
        parts = [by_account[i][0] for i in asked if plans[i].primary_from_availability]
        parts += view_answers
        mine = merge_own(parts)
        if mine.status != "2.0" or mine.no_data:
            raise BackendUnavailable(mine.message or "Exchange could not tell your free/busy time.")
        first = by_account.get(0)
        results = dict(zip(others, first[1:], strict=True)) if first else {}
        return Availability(
            busy=mine.periods,
            working_hours=first[0].working_hours if first else None,
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


@dataclass(frozen=True)
class _Plan:
    """What one account is asked: GetUserAvailability (its mailbox, and the attendees' through the first
    account) and/or one FindItem CalendarView of ``viewed``."""

    checked: list[MailboxCalendar]
    asks_availability: bool
    viewed: list[MailboxCalendar]

    @property
    def primary_from_availability(self) -> bool:
        return self.asks_availability and any(c.primary for c in self.checked)


def _plan(checked: list[MailboxCalendar], *, wanted: bool) -> _Plan:
    """One request per account; two when GetUserAvailability is ``wanted`` (the first account's, for its
    working hours or the attendees: no other operation tells them) and a sub-calendar is checked (that
    operation reads only the primary calendar)."""
    subs = [c for c in checked if not c.primary]
    if wanted:
        return _Plan(checked, True, subs)
    if checked and not subs:  # only the primary: the compact merged answer
        return _Plan(checked, True, [])
    return _Plan(checked, False, checked)  # the primary (if checked) and sub-calendars in one FindItem


def _addressed(attendee: str, result: FreeBusyResult | None) -> FreeBusyResult:
    if result is None:  # one of the principal's own addresses: they are the one being booked
        return FreeBusyResult(attendee, "2.0")
    return FreeBusyResult(attendee, result.status, result.periods, result.message, result.no_data)
