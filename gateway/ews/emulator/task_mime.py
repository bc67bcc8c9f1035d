"""A task's MIME content: the task as an iCalendar VTODO (RFC 5545 §3.6.2), for ``IncludeMimeContent``.

exchangelib asks every GetItem for ``item:MimeContent``. What Exchange answers for a task is its own
affair (a MIME message Outlook can open); the emulator answers the iCalendar its converter writes for a
task when exporting one: a VTODO with the task's dates as DATE values, its status and percentage, its
categories, a reminder as an absolute VALARM trigger, and its pattern as an RRULE (a regenerating pattern
has no RRULE form and is left out).
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from lxml import etree

from gateway.common.ical import component, format_date, format_utc, line, text_line
from gateway.ews.emulator.ids import new_uid
from gateway.ews.emulator.rrule import to_rrule
from gateway.ews.emulator.soap import T
from gateway.ews.emulator.tasks import Task

_STATUS = {
    "NotStarted": "NEEDS-ACTION",
    "InProgress": "IN-PROCESS",
    "Completed": "COMPLETED",
    "WaitingOnOthers": "NEEDS-ACTION",
    "Deferred": "NEEDS-ACTION",
}
_PRIORITY = {"High": "1", "Normal": "5", "Low": "9"}
_CLASS = {"Normal": "PUBLIC", "Personal": "PRIVATE", "Private": "PRIVATE", "Confidential": "CONFIDENTIAL"}


def task_mime_xml(task: Task) -> etree._Element:
    """``t:MimeContent`` (base64 of the UTF-8 iCalendar text) for a response."""
    text = base64.b64encode(task_ical(task).encode("utf-8")).decode("ascii")
    return T.MimeContent(text, CharacterSet="UTF-8")


def task_ical(task: Task) -> str:
    """The VCALENDAR holding one VTODO for ``task``."""
    lines = [
        text_line("UID", new_uid(task.item_id)),
        text_line("SUMMARY", task.subject),
        line("DTSTAMP", format_utc(task.modified)),
        line("CREATED", format_utc(task.created)),
        line("LAST-MODIFIED", format_utc(task.modified)),
    ]
    if task.body:
        lines.append(text_line("DESCRIPTION", task.body))
    if task.start_date is not None:
        lines.append(line("DTSTART", format_date(task.start_date.date()), (("VALUE", "DATE"),)))
    if task.due_date is not None:
        lines.append(line("DUE", format_date(task.due_date.date()), (("VALUE", "DATE"),)))
    if task.complete_date is not None:
        lines.append(line("COMPLETED", format_utc(task.complete_date)))
    lines.append(line("STATUS", _STATUS[task.status]))
    lines.append(line("PERCENT-COMPLETE", str(int(task.percent_complete))))
    lines.append(line("PRIORITY", _PRIORITY.get(task.importance, "5")))
    lines.append(line("CLASS", _CLASS.get(task.sensitivity, "PUBLIC")))
    if task.categories:
        lines.append(line("CATEGORIES", ",".join(c.replace(",", "\\,") for c in task.categories)))
    if task.recurrence is not None and task.recurrence.regenerate is None:
        # With DATE values UNTIL is a date too, so the first occurrence's time does not matter.
        first = datetime.combine(task.recurrence.rule.start_date, datetime.min.time(), UTC)
        lines.append(line("RRULE", to_rrule(task.recurrence.rule, first, ZoneInfo("UTC"), True)))
    if task.reminder_is_set and task.reminder_due_by is not None:
        trigger = line("TRIGGER", format_utc(task.reminder_due_by), (("VALUE", "DATE-TIME"),))
        lines.append(
            component("VALARM", [line("ACTION", "DISPLAY"), text_line("DESCRIPTION", "Reminder"), trigger])
        )
    body = [
        line("METHOD", "PUBLISH"),
        line("PRODID", "Microsoft Exchange Server 2010"),
        line("VERSION", "2.0"),
    ]
    return component("VCALENDAR", [*body, component("VTODO", lines)])
