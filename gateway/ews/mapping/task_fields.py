"""VTODO ⇄ EWS Task: the property groups, the values each side has, and the tokens that tie them.

Every VTODO property the mapping understands belongs to a *group* of Task fields (docs/MAPPING.md,
"Tasks"). A PUT keeps the client's own lines of each group in the residual together with a token of
the group's Task fields as written; a read shows those lines while the Task still has the same
values (the client gets back what it wrote, a due time or ``STATUS:CANCELLED`` included) and writes
the group from Exchange once Outlook changed it. Lines of no group are kept and shown always.

Status, both ways (EWS ``Status`` has five values, iCalendar ``STATUS`` four):

==============  ===============  ==========================================================
VTODO STATUS    EWS Status       read back as
==============  ===============  ==========================================================
NEEDS-ACTION    NotStarted       NEEDS-ACTION
(none)          NotStarted       (none, while unchanged)
IN-PROCESS      InProgress       IN-PROCESS
COMPLETED       Completed        COMPLETED
CANCELLED       Deferred         CANCELLED while unchanged in Outlook
—               Deferred         NEEDS-ACTION + X-MICROSOFT-TASKSTATUS:Deferred (set in Outlook)
—               WaitingOnOthers  IN-PROCESS + X-MICROSOFT-TASKSTATUS:WaitingOnOthers
==============  ===============  ==========================================================

A PUT carrying ``X-MICROSOFT-TASKSTATUS`` with a STATUS it is shown with keeps the exact EWS value.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, date, datetime

from exchangelib import Task

STATE = "X-CALDAV-GATEWAY-STATE"  # the tokens of the groups a client wrote; never shown to clients
STATUS_X = "X-MICROSOFT-TASKSTATUS"
REGENERATES = "X-CALDAV-GATEWAY-REGENERATES"  # how a regenerating recurrence is shown (no RRULE says it)

STATUS_TO_EWS = {
    "NEEDS-ACTION": "NotStarted",
    "IN-PROCESS": "InProgress",
    "COMPLETED": "Completed",
    "CANCELLED": "Deferred",
}
EWS_TO_STATUS = {
    "NotStarted": "NEEDS-ACTION",
    "InProgress": "IN-PROCESS",
    "Completed": "COMPLETED",
    "Deferred": "NEEDS-ACTION",
    "WaitingOnOthers": "IN-PROCESS",
}
EXACT_STATUS = {"Deferred", "WaitingOnOthers"}  # shown with X-MICROSOFT-TASKSTATUS

SENSITIVITY_TO_EWS = {"PUBLIC": "Normal", "PRIVATE": "Private", "CONFIDENTIAL": "Confidential"}
EWS_TO_CLASS = {"Private": "PRIVATE", "Personal": "PRIVATE", "Confidential": "CONFIDENTIAL"}


def importance_of(priority: int) -> str:
    """RFC 5545 §3.8.1.9: 1-4 high, 5 (and 0, undefined) normal, 6-9 low."""
    if 1 <= priority <= 4:
        return "High"
    if priority >= 6:
        return "Low"
    return "Normal"


PRIORITY_OF = {"High": 1, "Low": 9}  # Normal is written as no PRIORITY


def _day(value: date | None) -> str:
    return value.isoformat() if value else ""


def utc(value: datetime) -> datetime:
    """A plain aware datetime in UTC (EWSDateTime converts only to EWSTimeZones)."""
    return datetime.fromtimestamp(value.timestamp(), UTC)


def _number(value: object) -> str:
    return str(int(float(str(value)))) if value is not None else ""


def _recurrence(task: Task) -> str:
    rec = task.recurrence
    if rec is None:
        return ""
    boundary = rec.boundary
    return "|".join(
        str(x)
        for x in (
            type(rec.pattern).__name__,
            sorted(vars(rec.pattern).items()) if hasattr(rec.pattern, "__dict__") else rec.pattern,
            type(boundary).__name__,
            getattr(boundary, "number", ""),
            _day(getattr(boundary, "end", None)),
        )
    )


def _reminder(task: Task) -> str:
    if not task.reminder_is_set or task.reminder_due_by is None:
        return ""
    return utc(task.reminder_due_by).strftime("%Y%m%dT%H%M")


GROUPS: dict[str, Callable[[Task], str]] = {
    "SUMMARY": lambda t: t.subject or "",
    "DESCRIPTION": lambda t: str(t.body or ""),
    "TIME": lambda t: f"{_day(t.start_date)}/{_day(t.due_date)}",
    # CompleteDate is Exchange's own (read-only in EWS): the client's COMPLETED holds while the task is done
    "COMPLETED": lambda t: "done" if t.status == "Completed" else "",
    "STATUS": lambda t: t.status or "NotStarted",
    "PERCENT": lambda t: _number(t.percent_complete),
    "PRIORITY": lambda t: t.importance or "Normal",
    "CLASS": lambda t: t.sensitivity or "Normal",
    "CATEGORIES": lambda t: "\x1f".join(t.categories or ()),
    "ALARM": _reminder,
    "RRULE": _recurrence,
}
"""Each group's Task fields as one comparable text."""

GROUP_OF = {
    "SUMMARY": "SUMMARY",
    "DESCRIPTION": "DESCRIPTION",
    "X-ALT-DESC": "DESCRIPTION",
    "DTSTART": "TIME",
    "DUE": "TIME",
    "DURATION": "TIME",
    "COMPLETED": "COMPLETED",
    "STATUS": "STATUS",
    STATUS_X: "STATUS",
    "PERCENT-COMPLETE": "PERCENT",
    "PRIORITY": "PRIORITY",
    "CLASS": "CLASS",
    "CATEGORIES": "CATEGORIES",
    "RRULE": "RRULE",
    "EXDATE": "RRULE",
    REGENERATES: "RRULE",
}
"""The group of each mapped VTODO property (a VALARM sub-component is in ALARM)."""

# Always written from Exchange, never kept. CREATED is the client's (kept) and not Exchange's creation time:
# RFC 4791 §9.9 places a task without dates by its CREATED, which Exchange would move to the day it was stored.
RENDERED = {"UID", "DTSTAMP", "LAST-MODIFIED"}


def token(task: Task, group: str) -> str:
    """A short digest of the group's fields on ``task``."""
    return hashlib.sha256(GROUPS[group](task).encode("utf-8")).hexdigest()[:12]


def state_value(task: Task) -> str:
    """The STATE line's value: every group's token (a group the client did not write is shown as
    Exchange has it only while unchanged, like the rest)."""
    return " ".join(f"{group}={token(task, group)}" for group in GROUPS)


def parse_state(value: str) -> dict[str, str]:
    pairs = (part.partition("=") for part in value.split())
    return {key: digest for key, _, digest in pairs if key and digest}
