"""Completing one occurrence of a recurring task inside the task (RECURRENCE-ID overrides), end to end.

python-caldav's ``complete(handle_rrule=True, rrule_mode="thisandfuture")`` (as other clients that keep
completed occurrences inside the task) stores the completed occurrence as a RECURRENCE-ID override with
STATUS:COMPLETED and the rest of the series as a ``RANGE=THISANDFUTURE`` override. Exchange gets the task
moved on to that current occurrence (docs/MAPPING.md, "Tasks").
"""

from __future__ import annotations

import datetime as dt

import pytest
import requests

from tests.e2e.test_tasks import ICS, exchange_tasks, scratch, todo

BINS = (
    "SUMMARY:Take out the bins",
    "DTSTART:20221017T065500Z",
    "DURATION:PT10M",
    "RRULE:FREQ=WEEKLY;BYDAY=MO;BYHOUR=6;BYMINUTE=55;COUNT=3",
)


def test_completing_occurrences_inside_the_task_moves_it_on_in_exchange(stack, emulator):
    tasks = scratch(stack)
    task = tasks.add_todo(todo("bins-1", *BINS))
    when = dt.datetime(2022, 10, 18, 12, 0, tzinfo=dt.UTC)

    task.complete(completion_timestamp=when, handle_rrule=True, rrule_mode="thisandfuture")
    [shown] = tasks.todos(include_completed=True)  # still one resource, and pending
    assert shown.data.count("BEGIN:VTODO") == 3 and "STATUS:COMPLETED" in shown.data
    assert len(tasks.todos()) == 1
    [stored] = exchange_tasks(emulator)
    assert stored.start_date == dt.date(2022, 10, 24) and stored.status == "NotStarted"
    assert stored.recurrence.boundary.number == 2  # two occurrences left

    task.complete(
        completion_timestamp=when + dt.timedelta(days=7), handle_rrule=True, rrule_mode="thisandfuture"
    )
    [stored] = exchange_tasks(emulator)
    assert stored.start_date == dt.date(2022, 10, 31) and stored.recurrence.boundary.number == 1
    assert len(tasks.todos()) == 1

    task.complete(
        completion_timestamp=when + dt.timedelta(days=14), handle_rrule=True, rrule_mode="thisandfuture"
    )
    assert tasks.todos() == []  # every occurrence done
    [stored] = exchange_tasks(emulator)
    assert stored.status == "Completed" and stored.recurrence is None
    [shown] = tasks.todos(include_completed=True)
    master, *instances = shown.icalendar_instance.walk("VTODO")  # the client's own, as it wrote them
    assert master["RRULE"]["COUNT"] == [3] and str(master["STATUS"]) == "COMPLETED"
    assert [str(i["STATUS"]) for i in instances] == ["COMPLETED"] * 3


@pytest.mark.parametrize(
    "override",
    [
        # a moved single occurrence: Exchange tasks have no exceptions
        "RECURRENCE-ID;VALUE=DATE:20261214\r\nDTSTART;VALUE=DATE:20261215\r\nSUMMARY:x",
        # a pending occurrence that is not where the series goes on
        "RECURRENCE-ID;VALUE=DATE:20261214\r\nSTATUS:NEEDS-ACTION\r\nSUMMARY:x",
        # a later occurrence completed while the current one (Dec 7) is not: Exchange completes in order
        "RECURRENCE-ID;VALUE=DATE:20261214\r\nSTATUS:COMPLETED\r\nSUMMARY:x",
    ],
)
def test_other_overrides_are_refused_with_a_sentence(stack, override):
    tasks = scratch(stack)
    body = todo("w-1", "SUMMARY:x", "DTSTART;VALUE=DATE:20261207", "RRULE:FREQ=WEEKLY").replace(
        "END:VCALENDAR", f"BEGIN:VTODO\r\nUID:w-1\r\n{override}\r\nEND:VTODO\r\nEND:VCALENDAR"
    )
    r = requests.put(f"{tasks.url}w-1.ics", data=body, headers=ICS, auth=("alice", stack.password))
    assert r.status_code == 403 and "valid-calendar-object-resource" in r.text
    assert "THISANDFUTURE" in r.text
    assert tasks.todos() == []  # nothing half-written


def test_a_completed_instance_of_the_current_occurrence_moves_the_task_to_the_next(stack, emulator):
    """A client that ticks one occurrence (an override with STATUS:COMPLETED, the master left as it was):
    Exchange's model, the task goes on at the rule's next occurrence; the resource stays as written."""
    tasks = scratch(stack)
    master = ("SUMMARY:Water plants", "DTSTART;VALUE=DATE:20261207", "DUE;VALUE=DATE:20261208")
    body = todo("wp-1", *master, "RRULE:FREQ=WEEKLY;COUNT=3").replace(
        "END:VCALENDAR",
        "BEGIN:VTODO\r\nUID:wp-1\r\nRECURRENCE-ID;VALUE=DATE:20261207\r\nDTSTART;VALUE=DATE:20261207\r\n"
        "DUE;VALUE=DATE:20261208\r\nSUMMARY:Water plants\r\nSTATUS:COMPLETED\r\nEND:VTODO\r\nEND:VCALENDAR",
    )
    r = requests.put(f"{tasks.url}wp-1.ics", data=body, headers=ICS, auth=("alice", stack.password))
    assert r.status_code == 201, r.text
    [stored] = exchange_tasks(emulator)
    assert (stored.start_date, stored.due_date) == (dt.date(2026, 12, 14), dt.date(2026, 12, 15))
    assert stored.status == "NotStarted" and stored.recurrence.boundary.number == 2
    [shown] = tasks.todos()
    assert shown.data.count("BEGIN:VTODO") == 2 and "DTSTART;VALUE=DATE:20261207" in shown.data

    # the last occurrence ticked: the task is done
    last = body.replace("RRULE:FREQ=WEEKLY;COUNT=3", "RRULE:FREQ=WEEKLY;COUNT=1")
    r = requests.put(f"{tasks.url}wp-1.ics", data=last, headers=ICS, auth=("alice", stack.password))
    assert r.status_code == 204, r.text
    [stored] = exchange_tasks(emulator)
    assert stored.status == "Completed" and stored.recurrence is None
    assert tasks.todos() == []
