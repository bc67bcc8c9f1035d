"""Task lists end to end: python-caldav against the gateway, exchangelib straight at the emulator."""

from __future__ import annotations

import datetime as dt

import caldav
import pytest
import requests

from tests.e2e.test_read_path import dav_client, delta, exchange_account
from tests.support.vdirsyncer import VDIRSYNCER, Vdirsyncer, read_ics

ICS = {"Content-Type": "text/calendar; charset=utf-8"}


def todo(uid: str, *lines: str) -> str:
    body = "".join(f"{line}\r\n" for line in lines)
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//tests//EN\r\nBEGIN:VTODO\r\n"
        f"UID:{uid}\r\nDTSTAMP:20261120T100000Z\r\n{body}END:VTODO\r\nEND:VCALENDAR\r\n"
    )


def task_list(principal: caldav.Principal, name: str = "Tasks") -> caldav.Calendar:
    return next(c for c in principal.calendars() if c.get_display_name() == name)


def scratch(stack) -> caldav.Calendar:
    """A new, empty task list (a task folder under alice's Tasks, made with MKCALENDAR)."""
    return (
        dav_client(stack)
        .principal()
        .make_calendar(name="Scratch", supported_calendar_component_set=["VTODO"])
    )


def exchange_tasks(emulator, name: str = "Scratch") -> list:
    account = exchange_account(emulator)
    return list(next(f for f in account.tasks.children if f.name == name).all())


def test_task_folders_are_vtodo_collections_after_the_calendars(stack):
    calendars = dav_client(stack).principal().calendars()
    components = [tuple(c.get_supported_components()) for c in calendars]
    names = [c.get_display_name() for c in calendars]
    assert components == [("VEVENT",), ("VEVENT",), ("VTODO",), ("VTODO",)]
    assert names[2:] == ["Tasks", "Errands"]


def test_tasks_made_in_outlook_are_read(stack):
    todos = task_list(dav_client(stack).principal()).todos(include_completed=True)
    shown = {str(t.icalendar_component["SUMMARY"]): t for t in todos}
    expense = shown["Submit the expense report"].icalendar_component
    assert (str(expense["STATUS"]), int(expense["PERCENT-COMPLETE"]), int(expense["PRIORITY"])) == (
        "IN-PROCESS",
        50,
        1,
    )
    assert expense.walk("VALARM") and "Receipts" in str(expense["DESCRIPTION"])
    assert shown["Water the office plants"].icalendar_component["RRULE"]["FREQ"] == ["WEEKLY"]
    backup = shown["Back up the laptop"].data
    assert "RRULE" not in backup and "X-CALDAV-GATEWAY-REGENERATES:FREQ=WEEKLY;INTERVAL=2" in backup
    done = shown["Book flights for the Berlin conference"].icalendar_component
    assert str(done["STATUS"]) == "COMPLETED" and "COMPLETED" in done


def test_python_caldav_saves_reads_modifies_completes_and_deletes_a_task(stack, emulator):
    tasks = scratch(stack)
    saved = tasks.save_todo(
        todo("milk-1", "SUMMARY:Buy milk", "DUE;VALUE=DATE:20261212", "PRIORITY:1", "CATEGORIES:Home")
    )
    [task] = [t for t in exchange_tasks(emulator) if t.subject == "Buy milk"]
    assert (task.due_date, task.importance, task.categories) == (dt.date(2026, 12, 12), "High", ["Home"])
    [found] = [t for t in tasks.todos() if "milk-1" in t.data]
    assert "DUE;VALUE=DATE:20261212" in found.data and "PRIORITY:1" in found.data
    found.icalendar_component["SUMMARY"] = "Buy oat milk"
    found.save()
    assert [t.subject for t in exchange_tasks(emulator)] == ["Buy oat milk"]
    found.load()
    found.complete()
    [task] = exchange_tasks(emulator)
    assert task.status == "Completed" and task.percent_complete == 100
    assert tasks.todos() == []  # completed tasks are left out by default
    [done] = tasks.todos(include_completed=True)
    assert "STATUS:COMPLETED" in done.data and "COMPLETED:" in done.data
    done.delete()
    assert exchange_tasks(emulator) == []
    del saved


def test_unmapped_properties_and_a_due_time_come_back(stack):
    tasks = scratch(stack)
    tasks.save_todo(
        todo(
            "rel-1",
            "SUMMARY:Child",
            "DUE:20261212T170000Z",
            "RELATED-TO;RELTYPE=PARENT:parent-1",
            "X-APPLE-SORT-ORDER:3",
            "STATUS:CANCELLED",
        )
    )
    [back] = tasks.todos(include_completed=True)
    for line in (
        "DUE:20261212T170000Z",
        "RELATED-TO;RELTYPE=PARENT:parent-1",
        "X-APPLE-SORT-ORDER:3",
        "STATUS:CANCELLED",
    ):
        assert line in back.data


def test_a_task_list_is_made_renamed_and_deleted(stack, emulator):
    principal = dav_client(stack).principal()
    chores = principal.make_calendar(name="Chores", supported_calendar_component_set=["VTODO"])
    account = exchange_account(emulator)
    folder = next(f for f in account.tasks.children if f.name == "Chores")
    assert folder.folder_class == "IPF.Task"
    chores.save_todo(todo("vac-1", "SUMMARY:Vacuum"))
    assert [t.subject for t in folder.all()] == ["Vacuum"]
    chores.set_properties([caldav.elements.dav.DisplayName("House")])
    assert [f.name for f in exchange_account(emulator).tasks.children] == ["Errands", "House"]
    chores.delete()
    assert [f.name for f in exchange_account(emulator).tasks.children] == ["Errands"]


def test_the_default_task_list_cannot_be_deleted_and_components_are_kept_apart(stack):
    tasks = task_list(dav_client(stack).principal())
    r = requests.delete(str(tasks.url), auth=("alice", stack.password))
    assert r.status_code == 403 and "Tasks folder" in r.text
    event = todo("e-1", "DTSTART:20261212T100000Z", "SUMMARY:x").replace("VTODO", "VEVENT")
    r = requests.put(str(tasks.url) + "e-1.ics", data=event, headers=ICS, auth=("alice", stack.password))
    assert r.status_code == 403 and "supported-calendar-component" in r.text


def test_a_month_view_of_a_task_list_is_one_find_item_and_one_get_item(stack):
    tasks = scratch(stack)
    for n in range(3):
        tasks.save_todo(todo(f"m-{n}", f"SUMMARY:T{n}", f"DUE;VALUE=DATE:2026121{n}"))
    tasks.todos()  # the index knows every task now
    before = stack.ews_calls()
    found = tasks.search(todo=True, start=dt.datetime(2026, 12, 1), end=dt.datetime(2027, 1, 1), expand=False)
    used = delta(before, stack.ews_calls())
    assert len(found) == 3
    assert used == {"FindItem": 1, "GetItem": 1}, used


def test_completing_a_recurring_task_completes_the_whole_series(stack, emulator):
    """RFC 5545: STATUS:COMPLETED on the recurring task itself is the series done (python-caldav's
    ``complete()``); one UpdateItem completes the task and ends its recurrence, Exchange keeps no copy."""
    tasks = scratch(stack)
    rule = "RRULE:FREQ=WEEKLY;COUNT=3"
    tasks.save_todo(
        todo("week-1", "SUMMARY:Water plants", "DTSTART;VALUE=DATE:20261207", "DUE;VALUE=DATE:20261207", rule)
    )
    [task] = tasks.todos()
    task.icalendar_component["STATUS"] = "COMPLETED"
    before = stack.ews_calls()
    task.save()
    used = delta(before, stack.ews_calls())
    assert used.get("UpdateItem") == 1 and "CreateItem" not in used, used
    assert tasks.todos() == []  # nothing of it pending
    [shown] = tasks.todos(include_completed=True)  # one resource, as the client wrote it
    assert str(shown.icalendar_component["UID"]) == "week-1" and rule in shown.data
    assert str(shown.icalendar_component["STATUS"]) == "COMPLETED"
    [stored] = exchange_tasks(emulator)  # no completed copy, no next occurrence
    assert stored.status == "Completed" and stored.recurrence is None and not stored.is_recurring
    assert stored.start_date == dt.date(2026, 12, 7)


def test_a_recurring_task_completed_in_outlook_moves_on_and_keeps_the_done_one(stack, emulator):
    """Outlook completes the current occurrence: Exchange keeps a completed copy and moves the recurring
    task on; a client sees both, and the copy is a resource of its own."""
    tasks = scratch(stack)
    tasks.save_todo(
        todo(
            "week-1", "SUMMARY:Water plants", "DTSTART;VALUE=DATE:20261207", "DUE;VALUE=DATE:20261207"
        ).replace("END:VTODO", "RRULE:FREQ=WEEKLY;COUNT=3\r\nEND:VTODO")
    )
    [stored] = exchange_tasks(emulator)
    stored.status = "Completed"
    stored.save(update_fields=["status"])
    assert len(exchange_tasks(emulator)) == 2
    shown = tasks.todos(include_completed=True)
    by_uid = {str(t.icalendar_component["UID"]): t for t in shown}
    assert "week-1" in by_uid and len(shown) == 2
    moved = by_uid["week-1"].icalendar_component
    assert (
        moved["DUE"].dt == dt.date(2026, 12, 14)
        and str(moved.get("STATUS", "NEEDS-ACTION")) == "NEEDS-ACTION"
    )
    [done] = [t for uid, t in by_uid.items() if uid != "week-1"]
    assert str(done.icalendar_component["STATUS"]) == "COMPLETED" and "RRULE" not in done.data
    # the completed occurrence is a resource of its own: edited, it keeps its name and UID
    done_uid = str(done.icalendar_component["UID"])
    done.icalendar_component["SUMMARY"] = "Watered the plants"
    done.save()
    again = {str(t.icalendar_component["UID"]): t for t in tasks.todos(include_completed=True)}
    assert set(again) == {"week-1", done_uid}
    assert str(again[done_uid].icalendar_component["SUMMARY"]) == "Watered the plants"
    assert str(again[done_uid].url) == str(done.url)


EXPAND = """<?xml version="1.0"?><C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
<D:prop><C:calendar-data><C:expand start="20261201T000000Z" end="20270101T000000Z"/></C:calendar-data></D:prop>
<C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VTODO">
<C:time-range start="20261201T000000Z" end="20270101T000000Z"/></C:comp-filter></C:comp-filter></C:filter>
</C:calendar-query>"""


def test_a_recurring_task_expands_and_a_sync_reports_changes(stack):
    tasks = scratch(stack)
    tasks.save_todo(todo("e-1", "SUMMARY:Report", "DTSTART;VALUE=DATE:20261207", "RRULE:FREQ=WEEKLY;COUNT=3"))
    r = requests.request(
        "REPORT", str(tasks.url), data=EXPAND, headers={"Depth": "1"}, auth=("alice", stack.password)
    )
    assert r.status_code == 207 and r.text.count("BEGIN:VTODO") == 3 and "RRULE" not in r.text
    first = tasks.objects_by_sync_token(load_objects=False)
    tasks.save_todo(todo("e-2", "SUMMARY:Another"))
    changed = tasks.objects_by_sync_token(sync_token=first.sync_token, load_objects=True)
    assert [str(o.icalendar_component["UID"]) for o in changed] == ["e-2"]


@pytest.mark.skipif(VDIRSYNCER is None, reason="vdirsyncer is not installed (pip install -e '.[test]')")
def test_vdirsyncer_syncs_a_task_list_both_ways(stack, emulator, tmp_path):
    errands = task_list(dav_client(stack).principal(), "Errands")
    segment = str(errands.url).rstrip("/").rsplit("/", 1)[-1]
    sync = Vdirsyncer(
        tmp_path / "vdirsyncer",
        url=stack.dav_url,
        username="alice",
        password=stack.password,
        collections=[segment],
    )
    sync.discover()
    sync.sync()
    folder = sync.folders()[0]
    local = {name: text for name, text in sync.files(folder).items()}
    [cleaning] = [name for name, text in local.items() if "SUMMARY:Pick up the dry cleaning" in text]
    path = folder / cleaning
    path.write_bytes(read_ics(path).replace("Pick up the dry cleaning", "Pick up the suit").encode())
    (folder / "stamps.ics").write_bytes(
        todo("stamps-1", "SUMMARY:Buy stamps", "DUE;VALUE=DATE:20261215").encode()
    )
    sync.sync()
    subjects = {t.subject: t for t in exchange_tasks(emulator, "Errands")}
    assert {"Pick up the suit", "Buy stamps", "Buy a birthday present"} == set(subjects)
    assert subjects["Buy stamps"].due_date == dt.date(2026, 12, 15)
    present = subjects["Buy a birthday present"]
    present.subject = "Buy a birthday card"  # changed in Outlook
    present.save(update_fields=["subject"])
    sync.sync()
    texts = sync.files(folder).values()
    assert any("SUMMARY:Buy a birthday card" in t for t in texts)
    assert any("UID:stamps-1" in t and "DUE;VALUE=DATE:20261215" in t for t in texts)


EVENTS_IN_DECEMBER = """<?xml version="1.0"?><C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
<D:prop><D:getetag/></D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">
<C:time-range start="20261201T000000Z" end="20270101T000000Z"/></C:comp-filter></C:comp-filter></C:filter>
</C:calendar-query>"""


def test_an_event_query_of_a_task_list_finds_no_task(stack):
    tasks = scratch(stack)
    tasks.save_todo(todo("d-1", "SUMMARY:Due in December", "DUE;VALUE=DATE:20261210"))
    r = requests.request(
        "REPORT",
        str(tasks.url),
        data=EVENTS_IN_DECEMBER,
        headers={"Depth": "1"},
        auth=("alice", stack.password),
    )
    assert r.status_code == 207 and "d-1" not in r.text and "<D:response>" not in r.text


CTAG = '<propfind xmlns="DAV:" xmlns:CS="http://calendarserver.org/ns/"><prop><CS:getctag/></prop></propfind>'


def test_an_unchanged_poll_of_a_task_list_is_one_sync_folder_items(stack):
    tasks = task_list(dav_client(stack).principal())
    first = tasks.objects_by_sync_token(load_objects=False)
    auth = ("alice", stack.password)
    before = stack.ews_calls()
    r = requests.request("PROPFIND", str(tasks.url), data=CTAG, headers={"Depth": "0"}, auth=auth)
    assert r.status_code == 207 and "getctag" in r.text
    assert delta(before, stack.ews_calls()) == {"SyncFolderItems": 1}
    before = stack.ews_calls()
    assert list(tasks.objects_by_sync_token(sync_token=first.sync_token, load_objects=False)) == []
    assert delta(before, stack.ews_calls()) == {"SyncFolderItems": 1}


def test_conditional_writes_of_a_task(stack, emulator):
    tasks = scratch(stack)
    url = str(tasks.url) + "cond.ics"
    auth = ("alice", stack.password)
    body = todo("cond-1", "SUMMARY:First")
    assert requests.put(url, data=body, headers={**ICS, "If-None-Match": "*"}, auth=auth).status_code == 201
    # the same body again (a retry whose answer was lost) is done already; another body is refused
    assert requests.put(url, data=body, headers={**ICS, "If-None-Match": "*"}, auth=auth).status_code in (
        201,
        204,
    )
    other = todo("cond-1", "SUMMARY:Second")
    assert requests.put(url, data=other, headers={**ICS, "If-None-Match": "*"}, auth=auth).status_code == 412
    etag = requests.get(url, auth=auth).headers["ETag"]
    stale = '"AAAAstale"'
    assert requests.put(url, data=other, headers={**ICS, "If-Match": stale}, auth=auth).status_code == 412
    assert requests.put(url, data=other, headers={**ICS, "If-Match": etag}, auth=auth).status_code == 204
    assert requests.delete(url, headers={"If-Match": etag}, auth=auth).status_code == 412
    fresh = requests.get(url, auth=auth).headers["ETag"]
    assert fresh != etag
    assert requests.delete(url, headers={"If-Match": fresh}, auth=auth).status_code == 204
    assert exchange_tasks(emulator) == []


def test_a_task_without_dates_is_found_in_any_time_range(stack):
    """RFC 4791 §9.9: a VTODO with no DTSTART, DUE, COMPLETED or CREATED overlaps every range (Exchange's
    creation time is not shown as CREATED, which would move it out of earlier ranges)."""
    tasks = scratch(stack)
    tasks.save_todo(todo("undated-1", "SUMMARY:Some day"))
    found = tasks.search(todo=True, start=dt.datetime(2001, 1, 1), end=dt.datetime(2001, 2, 1))
    assert [str(t.icalendar_component["UID"]) for t in found] == ["undated-1"]


def test_a_regenerating_task_edited_in_a_client_keeps_regenerating(stack, emulator):
    todos = task_list(dav_client(stack).principal()).todos(include_completed=True)
    [backup] = [t for t in todos if str(t.icalendar_component["SUMMARY"]) == "Back up the laptop"]
    backup.icalendar_component["SUMMARY"] = "Back up the laptop and the phone"
    backup.save()
    account = exchange_account(emulator)
    [task] = [t for t in account.tasks.all() if t.subject.startswith("Back up")]
    assert task.subject == "Back up the laptop and the phone"
    assert (
        type(task.recurrence.pattern).__name__ == "WeeklyRegeneration"
        and task.recurrence.pattern.interval == 2
    )
