"""Logs never carry credentials, at any level (issue 13).

At DEBUG, exchangelib, requests and urllib3 log HTTP headers and bodies: Basic credentials
(base64 of ``user:password``), NTLM authenticate messages, bearer tokens. ``configure_logging``
installs ``RedactingFilter`` on the root logger's handlers, so every record that reaches them,
from any logger and at any level, is redacted before it is formatted:

- the values of the headers that carry credentials (RFC 9110 section 11.6.2 ``Authorization``,
  11.6.1 ``WWW-Authenticate``, 11.7 ``Proxy-Authorization``/``Proxy-Authenticate``; RFC 6265
  ``Cookie``/``Set-Cookie``), as a header line or as the ``repr`` of a header dict;
- NTLM messages (MS-NLMP section 2.2.1) wherever they appear;
- the credentials after an authentication scheme name (RFC 7617 Basic, RFC 4559 NTLM and
  Negotiate, RFC 6750 Bearer, RFC 7616 Digest), wherever they appear;
- every value given to ``register_secret`` (the process's own passwords and tokens).

A request aiohttp cannot parse is the client's mistake: ``quiet_client_errors`` makes it one INFO line
without a traceback and without the client's bytes (:class:`ClientErrorFilter`).
"""

from __future__ import annotations

import logging
import re
import threading

from aiohttp.http_exceptions import HttpProcessingError

REDACTED = "[redacted]"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Shorter registered values are ignored: redacting every "a" or "pw" would wreck the log while
# hiding nothing an attacker could not guess anyway.
MIN_SECRET_LENGTH = 4

_HEADER_NAME = r"(?i)\b((?:proxy-)?authorization|(?:www|proxy)-authenticate|set-cookie|cookie)"
# The repr of a header dict ('Authorization': 'NTLM ...', b'...'): the value up to its closing quote.
_QUOTED_HEADER = re.compile(_HEADER_NAME + r"""(['"]?\s*[:=]\s*b?)(['"])(.*?)\3""")
# A header line (Authorization: Basic ...): the value up to the end of the line.
_HEADER_LINE = re.compile(_HEADER_NAME + r"(\s*[:=][ \t]*)([^'\"\r\n]+)")
# Scheme names as spelled in headers (capitalised), followed by a token that is not a lowercase word:
# "NTLM step" and "basic auth" are prose, "Basic YWxp..." is a credential.
_SCHEME = re.compile(
    r"\b(Basic|NTLM|Negotiate|Bearer|Digest)(\s+)"
    r"(?![a-z]+(?![A-Za-z0-9+/=._~-]))([A-Za-z0-9+/=._~-]{4,})"
)
# An NTLM message on its own (base64 of "NTLMSSP\0"), as spnego logs each step: the type-3 message
# can be cracked offline for the password.
_NTLM_MESSAGE = re.compile(r"TlRMTVNTUA[A-Za-z0-9+/=]*")

_lock = threading.Lock()
_secrets: set[str] = set()
_secret_pattern: re.Pattern[str] | None = None


def register_secret(value: str | None) -> None:
    """Redact ``value`` from every log record from now on (passwords, tokens, keys)."""
    global _secret_pattern
    if not value or len(value) < MIN_SECRET_LENGTH:
        return
    with _lock:
        if value in _secrets:
            return
        _secrets.add(value)
        # Longest first, so a secret containing another is redacted whole.
        ordered = sorted(_secrets, key=len, reverse=True)
        _secret_pattern = re.compile("|".join(re.escape(s) for s in ordered))


def redact(text: str) -> str:
    """``text`` with credentials and registered secrets replaced by ``[redacted]``."""
    pattern = _secret_pattern  # one read: registration swaps the compiled pattern atomically
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    text = _QUOTED_HEADER.sub(lambda m: f"{m[1]}{m[2]}{m[3]}{REDACTED}{m[3]}", text)
    text = _HEADER_LINE.sub(lambda m: f"{m[1]}{m[2]}{REDACTED}", text)
    text = _SCHEME.sub(lambda m: f"{m[1]}{m[2]}{REDACTED}", text)
    return _NTLM_MESSAGE.sub(REDACTED, text)


class RedactingFilter(logging.Filter):
    """Rewrites each record's message, exception text and stack with ``redact``; drops nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # arguments that do not fit the format: keep both, redacted
            message = f"{record.msg} {record.args!r}"
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


# llhttp's reasons are fixed texts ("Invalid header token"); anything else may quote the client.
_FIXED_REASON = re.compile(r"^[A-Za-z][A-Za-z ,-]{0,79}$")


def _reason(exc: HttpProcessingError) -> str:
    """A short reason for a malformed request that quotes none of the client's bytes."""
    head, sep, _ = str(exc.message).partition(":\n")
    if sep and _FIXED_REASON.match(head.strip()):
        return head.strip()
    return re.sub(r"(?<!^)(?=[A-Z])", " ", type(exc).__name__).lower()  # BadStatusLine → bad status line


class ClientErrorFilter(logging.Filter):
    """For aiohttp's server logger: a request it cannot parse is the client's mistake, not a server error.

    aiohttp logs one at ERROR with a traceback whose parser message quotes the offending bytes (a header
    line may hold anything, credentials included). Such a record becomes one INFO line (DEBUG stays
    DEBUG) with the client's address, the status and a fixed reason; other records pass unchanged.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError) or not 400 <= exc.code < 500:
            return True
        level = min(record.levelno, logging.INFO)
        if not logging.getLogger(record.name).isEnabledFor(level):
            return False
        client = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
        record.levelno, record.levelname = level, logging.getLevelName(level)
        record.msg, record.args = (
            "malformed request from %s refused with %d: %s",
            (client, exc.code, _reason(exc)),
        )
        record.exc_info, record.exc_text = None, None
        return True


def quiet_client_errors() -> None:
    """Install :class:`ClientErrorFilter` on aiohttp's server logger (once)."""
    server = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, ClientErrorFilter) for f in server.filters):
        server.addFilter(ClientErrorFilter())


def configure_logging(level: str) -> None:
    """Log to stderr at ``level``, every handler of the root logger redacting credentials."""
    logging.basicConfig(level=level, format=LOG_FORMAT)
    root = logging.getLogger()
    root.setLevel(level)  # also when handlers existed already (basicConfig then does nothing)
    for handler in root.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
