"""ORGANIZER and ATTENDEE (RFC 5545 §3.8.4.1, §3.8.4.3) ⇄ the item's organizer, attendees and resources."""

from __future__ import annotations

from exchangelib import CalendarItem
from exchangelib.properties import Attendee, Mailbox
from icalendar import Event

from gateway.ews.mapping.vevent import VEvent

_RESPONSE_TO_PARTSTAT = {
    "Accept": "ACCEPTED",
    "Decline": "DECLINED",
    "Tentative": "TENTATIVE",
    "Organizer": "ACCEPTED",
    "NoResponseReceived": "NEEDS-ACTION",
    "Unknown": "NEEDS-ACTION",
}
_PARTSTAT_TO_RESPONSE = {
    "ACCEPTED": "Accept",
    "DECLINED": "Decline",
    "TENTATIVE": "Tentative",
    "NEEDS-ACTION": "NoResponseReceived",
}


def _add_calendar_user(
    event: VEvent, name: str, mailbox: Mailbox, params: tuple[tuple[str, str], ...]
) -> None:
    """ORGANIZER/ATTENDEE (CAL-ADDRESS, RFC 5545 §3.3.3: a URI, not escaped) with CN when Exchange has a name."""
    if mailbox.name:
        params = (("CN", mailbox.name), *params)
    event.add(name, f"mailto:{mailbox.email_address}", params)


def add_people(event: VEvent, item: CalendarItem) -> None:
    """ORGANIZER and one ATTENDEE per attendee and resource, with ROLE, CUTYPE and PARTSTAT (RFC 5545 §3.2)."""
    groups = (
        (item.required_attendees, (("ROLE", "REQ-PARTICIPANT"), ("CUTYPE", "INDIVIDUAL"))),
        (item.optional_attendees, (("ROLE", "OPT-PARTICIPANT"), ("CUTYPE", "INDIVIDUAL"))),
        (item.resources, (("ROLE", "NON-PARTICIPANT"), ("CUTYPE", "RESOURCE"))),
    )
    attendees = [(a, params) for people, params in groups for a in people or () if a.mailbox.email_address]
    if not attendees:
        return  # RFC 5545 §3.8.4.3: ORGANIZER only in group-scheduled components
    if item.organizer is not None and item.organizer.email_address:
        _add_calendar_user(event, "ORGANIZER", item.organizer, ())
    for attendee, params in attendees:
        partstat = _RESPONSE_TO_PARTSTAT.get(attendee.response_type or "Unknown", "NEEDS-ACTION")
        _add_calendar_user(event, "ATTENDEE", attendee.mailbox, (*params, ("PARTSTAT", partstat)))


# The owner's own answers to an invitation (EWS MyResponseType) that a rendering shows as their PARTSTAT.
_OWN_RESPONSES = ("Accept", "Tentative", "Decline", "NoResponseReceived")


def show_own_response(item: CalendarItem, owner: str) -> None:
    """Give the mailbox owner's ATTENDEE the owner's own answer (EWS MyResponseType).

    Exchange keeps an invitee's answer in MyResponseType of the invitee's copy; the attendee list of
    that copy is the organizer's, and does not follow it (RFC 6638 §3.2.2: the attendee's client reads
    back the PARTSTAT it wrote). The organizer's own item (MyResponseType Organizer) is left as it is.
    """
    response = getattr(item, "my_response_type", None)
    if response not in _OWN_RESPONSES or not owner:
        return
    wanted = owner.lower()
    for people in (item.required_attendees, item.optional_attendees, item.resources):
        for attendee in people or ():
            if (attendee.mailbox.email_address or "").lower() == wanted:
                attendee.response_type = response


def _mailto(address: str) -> str | None:
    """The e-mail address of a CAL-ADDRESS (``mailto:`` URI or bare address); None when it is none."""
    value = str(address).strip()
    if value.lower().startswith("mailto:"):
        value = value[7:]
    return value if "@" in value else None


def _mailbox(address: str) -> Mailbox | None:
    """An EWS Mailbox for a CAL-ADDRESS, named by its CN parameter."""
    email = _mailto(address)
    if email is None:
        return None
    name = address.params.get("CN") if hasattr(address, "params") else None
    return Mailbox(name=str(name) if name else None, email_address=email)


def read_people(event: Event, item: CalendarItem) -> None:
    """Required/optional attendees and resources (by ROLE and CUTYPE) and the organizer."""
    required, optional, resources = [], [], []
    attendees = event.get("ATTENDEE", [])
    for address in attendees if isinstance(attendees, list) else [attendees]:
        mailbox = _mailbox(address)
        if mailbox is None:
            continue  # EWS attendees are mailboxes: an address without email cannot be stored
        params = address.params
        partstat = str(params.get("PARTSTAT", "NEEDS-ACTION")).upper()
        attendee = Attendee(mailbox=mailbox, response_type=_PARTSTAT_TO_RESPONSE.get(partstat, "Unknown"))
        if str(params.get("CUTYPE", "")).upper() in {"RESOURCE", "ROOM"}:
            resources.append(attendee)
        elif str(params.get("ROLE", "")).upper() in {"OPT-PARTICIPANT", "NON-PARTICIPANT"}:
            optional.append(attendee)
        else:
            required.append(attendee)
    item.required_attendees = required or None
    item.optional_attendees = optional or None
    item.resources = resources or None
    organizer = event.get("ORGANIZER")
    item.organizer = _mailbox(organizer) if organizer is not None else None


def attendee_emails(item: CalendarItem) -> list[str]:
    """Every attendee's and resource's address (implicit scheduling decides on them, RFC 6638 §3.2)."""
    people = [*(item.required_attendees or ()), *(item.optional_attendees or ()), *(item.resources or ())]
    return [a.mailbox.email_address for a in people]
