"""Logs never carry credentials, at any level (issue 13).

At DEBUG, exchangelib, requests and urllib3 log HTTP headers and bodies: Basic credentials
(base64 of ``user:password``), NTLM authenticate messages, bearer tokens. ``configure_logging``
installs ``RedactingFilter`` on the root logger's handlers, so every record that reaches them,
from any logger and at any level, is redacted before it is formatted:

- the values of the headers that carry credentials (RFC 9110 section 11.6.2 ``Authorization``,
  11.6.1 ``WWW-Authenticate``, 11.7 ``Proxy-Authorization``/``Proxy-Authenticate``; RFC 6265
  ``Cookie``/``Set-Cookie``), as a header line or as the ``repr`` of a header dict;
- the credentials after an authentication scheme name (RFC 7617 Basic, RFC 4559 NTLM and
  Negotiate, RFC 6750 Bearer, RFC 7616 Digest), wherever they appear;
- every value given to ``register_secret`` (the process's own passwords and tokens).
"""

from __future__ import annotations

import logging
import re
import threading

REDACTED = "[redacted]"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Shorter registered values are ignored: redacting every "a" or "pw" would wreck the log while
# hiding nothing an attacker could not guess anyway.
MIN_SECRET_LENGTH = 4

# Header name, then ": " (a header line) or "': '" / "': b'" (the repr of a header dict), then the
# value up to the end of the line or the closing quote.
_HEADER = re.compile(
    r"(?i)\b((?:proxy-)?authorization|(?:www|proxy)-authenticate|set-cookie|cookie)"
    r"""(['"]?\s*[:=]\s*b?['"]?)([^'"\r\n]+)"""
)
# Scheme names are matched as spelled in headers (capitalised): prose such as "basic auth" stays.
_SCHEME = re.compile(r"\b(Basic|NTLM|Negotiate|Bearer|Digest)(\s+)([A-Za-z0-9+/=._~-]{4,})")

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
    text = _HEADER.sub(lambda m: f"{m[1]}{m[2]}{REDACTED}", text)
    return _SCHEME.sub(lambda m: f"{m[1]}{m[2]}{REDACTED}", text)


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


def configure_logging(level: str) -> None:
    """Log to stderr at ``level``, every handler of the root logger redacting credentials."""
    logging.basicConfig(level=level, format=LOG_FORMAT)
    root = logging.getLogger()
    root.setLevel(level)  # also when handlers existed already (basicConfig then does nothing)
    for handler in root.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
