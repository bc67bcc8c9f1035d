"""Free/busy: of one collection (RFC 4791 §7.10) and of calendar users (RFC 6638 §3.2).

Other people are asked with GetUserAvailability (:mod:`gateway.ews.freebusy`); the principal's own
addresses get the merged free/busy of the calendars they chose for conflict checking.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime

from exchangelib import Account, CalendarItem
from exchangelib.folders.collections import FolderCollection

from gateway.caldav.backend import BackendError, BusyPeriod, FreeBusyResult, Principal
from gateway.common.timezones import to_utc
from gateway.ews.backend.calendars import CalendarDirectory
from gateway.ews.backend.calls import EwsCalls
from gateway.ews.backend.records import ConnectedMailbox, MailboxCalendar
from gateway.ews.errors import EwsError, backend_error
from gateway.ews.exchange import ews_datetime
from gateway.ews.freebusy import availability, coalesce, fbtype_for, mailbox_address

_BUSY_FIELDS = ("start", "end", "legacy_free_busy_status", "is_cancelled")


class FreeBusy:
    """Busy periods from FindItem CalendarViews and GetUserAvailability."""

    def __init__(self, calls: EwsCalls, directory: CalendarDirectory) -> None:
        self._calls = calls
        self._directory = directory

    async def folders_busy(
        self, cals: Sequence[MailboxCalendar], start: datetime, end: datetime
    ) -> list[BusyPeriod]:
        """The busy time of calendars of one account from one FindItem CalendarView naming every folder in
        its ParentFolderIds (the operation takes any number of folders and answers one RootFolder each):
        one round trip however many calendars the account checks. Each instance's LegacyFreeBusyStatus
        becomes an FBTYPE."""
        account, record = cals[0].account, cals[0].record
        folders = FolderCollection(account=account, folders=[cal.folder for cal in cals])

        def view() -> list[CalendarItem]:
            found = list(folders.view(start=ews_datetime(start), end=ews_datetime(end)).only(*_BUSY_FIELDS))
            failed = next((f for f in found if isinstance(f, Exception)), None)
            if failed is not None:  # one folder's answer failed (gone meanwhile): no partial busy time
                raise failed
            return found

        periods = []
        for item in await self._calls.run(account, "FindItem", view):
            if item.is_cancelled:
                continue  # a cancelled meeting stays in the attendee's calendar but is not busy (as in GetUserAvailability)
            fbtype = fbtype_for(item.legacy_free_busy_status, record.working_elsewhere)
            if fbtype is not None:
                periods.append(BusyPeriod(max(to_utc(item.start), start), min(to_utc(item.end), end), fbtype))
        return periods

    async def free_busy(
        self, principal: Principal, attendees: Sequence[str], start: datetime, end: datetime
    ) -> list[FreeBusyResult]:
        """One GetUserAvailability per account (≤ 100 mailboxes per window chunk), all at once.

        Other people are asked through the first account; the principal's own addresses get the
        merged free/busy of the calendars selected for conflict checking (primaries in the same
        GetUserAvailability, each account's sub-calendars by one FindItem CalendarView naming them).
        """
        entries = await self._calls.connected(principal)
        records = [entry.record for entry in entries]
        if not records:
            return [FreeBusyResult(a, "3.8", message="No Exchange account is connected.") for a in attendees]
        own = {r.email.lower() for r in records}
        others = list(dict.fromkeys(mailbox_address(a) for a in attendees if mailbox_address(a) not in own))
        wants_own = any(mailbox_address(a) in own for a in attendees)
        selected = await self.conflict_calendars(principal) if wants_own else []
        primaries = {c.record.account_id for c in selected if c.primary}
        asked: list[tuple[ConnectedMailbox, list[str]]] = []
        for position, entry in enumerate(entries):
            primary = [entry.record.email.lower()] if entry.record.account_id in primaries else []
            if mailboxes := (others if position == 0 else []) + primary:
                asked.append((entry, mailboxes))
        subs: dict[str, list[MailboxCalendar]] = {}
        for cal in selected:
            if not cal.primary:
                subs.setdefault(cal.record.account_id, []).append(cal)

        async def ask(entry: ConnectedMailbox, mailboxes: list[str]) -> list[FreeBusyResult]:
            account, record = self._calls.account(entry), entry.record
            return await self.ask_availability(account, mailboxes, start, end, record.working_elsewhere)

        answers, own_parts = await asyncio.gather(  # every account at once: one round trip's wait
            asyncio.gather(*(ask(entry, mailboxes) for entry, mailboxes in asked)),
            asyncio.gather(*(self.calendars_busy(cals, start, end) for cals in subs.values())),
        )
        results: dict[str, FreeBusyResult] = {}
        for (entry, mailboxes), answered in zip(asked, answers, strict=True):
            for mailbox, answer in zip(mailboxes, answered, strict=True):
                if entry.record.account_id in primaries and mailbox == entry.record.email.lower():
                    own_parts.append(answer)
                else:
                    results[mailbox] = answer
        mine = merge_own(own_parts)
        return [
            _answer_for(a, mine if mailbox_address(a) in own else results[mailbox_address(a)])
            for a in attendees
        ]

    async def calendars_busy(
        self, cals: Sequence[MailboxCalendar], start: datetime, end: datetime
    ) -> FreeBusyResult:
        """Selected calendars of one account as one part of the own free/busy (:meth:`folders_busy`, one
        FindItem); a failure fails only the own answer."""
        try:
            return FreeBusyResult(cals[0].record.email, "2.0", await self.folders_busy(cals, start, end))
        except BackendError as exc:
            names = ", ".join(repr(cal.display_name) for cal in cals)
            reason = f"The calendar{'s' if len(cals) > 1 else ''} {names} could not be read: {exc}"
            return FreeBusyResult(cals[0].record.email, "5.1", message=reason)

    async def ask_availability(
        self, account: Account, mailboxes: list[str], start: datetime, end: datetime, working_elsewhere: str
    ) -> list[FreeBusyResult]:
        """GetUserAvailability in chunks; a failed chunk is a per-mailbox status, not an error."""
        try:
            return await availability(
                self._calls.client, account, mailboxes, start, end, working_elsewhere=working_elsewhere
            )
        except EwsError as exc:
            raise backend_error(exc) from exc

    async def conflict_calendars(self, principal: Principal) -> list[MailboxCalendar]:
        """The calendars the user checks for conflicts (UserSettings); by default every primary."""
        settings = await self._calls.accounts.settings(principal.user_id)
        calendars = [c for c in await self._directory.calendars_of(principal) if not c.tasks]
        chosen = settings.conflict_calendar_ids
        if chosen is None:
            return [c for c in calendars if c.primary]
        return [c for c in calendars if c.calendar_id in set(chosen)]


def merge_own(parts: list[FreeBusyResult]) -> FreeBusyResult:
    """The own free/busy from its parts: the first failure wins (a partial answer would look free)."""
    failed = next((p for p in parts if not p.status.startswith("2")), None)
    if failed is not None:
        return FreeBusyResult("", failed.status, message=failed.message)
    no_data = next((p for p in parts if p.no_data), None)
    periods = coalesce(period for part in parts for period in part.periods)
    return FreeBusyResult("", "2.0", periods, no_data.message if no_data else "", no_data=no_data is not None)


def _answer_for(attendee: str, result: FreeBusyResult) -> FreeBusyResult:
    """``result`` addressed to the attendee as the request spelled it."""
    return FreeBusyResult(attendee, result.status, result.periods, result.message, result.no_data)
