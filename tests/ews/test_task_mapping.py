"""VTODO ⇄ EWS Task (gateway.ews.mapping.tasks / task_writer): the mapping both ways, and what is kept."""

from __future__ import annotations

from datetime import date

import pytest
from exchangelib import EWSDate
from exchangelib.recurrence import NumberedPattern, TaskRecurrence, WeeklyRegeneration
from icalendar import Calendar

from gateway.caldav.backend import InvalidCalendarData
from gateway.ews.mapping.task_writer import to_vtodo
from gateway.ews.mapping.tasks import from_vtodo

BERLIN = (
    "BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\n"
    "TZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n"
)


def vtodo(*lines: str, zones: str = "") -> str:
    body = "".join(f"{line}\r\n" for line in lines)
    return (
        f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\n{zones}BEGIN:VTODO\r\nUID:t-1\r\n"
        f"DTSTAMP:20261201T000000Z\r\n{body}END:VTODO\r\nEND:VCALENDAR\r\n"
    )


def todo_of(text: str):
    return next(c for c in Calendar.from_ical(text).walk("VTODO"))


def test_main_fields_map_to_the_task():
    parsed = from_vtodo(
        vtodo(
            "SUMMARY:Pay bills",
            "DESCRIPTION:Gas and water",
            "DTSTART;VALUE=DATE:20261210",
            "DUE;VALUE=DATE:20261212",
            "STATUS:IN-PROCESS",
            "PERCENT-COMPLETE:40",
            "PRIORITY:1",
            "CLASS:PRIVATE",
            "CATEGORIES:Home,Money",
        )
    )
    task = parsed.task
    assert parsed.uid == "t-1"
    assert (task.subject, str(task.body)) == ("Pay bills", "Gas and water")
    assert (task.start_date, task.due_date) == (date(2026, 12, 10), date(2026, 12, 12))
    assert (task.status, int(task.percent_complete)) == ("InProgress", 40)
    assert (task.importance, task.sensitivity, task.categories) == ("High", "Private", ["Home", "Money"])


@pytest.mark.parametrize(
    ("status", "ews"),
    [
        ("NEEDS-ACTION", "NotStarted"),
        ("IN-PROCESS", "InProgress"),
        ("COMPLETED", "Completed"),
        ("CANCELLED", "Deferred"),
    ],
)
def test_status_maps_and_comes_back_as_written(status, ews):
    parsed = from_vtodo(vtodo("SUMMARY:x", f"STATUS:{status}"))
    assert parsed.task.status == ews
    assert todo_of(to_vtodo(parsed.task, parsed.residual))["STATUS"] == status


@pytest.mark.parametrize(("ews", "shown"), [("Deferred", "NEEDS-ACTION"), ("WaitingOnOthers", "IN-PROCESS")])
def test_outlook_only_statuses_are_shown_with_their_exact_value_and_kept_on_a_put_back(ews, shown):
    parsed = from_vtodo(vtodo("SUMMARY:x"))
    parsed.task.status = ews
    text = to_vtodo(parsed.task, parsed.residual)
    todo = todo_of(text)
    assert (todo["STATUS"], todo["X-MICROSOFT-TASKSTATUS"]) == (shown, ews)
    assert from_vtodo(text).task.status == ews


def test_a_due_time_is_kept_while_outlook_leaves_the_date_and_dates_stay_dates():
    parsed = from_vtodo(vtodo("SUMMARY:x", "DUE;TZID=Europe/Berlin:20261212T230000", zones=BERLIN))
    assert parsed.task.due_date == date(2026, 12, 12)  # the day in its own zone, not in UTC
    text = to_vtodo(parsed.task, parsed.residual)
    assert "DUE;TZID=Europe/Berlin:20261212T230000" in text and "TZID:Europe/Berlin" in text
    parsed.task.due_date = EWSDate(2026, 12, 14)  # moved in Outlook
    text = to_vtodo(parsed.task, parsed.residual)
    assert "DUE;VALUE=DATE:20261214" in text and "VTIMEZONE" not in text
    dated = from_vtodo(vtodo("SUMMARY:x", "DUE;VALUE=DATE:20261212"))
    assert "DUE;VALUE=DATE:20261212" in to_vtodo(dated.task, None)


def test_unmapped_properties_and_alarms_come_back():
    parsed = from_vtodo(
        vtodo(
            "SUMMARY:x",
            "DTSTART;VALUE=DATE:20261210",
            "RELATED-TO:parent-1",
            "X-APPLE-SORT-ORDER:7",
            "BEGIN:VALARM",
            "ACTION:DISPLAY",
            "DESCRIPTION:x",
            "TRIGGER:-PT15M",
            "END:VALARM",
        )
    )
    assert (
        parsed.task.reminder_is_set and parsed.task.reminder_due_by.isoformat() == "2026-12-09T23:45:00+00:00"
    )
    todo = todo_of(to_vtodo(parsed.task, parsed.residual))
    assert (str(todo["RELATED-TO"]), str(todo["X-APPLE-SORT-ORDER"].to_ical(), "ascii")) == ("parent-1", "7")
    assert str(todo.walk("VALARM")[0]["TRIGGER"].to_ical(), "ascii") == "-PT15M"
    assert "X-CALDAV-GATEWAY-STATE" not in to_vtodo(parsed.task, parsed.residual)


def test_a_task_made_in_outlook_renders_from_its_fields():
    parsed = from_vtodo(
        vtodo("SUMMARY:x", "DUE;VALUE=DATE:20261212", "PRIORITY:9", "RRULE:FREQ=DAILY;COUNT=2")
    )
    text = to_vtodo(parsed.task, None)
    todo = todo_of(text)
    assert (todo["STATUS"], todo["PRIORITY"], str(todo["DUE"].to_ical(), "ascii")) == (
        "NEEDS-ACTION",
        9,
        "20261212",
    )
    assert todo["RRULE"]["FREQ"] == ["DAILY"] and todo["RRULE"]["COUNT"] == [2]
    assert todo["UID"].endswith("@exchange-task")


def test_overrides_of_a_recurring_task_are_refused():
    body = vtodo("SUMMARY:x", "DTSTART;VALUE=DATE:20261210", "RRULE:FREQ=DAILY").replace(
        "END:VCALENDAR",
        "BEGIN:VTODO\r\nUID:t-1\r\nRECURRENCE-ID;VALUE=DATE:20261211\r\nEND:VTODO\r\nEND:VCALENDAR",
    )
    with pytest.raises(InvalidCalendarData):
        from_vtodo(body)


def test_a_rule_repeating_the_tasks_own_time_of_day_is_a_day_pattern_and_comes_back_as_written():
    rule = "RRULE:FREQ=WEEKLY;BYDAY=MO;BYHOUR=6;BYMINUTE=55;COUNT=3"
    parsed = from_vtodo(vtodo("SUMMARY:Bins", "DTSTART:20221017T065500Z", "DURATION:PT10M", rule))
    assert parsed.task.recurrence.boundary.number == 3
    assert rule in to_vtodo(parsed.task, parsed.residual)
    with pytest.raises(InvalidCalendarData):  # another hour would add instances Exchange cannot hold
        from_vtodo(vtodo("SUMMARY:Bins", "DTSTART:20221017T065500Z", "RRULE:FREQ=DAILY;BYHOUR=6,18"))


def test_created_is_the_clients_not_exchanges():
    parsed = from_vtodo(vtodo("SUMMARY:x", "CREATED:20200101T000000Z"))
    assert "CREATED:20200101T000000Z" in to_vtodo(parsed.task, parsed.residual)
    assert "CREATED" not in to_vtodo(from_vtodo(vtodo("SUMMARY:x")).task, None)


def test_a_regenerating_recurrence_is_shown_without_rrule_and_survives_a_put_back():
    parsed = from_vtodo(vtodo("SUMMARY:Back up", "DUE;VALUE=DATE:20261210"))
    parsed.task.recurrence = TaskRecurrence(
        pattern=WeeklyRegeneration(interval=2), boundary=NumberedPattern(start=date(2026, 12, 10), number=4)
    )
    text = to_vtodo(parsed.task, None)
    assert "RRULE" not in text and "X-CALDAV-GATEWAY-REGENERATES:FREQ=WEEKLY;INTERVAL=2;COUNT=4" in text
    back = from_vtodo(text).task.recurrence  # a client that edits the task and sends it back
    assert isinstance(back.pattern, WeeklyRegeneration) and back.pattern.interval == 2
    assert back.boundary.number == 4


def test_instances_of_a_task_that_does_not_recur_are_refused():
    body = vtodo("SUMMARY:x", "DTSTART;VALUE=DATE:20261210").replace(
        "END:VCALENDAR",
        "BEGIN:VTODO\r\nUID:t-1\r\nRECURRENCE-ID;VALUE=DATE:20261210\r\nSTATUS:COMPLETED\r\nEND:VTODO\r\n"
        "END:VCALENDAR",
    )
    with pytest.raises(InvalidCalendarData, match="recurring task"):
        from_vtodo(body)


def test_the_current_occurrence_of_a_thisandfuture_instance_takes_its_due_and_not_its_duration():
    body = vtodo(
        "SUMMARY:x", "DTSTART:20261207T090000Z", "DURATION:PT1H", "RRULE:FREQ=DAILY;COUNT=5"
    ).replace(
        "END:VCALENDAR",
        "BEGIN:VTODO\r\nUID:t-1\r\nRECURRENCE-ID:20261207T090000Z\r\nSTATUS:COMPLETED\r\nEND:VTODO\r\n"
        "BEGIN:VTODO\r\nUID:t-1\r\nRECURRENCE-ID;RANGE=THISANDFUTURE:20261208T090000Z\r\n"
        "DTSTART:20261209T090000Z\r\nDURATION:PT1H\r\nDUE:20261210T100000Z\r\nEND:VTODO\r\nEND:VCALENDAR",
    )
    task = from_vtodo(body).task
    assert (task.start_date, task.due_date) == (date(2026, 12, 9), date(2026, 12, 10))
    assert task.recurrence.boundary.number == 4


@pytest.mark.parametrize(
    "done",
    [
        ("STATUS:COMPLETED",),
        ("STATUS:COMPLETED", "COMPLETED:20261208T100000Z", "PERCENT-COMPLETE:100"),
        ("COMPLETED:20261208T100000Z",),  # no STATUS: RFC 5545 §3.8.2.1, the date it was completed
        ("PERCENT-COMPLETE:100",),
    ],
)
def test_a_completed_recurring_task_is_the_whole_series_done(done):
    """RFC 5545: the master's properties are the series'. Completed, it no longer recurs in Exchange,
    and the client gets back what it wrote (its RRULE too)."""
    body = vtodo("SUMMARY:x", "DTSTART;VALUE=DATE:20261207", "RRULE:FREQ=WEEKLY;COUNT=3", *done)
    parsed = from_vtodo(body)
    assert parsed.task.status == "Completed" and parsed.task.recurrence is None
    shown = todo_of(to_vtodo(parsed.task, parsed.residual))
    assert shown["RRULE"]["COUNT"] == [3]
    for line in done:
        assert line in to_vtodo(parsed.task, parsed.residual)


@pytest.mark.parametrize("status", ["NEEDS-ACTION", "IN-PROCESS", "CANCELLED"])
def test_a_recurring_task_not_completed_keeps_recurring(status):
    body = vtodo("SUMMARY:x", "DTSTART;VALUE=DATE:20261207", "RRULE:FREQ=WEEKLY;COUNT=3", f"STATUS:{status}")
    task = from_vtodo(body).task
    assert task.status != "Completed" and task.recurrence.boundary.number == 3


def test_a_series_completed_as_a_whole_and_reopened_in_outlook_is_shown_without_its_rule():
    """Exchange holds the task without recurrence once the series is done: reopened in Outlook, it is
    one pending task, and the client's RRULE (all done) no longer describes it."""
    body = vtodo("SUMMARY:x", "DTSTART;VALUE=DATE:20261207", "RRULE:FREQ=WEEKLY;COUNT=3", "STATUS:COMPLETED")
    parsed = from_vtodo(body)
    parsed.task.status, parsed.task.percent_complete = "NotStarted", 0
    shown = todo_of(to_vtodo(parsed.task, parsed.residual))
    assert "RRULE" not in shown and str(shown["STATUS"]) == "NEEDS-ACTION"
