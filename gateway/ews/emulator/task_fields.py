"""Every EWS field of a task, declared once (types.xsd ``ItemType`` and ``TaskType``), and a task's XML.

The counterpart of ``fields.py`` for ``t:Task``: the same :class:`~gateway.ews.emulator.fields.Field`
types, listed in the schema's ``xs:sequence`` order so that responses stay schema-valid, plus the types
only tasks have (task dates, PercentComplete, ``TaskRecurrenceType`` with its regenerating patterns).
"""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING

from lxml import etree

from gateway.ews.emulator.calendar_types import parse_recurrence, recurrence_xml
from gateway.ews.emulator.fields import (
    ITEM_TYPE_HEAD,
    BoolField,
    ChoiceField,
    DateTimeField,
    Elements,
    ExtendedPropertyField,
    Field,
    IntField,
    TextField,
)
from gateway.ews.emulator.model import StoreError
from gateway.ews.emulator.soap import T
from gateway.ews.emulator.task_mime import task_mime_xml
from gateway.ews.emulator.tasks import REGENERATIONS, STATUS_DESCRIPTIONS, TASK_STATUSES, Task, TaskRecurrence
from gateway.ews.emulator.xsd import child, local

if TYPE_CHECKING:  # items.py defines the shape and hands tasks to task_xml
    from gateway.ews.emulator.items import Shape


class TaskDateField(Field):
    """StartDate / DueDate: xs:dateTime kept with the offset it was written with, and written back so.

    A value without an offset is a local time of the request's zone. Only the date matters to a task.
    """

    def read(self, item: object, elem: etree._Element, append: bool, zone: tzinfo = UTC) -> None:
        try:
            value = datetime.fromisoformat((elem.text or "").strip())
        except ValueError:
            raise StoreError("ErrorInvalidValueForProperty", f"Invalid {self.name}.") from None
        setattr(item, self.attr, value if value.tzinfo is not None else value.replace(tzinfo=zone))

    def format(self, value: object) -> Elements:
        assert isinstance(value, datetime)
        return T(self.name, value.replace(microsecond=0).isoformat())

    def value(self, item: object) -> object:
        found = self.get(item)  # type: ignore[arg-type]
        return found.astimezone(UTC) if isinstance(found, datetime) else found


class PercentField(Field):
    """PercentComplete (xs:double, 0 to 100)."""

    def empty(self) -> object:
        return 0.0

    def parse(self, elem: etree._Element, current: object) -> object:
        try:
            return float(elem.text or 0)
        except ValueError:
            raise StoreError("ErrorInvalidValueForProperty", "PercentComplete is not a number.") from None

    def format(self, value: object) -> Elements:
        return T(self.name, f"{float(value):g}")  # type: ignore[arg-type]


class TaskRecurrenceField(Field):
    """``TaskRecurrenceType``: a calendar pattern or a ``<Unit>Regeneration``, then a range."""

    def parse(self, elem: etree._Element, current: object) -> object:
        return parse_task_recurrence(elem)

    def format(self, value: object) -> Elements:
        assert isinstance(value, TaskRecurrence)
        return task_recurrence_xml(value)


_REGENERATION_TAGS = {f"{unit}Regeneration": unit for unit in REGENERATIONS}


def parse_task_recurrence(elem: etree._Element) -> TaskRecurrence:
    """A request's ``t:Recurrence`` of a task (a regeneration is read as a daily rule with its interval)."""
    regeneration = next((c for c in elem if isinstance(c.tag, str) and local(c) in _REGENERATION_TAGS), None)
    if regeneration is None:
        return TaskRecurrence(parse_recurrence(elem))
    found = child(regeneration, "Interval")
    try:
        interval = int(found.text or 0) if found is not None else 0
    except ValueError:
        interval = 0
    if not 1 <= interval <= 999:  # the range Microsoft's reference gives for a regeneration interval
        raise StoreError("ErrorCalendarInvalidRecurrence", "A regeneration interval must be 1 to 999.")
    as_daily = copy.deepcopy(elem)
    for old in list(as_daily):
        if isinstance(old.tag, str) and local(old) in _REGENERATION_TAGS:
            as_daily.replace(old, T.DailyRecurrence(T.Interval(str(interval))))
    return TaskRecurrence(parse_recurrence(as_daily), _REGENERATION_TAGS[local(regeneration)])


def task_recurrence_xml(rec: TaskRecurrence) -> etree._Element:
    """``t:Recurrence`` (TaskRecurrenceType) with range dates as dates (the task's dates are dates)."""
    elem = recurrence_xml(rec.rule, UTC)  # type: ignore[arg-type]  # UTC: range dates written as "…Z"
    if rec.regenerate is not None:
        elem.replace(elem[0], T(f"{rec.regenerate}Regeneration", T.Interval(str(rec.rule.interval))))
    return elem


_EDIT = {"writable": True, "deletable": True}

# ItemId is not listed: every t:Task starts with it, whatever the shape (see task_xml).
TASK_FIELDS: tuple[Field, ...] = (
    # -- ItemType's part of the sequence
    *ITEM_TYPE_HEAD,
    DateTimeField("ReminderDueBy", "item:ReminderDueBy", "reminder_due_by", **_EDIT, queryable=True),
    BoolField("ReminderIsSet", "item:ReminderIsSet", "reminder_is_set", writable=True, queryable=True),
    IntField("ReminderMinutesBeforeStart", "item:ReminderMinutesBeforeStart", "reminder_minutes", **_EDIT),
    BoolField("HasAttachments", "item:HasAttachments", compute=lambda i: False, default=True),
    ExtendedPropertyField("ExtendedProperty", "", writable=True),
    DateTimeField("LastModifiedTime", "item:LastModifiedTime", "modified", queryable=True),
    BoolField("IsAssociated", "item:IsAssociated", compute=lambda i: False),
    # -- TaskType's part
    IntField("ChangeCount", "task:ChangeCount", "change_count"),
    DateTimeField("CompleteDate", "task:CompleteDate", "complete_date", **_EDIT, queryable=True),
    TaskDateField("DueDate", "task:DueDate", "due_date", **_EDIT, queryable=True, default=True),
    IntField("IsAssignmentEditable", "task:IsAssignmentEditable", compute=lambda i: 0),
    BoolField("IsComplete", "task:IsComplete", compute=lambda i: i.is_complete, queryable=True, default=True),
    BoolField("IsRecurring", "task:IsRecurring", compute=lambda i: i.recurrence is not None, queryable=True),
    BoolField("IsTeamTask", "task:IsTeamTask", compute=lambda i: False),
    PercentField("PercentComplete", "task:PercentComplete", "percent_complete", **_EDIT, default=True),
    TaskRecurrenceField("Recurrence", "task:Recurrence", "recurrence", **_EDIT),
    TaskDateField("StartDate", "task:StartDate", "start_date", **_EDIT, queryable=True),
    ChoiceField(
        "Status", "task:Status", "status", choices=TASK_STATUSES, writable=True, queryable=True, default=True
    ),
    TextField("StatusDescription", "task:StatusDescription", compute=lambda i: STATUS_DESCRIPTIONS[i.status]),
)

TASK_WRITABLE: dict[str, Field] = {f.name: f for f in TASK_FIELDS if f.writable}
TASK_BY_URI: dict[str, Field] = {f.uri: f for f in TASK_FIELDS if f.uri}
TASK_DEFAULT_FIELDS = frozenset(f.uri for f in TASK_FIELDS if f.default)


def apply_task(task: Task, elem: etree._Element, append: bool = False, zone: tzinfo = UTC) -> None:
    """Apply every child of a request ``t:Task`` onto ``task`` (CreateItem / SetItemField).

    Read-only and unmodelled elements (Owner, Companies, TotalWork, …) are accepted and ignored.
    """
    for sub in elem:
        if isinstance(sub.tag, str):
            found = TASK_WRITABLE.get(local(sub))
            if found is not None:
                found.read(task, sub, append, zone)  # type: ignore[arg-type]  # fields read attributes


def task_xml(task: Task, shape: Shape) -> etree._Element:
    """A ``t:Task`` for a response, with the fields ``shape`` asks for, in schema order."""
    elem = T.Task(T.ItemId(Id=task.item_id, ChangeKey=task.change_key))
    if shape.mime:  # ItemType's sequence starts with MimeContent, then ItemId
        elem.insert(0, task_mime_xml(task))
    if shape.base == "IdOnly" and not shape.fields and not shape.extended:
        return elem
    if shape.base == "Default":  # a task's Default shape is its own
        shape = replace(shape, base="Custom", fields=shape.fields | TASK_DEFAULT_FIELDS)
    for declared in TASK_FIELDS:
        value = declared.emit(task, shape)  # type: ignore[arg-type]
        for part in [] if value is None else value if isinstance(value, list) else [value]:
            elem.append(part)
    return elem


def task_field(uri: str) -> Field | None:
    """The task field a FieldURI names (DeleteItemField, restrictions)."""
    return TASK_BY_URI.get(uri)
