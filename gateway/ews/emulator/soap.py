"""SOAP 1.1 envelope handling and the operation registry of the EWS emulator.

Handlers are plain synchronous functions registered with :func:`operation` in :data:`OPERATIONS`,
the one registry (``app.py`` imports every handler module). Each receives the ``m:<Operation>``
element (the SOAP Body child) and an :class:`OperationContext`, and returns the
``m:<Operation>Response`` element. The platform (``app.py``) wraps the answer in an envelope whose
``t:ServerVersionInfo`` header is the same on every response, as exchangelib expects.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from lxml import etree
from lxml.builder import ElementMaker

if TYPE_CHECKING:
    from gateway.ews.emulator.directory import Mailbox
    from gateway.ews.emulator.state import EmulatorState

SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
M_NS = "http://schemas.microsoft.com/exchange/services/2006/messages"
T_NS = "http://schemas.microsoft.com/exchange/services/2006/types"
E_NS = "http://schemas.microsoft.com/exchange/services/2006/errors"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"

NSMAP = {"m": M_NS, "t": T_NS}
M = ElementMaker(namespace=M_NS, nsmap=NSMAP)
T = ElementMaker(namespace=T_NS, nsmap=NSMAP)

# Requests larger than this are refused before parsing (EWS's default maxReceivedMessageSize is 64 MiB;
# an emulator serving tests needs far less).
MAX_BODY_BYTES = 8 * 1024 * 1024


class EwsError(Exception):
    """A request-level EWS error: becomes an error response message for the operation."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class SoapFault(Exception):
    """An error Exchange reports as a SOAP fault (HTTP 500), not as a response message.

    ``back_off_ms`` adds the ``MessageXml/Value[@Name="BackOffMilliseconds"]`` detail that
    ErrorServerBusy carries.
    """

    def __init__(self, code: str, message: str, *, back_off_ms: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.back_off_ms = back_off_ms


@dataclass(frozen=True)
class ServerVersion:
    """What the emulated server reports in ``t:ServerVersionInfo`` and which request versions it knows."""

    name: str  # "2013" | "2016" | "2019"
    major: int
    minor: int
    major_build: int
    minor_build: int
    version: str  # the Version attribute
    known_request_versions: frozenset[str]

    def header(self) -> etree._Element:
        """The ``t:ServerVersionInfo`` SOAP header element."""
        return T.ServerVersionInfo(
            MajorVersion=str(self.major),
            MinorVersion=str(self.minor),
            MajorBuildNumber=str(self.major_build),
            MinorBuildNumber=str(self.minor_build),
            Version=self.version,
        )


_UP_TO_2013 = frozenset(
    {
        "Exchange2007",
        "Exchange2007_SP1",
        "Exchange2009",
        "Exchange2010",
        "Exchange2010_SP1",
        "Exchange2010_SP2",
        "Exchange2012",
        "Exchange2013",
        "Exchange2013_SP1",
    }
)
_UP_TO_2016 = _UP_TO_2013 | {
    "Exchange2015",
    "Exchange2015_SP1",
    "Exchange2016",
    "V2015_10_05",
    "V2016_01_06",
    "V2016_04_13",
    "V2016_07_13",
    "V2016_10_10",
    "V2017_01_07",
    "V2017_04_14",
    "V2017_07_11",
}
_UP_TO_2019 = _UP_TO_2016 | {"Exchange2019", "V2017_10_09", "V2018_01_08"}

# Builds of the last cumulative updates (Exchange 2013 CU23, 2016 CU23, 2019 CU13). The Version
# strings are what those servers print; exchangelib treats "V…_…" strings as "use what you asked for".
SERVER_VERSIONS: dict[str, ServerVersion] = {
    "2013": ServerVersion("2013", 15, 0, 1497, 2, "V2_23", _UP_TO_2013),
    "2016": ServerVersion("2016", 15, 1, 2507, 6, "V2017_07_11", _UP_TO_2016),
    "2019": ServerVersion("2019", 15, 2, 1258, 12, "V2018_01_08", _UP_TO_2019),
}


@dataclass
class OperationContext:
    """Everything a handler needs about the request it serves (see docs/EMULATOR-INTERNALS.md)."""

    state: EmulatorState
    caller: Mailbox
    mailbox: Mailbox
    server_version: ServerVersion
    request_version: str
    timezone: str | None
    now: datetime

    def mailbox_for(self, email: str | None) -> Mailbox:
        """The mailbox an explicit ``t:Mailbox`` names, after the access check.

        No address means the request's default mailbox. Another mailbox is readable when it lists
        the caller as a delegate or the seed grants the caller impersonation rights over it.
        """
        if not email or email.strip().lower() == self.mailbox.email:
            return self.mailbox
        target = self.state.directory.get(email)
        if target is None:
            raise EwsError("ErrorNonExistentMailbox", f"No mailbox with such guid or SMTP address ({email}).")
        if not self.state.may_access(self.caller, target):
            raise EwsError("ErrorAccessDenied", "Access is denied. Check credentials and try again.")
        return target


Handler = Callable[[OperationContext, etree._Element], etree._Element]
OPERATIONS: dict[str, Handler] = {}


def operation(name: str) -> Callable[[Handler], Handler]:
    """Register ``handler`` as the implementation of the EWS operation ``name`` (once per operation)."""

    def register(handler: Handler) -> Handler:
        if name in OPERATIONS:
            raise RuntimeError(f"EWS operation {name} is registered twice")
        OPERATIONS[name] = handler
        return handler

    return register


def success_message(operation: str) -> etree._Element:
    """``m:<Op>ResponseMessage ResponseClass="Success"`` with ``m:ResponseCode`` NoError."""
    message = M(f"{operation}ResponseMessage", ResponseClass="Success")
    message.append(M.ResponseCode("NoError"))
    return message


def error_message(operation: str, code: str, text: str) -> etree._Element:
    """``m:<Op>ResponseMessage ResponseClass="Error"`` (MessageText, ResponseCode, DescriptiveLinkKey)."""
    message = M(f"{operation}ResponseMessage", ResponseClass="Error")
    message.append(M.MessageText(text))
    message.append(M.ResponseCode(code))
    message.append(M.DescriptiveLinkKey("0"))
    return message


def wrap_response(operation: str, messages: list[etree._Element]) -> etree._Element:
    """``m:<Op>Response/m:ResponseMessages`` holding ``messages``."""
    response = M(f"{operation}Response")
    container = M.ResponseMessages()
    container.extend(messages)
    response.append(container)
    return response


# --- envelope parsing and building ------------------------------------------------------------

_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, huge_tree=False, remove_blank_text=True, load_dtd=False
)


# Body elements named "<Operation>Request" rather than "<Operation>" (messages.xsd).
_SUFFIXED_REQUESTS = frozenset(
    {"GetUserAvailabilityRequest", "GetUserOofSettingsRequest", "SetUserOofSettingsRequest"}
)


class BadRequest(Exception):
    """The HTTP body is not a SOAP envelope we can process (answered with HTTP 400)."""


@dataclass(frozen=True)
class Envelope:
    """A parsed SOAP request: its header elements by local name, and the Body child."""

    headers: dict[str, etree._Element]
    body: etree._Element

    @property
    def operation(self) -> str:
        """The EWS operation name (availability requests' elements carry a ``Request`` suffix)."""
        name = etree.QName(self.body).localname
        return name.removesuffix("Request") if name in _SUFFIXED_REQUESTS else name


def parse_envelope(data: bytes) -> Envelope:
    """Parse a SOAP 1.1 request safely (no entities, no network, no DTD, bounded size)."""
    if len(data) > MAX_BODY_BYTES:
        raise BadRequest("request body too large")
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise BadRequest(f"malformed XML: {exc}") from None
    if root.tag != f"{{{SOAP_NS}}}Envelope":
        raise BadRequest("not a SOAP 1.1 envelope")
    header = root.find(f"{{{SOAP_NS}}}Header")
    body = root.find(f"{{{SOAP_NS}}}Body")
    if body is None or len(body) == 0:
        raise BadRequest("SOAP envelope without a Body element")
    headers = {}
    if header is not None:
        headers = {etree.QName(h).localname: h for h in header if isinstance(h.tag, str)}
    return Envelope(headers=headers, body=body[0])


def build_envelope(server_version: ServerVersion, body_child: etree._Element) -> bytes:
    """Serialize a response envelope carrying the server's version header."""
    envelope = etree.Element(f"{{{SOAP_NS}}}Envelope", nsmap={"s": SOAP_NS})
    header = etree.SubElement(envelope, f"{{{SOAP_NS}}}Header")
    header.append(server_version.header())
    body = etree.SubElement(
        envelope, f"{{{SOAP_NS}}}Body", nsmap={"xsi": XSI_NS, "xsd": "http://www.w3.org/2001/XMLSchema"}
    )
    body.append(body_child)
    return etree.tostring(envelope, xml_declaration=True, encoding="utf-8")


def build_fault(server_version: ServerVersion, fault: SoapFault) -> bytes:
    """A SOAP fault as Exchange sends it (faultcode in the types namespace, detail in errors).

    The version header is included, as on every other response.
    """
    fault_el = etree.Element(f"{{{SOAP_NS}}}Fault")
    code = etree.SubElement(fault_el, "faultcode", nsmap={"a": T_NS})
    code.text = f"a:{fault.code}"
    string = etree.SubElement(fault_el, "faultstring")
    string.set("{http://www.w3.org/XML/1998/namespace}lang", "en-US")
    string.text = fault.message
    detail = etree.SubElement(fault_el, "detail")
    etree.SubElement(detail, f"{{{E_NS}}}ResponseCode", nsmap={"e": E_NS}).text = fault.code
    etree.SubElement(detail, f"{{{E_NS}}}Message", nsmap={"e": E_NS}).text = fault.message
    if fault.back_off_ms is not None:
        # Exchange puts MessageXml in the types namespace; exchangelib reads it from there.
        message_xml = etree.SubElement(detail, f"{{{T_NS}}}MessageXml", nsmap={"t": T_NS})
        value = etree.SubElement(message_xml, f"{{{T_NS}}}Value", Name="BackOffMilliseconds")
        value.text = str(fault.back_off_ms)
    return build_envelope(server_version, fault_el)
