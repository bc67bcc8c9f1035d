"""Free/busy of several calendar users with EWS GetUserAvailability (RFC 6638 §3.2 semantics).

One ``GetUserAvailability`` request per batch of at most 100 mailboxes per window of at most 42
days (Exchange's documented defaults), and nothing else: exchangelib's
``Protocol.get_free_busy_info`` first asks ``GetServerTimeZones`` on every call, so the service is
called directly (``gateway.ews.exchange.user_availability``) with a fixed UTC ``SerializableTimeZone``
(times then come back in UTC).

The ``DetailedMerged`` view is requested and each ``CalendarEvent``'s ``BusyType`` is read (straight from the
XML with lxml: exchangelib's object model cost most of the CPU of a large answer):

==================  ===============================================
EWS BusyType        iCalendar FBTYPE (RFC 5545 §3.2.9)
==================  ===============================================
Busy                BUSY
Tentative           BUSY-TENTATIVE
OOF                 BUSY-UNAVAILABLE
WorkingElsewhere    FREE (default; or BUSY-TENTATIVE / BUSY by option)
Free                (no period)
NoData              ``no_data=True`` with a message, never "free"
==================  ===============================================

Each view's ``WorkingHours`` (the mailbox's working periods and its time zone, as a
SerializableTimeZone) comes back in the same answer and is kept in the result: the booking API cuts
free time to it without another call.

Per-mailbox failures become RFC 6638 request-status codes: an unknown recipient 3.7, access
denied 3.8, anything else Exchange could not answer 5.1.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from exchangelib import errors as exl_errors
from exchangelib.ewsdatetime import UTC as EWS_UTC
from exchangelib.ewsdatetime import EWSDateTime
from exchangelib.properties import (
    DaylightTime,
    FreeBusyViewOptions,
    MailboxData,
    StandardTime,
    TimeWindow,
    TimeZone,
)

from gateway.caldav.backend import BusyPeriod, FreeBusyResult, FreeBusyType, WorkingHours, WorkingPeriod
from gateway.common.busy import merge_spans
from gateway.common.rule_zone import serializable_zone
from gateway.common.timezones import to_utc
from gateway.ews.errors import EwsError
from gateway.ews.exchange import EWS_TYPES, user_availability

if TYPE_CHECKING:
    from exchangelib import Account
    from lxml import etree

    from gateway.ews.client import EwsClient

MAX_WINDOW_DAYS = 42
MAX_MAILBOXES = 100
MERGED_INTERVAL_MINUTES = 30
_BUSY_TYPES: dict[str, FreeBusyType] = {
    "Busy": "BUSY",
    "Tentative": "BUSY-TENTATIVE",
    "OOF": "BUSY-UNAVAILABLE",
}
_WORKING_ELSEWHERE_CHOICES = ("FREE", "BUSY-TENTATIVE", "BUSY")
_NOT_FOUND = (exl_errors.ErrorMailRecipientNotFound, exl_errors.ErrorNonExistentMailbox)
_DENIED = (
    exl_errors.ErrorAccessDenied,
    exl_errors.ErrorNoFreeBusyAccess,
    exl_errors.ErrorProxyRequestNotAllowed,
)
_ZERO = timedelta(0)
NO_DATA_MESSAGE = (
    "Exchange has no free/busy information for this calendar user; the time is not known to be free."
)

# SerializableTimeZone for UTC: bias 0 and two no-op transitions (both required by the schema).
_UTC_TIMEZONE = TimeZone(
    bias=0,
    standard_time=StandardTime(bias=0, time=time(0), occurrence=1, iso_month=1, weekday=7),
    daylight_time=DaylightTime(bias=0, time=time(0), occurrence=1, iso_month=1, weekday=7),
)


def windows(
    start: datetime, end: datetime, max_days: int = MAX_WINDOW_DAYS
) -> list[tuple[datetime, datetime]]:
    """Split [start, end) into consecutive windows of at most ``max_days`` days."""
    start, end = to_utc(start), to_utc(end)
    if end <= start:
        raise ValueError("the free/busy end must be after its start")
    step = timedelta(days=max_days)
    chunks = []
    while start < end:
        chunks.append((start, min(start + step, end)))
        start += step
    return chunks


def batches(items: Sequence[str], size: int = MAX_MAILBOXES) -> list[list[str]]:
    """Split ``items`` into lists of at most ``size``."""
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def fbtype_for(busy_type: str | None, working_elsewhere: str = "FREE") -> FreeBusyType | None:
    """The FBTYPE a BusyType becomes (None: no period). NoData is handled by the caller."""
    if busy_type == "WorkingElsewhere":
        return None if working_elsewhere == "FREE" else working_elsewhere  # type: ignore[return-value]
    return _BUSY_TYPES.get(busy_type or "")


def coalesce(periods: Iterable[BusyPeriod]) -> list[BusyPeriod]:
    """Merge overlapping or touching periods of the same FBTYPE (:func:`gateway.common.busy.merge_spans`);
    sorted by start, UTC."""
    return [BusyPeriod(*span) for span in merge_spans((p.start, p.end, p.fbtype) for p in periods)]


def status_for_error(error: BaseException) -> tuple[str, str]:
    """RFC 6638 §3.2.10 request-status and a message for a mailbox-level EWS error."""
    name = type(error).__name__
    if isinstance(error, _NOT_FOUND):
        return "3.7", "Exchange knows no calendar user with this address."
    if isinstance(error, _DENIED):
        return "3.8", "Exchange does not allow reading this calendar user's free/busy time."
    if isinstance(error, EwsError):
        return "5.1", str(error)
    return "5.1", f"Exchange could not provide free/busy information ({name})."


def mailbox_address(attendee: str) -> str:
    """The lower-case e-mail address of a calendar user given as ``mailto:`` URI or plain address."""
    value = attendee.strip()
    return (value[7:] if value.lower().startswith("mailto:") else value).lower()


def _utc(value: datetime) -> datetime:
    """``to_utc`` for the CalendarEvent times of an answer asked in UTC: those need no conversion,
    only a stdlib UTC datetime (a few thousand per answer; comparisons with EWSDateTime are slow)."""
    if value.tzinfo is UTC:
        return value
    if value.utcoffset() == _ZERO:
        return datetime(
            value.year,
            value.month,
            value.day,
            value.hour,
            value.minute,
            value.second,
            value.microsecond,
            tzinfo=UTC,
        )
    return to_utc(value)


class _Collected:
    """What the chunks found for one mailbox."""

    def __init__(self) -> None:
        self.periods: list[BusyPeriod] = []
        self.failure: tuple[str, str] | None = None
        self.no_data = False
        self.working_hours: WorkingHours | None = None

    def add_view(self, view: Any, start: datetime, end: datetime, working_elsewhere: str) -> None:
        if view.view_type in (None, "None") or "4" in (view.merged or ""):
            self.no_data = True
        self.working_hours = self.working_hours or getattr(view, "working_hours", None)
        for event in view.calendar_events or ():
            if event.busy_type == "NoData":
                self.no_data = True
                continue
            fbtype = fbtype_for(event.busy_type, working_elsewhere)
            if fbtype is None or event.start is None or event.end is None:
                continue
            period_start, period_end = max(_utc(event.start), start), min(_utc(event.end), end)
            if period_start < period_end:
                self.periods.append(BusyPeriod(period_start, period_end, fbtype))

    def fail(self, status: tuple[str, str]) -> None:
        if self.failure is None:
            self.failure = status

    def merge(self, other: _Collected) -> None:
        """Add what another request (another time window) found for the same mailbox."""
        self.periods += other.periods
        self.no_data = self.no_data or other.no_data
        self.working_hours = self.working_hours or other.working_hours
        if other.failure is not None:
            self.fail(other.failure)

    def result(self, attendee: str) -> FreeBusyResult:
        if self.failure is not None:
            status, message = self.failure
            return FreeBusyResult(attendee, status, coalesce(self.periods), message)
        message = NO_DATA_MESSAGE if self.no_data else ""
        return FreeBusyResult(
            attendee,
            "2.0",
            coalesce(self.periods),
            message,
            no_data=self.no_data,
            working_hours=self.working_hours,
        )


@dataclass(frozen=True)
class _Event:
    start: datetime | None
    end: datetime | None
    busy_type: str | None


@dataclass(frozen=True)
class _View:
    """The parts of an EWS ``FreeBusyView`` the mapping reads."""

    view_type: str | None
    merged: str | None
    calendar_events: list[_Event]
    working_hours: WorkingHours | None = None


_DAYS = {
    name: (number,)
    for number, name in enumerate(
        ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
    )
}
_DAYS |= {"Weekday": (0, 1, 2, 3, 4), "WeekendDay": (5, 6), "Day": (0, 1, 2, 3, 4, 5, 6)}


def read_working_hours(elem: etree._Element | None) -> WorkingHours | None:
    """A ``t:WorkingHours`` element (types.xsd: a SerializableTimeZone and a WorkingPeriodArray whose
    DayOfWeek is a DaysOfWeekType list, which may say Weekday/WeekendDay/Day); None when absent or
    unreadable (then no working hours are applied, rather than a guess)."""
    if elem is None:
        return None
    zone = elem.find(EWS_TYPES + "TimeZone")
    try:
        periods = tuple(
            WorkingPeriod(
                tuple(
                    sorted(
                        {
                            d
                            for word in (p.findtext(EWS_TYPES + "DayOfWeek") or "").split()
                            for d in _DAYS.get(word, ())
                        }
                    )
                ),
                int(p.findtext(EWS_TYPES + "StartTimeInMinutes") or "0"),
                int(p.findtext(EWS_TYPES + "EndTimeInMinutes") or "0"),
            )
            for p in elem.iterfind(f"{EWS_TYPES}WorkingPeriodArray/{EWS_TYPES}WorkingPeriod")
        )
        return WorkingHours(UTC if zone is None else serializable_zone(zone, EWS_TYPES[1:-1]), periods)
    except ValueError:
        return None


def _answer_time(text: str | None) -> datetime | None:
    """A ``CalendarEvent`` time: without an offset it is in the request's time zone, which is UTC."""
    if not text:
        return None
    value = datetime.fromisoformat(text)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def read_view(elem: etree._Element | None) -> _View:
    """A ``FreeBusyView`` element of a GetUserAvailability answer, read with lxml, not exchangelib's model.

    An answer for 20 people over a month holds thousands of ``CalendarEvent`` elements; building
    exchangelib objects for each (with details the mapping never reads) was most of the CPU a
    free/busy request cost the gateway. Per-mailbox errors are still raised by exchangelib.
    """
    if elem is None:
        return _View(None, None, [])
    events = [
        _Event(
            _answer_time(e.findtext(EWS_TYPES + "StartTime")),
            _answer_time(e.findtext(EWS_TYPES + "EndTime")),
            e.findtext(EWS_TYPES + "BusyType"),
        )
        for e in elem.iterfind(f"{EWS_TYPES}CalendarEventArray/{EWS_TYPES}CalendarEvent")
    ]
    return _View(
        elem.findtext(EWS_TYPES + "FreeBusyViewType"),
        elem.findtext(EWS_TYPES + "MergedFreeBusy"),
        events,
        read_working_hours(elem.find(EWS_TYPES + "WorkingHours")),
    )


def request_availability(account: Account, emails: list[str], start: datetime, end: datetime) -> list[Any]:
    """One GetUserAvailability call (blocking), in UTC: a view (``view_type``, ``merged``,
    ``calendar_events``) or an exception per mailbox."""
    return user_availability(
        account.protocol,
        read_view,
        chunk_size=MAX_MAILBOXES,
        tzinfo=EWS_UTC,
        mailbox_data=[
            MailboxData(email=e, attendee_type="Required", exclude_conflicts=False) for e in emails
        ],
        timezone=_UTC_TIMEZONE,
        free_busy_view_options=FreeBusyViewOptions(
            time_window=TimeWindow(
                start=EWSDateTime.from_datetime(start), end=EWSDateTime.from_datetime(end)
            ),
            merged_free_busy_interval=MERGED_INTERVAL_MINUTES,
            requested_view="DetailedMerged",
        ),
    )


async def availability(
    client: EwsClient,
    account: Account,
    attendees: Sequence[str],
    start: datetime,
    end: datetime,
    *,
    working_elsewhere: str = "FREE",
    max_window_days: int = MAX_WINDOW_DAYS,
    batch: int = MAX_MAILBOXES,
) -> list[FreeBusyResult]:
    """Free/busy of ``attendees`` (``mailto:`` URIs or addresses) over [start, end), one result each.

    EWS GetUserAvailability, asked as ``account``; see the module docstring for the mapping.
    """
    if working_elsewhere not in _WORKING_ELSEWHERE_CHOICES:
        raise ValueError(f"working_elsewhere must be one of {', '.join(_WORKING_ELSEWHERE_CHOICES)}")
    batch = min(batch, MAX_MAILBOXES)
    collected: dict[str, _Collected] = {}
    for attendee in attendees:
        email = mailbox_address(attendee)
        collected.setdefault(email, _Collected())
    valid = [email for email in collected if "@" in email]
    for email in collected.keys() - set(valid):
        collected[email].fail(("3.7", "This is not an e-mail address Exchange can look up."))
    jobs = [
        _chunk(client, account, emails, w_start, w_end, collected, working_elsewhere)
        for w_start, w_end in windows(start, end, max_window_days)
        for emails in batches(valid, batch)
    ]
    await asyncio.gather(*jobs)
    return [collected[mailbox_address(attendee)].result(attendee) for attendee in attendees]


async def _chunk(
    client: EwsClient,
    account: Account,
    emails: list[str],
    start: datetime,
    end: datetime,
    collected: dict[str, _Collected],
    working_elsewhere: str,
) -> None:
    """One request; a request-level failure marks every mailbox of the chunk 5.1.

    The answer is turned into busy periods in the worker thread too: thousands of CalendarEvents
    would otherwise be CPU work on the event loop.
    """

    def ask() -> list[_Collected]:
        return _read_answers(
            request_availability(account, emails, start, end), len(emails), start, end, working_elsewhere
        )

    try:
        found = await client.run(account, "GetUserAvailability", ask)
    except EwsError as error:
        for email in emails:
            collected[email].fail(status_for_error(error))
        return
    for email, part in zip(emails, found, strict=True):
        collected[email].merge(part)


def _read_answers(
    answers: list[Any], expected: int, start: datetime, end: datetime, working_elsewhere: str
) -> list[_Collected]:
    """One :class:`_Collected` per requested mailbox, in request order, from GetUserAvailability's answers."""
    found = []
    for answer in answers[:expected]:
        part = _Collected()
        if isinstance(answer, BaseException):
            part.fail(status_for_error(answer))
        else:
            part.add_view(answer, start, end, working_elsewhere)
        found.append(part)
    for _ in range(expected - len(found)):
        missing = _Collected()
        missing.fail(("5.1", "Exchange returned no answer for this calendar user."))
        found.append(missing)
    return found
