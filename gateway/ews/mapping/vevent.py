"""One VEVENT's properties: writing its content lines (RFC 5545 §3.1) and reading values icalendar parsed."""

from __future__ import annotations

from icalendar import Event

from gateway.common import ical

# Property order of icalendar's VEVENT (canonical ones first, the rest by name): unchanged output for clients.
_EVENT_ORDER = {
    name: i
    for i, name in enumerate(
        (
            "SUMMARY",
            "DTSTART",
            "DTEND",
            "DURATION",
            "DTSTAMP",
            "UID",
            "RECURRENCE-ID",
            "SEQUENCE",
            "RRULE",
            "RDATE",
            "EXDATE",
        )
    )
}
VALUE_DATE = (("VALUE", "DATE"),)


class VEvent:
    """One VEVENT being written: (name, content line) pairs, its VALARM and components kept for the client."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []
        self.alarm = ""
        self.components: list[str] = []  # written after the VALARM (the client's own, see mapping.merge)

    def add(self, name: str, value: str, params: ical.Params = ()) -> None:
        """A property whose value is already in its value type's form (escaped, formatted)."""
        self.lines.append((name, ical.line(name, value, params)))

    def text(self, name: str, value: str, params: ical.Params = ()) -> None:
        """A TEXT property (RFC 5545 §3.3.11 escaping)."""
        self.add(name, ical.escape_text(value), params)

    def remove(self, names: set[str]) -> None:
        """Drop every line of these properties."""
        self.lines = [pair for pair in self.lines if pair[0] not in names]

    def written(self, name: str) -> str | None:
        """The (folded) line written for ``name``, the first one; None when there is none."""
        return next((text for key, text in self.lines if key == name), None)

    def render(self) -> str:
        """The VEVENT's text, properties in icalendar's order (so clients see the text they always got)."""
        order = len(_EVENT_ORDER)
        self.lines.sort(
            key=lambda pair: (_EVENT_ORDER.get(pair[0], order), pair[0])
        )  # stable: ATTENDEEs keep theirs
        return ical.component("VEVENT", [*(text for _, text in self.lines), self.alarm, *self.components])


def first_value(event: Event, name: str) -> object | None:
    """A property's value, the first one when icalendar parsed it several times."""
    value = event.get(name)
    return value[0] if isinstance(value, list) else value


def text_value(event: Event, name: str) -> str | None:
    """A property's (first) value as text; None when absent or empty."""
    value = first_value(event, name)
    return str(value) if value is not None and str(value) != "" else None
