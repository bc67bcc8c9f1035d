"""XML (de)serialisation of calendar items (types.xsd ``CalendarItemType``).

Requests: a ``t:CalendarItem`` from CreateItem, or the one-field ``t:CalendarItem`` inside an
UpdateItem ``SetItemField``/``AppendToItemField``, is applied element by element onto a
:class:`~gateway.ews.emulator.model.CalendarItem`. Responses: elements are written in the
schema's ``xs:sequence`` order, filtered by the requested shape (``IdOnly``/``Default``/
``AllProperties`` + ``AdditionalProperties``). What each element means is declared once, in
``fields.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo

from lxml import etree

from gateway.ews.emulator.fields import CALENDAR_ITEM_FIELDS, DEFAULT_FIELDS, WRITABLE, Elements
from gateway.ews.emulator.mime import mime_content_xml
from gateway.ews.emulator.model import CalendarItem
from gateway.ews.emulator.soap import T
from gateway.ews.emulator.task_fields import task_xml
from gateway.ews.emulator.tasks import Task
from gateway.ews.emulator.xsd import child, local, parse_bool, text


@dataclass
class Shape:
    """A requested ``ItemShape``: base shape plus AdditionalProperties."""

    base: str = "AllProperties"
    fields: set[str] = field(default_factory=set)
    extended: list[dict[str, str]] = field(default_factory=list)
    mime: bool = False  # t:IncludeMimeContent, or item:MimeContent asked for

    @classmethod
    def parse(cls, elem: etree._Element | None) -> Shape:
        """Read an ``m:ItemShape`` (``t:BaseShape`` + ``t:AdditionalProperties``); absent means IdOnly."""
        if elem is None:
            return cls("IdOnly")
        shape = cls(text(elem, "BaseShape", "IdOnly"))
        shape.mime = parse_bool(text(elem, "IncludeMimeContent", "false"))
        extra = child(elem, "AdditionalProperties")
        for path in extra if extra is not None else []:
            if local(path) == "FieldURI":
                shape.fields.add(path.get("FieldURI", ""))
            elif local(path) == "ExtendedFieldURI":
                shape.extended.append(dict(path.attrib))
        shape.mime = shape.mime or "item:MimeContent" in shape.fields
        return shape

    def wants(self, uri: str) -> bool:
        """Whether a response for this shape carries the field ``uri``."""
        if self.base == "AllProperties":
            return True
        return uri in self.fields or (self.base == "Default" and uri in DEFAULT_FIELDS)


def apply_item(item: CalendarItem, elem: etree._Element, append: bool = False, zone: tzinfo = UTC) -> None:
    """Apply every child of a request ``t:CalendarItem`` onto ``item`` (CreateItem / SetItemField);
    date-times without an offset are local times of ``zone`` (see item_ops.naive_zone).

    Elements that are read-only or not modelled (Culture, IsResponseRequested, ...) are accepted and
    ignored; MimeContent is read before, by CreateItem.
    """
    for sub in elem:
        if not isinstance(sub.tag, str):
            continue
        found = WRITABLE.get(local(sub))
        if found is not None:
            found.read(item, sub, append, zone)
    if item.is_all_day:
        _snap_all_day(item)


def _snap_all_day(item: CalendarItem) -> None:
    # Exchange moves all-day bounds to local midnights: start back, end forward.
    zone = item.zone
    start = item.start.astimezone(zone)
    end = item.end.astimezone(zone)
    start_day = start.date()
    end_day = end.date() if end.time() == datetime.min.time() else end.date() + timedelta(days=1)
    end_day = max(end_day, start_day + timedelta(days=1))
    item.start = datetime.combine(start_day, datetime.min.time(), zone).astimezone(UTC)
    item.end = datetime.combine(end_day, datetime.min.time(), zone).astimezone(UTC)


def item_xml(item: CalendarItem | Task, shape: Shape) -> etree._Element:
    """A ``t:CalendarItem`` (or ``t:Task``) for a response, with the fields ``shape`` asks for, in schema order."""
    if isinstance(item, Task):
        return task_xml(item, shape)
    elem = T.CalendarItem(T.ItemId(Id=item.item_id, ChangeKey=item.change_key))
    if shape.mime:  # ItemType's sequence starts with MimeContent, then ItemId
        elem.insert(0, mime_content_xml(item))
    if shape.base == "IdOnly" and not shape.fields and not shape.extended:
        return elem
    for declared in CALENDAR_ITEM_FIELDS:
        _append(elem, declared.emit(item, shape))
    return elem


def _append(parent: etree._Element, value: Elements) -> None:
    if value is None:
        return
    for part in value if isinstance(value, list) else [value]:
        parent.append(part)
