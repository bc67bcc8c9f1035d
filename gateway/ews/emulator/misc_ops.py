"""Small EWS operations: ConvertId, GetServerTimeZones and ResolveNames."""

from __future__ import annotations

import base64
import binascii

from lxml import etree

from gateway.common.timezones import display_name, time_zone_definition, windows_zone_ids
from gateway.ews.emulator.directory import Mailbox
from gateway.ews.emulator.soap import (
    M_NS,
    T_NS,
    XSI_NS,
    EwsError,
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


@operation("ConvertId")
def convert_id(ctx: OperationContext, request: etree._Element) -> etree._Element:
    """ConvertId: convert item/folder ids between formats (exchangelib's first, version-probing call).

    Ids are not checked against the store; a malformed id answers ErrorInvalidIdMalformed, as
    Exchange does for exchangelib's ``DUMMY`` probe.
    """
    destination = request.get("DestinationFormat", "EwsId")
    messages = []
    for source in request.iterfind(f"{{{M_NS}}}SourceIds/{{{T_NS}}}AlternateId"):
        try:
            raw = _decode_id(source.get("Id", ""), source.get("Format", "EwsId"))
            mailbox = ctx.mailbox_for(source.get("Mailbox"))
        except (ValueError, binascii.Error):
            messages.append(error_message("ConvertId", "ErrorInvalidIdMalformed", "Id is malformed."))
            continue
        except EwsError as exc:
            messages.append(error_message("ConvertId", exc.code, exc.message))
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
