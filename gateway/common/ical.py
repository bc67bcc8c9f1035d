"""Writing iCalendar text directly (RFC 5545 §3.1 content lines), without component trees.

The read path renders every calendar object of a month view and every attendee of a
free/busy answer; building ``icalendar`` components and serialising them costs more than
the rest of the gateway's own work there. These helpers write the same text:

- TEXT values escaped as RFC 5545 §3.3.11 says (backslash, semicolon, comma, line breaks);
- parameter values (§3.2) with RFC 6868 caret escaping, quoted when they hold ``,;:`` (and,
  for CN, a space or an apostrophe, as common clients expect);
- content lines folded at 75 octets (§3.1), never inside a UTF-8 sequence and never between
  a backslash or caret and the character it escapes;
- DATE (§3.3.4), DATE-TIME (§3.3.5: local "floating or TZID" form, or UTC with ``Z``),
  DURATION (§3.3.6), PERIOD (§3.3.9) and UTC-OFFSET (§3.3.14) values.

Property order, parameter order and quoting follow what ``icalendar`` writes, so the text clients
get is the one they got when it was built with ``icalendar`` (checked byte for byte on the shared
corpus and a benchmark month), except where that was wrong: an X- property holding line breaks
(X-ALT-DESC) is escaped as TEXT, and a fold never splits an escape.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta

CRLF = "\r\n"
_FOLD_AT = 75  # octets: a first line holds at most 74, a continuation line a space and 74
_NEEDS_QUOTES = re.compile("[,;:\u2019]")
_CN_QUOTE_CHARS = (" ", "'")
_CARET_ESCAPES = re.compile(r'\^|\r\n|\r|\n|"')
_CARET_REPLACEMENTS = {"^": "^^", "\r\n": "^n", "\r": "^n", "\n": "^n", '"': "^'"}

Params = Sequence[tuple[str, str]]


def escape_text(value: str) -> str:
    r"""A TEXT value (RFC 5545 §3.3.11): ``\`` ``;`` ``,`` escaped, CRLF/LF/CR written as ``\n``.

    A literal ``\N`` in the input is read as a line break first, as ``icalendar`` does.
    """
    if not any(c in value for c in "\\;,\r\n"):
        return value  # the common case: nothing to escape
    value = value.replace("\\N", "\n").replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
    return value.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n")


def unescape_text(value: str) -> str:
    r"""The inverse of :func:`escape_text` for a raw TEXT value (``\n``/``\N``, ``\,``, ``\;``, ``\\``)."""
    if "\\" not in value:
        return value
    return re.sub(r"\\([\\;,nN])", lambda m: "\n" if m.group(1) in "nN" else m.group(1), value)


def param_value(name: str, value: str) -> str:
    """A parameter value (RFC 5545 §3.2, RFC 6868): carets escaped, double-quoted when needed."""
    if any(c in value for c in '^\r\n"'):
        value = _CARET_ESCAPES.sub(lambda m: _CARET_REPLACEMENTS[m.group(0)], value)
    if _NEEDS_QUOTES.search(value) or (name == "CN" and any(c in value for c in _CN_QUOTE_CHARS)):
        return f'"{value}"'
    return value


def fold(line: str) -> str:
    """Fold one unfolded content line (RFC 5545 §3.1): at most 75 octets per physical line
    (74 before the first fold, as icalendar writes), never inside a UTF-8 sequence, and never
    between a backslash or caret and the character it escapes (some clients read line by line).
    """
    if len(line) < _FOLD_AT and line.isascii():
        return line
    pieces: list[str] = []
    current: list[str] = []
    size = 0
    escaping = False  # the last character opened an escape (``\x`` or ``^x``)
    for char in line:
        width = len(char.encode("utf-8"))
        if current and size + width >= _FOLD_AT:
            carry = current.pop() if escaping and len(current) > 1 else None
            pieces.append("".join(current))
            current = [carry] if carry else []
            size = len(current)
        current.append(char)
        size += width
        escaping = not escaping and char in "\\^"
    pieces.append("".join(current))
    return "\r\n ".join(pieces)


def line(name: str, value: str, params: Params = ()) -> str:
    """One folded content line with its CRLF; ``params`` are written sorted by name, as icalendar does.

    ``value`` must already be in its value type's form (escaped TEXT, formatted DATE-TIME, ...).
    """
    if params:
        written = ";".join(f"{key}={param_value(key, text)}" for key, text in sorted(params))
        return fold(f"{name};{written}:{value}") + CRLF
    return fold(f"{name}:{value}") + CRLF


def text_line(name: str, value: str, params: Params = ()) -> str:
    """A TEXT-valued property (SUMMARY, DESCRIPTION, LOCATION, UID, COMMENT, ...)."""
    return line(name, escape_text(value), params)


def format_date(value: date) -> str:
    """DATE (RFC 5545 §3.3.4): ``YYYYMMDD``."""
    return f"{value.year:04}{value.month:02}{value.day:02}"


def format_local(value: datetime) -> str:
    """DATE-TIME in local form (RFC 5545 §3.3.5 forms 1/3): ``YYYYMMDDTHHMMSS``; seconds truncated."""
    return f"{value.year:04}{value.month:02}{value.day:02}T{value.hour:02}{value.minute:02}{value.second:02}"


def format_utc(value: datetime) -> str:
    """DATE-TIME in UTC (RFC 5545 §3.3.5 form 2): an aware value converted, ``Z`` appended."""
    if value.tzinfo is not None and value.utcoffset():
        value = value.astimezone(UTC)
    return format_local(value) + "Z"


def format_duration(value: timedelta) -> str:
    """DURATION (RFC 5545 §3.3.6), e.g. ``-PT15M``, ``-P1D``, ``P2DT1H30M``."""
    sign = ""
    if value.days < 0:
        sign, value = "-", -value
    hours, rest = divmod(value.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    clock = ""
    if value.seconds:
        clock = "T" + (f"{hours}H" if hours else "")
        clock += f"{minutes}M" if minutes or (hours and seconds) else ""
        clock += f"{seconds}S" if seconds else ""
    if value.days == 0 and clock:
        return f"{sign}P{clock}"
    return f"{sign}P{value.days}D{clock}"


def format_period(start: datetime, end: datetime) -> str:
    """PERIOD (RFC 5545 §3.3.9) with explicit start and end, both in UTC."""
    return f"{format_utc(start)}/{format_utc(end)}"


def component(name: str, lines: Iterable[str]) -> str:
    """``BEGIN:name`` … ``END:name`` around already written lines (and nested components)."""
    return f"BEGIN:{name}{CRLF}{''.join(lines)}END:{name}{CRLF}"
