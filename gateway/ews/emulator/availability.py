"""GetUserAvailability (free/busy views) over the calendar store's ``busy_events``.

Views: FreeBusy, FreeBusyMerged, Detailed, DetailedMerged and MergedOnly. Times in the request
and the response are local times of the request's ``t:TimeZone`` (a SerializableTimeZone).
Details (subject, location, flags) are shown only to callers allowed into the mailbox (owner,
delegates, impersonation), as with Exchange's default "free/busy time only" permission; for
everyone else a Detailed view is answered as FreeBusy (DetailedMerged as FreeBusyMerged).

MergedFreeBusy digits: 0 Free, 1 Tentative, 2 Busy, 3 OOF, 4 NoData — the only ones Microsoft's EWS
reference documents (MergedFreeBusy element). WorkingElsewhere (Exchange 2013 and later) is written as
**0**: the merged stream keeps Exchange 2007's alphabet, where 4 already means NoData, and Microsoft
documents that the same availability data in Graph's ``scheduleInformation.availabilityView`` shows
working elsewhere as 0 "for backward compatibility" (Exchange 2007 and 2010 have no WorkingElsewhere).
The per-event ``BusyType`` still says WorkingElsewhere. When events overlap in one interval the
strongest wins: OOF > Busy > Tentative > Free (and WorkingElsewhere).

Limits: a window longer than 42 days → ErrorTimeIntervalTooBig; more than 100 mailboxes →
ErrorMailboxDataArrayTooBig; none → ErrorMailboxDataArrayEmpty (SOAP faults, request-level).
Unknown addresses get ErrorMailRecipientNotFound in their own FreeBusyResponse.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from lxml import etree

from gateway.common.rule_zone import serializable_zone
from gateway.common.timezones import serializable_time_zone
from gateway.ews.emulator.directory import Mailbox
from gateway.ews.emulator.soap import M_NS, T_NS, M, OperationContext, SoapFault, T, operation

MAX_WINDOW = timedelta(days=42)
MAX_MAILBOXES = 100
VIEWS = ("MergedOnly", "FreeBusy", "FreeBusyMerged", "Detailed", "DetailedMerged")
MERGED_DIGITS = {
    "Free": "0",
    "Tentative": "1",
    "Busy": "2",
    "OOF": "3",
    "NoData": "4",
    "WorkingElsewhere": "0",
}
_STRENGTH = {"Free": 0, "WorkingElsewhere": 1, "Tentative": 2, "Busy": 3, "OOF": 4}
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def parse_time_zone(elem: etree._Element | None) -> tzinfo:
    """The request's ``t:TimeZone`` as a tzinfo (UTC when absent)."""
    return UTC if elem is None else serializable_zone(elem, T_NS)


def _parse_time(text: str | None, zone: tzinfo) -> datetime:
    """An xs:dateTime of the request: naive means local time of the request's zone."""
    try:
        value = datetime.fromisoformat((text or "").strip())
    except ValueError:
        raise SoapFault("ErrorInvalidTimeInterval", "The time interval is invalid.") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return value.astimezone(UTC)


def _local(moment: datetime, zone: tzinfo) -> str:
    return moment.astimezone(zone).replace(tzinfo=None).isoformat(timespec="seconds")


# --- the operation ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Query:
    zone: tzinfo
    start: datetime  # aware UTC
    end: datetime
    interval: timedelta
    view: str


def _parse_query(request: etree._Element) -> _Query:
    zone = parse_time_zone(request.find(f"{{{T_NS}}}TimeZone"))
    options = request.find(f"{{{T_NS}}}FreeBusyViewOptions")
    if options is None:
        raise SoapFault(
            "ErrorInvalidOperation", "FreeBusyViewOptions is required (suggestions are not emulated)."
        )
    start = _parse_time(options.findtext(f"{{{T_NS}}}TimeWindow/{{{T_NS}}}StartTime"), zone)
    end = _parse_time(options.findtext(f"{{{T_NS}}}TimeWindow/{{{T_NS}}}EndTime"), zone)
    if end <= start:
        raise SoapFault("ErrorInvalidTimeInterval", "EndTime must be later than StartTime.")
    if end - start > MAX_WINDOW:
        raise SoapFault(
            "ErrorTimeIntervalTooBig", "The time duration specified is too big (maximum 42 days)."
        )
    view = (options.findtext(f"{{{T_NS}}}RequestedView") or "FreeBusy").strip()
    if view not in VIEWS:
        raise SoapFault("ErrorInvalidFreeBusyViewType", f"The free/busy view type {view} is invalid.")
    minutes = int(options.findtext(f"{{{T_NS}}}MergedFreeBusyIntervalInMinutes") or "30")
    if not 5 <= minutes <= 1440:
        raise SoapFault(
            "ErrorInvalidMergedFreeBusyInterval", "The merged free/busy interval must be 5 to 1440 minutes."
        )
    return _Query(zone=zone, start=start, end=end, interval=timedelta(minutes=minutes), view=view)


@operation("GetUserAvailability")
def get_user_availability(ctx: OperationContext, request: etree._Element) -> etree._Element:
    """GetUserAvailability with FreeBusyViewOptions: one FreeBusyResponse per MailboxData, in order."""
    addresses = [
        (m.findtext(f"{{{T_NS}}}Email/{{{T_NS}}}Address") or "").strip()
        for m in request.iterfind(f"{{{M_NS}}}MailboxDataArray/{{{T_NS}}}MailboxData")
    ]
    if not addresses:
        raise SoapFault("ErrorMailboxDataArrayEmpty", "MailboxDataArray must contain at least one mailbox.")
    if len(addresses) > MAX_MAILBOXES:
        raise SoapFault(
            "ErrorMailboxDataArrayTooBig", f"At most {MAX_MAILBOXES} mailboxes may be queried at once."
        )
    query = _parse_query(request)
    responses = M.FreeBusyResponseArray()
    for address in addresses:
        responses.append(_free_busy_response(ctx, address, query))
    return M.GetUserAvailabilityResponse(responses)


def _free_busy_response(ctx: OperationContext, address: str, query: _Query) -> etree._Element:
    mailbox = ctx.state.directory.get(address)
    if mailbox is None:
        message = M.ResponseMessage(
            M.MessageText(f"Unable to resolve e-mail address {address} to an Active Directory object."),
            M.ResponseCode("ErrorMailRecipientNotFound"),
            M.DescriptiveLinkKey("0"),
            ResponseClass="Error",
        )
        return M.FreeBusyResponse(message, M.FreeBusyView(T.FreeBusyViewType("None")))
    message = M.ResponseMessage(M.ResponseCode("NoError"), ResponseClass="Success")
    return M.FreeBusyResponse(message, _view(ctx, mailbox, query))


def _view(ctx: OperationContext, mailbox: Mailbox, query: _Query) -> etree._Element:
    details = ctx.state.may_access(ctx.caller, mailbox)
    view = query.view
    if not details and view.startswith("Detailed"):
        view = view.replace("Detailed", "FreeBusy")
    events = [
        e for e in ctx.state.store.busy_events(mailbox.email, query.start, query.end) if e.busy_type != "Free"
    ]
    result = M.FreeBusyView(T.FreeBusyViewType(view))
    if view in ("MergedOnly", "FreeBusyMerged", "DetailedMerged"):
        result.append(T.MergedFreeBusy(_merged(events, query)))
    if view != "MergedOnly":
        array = T.CalendarEventArray()
        for event in sorted(events, key=lambda e: e.start):
            array.append(_calendar_event(event, query.zone, view.startswith("Detailed")))
        result.append(array)
        result.append(_working_hours(mailbox, query.start.year))
    return result


def _merged(events: list, query: _Query) -> str:
    """One digit per interval from ``query.start``: the strongest status of the events touching it."""
    slots = -(-(query.end - query.start) // query.interval)
    strongest = ["Free"] * slots
    for event in events:
        strength = _STRENGTH.get(event.busy_type, 0)
        # The intervals [slot, slot + interval) that overlap [event.start, event.end).
        first = max(0, (event.start - query.start) // query.interval)
        last = min(slots, -(-(event.end - query.start) // query.interval))
        for slot in range(first, last):
            if strength > _STRENGTH[strongest[slot]]:
                strongest[slot] = event.busy_type
    return "".join(MERGED_DIGITS[status] for status in strongest)


def _calendar_event(event, zone: tzinfo, details: bool) -> etree._Element:
    elem = T.CalendarEvent(
        T.StartTime(_local(event.start, zone)),
        T.EndTime(_local(event.end, zone)),
        T.BusyType(event.busy_type),
    )
    if details:
        info = T.CalendarEventDetails(T.ID(event.item_id))
        if not event.is_private:  # private items show only their times and flags
            info.append(T.Subject(event.subject))
            info.append(T.Location(event.location))
        for name in ("is_meeting", "is_recurring", "is_exception", "is_reminder_set", "is_private"):
            tag = "".join(part.capitalize() for part in name.split("_"))
            info.append(T(tag, "true" if getattr(event, name) else "false"))
        elem.append(info)
    return elem


def _working_hours(mailbox: Mailbox, year: int) -> etree._Element:
    hours = mailbox.working_hours
    period = T.WorkingPeriod(
        T.DayOfWeek(" ".join(hours.days)),
        T.StartTimeInMinutes(str(hours.start.hour * 60 + hours.start.minute)),
        T.EndTimeInMinutes(str(hours.end.hour * 60 + hours.end.minute)),
    )
    return T.WorkingHours(serializable_time_zone(mailbox.time_zone, year=year), T.WorkingPeriodArray(period))
