"""An EWS ``Task`` (GetItem) → one VTODO resource's iCalendar text (RFC 5545 §3.6.2, RFC 4791 §4.1).

Each group of :mod:`.task_fields` is written from Exchange, unless the residual kept the client's own
lines for it and the Task still has the values they were written with: then those lines are shown
(a due time, ``STATUS:CANCELLED``, the client's VALARMs, …). Lines of no group come back always.
A regenerating recurrence (Outlook's "regenerate new task N days after each one is completed") has no
RRULE (RFC 5545 counts from DTSTART, not from the completion): it is shown as
``X-CALDAV-GATEWAY-REGENERATES:FREQ=<DAILY|WEEKLY|MONTHLY|YEARLY>;INTERVAL=<n>`` and the task's
current DTSTART/DUE, which Exchange moves on when the task is completed.
"""

from __future__ import annotations

from datetime import UTC, datetime

from exchangelib import Task
from exchangelib.properties import HTMLBody
from exchangelib.recurrence import (
    DailyRegeneration,
    MonthlyRegeneration,
    WeeklyRegeneration,
    YearlyRegeneration,
)
from icalendar import vRecur

from gateway.common import ical
from gateway.ews import recurrence_map
from gateway.ews.calendar_ids import task_uid
from gateway.ews.mapping import content
from gateway.ews.mapping.content import Block
from gateway.ews.mapping.description import html_to_text
from gateway.ews.mapping.model import PRODID
from gateway.ews.mapping.task_fields import (
    EWS_TO_CLASS,
    EWS_TO_STATUS,
    EXACT_STATUS,
    GROUP_OF,
    GROUPS,
    PRIORITY_OF,
    REGENERATES,
    STATE,
    STATUS_X,
    parse_state,
    token,
    utc,
)

_REGENERATION = {
    DailyRegeneration: "DAILY",
    WeeklyRegeneration: "WEEKLY",
    MonthlyRegeneration: "MONTHLY",
    YearlyRegeneration: "YEARLY",
}
_ORDER = ("SUMMARY", "DESCRIPTION", "TIME", "COMPLETED", "STATUS", "PERCENT", "PRIORITY", "CLASS")


def to_vtodo(task: Task, residual: str | None = None) -> str:
    """The VTODO resource of ``task`` (GetItem with TASK_READ_FIELDS and the gateway's properties)."""
    kept_calendar, kept = _load(residual)
    state = parse_state(_state_line(kept)) if kept is not None else {}
    shown = {group for group, digest in state.items() if group in GROUPS and token(task, group) == digest}
    if task.recurrence is None and task.status != "Completed":
        shown.discard("RRULE")  # a series the client completed as a whole, reopened: no longer recurring
    uid = getattr(task, "caldav_uid", None) or task_uid(task.id or "")
    lines = [ical.text_line("UID", uid)]
    stamp = task.last_modified_time or task.datetime_created
    lines.append(ical.line("DTSTAMP", ical.format_utc(utc(stamp) if stamp else datetime.now(UTC))))
    if task.last_modified_time:
        lines.append(ical.line("LAST-MODIFIED", ical.format_utc(utc(task.last_modified_time))))
    kept_lines = kept.lines if kept is not None else []
    for group in (*_ORDER, "CATEGORIES", "RRULE"):
        own = [line.folded() for line in kept_lines if GROUP_OF.get(line.key) == group]
        if group in shown and (own or group != "COMPLETED"):
            lines += own
        else:
            lines += _from_exchange(task, group)
    lines += [line.folded() for line in kept_lines if line.key not in GROUP_OF and line.key != STATE]
    blocks = kept.blocks if kept is not None else []
    if "ALARM" in shown:
        lines += [_block_text(b) for b in blocks if b.name.upper() == "VALARM"]
    else:
        lines += _alarm(task)
    lines += [_block_text(b) for b in blocks if b.name.upper() != "VALARM"]
    header = ical.line("VERSION", "2.0") + ical.line("PRODID", ical.escape_text(PRODID))
    calendar = [line.folded() for line in kept_calendar.lines] if kept_calendar is not None else []
    instances = _instances(kept_calendar, shown)
    zones = _zones(kept_calendar, "".join(lines + instances)) if kept_calendar is not None else []
    return ical.component(
        "VCALENDAR", [header, *calendar, *zones, ical.component("VTODO", lines), *instances]
    )


def _instances(calendar: Block | None, shown: set[str]) -> list[str]:
    """The client's completed instances (RECURRENCE-ID overrides, :mod:`.task_instances`), while Exchange
    still has the occurrence, status and rule they made; once Outlook moved or completed the task they
    no longer describe it and are left out."""
    if calendar is None or not {"TIME", "STATUS", "RRULE"} <= shown:
        return []
    return [_block_text(b) for b in calendar.children("VTODO")[1:]]


def _load(residual: str | None) -> tuple[Block | None, Block | None]:
    calendar = content.parse(residual) if residual else None
    if calendar is None:
        return None, None
    todo = next((b for b in calendar.blocks if b.name.upper() == "VTODO"), None)
    return calendar, todo


def _state_line(todo: Block) -> str:
    return next((line.value for line in todo.lines if line.key == STATE), "")


def _block_text(block: Block) -> str:
    return "".join(ical.fold(text) + ical.CRLF for text in block.unfolded())


def _zones(calendar: Block, written: str) -> list[str]:
    """The client's VTIMEZONEs that a shown line names (RFC 5545 §3.6.5: one for each TZID used)."""
    found = []
    for block in calendar.children("VTIMEZONE"):
        tzid = next((line.value for line in block.lines if line.key == "TZID"), None)
        if tzid and (f"TZID={tzid}" in written or f'TZID="{tzid}"' in written):
            found.append(_block_text(block))
    return found


def _from_exchange(task: Task, group: str) -> list[str]:
    """The group's lines as Exchange has the fields."""
    match group:
        case "SUMMARY":
            return [ical.text_line("SUMMARY", task.subject)] if task.subject else []
        case "DESCRIPTION":
            return _description(task)
        case "TIME":
            return [
                ical.line(name, ical.format_date(value), (("VALUE", "DATE"),))
                for name, value in (("DTSTART", task.start_date), ("DUE", task.due_date))
                if value is not None
            ]
        case "COMPLETED":
            done = task.complete_date
            return [ical.line("COMPLETED", ical.format_utc(utc(done)))] if done else []
        case "STATUS":
            status = task.status or "NotStarted"
            lines = [ical.line("STATUS", EWS_TO_STATUS.get(status, "NEEDS-ACTION"))]
            if status in EXACT_STATUS:
                lines.append(ical.text_line(STATUS_X, status))
            return lines
        case "PERCENT":
            percent = int(float(str(task.percent_complete or 0)))
            return [ical.line("PERCENT-COMPLETE", str(percent))] if percent else []
        case "PRIORITY":
            priority = PRIORITY_OF.get(task.importance or "Normal")
            return [ical.line("PRIORITY", str(priority))] if priority else []
        case "CLASS":
            klass = EWS_TO_CLASS.get(task.sensitivity or "Normal")
            return [ical.line("CLASS", klass)] if klass else []
        case "CATEGORIES":
            cats = task.categories or []
            return [ical.line("CATEGORIES", ",".join(ical.escape_text(c) for c in cats))] if cats else []
        case "RRULE":
            return _rule(task)
    return []


def _description(task: Task) -> list[str]:
    body = task.body
    if not body:
        return []
    if isinstance(body, HTMLBody):
        return [
            ical.text_line("DESCRIPTION", html_to_text(body)),
            ical.text_line("X-ALT-DESC", str(body), (("FMTTYPE", "text/html"),)),
        ]
    return [ical.text_line("DESCRIPTION", str(body))]


def _rule(task: Task) -> list[str]:
    rec = task.recurrence
    start = task.start_date or task.due_date
    if rec is None or start is None:
        return []
    regenerates = _REGENERATION.get(type(rec.pattern))
    if regenerates:
        text = f"FREQ={regenerates};INTERVAL={rec.pattern.interval}"
        if getattr(rec.boundary, "number", None):
            text += f";COUNT={rec.boundary.number}"
        elif getattr(rec.boundary, "end", None):
            text += f";UNTIL={ical.format_date(rec.boundary.end)}"
        return [ical.line(REGENERATES, text)]
    try:
        rule = recurrence_map.recurrence_to_rrule(rec, start)
    except recurrence_map.InexpressibleRule:
        return []
    return [ical.line("RRULE", vRecur(rule).to_ical().decode("utf-8"))]


def _alarm(task: Task) -> list[str]:
    if not task.reminder_is_set or task.reminder_due_by is None:
        return []
    lines = (
        ical.line("ACTION", "DISPLAY"),
        ical.line("DESCRIPTION", "Reminder"),
        ical.line("TRIGGER", ical.format_utc(utc(task.reminder_due_by)), (("VALUE", "DATE-TIME"),)),
    )
    return [ical.component("VALARM", lines)]


__all__ = ["to_vtodo"]
