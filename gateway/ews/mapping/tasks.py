"""A VTODO resource (RFC 5545 §3.6.2) → an unsaved EWS ``Task``, and what Exchange cannot hold, kept.

The mapping, field by field, is :mod:`.task_fields` and docs/MAPPING.md ("Tasks"); the way back is
:mod:`.task_writer`. Choices worth knowing:

- An EWS Task has dates, not times (StartDate, DueDate): a DTSTART or DUE with a time sets the day it
  falls on in its own zone (a UTC or floating one in the calendar's zone), and the client's exact line
  is kept and shown while Outlook leaves the dates alone. A date-only DUE stays date-only.
- DURATION (with DTSTART) sets the due day and is kept as written.
- Exchange has one reminder per task, an instant (ReminderDueBy): the first VALARM that is not
  ``ACTION:NONE`` sets it; a relative trigger counts from DTSTART (``RELATED=END``: from DUE), a date
  meaning its midnight in the calendar's zone.
- RRULE becomes the task's recurrence (:mod:`gateway.ews.recurrence_map`), counted from DTSTART or,
  without one, from DUE. RDATE has no Exchange equivalent and is refused; RECURRENCE-ID overrides only
  when they complete occurrences and say where the series goes on (:mod:`.task_instances`), kept as
  written.
- COMPLETED is not written: EWS CompleteDate is Exchange's (set when the status becomes Completed); the
  client's COMPLETED line is shown while the task stays completed, Exchange's date otherwise.
- The UID is kept in the Task's ``CalDAVUid`` property (EWS tasks have no UID).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from zoneinfo import ZoneInfo

from exchangelib import EWSDate, EWSDateTime, EWSTimeZone, Task
from exchangelib.properties import Body
from exchangelib.recurrence import (
    DailyRegeneration,
    EndDatePattern,
    MonthlyRegeneration,
    NoEndPattern,
    NumberedPattern,
    TaskRecurrence,
    WeeklyRegeneration,
    YearlyRegeneration,
)
from icalendar import Calendar, Component

from gateway.common import ical
from gateway.ews.exchange import register_item_fields
from gateway.ews.mapping import content, task_instances
from gateway.ews.mapping.content import Block, Line
from gateway.ews.mapping.model import VALID_DATA, exchange_recurrence, invalid, only_rrule
from gateway.ews.mapping.task_fields import (
    EWS_TO_STATUS,
    GROUP_OF,
    REGENERATES,
    RENDERED,
    SENSITIVITY_TO_EWS,
    STATE,
    STATUS_TO_EWS,
    STATUS_X,
    importance_of,
    state_value,
)

register_item_fields()  # Task.caldav_uid, caldav_residual: registered once for the process

TASK_WRITE_FIELDS: tuple[str, ...] = (
    "subject",
    "body",
    "start_date",
    "due_date",
    "status",
    "percent_complete",
    "importance",
    "sensitivity",
    "categories",
    "reminder_is_set",
    "reminder_due_by",
    "recurrence",
)
"""Task fields a PUT sets, for UpdateItem (the gateway's properties are added by the backend)."""

TASK_READ_FIELDS: tuple[str, ...] = (
    *TASK_WRITE_FIELDS,
    "complete_date",
    "datetime_created",
    "last_modified_time",
    "is_recurring",
)
"""Task fields a rendering reads."""

_REGENERATIONS = {
    "DAILY": DailyRegeneration,
    "WEEKLY": WeeklyRegeneration,
    "MONTHLY": MonthlyRegeneration,
    "YEARLY": YearlyRegeneration,
}
_NOT_KEPT_IN_CALENDAR = {"PRODID", "VERSION", "CALSCALE", "METHOD"}
MAX_RESIDUAL_BYTES = 64 * 1024


@dataclass
class TaskResource:
    """One parsed VTODO resource, ready for CreateItem/UpdateItem."""

    uid: str
    task: Task
    residual: str | None


def from_vtodo(text: str, *, default_tz: str = "UTC") -> TaskResource:
    """Parse one VTODO resource (checked by gateway.caldav.validation) into an unsaved Task.

    Raises :class:`InvalidCalendarData` for what Exchange cannot hold (overrides, RDATE, a rule no EWS
    pattern reproduces, a body whose unmapped part is too large)."""
    try:
        calendar = Calendar.from_ical(text)
    except ValueError as exc:
        raise invalid(f"The body is not valid iCalendar ({exc}).", VALID_DATA, 400) from None
    todo = task_instances.current([c for c in calendar.subcomponents if c.name == "VTODO"])
    if "RDATE" in todo:
        raise invalid("RDATE (extra occurrences) has no Exchange equivalent for tasks.")
    zone: tzinfo = ZoneInfo(default_tz) if default_tz != "UTC" else UTC
    task = Task(subject=_text(todo, "SUMMARY"))
    description = _text(todo, "DESCRIPTION")
    task.body = Body(description) if description else None
    start, due = _day(todo, "DTSTART", zone), _day(todo, "DUE", zone)
    if due is None and start is not None and "DURATION" in todo:
        due = start + timedelta(days=todo.decoded("DURATION").days)
    task.start_date, task.due_date = start, due
    _read_status(todo, task)
    _read_other(todo, task)
    task.reminder_due_by = _reminder(todo, zone)
    task.reminder_is_set = task.reminder_due_by is not None
    task.recurrence = _recurrence(todo, start or due, _anchor_time(todo))
    task.clean()  # Exchange's own rules (100 % when completed, …) before the tokens are taken
    uid = str(todo.get("UID", "")).strip()
    return TaskResource(uid, task, _residual(text, task))


def _text(todo: Component, name: str) -> str | None:
    value = todo.get(name)
    if isinstance(value, list):
        value = value[0]
    return str(value) if value is not None and str(value) != "" else None


def _wall(value: date | datetime, zone: tzinfo) -> date:
    """The day a DATE or DATE-TIME falls on: in its own zone, a UTC time in ``zone`` (floating: as written)."""
    if not isinstance(value, datetime):
        return value
    if value.tzinfo is not None and str(value.tzinfo) == "UTC":
        return value.astimezone(zone).date()
    return value.date()


def _day(todo: Component, name: str, zone: tzinfo) -> EWSDate | None:
    if name not in todo:
        return None
    value = todo.decoded(name)
    return EWSDate.from_date(_wall(value, zone))


def _read_status(todo: Component, task: Task) -> None:
    status = (_text(todo, "STATUS") or "").upper()
    if not status and task_instances.completed(todo):
        status = "COMPLETED"  # a COMPLETED date or 100 % without a STATUS: done all the same
    exact = _text(todo, STATUS_X)
    if exact in EWS_TO_STATUS and EWS_TO_STATUS[exact] == status:
        task.status = exact  # the client kept what it was shown for Outlook's Deferred/WaitingOnOthers
    else:
        task.status = STATUS_TO_EWS.get(status, "NotStarted")
    if "PERCENT-COMPLETE" in todo:
        task.percent_complete = Decimal(max(0, min(100, int(todo.decoded("PERCENT-COMPLETE")))))
    elif task.status == "Completed":
        task.percent_complete = Decimal(100)


def _read_other(todo: Component, task: Task) -> None:
    priority = todo.get("PRIORITY")
    task.importance = importance_of(int(priority)) if priority is not None else "Normal"
    klass = (_text(todo, "CLASS") or "PUBLIC").upper()
    task.sensitivity = SENSITIVITY_TO_EWS.get(klass, "Private")  # RFC 5545: unknown classes are private
    values = todo.get("CATEGORIES")
    if values is not None:
        found: list[str] = []
        for value in values if isinstance(values, list) else [values]:
            found += [str(c) for c in getattr(value, "cats", [value])]
        task.categories = [c for c in dict.fromkeys(found) if c] or None


def _moment(value: date | datetime, zone: tzinfo) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=zone) if value.tzinfo is None else value
    return datetime.combine(value, time.min).replace(tzinfo=zone)


def _reminder(todo: Component, zone: tzinfo) -> EWSDateTime | None:
    """The instant of the first VALARM that can be a reminder (RFC 5545 §3.8.6.3 TRIGGER)."""
    for alarm in (c for c in todo.subcomponents if c.name == "VALARM"):
        if str(alarm.get("ACTION", "")).upper() == "NONE" or "TRIGGER" not in alarm:
            continue
        trigger = alarm.get("TRIGGER")
        value = trigger.dt
        if isinstance(value, timedelta):
            related = str(trigger.params.get("RELATED", "START")).upper()
            anchor_name = "DUE" if related == "END" else "DTSTART"
            if anchor_name not in todo:
                anchor_name = "DUE" if "DUE" in todo else "DTSTART"
            if anchor_name not in todo:
                continue
            when = _moment(todo.decoded(anchor_name), zone) + value
        else:
            when = _moment(value, UTC)
        return EWSDateTime.from_datetime(when.astimezone(UTC)).astimezone(EWSTimeZone("UTC"))
    return None


def _anchor_time(todo: Component) -> time | None:
    """The time of day of DTSTART (or DUE) when it has one: what BYHOUR/BYMINUTE/BYSECOND may repeat."""
    for name in ("DTSTART", "DUE"):
        if name in todo:
            value = todo.decoded(name)
            return value.time() if isinstance(value, datetime) else None
    return None


def _date_rule(rule: dict, at: time | None) -> dict:
    """The rule without BYHOUR, BYMINUTE, BYSECOND that only repeat the task's own time of day (they add
    no instance, RFC 5545 §3.3.10): Exchange's task patterns count days. The client's RRULE is kept as written."""
    clock = {"BYHOUR": "hour", "BYMINUTE": "minute", "BYSECOND": "second"}
    if at is None or not any(part in rule for part in clock):
        return rule
    if all(rule[part] == [getattr(at, unit)] for part, unit in clock.items() if part in rule):
        return {key: value for key, value in rule.items() if key not in clock}
    return rule


def _regeneration(todo: Component, start: date | None) -> TaskRecurrence | None:
    """A regenerating recurrence as the gateway shows it (task_writer: no RRULE can say it), sent back."""
    text = _text(todo, REGENERATES)
    if text is None or start is None:
        return None
    parts = dict(part.partition("=")[::2] for part in text.upper().split(";"))
    pattern = _REGENERATIONS.get(parts.get("FREQ", ""))
    if pattern is None or not parts.get("INTERVAL", "").isdigit() or int(parts["INTERVAL"]) < 1:
        raise invalid(
            f"{REGENERATES} must be FREQ=DAILY|WEEKLY|MONTHLY|YEARLY;INTERVAL=<n> as the gateway shows it."
        )
    if parts.get("COUNT", "").isdigit():
        boundary: object = NumberedPattern(start=start, number=int(parts["COUNT"]))
    elif len(parts.get("UNTIL", "")) == 8 and parts["UNTIL"].isdigit():
        until = parts["UNTIL"]
        boundary = EndDatePattern(start=start, end=date(int(until[:4]), int(until[4:6]), int(until[6:])))
    else:
        boundary = NoEndPattern(start=start)
    return TaskRecurrence(pattern=pattern(interval=int(parts["INTERVAL"])), boundary=boundary)


def _recurrence(todo: Component, start: date | None, at: time | None = None) -> TaskRecurrence | None:
    rules = only_rrule(todo, "task")
    if rules is None:
        return _regeneration(todo, start)
    rules = _date_rule(dict(rules), at)
    if start is None:
        raise invalid("A recurring task needs a DTSTART or a DUE for Exchange to count from.")
    rec = exchange_recurrence(rules, start, None)
    return TaskRecurrence(pattern=rec.pattern, boundary=rec.boundary)


def _residual(text: str, task: Task) -> str | None:
    """The client's lines Exchange has no field for, and the exact lines of the mapped groups, with the
    groups' tokens (:mod:`.task_fields`)."""
    calendar = content.parse(text)
    if calendar is None:
        return None
    todos = [b for b in calendar.blocks if b.name.upper() == "VTODO"]
    todo = next(b for b in todos if not any(line.key == "RECURRENCE-ID" for line in b.lines))
    kept = Block("VCALENDAR", [line for line in calendar.lines if line.key not in _NOT_KEPT_IN_CALENDAR])
    kept.blocks = [b for b in calendar.blocks if b.name.upper() == "VTIMEZONE"]
    lines = [Line(STATE, (), state_value(task))]
    lines += [line for line in todo.lines if line.key not in RENDERED and line.key != STATE]
    kept.blocks.append(Block("VTODO", lines, list(todo.blocks)))
    kept.blocks += [b for b in todos if b is not todo]  # completed instances (.task_instances), as written
    written = ical.CRLF.join(kept.unfolded()) + ical.CRLF
    if len(written.encode("utf-8")) > MAX_RESIDUAL_BYTES:
        raise invalid(
            "The task holds more properties Exchange has no field for than the gateway keeps (64 KB)."
        )
    return written


__all__ = ["GROUP_OF", "TASK_READ_FIELDS", "TASK_WRITE_FIELDS", "TaskResource", "from_vtodo"]
