"""Content lines as a client wrote them (RFC 5545 §3.1), parsed without interpreting their values.

The properties the gateway keeps for a client (:mod:`.residual`) must come back as they were sent:
each line is split into its name, its parameters (each kept as the text ``NAME=value`` exactly as
written, quotes and lists included) and its value, and written back from those parts unchanged.
Lines are unfolded here; the text written to clients is folded again (:func:`gateway.common.ical.fold`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from gateway.common import ical

_FOLD = re.compile(r"\r?\n[ \t]")  # RFC 5545 §3.1: a line break followed by one space or tab


@dataclass(frozen=True)
class Line:
    """One unfolded content line: ``name *(";" param) ":" value``."""

    name: str
    params: tuple[str, ...]  # each "NAME=value" as written
    value: str

    @property
    def key(self) -> str:
        """The property name as compared (RFC 5545 §2: names are case-insensitive)."""
        return self.name.upper()

    def param(self, name: str) -> str | None:
        """The first parameter called ``name``, its value unquoted; None when absent."""
        for text in self.params:
            key, _, value = text.partition("=")
            if key.upper() == name:
                return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value
        return None

    def param_names(self) -> set[str]:
        return {text.partition("=")[0].upper() for text in self.params}

    def with_param(self, name: str, value: str) -> Line:
        """This line with parameter ``name`` set to ``value`` (quoted when RFC 5545 §3.2 needs it)."""
        written = f"{name}={ical.param_value(name, value)}"
        params = [written if p.partition("=")[0].upper() == name else p for p in self.params]
        if written not in params:
            params.append(written)
        return Line(self.name, tuple(params), self.value)

    def without_params(self, names: set[str]) -> Line:
        return Line(
            self.name, tuple(p for p in self.params if p.partition("=")[0].upper() not in names), self.value
        )

    def text(self) -> str:
        """The unfolded line as it was written."""
        return ";".join((self.name, *self.params)) + ":" + self.value

    def folded(self) -> str:
        """The line folded for a client, with its CRLF."""
        return ical.fold(self.text()) + ical.CRLF


@dataclass
class Block:
    """One component (``BEGIN:name`` … ``END:name``): its lines and its sub-components, in order."""

    name: str
    lines: list[Line] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)

    def children(self, name: str) -> list[Block]:
        return [b for b in self.blocks if b.name.upper() == name]

    def unfolded(self) -> Iterator[str]:
        """Every line of the component, unfolded, BEGIN and END included."""
        yield f"BEGIN:{self.name}"
        for line in self.lines:
            yield line.text()
        for block in self.blocks:
            yield from block.unfolded()
        yield f"END:{self.name}"


def unfold(text: str) -> str:
    """Folded lines joined again (RFC 5545 §3.1)."""
    return _FOLD.sub("", text)


def parse_line(text: str) -> Line | None:
    """Split one unfolded line; None when it has no ``:`` outside quotes (not a content line)."""
    position, size = 0, len(text)
    while position < size and text[position] not in ";:":
        position += 1
    name = text[:position]
    params: list[str] = []
    while position < size and text[position] == ";":
        start = position = position + 1
        quoted = False
        while position < size and (quoted or text[position] not in ";:"):
            if text[position] == '"':
                quoted = not quoted
            position += 1
        params.append(text[start:position])
    if position >= size or not name:
        return None
    return Line(name, tuple(params), text[position + 1 :])


def parse(text: str) -> Block | None:
    """The first component of ``text`` (folded or not, CRLF or LF); None when there is none.

    Lines outside any component and lines that are not content lines are skipped: the body was
    read by a full parser before, this only recovers how each property was written.
    """
    stack: list[Block] = []
    for raw in unfold(text).splitlines():
        line = parse_line(raw)
        if line is None:
            continue
        if line.key == "BEGIN" and not line.params:
            block = Block(line.value.strip())
            if stack:
                stack[-1].blocks.append(block)
            stack.append(block)
        elif line.key == "END" and not line.params and stack:
            done = stack.pop()
            if not stack:
                return done
        elif stack:
            stack[-1].lines.append(line)
    return stack[0] if stack else None
