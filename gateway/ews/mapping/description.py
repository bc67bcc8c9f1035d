"""DESCRIPTION (RFC 5545 §3.8.1.5) ⇄ the item's Body: plain text both ways, Exchange's HTML kept.

An HTML body is written as its text in DESCRIPTION and as-is in X-ALT-DESC; when a client
sends that DESCRIPTION back unchanged, the HTML is restored instead of replaced by its text.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from exchangelib.properties import Body, HTMLBody
from icalendar import Event

from gateway.common import ical
from gateway.ews.mapping.vevent import VEvent, text_value


class _TextExtractor(HTMLParser):
    """HTML body → plain text: block elements and <br> become line breaks."""

    _BLOCKS = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in {"script", "style", "head", "title"}:
            self._skip += 1
        elif tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in {"script", "style", "head", "title"}:
            self._skip = max(0, self._skip - 1)
        elif tag in self._BLOCKS - {"br"}:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(re.sub(r"\s+", " ", data))


def html_to_text(markup: str) -> str:
    """Readable text of an HTML body (DESCRIPTION must be plain text, RFC 5545 §3.8.1.5)."""
    extractor = _TextExtractor()
    extractor.feed(markup)
    extractor.close()
    lines = [line.strip() for line in "".join(extractor.parts).split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def add_description(event: VEvent, body: Body | None) -> None:
    """DESCRIPTION in plain text (RFC 5545 §3.8.1.5); an HTML body also as X-ALT-DESC."""
    if not body:
        return
    if isinstance(body, HTMLBody):
        event.text("DESCRIPTION", html_to_text(body))
        # Lets from_ical restore the HTML when a client sends DESCRIPTION back unchanged.
        # An X- property is TEXT unless it says otherwise (RFC 5545 §3.8.8.2): escaped as such.
        event.text("X-ALT-DESC", str(body), (("FMTTYPE", "text/html"),))
    else:
        event.text("DESCRIPTION", str(body))


def read_body(event: Event) -> Body | None:
    """The item's Body: Exchange's HTML when X-ALT-DESC still renders as DESCRIPTION, else the text."""
    description = text_value(event, "DESCRIPTION")
    alt = event.get("X-ALT-DESC")
    is_html = (
        alt is not None
        and not isinstance(alt, list)
        and str(alt.params.get("FMTTYPE", "")).lower() == "text/html"
    )
    html = ical.unescape_text(str(alt)) if is_html else ""  # icalendar leaves X- values escaped
    if is_html and html_to_text(html) == (description or ""):
        return HTMLBody(html)  # the client kept our text rendering: keep Exchange's HTML
    return Body(description) if description else None
