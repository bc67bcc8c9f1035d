"""The residual (:mod:`.residual`) merged into what Exchange holds, on every read.

While the mapped fields of a VEVENT are as the client wrote them, the client gets its own text back:
its kept properties, its VALARMs, its SEQUENCE, and the mapped properties in the form it wrote them
(parameters, CLASS or TRANSP it left out, DURATION, DTSTAMP, …). Dates and times are the gateway's
own (TZIDs named as the gateway names the zone, floating times in the calendar's zone).

When the item was changed in Exchange (Outlook, OWA, a phone), the changed fields win, by group of
fields (:mod:`.fingerprint`), and what was kept about them follows these rules:

- SUMMARY, DESCRIPTION, LOCATION changed: the client's parameters of that property (LANGUAGE,
  ALTREP) are dropped, and so are the properties describing it: X-ALT-DESC for the description;
  X-APPLE-STRUCTURED-LOCATION, GEO, X-MICROSOFT-LOCATIONDISPLAYNAME and X-MICROSOFT-LOCATIONS
  for the location;
- start or end changed: DURATION becomes DTEND, X-MICROSOFT-CDO-ALLDAYEVENT is dropped; start, end
  or recurrence changed: kept EXDATE values that named no occurrence are dropped (they might
  name one now); and SEQUENCE is the client's plus one (RFC 5546 §2.1.4), as it is when an
  occurrence was deleted;
- reminder switched off: every kept VALARM is dropped; reminder changed: the client's VALARM that
  was the reminder is replaced by the gateway's, and X-MOZ-LASTACK and X-MOZ-SNOOZE-TIME* (an
  acknowledgement or snooze of the old alarm) are dropped;
- attendees changed: ORGANIZER and ATTENDEE are Exchange's, each with the parameters the client gave
  that address except CN, ROLE, CUTYPE, PARTSTAT (Exchange's); attendees without an address stay;
- CLASS, TRANSP/X-MICROSOFT-CDO-BUSYSTATUS, CATEGORIES, RRULE changed: written from Exchange;
- anything changed: DTSTAMP, CREATED, LAST-MODIFIED are Exchange's;
- an override whose occurrence is no longer an exception in Exchange is dropped, and a cancelled
  override whose occurrence is no longer deleted.

Every other kept property stays whatever changed in Exchange.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import timedelta

from exchangelib import CalendarItem

from gateway.common import ical
from gateway.ews.mapping import content
from gateway.ews.mapping.content import Block, Line
from gateway.ews.mapping.fingerprint import SIGNIFICANT
from gateway.ews.mapping.residual import FORMAT, GROUP_OF, STATE, TEXT_GROUPS, tied_groups
from gateway.ews.mapping.times import all_day_dates
from gateway.ews.mapping.vevent import VEvent

log = logging.getLogger(__name__)

TzidFor = Callable[[str, int], "str | None"]  # (kept TZID, year) → the TZID written, its VTIMEZONE added
_REPLACED_GROUPS = ("RRULE", "CLASS", "BUSY", "CATEGORIES", "PEOPLE")
_EXCHANGE_PARAMS = {"CN", "ROLE", "CUTYPE", "PARTSTAT"}


class Kept:
    """One resource's residual, parsed: calendar properties, the master's part, overrides by occurrence."""

    def __init__(self, top: Block) -> None:
        self.calendar = top.lines
        self.master: Block | None = None
        self.overrides: dict[str, Block] = {}
        self.cancelled: dict[str, Block] = {}
        for block in top.children("VEVENT"):
            state = state_of(block)
            if "CANCELLED" in state:
                self.cancelled[state["CANCELLED"]] = block
            elif "RID" in state:
                self.overrides[state["RID"]] = block
            else:
                self.master = block


def load(text: str | None) -> Kept | None:
    """The residual stored with an item; None when there is none or it is not one the gateway wrote."""
    if not text:
        return None
    top = content.parse(text)
    if top is None or top.name.upper() != "VCALENDAR":
        log.warning("ignoring a CalDAVResidual that is not a VCALENDAR")
        return None
    return Kept(top)


def state_of(block: Block) -> dict[str, str]:
    """The markers a kept VEVENT was written with (:data:`.residual.STATE`)."""
    for line in block.lines:
        if line.key == STATE and line.value == FORMAT:
            return {p.partition("=")[0].upper(): p.partition("=")[2] for p in line.params}
    return {}


def _written_line(text: str) -> Line | None:
    return content.parse_line(content.unfold(text).rstrip("\r\n"))


def _address(line: Line) -> str | None:
    value = line.value.strip()
    if value.lower().startswith("mailto:"):
        value = value[7:]
    return value.lower() if "@" in value else None


class _Merge:
    """Merges one kept VEVENT into the VEVENT written from its Exchange item."""

    def __init__(self, block: Block, event: VEvent, current: dict[str, str], tzid: TzidFor) -> None:
        self.event = event
        self.tzid = tzid
        self.state = state_of(block)
        self.changed = {group for group, digest in current.items() if self.state.get(group) != digest}
        self.lines = [line for line in block.lines if line.key != STATE]
        self.blocks = block.blocks

    def stored(self, group: str) -> list[Line]:
        return [line for line in self.lines if GROUP_OF.get(line.key) == group]

    def add(self, lines: Iterable[Line]) -> None:
        self.event.lines.extend((line.key, with_tzid(line, self.tzid).folded()) for line in lines)

    def names(self, group: str) -> set[str]:
        return {name for name, owner in GROUP_OF.items() if owner == group}

    def run(self, item: CalendarItem) -> None:
        for group in _REPLACED_GROUPS:
            if group not in self.changed:
                self.event.remove(self.names(group))
                self.add(self.stored(group))
            elif group == "PEOPLE":
                self.people()
        if not self.changed:
            self.event.remove(self.names("STAMPS"))
            self.add(self.stored("STAMPS"))
        for name in TEXT_GROUPS:
            if name not in self.changed:
                self.text(name)
        if "TIME" not in self.changed:
            self.end(item)
        self.sequence()
        self.add(
            line
            for line in self.lines
            if line.key not in GROUP_OF and not any(g in self.changed for g in tied_groups(line.key))
        )
        self.alarms(item)

    def text(self, name: str) -> None:
        """SUMMARY, DESCRIPTION, LOCATION with the client's parameters and Exchange's value."""
        stored = next(iter(line for line in self.lines if line.key == name), None)
        if stored is None:
            return
        written = self.event.written(name)
        current = _written_line(written) if written else None
        self.event.remove({name})
        self.add([Line(stored.name, stored.params, current.value if current else "")])

    def end(self, item: CalendarItem) -> None:
        """DURATION where the client wrote it, or no end where it gave none and the end is the default."""
        self.add(self.stored("TIME"))
        end = self.state.get("END")
        if end == "DURATION" or (end == "NONE" and _default_end(item)):
            self.event.remove({"DTEND"})

    def sequence(self) -> None:
        """The client's SEQUENCE, plus one after a significant change in Exchange (RFC 5546 §2.1.4)."""
        bump = int(any(group in self.changed for group in SIGNIFICANT))
        self.event.remove({"SEQUENCE"})
        if "SEQ" in self.state:
            self.event.add("SEQUENCE", str(int(self.state["SEQ"]) + bump))
        elif bump:
            self.event.add("SEQUENCE", "1")

    def people(self) -> None:
        """Exchange's ORGANIZER and ATTENDEEs, each with the client's other parameters for that address."""
        stored = {(line.key, _address(line)): line for line in self.stored("PEOPLE")}
        merged = []
        for key, text in self.event.lines:
            line = _written_line(text) if key in ("ORGANIZER", "ATTENDEE") else None
            client = stored.get((key, _address(line))) if line is not None else None
            if client is not None:
                extra = client.without_params(_EXCHANGE_PARAMS).params
                text = Line(line.name, (*extra, *line.params), line.value).folded()
            merged.append((key, text))
        self.event.lines = merged
        self.add(line for line in self.stored("PEOPLE") if line.key == "ATTENDEE" and _address(line) is None)

    def alarms(self, item: CalendarItem) -> None:
        """The client's VALARMs while the reminder is unchanged; see the module's rules otherwise."""
        valarms = [b for b in self.blocks if b.name.upper() == "VALARM"]
        index = self.state.get("REMINDER", "")
        reminder = valarms[int(index)] if index.isdigit() and int(index) < len(valarms) else None
        if "ALARM" not in self.changed and (reminder is not None or not item.reminder_is_set):
            self.event.alarm = ""  # the client's own VALARM says it
            kept = self.blocks
        elif item.reminder_is_set:
            kept = [b for b in self.blocks if b is not reminder]
        else:
            kept = [b for b in self.blocks if b.name.upper() != "VALARM"]
        self.event.components.extend(block_text(b, self.tzid) for b in kept)


def _default_end(item: CalendarItem) -> bool:
    """Whether the item ends where RFC 5545 §3.6.1 ends a VEVENT without DTEND or DURATION."""
    if item.is_all_day:
        start, end = all_day_dates(item)
        return end == start + timedelta(days=1)
    return item.start == item.end


def merge_event(
    block: Block, event: VEvent, item: CalendarItem, current: dict[str, str], tzid: TzidFor
) -> None:
    """Merge the kept VEVENT ``block`` into ``event``, written from ``item`` with digests ``current``."""
    _Merge(block, event, current, tzid).run(item)


def with_tzid(line: Line, tzid: TzidFor) -> Line:
    """A kept line whose TZID names a zone the gateway writes a VTIMEZONE for."""
    name = line.param("TZID")
    if name is None:
        return line
    year = int(line.value[:4]) if line.value[:4].isdigit() else 1970
    written = tzid(name, year)
    return line if written is None or written == name else line.with_param("TZID", written)


def block_text(block: Block, tzid: TzidFor) -> str:
    """A kept component as text (its state line, if any, left out)."""
    lines = [with_tzid(line, tzid).folded() for line in block.lines if line.key != STATE]
    return ical.component(block.name, [*lines, *(block_text(b, tzid) for b in block.blocks)])


def calendar_text(kept: Kept, tzid: TzidFor) -> list[str]:
    """The kept VCALENDAR properties."""
    return [with_tzid(line, tzid).folded() for line in kept.calendar]
