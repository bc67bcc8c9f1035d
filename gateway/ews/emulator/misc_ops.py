"""Small EWS operations: ConvertId, GetServerTimeZones, ResolveNames, GetRoomLists and GetRooms."""

from __future__ import annotations

import base64
import binascii

from lxml import etree

from gateway.common.timezones import display_name, time_zone_definition, windows_zone_ids
from gateway.ews.emulator.directory import Mailbox
from gateway.ews.emulator.ids import mailbox_part, mailbox_part_of
from gateway.ews.emulator.soap import (
    M_NS,
    T_NS,
    XSI_NS,
    M,
    OperationContext,
    T,
    error_message,
    operation,
    success_message,
    wrap_response,
)

# --- ConvertId ----------------------------------------------------------------------------------


def _decode_id(value: str, fmt: str) -> bytes:
    """The raw id bytes behind ``value`` in format ``fmt`` (the emulator's ids are base64 of raw bytes)."""
    if fmt == "HexEntryId":
        return bytes.fromhex(value)
    if fmt == "OwaId":
        value = value.replace("-", "/").replace("_", "+")
    raw = base64.b64decode(value, validate=True)
    if not raw:
        raise ValueError("empty id")
    return raw


def _encode_id(raw: bytes, fmt: str) -> str:
    if fmt == "HexEntryId":
        return raw.hex().upper()
    text = base64.b64encode(raw).decode()
    return text.replace("/", "-").replace("+", "_") if fmt == "OwaId" else text


def _owner(ctx: OperationContext, raw: bytes) -> Mailbox | None:
    """The mailbox an id belongs to: every id carries its mailbox (Exchange's ids carry the mailbox GUID)."""
    part = mailbox_part_of(raw)
    return next((m for m in ctx.state.directory if mailbox_part(m.email) == part), None)


@operation("ConvertId")
def convert_id(ctx: OperationContext, request: etree._Element) -> etree._Element:
    """ConvertId: convert item/folder ids between formats (exchangelib's first, version-probing call).

    The answer's ``Mailbox`` is the id's owner, whatever address the request gave (DavMail learns the
    signed-in address by converting the root folder's id with ``Mailbox="blah@blah.com"``). The store
    is not consulted: an id of a deleted item still converts. An id the emulator never issued (such as
    exchangelib's ``DUMMY`` probe) answers ErrorInvalidIdMalformed, as Exchange does.
    """
    destination = request.get("DestinationFormat", "EwsId")
    messages = []
    for source in request.iterfind(f"{{{M_NS}}}SourceIds/{{{T_NS}}}AlternateId"):
        try:
            raw = _decode_id(source.get("Id", ""), source.get("Format", "EwsId"))
            mailbox = _owner(ctx, raw)
        except (ValueError, binascii.Error):
            mailbox = None
        if mailbox is None:
            messages.append(error_message("ConvertId", "ErrorInvalidIdMalformed", "Id is malformed."))
            continue
        message = success_message("ConvertId")
        alternate = M.AlternateId(Format=destination, Id=_encode_id(raw, destination), Mailbox=mailbox.email)
        alternate.set(f"{{{XSI_NS}}}type", "t:AlternateIdType")
        message.append(alternate)
        messages.append(message)
    return wrap_response("ConvertId", messages)


# --- GetServerTimeZones -------------------------------------------------------------------------


@operation("GetServerTimeZones")
def get_server_time_zones(ctx: OperationContext, request: etree._Element) -> etree._Element:
    """GetServerTimeZones: the requested (or all) Windows zones, with full definitions by default."""
    full = request.get("ReturnFullTimeZoneData", "true").lower() in ("true", "1")
    wanted = [(e.text or "").strip() for e in request.iterfind(f"{{{M_NS}}}Ids/{{{T_NS}}}Id")]
    known = set(windows_zone_ids())
    unknown = [zone for zone in wanted if zone not in known]
    if unknown:
        message = error_message(
            "GetServerTimeZones", "ErrorTimeZone", f"The time zone isn't valid: {unknown[0]}"
        )
        message.append(M.TimeZoneDefinitions())  # required even in an error message (messages.xsd)
        return wrap_response("GetServerTimeZones", [message])
    definitions = M.TimeZoneDefinitions()
    year = ctx.now.year
    for zone in wanted or sorted(known):
        if full:
            definitions.append(time_zone_definition(zone, year=year))
        else:
            definitions.append(T.TimeZoneDefinition(Id=zone, Name=display_name(zone)))
    message = success_message("GetServerTimeZones")
    message.append(definitions)
    return wrap_response("GetServerTimeZones", [message])


# --- ResolveNames -------------------------------------------------------------------------------


def _resolution(mailbox: Mailbox, full: bool) -> etree._Element:
    resolution = T.Resolution(
        T.Mailbox(
            T.Name(mailbox.display_name),
            T.EmailAddress(mailbox.email),
            T.RoutingType("SMTP"),
            T.MailboxType("Mailbox"),
        )
    )
    if full:
        resolution.append(
            T.Contact(
                T.DisplayName(mailbox.display_name),
                T.EmailAddresses(T.Entry(f"SMTP:{mailbox.email}", Key="EmailAddress1")),
                T.ContactSource("ActiveDirectory"),
            )
        )
    return resolution


@operation("ResolveNames")
def resolve_names(ctx: OperationContext, request: etree._Element) -> etree._Element:
    """ResolveNames against the directory (the emulator's Active Directory).

    One match: Success; several: Warning ErrorNameResolutionMultipleResults with all of them;
    none: Error ErrorNameResolutionNoResults.
    """
    entry = request.findtext(f"{{{M_NS}}}UnresolvedEntry", default="")
    full = request.get("ReturnFullContactData", "false").lower() in ("true", "1")
    matches = ctx.state.directory.search(entry)
    if not matches:
        return wrap_response(
            "ResolveNames",
            [error_message("ResolveNames", "ErrorNameResolutionNoResults", "No results were found.")],
        )
    if len(matches) == 1:
        message = success_message("ResolveNames")
    else:
        message = M.ResolveNamesResponseMessage(ResponseClass="Warning")
        message.append(M.MessageText("Multiple results were found."))
        message.append(M.ResponseCode("ErrorNameResolutionMultipleResults"))
        message.append(M.DescriptiveLinkKey("0"))
    resolution_set = M.ResolutionSet(TotalItemsInView=str(len(matches)), IncludesLastItemInRange="true")
    resolution_set.extend(_resolution(m, full) for m in matches)
    message.append(resolution_set)
    return wrap_response("ResolveNames", [message])


# --- GetRoomLists / GetRooms ---------------------------------------------------------------------
# The emulated organisation keeps one room list per domain that has room mailboxes, ``rooms@<domain>``
# named "Rooms", holding every room of that domain (in Exchange an administrator makes room lists).


def _room_lists(ctx: OperationContext) -> dict[str, list[Mailbox]]:
    lists: dict[str, list[Mailbox]] = {}
    for mailbox in ctx.state.directory:
        if mailbox.kind == "room":
            lists.setdefault(f"rooms@{mailbox.email.split('@', 1)[1]}", []).append(mailbox)
    return lists


def _address(tag: str, name: str, email: str, mailbox_type: str) -> etree._Element:
    return getattr(T, tag)(
        T.Name(name), T.EmailAddress(email), T.RoutingType("SMTP"), T.MailboxType(mailbox_type)
    )


@operation("GetRoomLists")
def get_room_lists(ctx: OperationContext, request: etree._Element) -> etree._Element:
    """GetRoomLists: the organisation's room lists (distribution groups, so PublicDL addresses)."""
    response = M.GetRoomListsResponse(M.ResponseCode("NoError"), ResponseClass="Success")
    response.append(M.RoomLists(*(_address("Address", "Rooms", e, "PublicDL") for e in _room_lists(ctx))))
    return response


@operation("GetRooms")
def get_rooms(ctx: OperationContext, request: etree._Element) -> etree._Element:
    """GetRooms: the rooms of one room list; an address that is no room list is ErrorNameResolutionNoResults."""
    wanted = (request.findtext(f"{{{M_NS}}}RoomList/{{{T_NS}}}EmailAddress") or "").strip().lower()
    rooms = _room_lists(ctx).get(wanted)
    if rooms is None:
        response = M.GetRoomsResponse(
            M.MessageText("No results were found."),
            M.ResponseCode("ErrorNameResolutionNoResults"),
            M.DescriptiveLinkKey("0"),
            ResponseClass="Error",
        )
        return response
    response = M.GetRoomsResponse(M.ResponseCode("NoError"), ResponseClass="Success")
    response.append(M.Rooms(*(T.Room(_address("Id", r.display_name, r.email, "Mailbox")) for r in rooms)))
    return response


# --- GetUserConfiguration -----------------------------------------------------------------------


def _dictionary_entry(key: str, value: str) -> etree._Element:
    return T.DictionaryEntry(
        T.DictionaryKey(T.Type("String"), T.Value(key)),
        T.DictionaryValue(T.Type("String"), T.Value(value)),
    )


@operation("GetUserConfiguration")
def get_user_configuration(ctx: OperationContext, request: etree._Element) -> etree._Element:
    """GetUserConfiguration: the ``OWA.UserOptions`` dictionary of the mailbox root (Outlook on the web's
    settings), whose ``timezone`` is the mailbox's Windows time zone (DavMail reads it).

    Any other configuration object answers ErrorItemNotFound, as for a mailbox whose user never saved
    such settings.
    """
    name = request.find(f"{{{M_NS}}}UserConfigurationName")
    folder = name.find(f"{{{T_NS}}}DistinguishedFolderId") if name is not None else None
    if name is None or name.get("Name") != "OWA.UserOptions" or folder is None or folder.get("Id") != "root":
        message = error_message(
            "GetUserConfiguration", "ErrorItemNotFound", "The specified object was not found in the store."
        )
        return wrap_response("GetUserConfiguration", [message])
    mailbox = ctx.mailbox_for(folder.findtext(f"{{{T_NS}}}Mailbox/{{{T_NS}}}EmailAddress"))
    configuration = M.UserConfiguration(
        T.UserConfigurationName(T.DistinguishedFolderId(Id="root"), Name="OWA.UserOptions"),
        T.Dictionary(_dictionary_entry("timezone", mailbox.time_zone)),
    )
    message = success_message("GetUserConfiguration")
    message.append(configuration)
    return wrap_response("GetUserConfiguration", [message])
