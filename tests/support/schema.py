"""Validate every SOAP message the emulator sees against Microsoft's EWS schema.

The schema (``<repo>/../shared/ews/schema/messages.xsd``, or ``$GATEWAY_SHARED_DIR/ews/schema``)
covers the SOAP Body's child and the ``t:`` header elements; SOAP faults (their detail lives in
the errors namespace) and Autodiscover (another service) are not covered and are only counted.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
T_NS = "http://schemas.microsoft.com/exchange/services/2006/types"
M_NS = "http://schemas.microsoft.com/exchange/services/2006/messages"


def shared_dir() -> Path:
    """``$GATEWAY_SHARED_DIR`` or ``<repo root>/../shared``."""
    configured = os.environ.get("GATEWAY_SHARED_DIR")
    return Path(configured) if configured else Path(__file__).resolve().parents[2].parent / "shared"


def schema_path() -> Path:
    return shared_dir() / "ews" / "schema" / "messages.xsd"


@dataclass
class Invalid:
    kind: str  # "request" | "response"
    operation: str
    errors: list[str]


@dataclass
class SchemaValidator:
    """Thread-safe: the emulator calls :meth:`observe` from its own thread."""

    schema: etree.XMLSchema
    validated: int = 0
    faults: int = 0
    autodiscover: int = 0
    invalid: list[Invalid] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def load(cls, path: Path | None = None) -> SchemaValidator:
        return cls(etree.XMLSchema(file=str(path or schema_path())))

    def observe(self, kind: str, operation: str, body: bytes) -> None:
        """The emulator's ``message_observer``."""
        with self._lock:
            if operation == "Autodiscover":
                self.autodiscover += 1
                return
            errors = self._errors(body)
            if errors is None:
                self.faults += 1
                return
            self.validated += 1
            if errors:
                self.invalid.append(Invalid(kind, operation, errors))

    def _errors(self, body: bytes) -> list[str] | None:
        """Schema errors of one message; None for a SOAP fault (only its headers are checked)."""
        try:
            envelope = etree.fromstring(body)
        except etree.XMLSyntaxError as exc:
            return [f"not well-formed: {exc}"]
        errors: list[str] = []
        header = envelope.find(f"{{{SOAP_NS}}}Header")
        for element in header if header is not None else []:
            if isinstance(element.tag, str) and etree.QName(element).namespace == T_NS:
                errors.extend(self._check(element))
        body_el = envelope.find(f"{{{SOAP_NS}}}Body")
        if body_el is None or len(body_el) == 0:
            return errors + ["SOAP envelope without a Body child"]
        child = body_el[0]
        if child.tag == f"{{{SOAP_NS}}}Fault":
            return errors or None
        return errors + self._check(child)

    def _check(self, element: etree._Element) -> list[str]:
        if self.schema.validate(element):
            return []
        return [f"{etree.QName(element).localname} line {e.line}: {e.message}" for e in self.schema.error_log]

    def summary(self) -> str:
        return (
            f"EWS schema validation: {self.validated} SOAP messages validated, {len(self.invalid)} invalid "
            f"({self.faults} SOAP faults and {self.autodiscover} Autodiscover messages not covered by the schema)"
        )


# One validator per test session, shared by every emulator the tests start (tests/conftest.py
# reports it). Kept here, not in conftest.py, so that importing it from test modules gives the
# same object that pytest's conftest sees.
_session_validator: SchemaValidator | None = None
_missing_reason: str | None = None


def session_validator() -> SchemaValidator | None:
    """The session's validator (compiled on first use), or None when the schema is absent."""
    global _session_validator, _missing_reason
    if _session_validator is None and _missing_reason is None:
        path = schema_path()
        if path.is_file():
            _session_validator = SchemaValidator.load(path)
        else:
            _missing_reason = f"EWS schema validation skipped: {path} not found (set GATEWAY_SHARED_DIR)"
    return _session_validator


def missing_reason() -> str | None:
    return _missing_reason


def observe_message(kind: str, operation: str, body: bytes) -> None:
    """A ``message_observer`` that validates into the session's validator."""
    validator = session_validator()
    if validator is not None:
        validator.observe(kind, operation, body)
