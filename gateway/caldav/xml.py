"""XML for WebDAV: safe parsing, Clark names, multistatus and error bodies (RFC 4918 §14, §16)."""

from __future__ import annotations

from collections.abc import Iterable
from http import HTTPStatus

from lxml import etree

DAV = "DAV:"
CALDAV = "urn:ietf:params:xml:ns:caldav"
CS = "http://calendarserver.org/ns/"
ICAL = "http://apple.com/ns/ical/"

NSMAP = {"D": DAV, "C": CALDAV, "CS": CS, "ICAL": ICAL}

MAX_XML_BODY = 1_000_000  # bytes; request bodies of DAV methods are small


class XmlError(ValueError):
    """The request body is not acceptable XML; ``str()`` is a sentence for the client."""


def dav(local: str) -> str:
    """Clark name in the DAV: namespace."""
    return f"{{{DAV}}}{local}"


def cal(local: str) -> str:
    """Clark name in the CalDAV namespace."""
    return f"{{{CALDAV}}}{local}"


def cs(local: str) -> str:
    """Clark name in the CalendarServer namespace."""
    return f"{{{CS}}}{local}"


def ical(local: str) -> str:
    """Clark name in Apple's iCal namespace."""
    return f"{{{ICAL}}}{local}"


# Entities, DTDs and network access are off: a DAV body never needs them, and they enable
# XXE and billion-laughs attacks.
_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, remove_comments=True
)


def parse(body: bytes) -> etree._Element:
    """Parse a request body, refusing DTDs, oversized bodies and malformed XML."""
    if len(body) > MAX_XML_BODY:
        raise XmlError(f"The XML request body is larger than {MAX_XML_BODY} bytes.")
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise XmlError("Document type declarations are not accepted in request bodies.")
    try:
        root = etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise XmlError(f"The request body is not well-formed XML ({exc.msg}).") from None
    if root is None:
        raise XmlError("The request body holds no XML element.")
    return root


def element(name: str, text: str | None = None, children: Iterable[etree._Element] = ()) -> etree._Element:
    """An element in the common namespace map, with optional text and children."""
    el = etree.Element(name, nsmap=NSMAP)
    if text is not None:
        el.text = text
    el.extend(children)
    return el


def sub(parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
    """Append a child element."""
    el = etree.SubElement(parent, name)
    if text is not None:
        el.text = text
    return el


def href(url: str) -> etree._Element:
    """A ``DAV:href``."""
    return element(dav("href"), url)


def serialize(root: etree._Element) -> bytes:
    """Bytes with an XML declaration, UTF-8."""
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")


def status_line(code: int) -> str:
    """The ``DAV:status`` text for an HTTP code."""
    return f"HTTP/1.1 {code} {HTTPStatus(code).phrase}"


class Multistatus:
    """Builder for a ``DAV:multistatus`` body (RFC 4918 §13)."""

    def __init__(self) -> None:
        self.root = element(dav("multistatus"))

    def add_propstat(self, url: str, found: Iterable[etree._Element], missing: dict[int, list[str]]) -> None:
        """One ``DAV:response`` with a 200 propstat for ``found`` and one per status in ``missing``."""
        response = sub(self.root, dav("response"))
        response.append(href(url))
        found = list(found)
        groups: list[tuple[int, list[etree._Element]]] = []
        if found:
            groups.append((200, found))
        for code, names in sorted(missing.items()):
            if names:
                groups.append((code, [etree.Element(name) for name in names]))
        if not groups:
            # A response must carry a propstat or a status (RFC 4918 §14.24).
            groups.append((200, []))
        for code, props in groups:
            propstat = sub(response, dav("propstat"))
            prop = sub(propstat, dav("prop"))
            prop.extend(props)
            sub(propstat, dav("status"), status_line(code))

    def add_status(self, url: str, code: int) -> None:
        """One ``DAV:response`` with only a status (e.g. a deleted member in sync-collection)."""
        response = sub(self.root, dav("response"))
        response.append(href(url))
        sub(response, dav("status"), status_line(code))

    def add(self, el: etree._Element) -> None:
        """Append an arbitrary element (``DAV:sync-token``)."""
        self.root.append(el)

    def to_bytes(self) -> bytes:
        return serialize(self.root)


def error_body(precondition: str, message: str = "", children: Iterable[etree._Element] = ()) -> bytes:
    """A ``DAV:error`` body naming a precondition (RFC 4918 §16), with a human sentence."""
    root = element(dav("error"))
    condition = sub(root, precondition)
    condition.extend(children)
    if message:
        # RFC 4918 lets servers add their own elements; Apple and Sabre use a similar one.
        root.append(etree.Comment(" " + message.replace("--", "-") + " "))
    return serialize(root)
