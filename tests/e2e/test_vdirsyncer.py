"""vdirsyncer end to end: a local .ics folder kept in sync with Exchange through the gateway.

vdirsyncer runs as a process (as a khal user runs it) against the demo gateway in front of
the EWS emulator; Exchange's side is read and edited with exchangelib, as Outlook would.
"""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import pytest
import requests
from caldav.elements.ical import CalendarColor
from exchangelib import CalendarItem, EWSDateTime
from icalendar import Calendar

from tests.e2e.test_read_path import dav_client, delta, exchange_account
from tests.support.vdirsyncer import VDIRSYNCER, RecordingProxy, Vdirsyncer, read_ics

pytestmark = pytest.mark.skipif(
    VDIRSYNCER is None, reason="vdirsyncer is not installed (pip install -e '.[test]')"
)


def parsed(source: str | Path) -> Calendar:
    return Calendar.from_ical(read_ics(source) if isinstance(source, Path) else source)


def summary_of(source: str | Path) -> str:
    """The SUMMARY of the master VEVENT (the one without RECURRENCE-ID) of a text or local file."""
    masters = [c for c in parsed(source).walk("VEVENT") if "RECURRENCE-ID" not in c]
    return str(masters[0].get("SUMMARY"))


def uid_of(source: str | Path) -> str:
    calendar = parsed(source)
    return str((calendar.walk("VEVENT") or calendar.walk("VTODO"))[0]["UID"])


def _as_list(value: object) -> list:
    """iCalendar gives one EXDATE property alone and several as a list."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def edit(path: Path, old: str, new: str) -> None:
    """Edit a local file as a user's editor would (the CRLFs kept)."""
    text = read_ics(path)
    assert old in text
    path.write_bytes(text.replace(old, new).encode("utf-8"))


def local_file(sync: Vdirsyncer, summary: str) -> Path:
    """The one local file holding the event titled ``summary``."""
    (found,) = [p for p in sync.folders()[0].glob("*.ics") if summary_of(p) == summary]
    return found


def snapshot(folder: Path) -> dict[str, tuple[int, str]]:
    """``{file name: (mtime_ns, text)}``: what a later sync may or may not have touched."""
    return {p.name: (p.stat().st_mtime_ns, read_ics(p)) for p in folder.glob("*.ics")}


def exchange_item(emulator, uid: str):
    """The item with this UID in alice's Exchange calendar, or None."""
    return next((i for i in exchange_account(emulator).calendar.all() if i.uid == uid), None)


def outlook_rename(emulator, uid: str, subject: str) -> None:
    """Change an event's subject straight in Exchange, as Outlook does."""
    item = exchange_item(emulator, uid)
    item.subject = subject
    item.save(update_fields=["subject"])


def primary_calendar_id(stack) -> str:
    return str(dav_client(stack).principal().calendars()[0].url).rstrip("/").rsplit("/", 1)[-1]


def two_way(stack, tmp_path: Path, url: str | None = None, **options) -> Vdirsyncer:
    """vdirsyncer on alice's primary calendar only, discovered and synced once."""
    sync = Vdirsyncer(
        tmp_path / "vdirsyncer",
        url=url or stack.dav_url,
        username="alice",
        password=stack.password,
        collections=[primary_calendar_id(stack)],
        **options,
    )
    sync.discover()
    sync.sync()
    return sync


# --- issue 4: Exchange → local folder ------------------------------------------------------------


def test_sync_mirrors_every_calendar_into_local_files_as_the_server_serves_them(stack, tmp_path):
    sync = Vdirsyncer(tmp_path / "vdirsyncer", url=stack.dav_url, username="alice", password=stack.password)
    sync.discover()
    sync.sync()

    calendars = dav_client(stack).principal().calendars()
    assert len(sync.folders()) == len(calendars) == 4  # Calendar, Projects; the task lists Tasks, Errands
    for calendar in calendars:
        folder = sync.local / str(calendar.url).rstrip("/").rsplit("/", 1)[-1]
        served = {}
        for resource in calendar.objects(load_objects=False):
            answer = requests.get(str(resource.url), auth=("alice", stack.password))
            assert answer.status_code == 200
            served[uid_of(answer.text)] = answer.text
        local = {uid_of(text): text for text in sync.files(folder).values()}
        assert served and local == served  # one file per resource, byte for byte what GET returns
    assert "Alice: focus time" in {
        summary_of(t) for t in sync.files(sync.local / primary_calendar_id(stack)).values()
    }


def test_an_outlook_edit_reaches_exactly_one_local_file(stack, emulator, tmp_path):
    sync = two_way(stack, tmp_path)
    folder = sync.folders()[0]
    before = snapshot(folder)
    calls = stack.ews_calls()
    quiet = sync.sync()  # nothing changed anywhere: nothing is copied, nothing touched, nothing fetched
    assert "Copying" not in quiet.output and snapshot(folder) == before
    cost = delta(calls, stack.ews_calls())
    assert set(cost) == {"SyncFolderItems"} and cost["SyncFolderItems"] <= 2, cost

    target = local_file(sync, "Old planning meeting")
    outlook_rename(emulator, uid_of(target), "Old planning meeting (moved to Q1)")
    sync.sync()

    after = snapshot(folder)
    assert after.keys() == before.keys()
    changed = [name for name in after if after[name] != before[name]]
    assert changed == [target.name]
    assert summary_of(target) == "Old planning meeting (moved to Q1)"


def test_a_windowed_sync_brings_exactly_the_events_exchange_has_in_that_window(stack, emulator, tmp_path):
    """start_date/end_date make vdirsyncer list with calendar-query time-ranges (VEVENT and VTODO)."""
    today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
    start, end = today - dt.timedelta(days=7), today + dt.timedelta(days=4)
    sync = Vdirsyncer(
        tmp_path / "vdirsyncer",
        url=stack.base_url,
        username="alice",
        password=stack.password,
        collections=[primary_calendar_id(stack)],
        remote_options={
            "start_date": f"datetime({start:%Y, %m, %d})",
            "end_date": f"datetime({end:%Y, %m, %d})",
        },
    )
    sync.discover()
    sync.sync()

    window = exchange_account(emulator).calendar.view(
        start=EWSDateTime.from_datetime(start.replace(tzinfo=dt.UTC)),
        end=EWSDateTime.from_datetime(end.replace(tzinfo=dt.UTC)),
    )
    expected = {item.uid for item in window.only("uid")}
    local = {uid_of(text) for text in sync.files().values()}
    assert local == expected and len(local) >= 5
    assert "Old planning meeting" not in {summary_of(text) for text in sync.files().values()}


def test_outlook_series_changes_and_new_events_arrive_as_such(stack, emulator, tmp_path):
    sync = two_way(stack, tmp_path)
    folder = sync.folders()[0]
    before = snapshot(folder)
    series = local_file(sync, "Alice weekly 1:1")
    master = exchange_item(emulator, uid_of(series))
    changed, cancelled = master.occurrence(3), master.occurrence(4)
    changed.refresh()
    cancelled.refresh()
    changed.subject = "Weekly 1:1 (Bob out)"
    changed.save(update_fields=["subject"])
    cancelled.delete()
    new = CalendarItem(
        folder=exchange_account(emulator).calendar,
        subject="Booked in Outlook",
        start=master.start + dt.timedelta(days=60),
        end=master.end + dt.timedelta(days=60),
    )
    new.save()
    sync.sync()

    after = snapshot(folder)
    assert [name for name in before if after.get(name) != before[name]] == [series.name]
    (added,) = set(after) - set(before)
    assert summary_of(read_ics(folder / added)) == "Booked in Outlook"
    events = parsed(series).walk("VEVENT")
    overrides = {e.decoded("RECURRENCE-ID"): str(e["SUMMARY"]) for e in events if "RECURRENCE-ID" in e}
    assert overrides.get(changed.start) == "Weekly 1:1 (Bob out)"
    (master_event,) = [e for e in events if "RECURRENCE-ID" not in e]
    exdates = {d.dt for exdate in _as_list(master_event.get("EXDATE")) for d in exdate.dts}
    assert cancelled.start in exdates


def settle(sync) -> None:
    """After a push, one sync may fetch Exchange's rendering of the pushed items (PUT answers carry no
    ETag, RFC 4791 §5.3.4); the sync after that must be quiet."""
    sync.sync()
    assert "Copying" not in sync.sync().output


# --- issue 5: two-way sync ---------------------------------------------------------------------


def test_a_local_edit_is_pushed_to_exchange_with_if_match(stack, emulator, tmp_path):
    with RecordingProxy(stack.base_url) as proxy:
        sync = two_way(stack, tmp_path, url=proxy.base_url + "/dav/")
        target = local_file(sync, "Alice: focus time")
        uid = uid_of(target)
        edit(target, "SUMMARY:Alice: focus time", "SUMMARY:Deep work (no meetings)")
        sync.sync()
        assert exchange_item(emulator, uid).subject == "Deep work (no meetings)"
        (push,) = proxy.writes()
        assert push.method == "PUT" and push.status in (200, 204) and push.if_match
        settle(sync)
    assert summary_of(target) == "Deep work (no meetings)"


def test_a_gateway_restart_between_syncs_changes_nothing_for_the_client(stack, emulator, tmp_path):
    """ETags and hrefs survive a restart: no re-download, and a local edit is not mistaken for a conflict."""
    with RecordingProxy(stack.base_url) as proxy:  # the public address stays while the gateway restarts
        sync = two_way(stack, tmp_path, url=proxy.base_url + "/dav/")
        folder = sync.folders()[0]
        before = snapshot(folder)
        stack.restart()
        proxy.retarget(stack.base_url)
        target = local_file(sync, "Doctor")
        edit(target, "SUMMARY:Doctor", "SUMMARY:Physio")
        pushed = sync.sync()
    assert pushed.output.count("Copying") == 1 and "to gateway" in pushed.output
    assert exchange_item(emulator, uid_of(target)).subject == "Physio"
    after = snapshot(folder)
    assert [name for name in before if after[name] != before[name]] == [target.name]


def test_local_and_outlook_edits_of_different_events_meet_in_one_sync(stack, emulator, tmp_path):
    sync = two_way(stack, tmp_path)
    mine, theirs = local_file(sync, "Doctor"), local_file(sync, "Maybe: vendor demo")
    edit(mine, "SUMMARY:Doctor", "SUMMARY:Dentist")
    outlook_rename(emulator, uid_of(theirs), "Vendor demo (confirmed)")
    sync.sync()
    assert exchange_item(emulator, uid_of(mine)).subject == "Dentist"
    assert summary_of(theirs) == "Vendor demo (confirmed)"
    assert exchange_item(emulator, uid_of(theirs)).subject == "Vendor demo (confirmed)"


def test_a_new_local_file_becomes_an_exchange_event_with_its_uid(stack, emulator, tmp_path):
    with RecordingProxy(stack.base_url) as proxy:
        sync = two_way(stack, tmp_path, url=proxy.base_url + "/dav/")
        uid = f"{uuid.uuid4()}@laptop.example"
        (sync.folders()[0] / f"{uid}.ics").write_text(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//khal//EN\r\nBEGIN:VEVENT\r\n"
            f"UID:{uid}\r\nDTSTAMP:20261120T100000Z\r\nDTSTART;TZID=Europe/Berlin:20261127T150000\r\n"
            "DTEND;TZID=Europe/Berlin:20261127T160000\r\nSUMMARY:Written in khal\r\nLOCATION:Café\r\n"
            "END:VEVENT\r\nEND:VCALENDAR\r\n"
        )
        sync.sync()
        (create,) = proxy.writes()
        assert (create.method, create.if_none_match, create.status) == ("PUT", "*", 201)
        settle(sync)
    item = exchange_item(emulator, uid)
    assert (item.subject, item.location) == ("Written in khal", "Café")
    served = requests.get(stack.base_url + create.path, auth=("alice", stack.password))
    assert served.status_code == 200 and uid_of(served.text) == uid


def test_deletions_travel_both_ways(stack, emulator, tmp_path):
    with RecordingProxy(stack.base_url) as proxy:
        sync = two_way(stack, tmp_path, url=proxy.base_url + "/dav/")
        gone_locally = local_file(sync, "Vacation")
        gone_in_outlook = local_file(sync, "Public holiday")
        local_uid, outlook_uid = uid_of(gone_locally), uid_of(gone_in_outlook)
        kept = len(sync.files()) - 2
        gone_locally.unlink()
        exchange_item(emulator, outlook_uid).delete()
        sync.sync()
        (delete,) = proxy.writes()
        assert delete.method == "DELETE" and delete.if_match and delete.status == 204
    assert exchange_item(emulator, local_uid) is None
    assert not gone_in_outlook.exists()
    assert len(sync.files()) == kept
    assert exchange_item(emulator, uid_of(local_file(sync, "Doctor"))) is not None


def test_local_changes_exchange_cannot_hold_are_refused_loudly_and_the_rest_goes_through(
    stack, emulator, tmp_path
):
    sync = two_way(stack, tmp_path)
    hourly, fine = local_file(sync, "Doctor"), local_file(sync, "Vacation")
    edit(hourly, "SUMMARY:Doctor\r\n", "SUMMARY:Doctor\r\nRRULE:FREQ=HOURLY;COUNT=3\r\n")
    edit(fine, "SUMMARY:Vacation", "SUMMARY:Holidays")
    (sync.folders()[0] / "todo.ics").write_text(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//khal//EN\r\nBEGIN:VTODO\r\nUID:todo-1\r\n"
        "SUMMARY:Buy milk\r\nEND:VTODO\r\nEND:VCALENDAR\r\n"
    )
    refused = sync.sync(check=False)
    errors = [line for line in refused.output.splitlines() if line.startswith("error:") and "403" in line]
    assert not refused.ok and len(errors) == 2, refused.output
    assert hourly.name.removesuffix(".ics") in refused.output and "todo-1" in refused.output
    assert exchange_item(emulator, uid_of(fine)).subject == "Holidays"
    doctor = exchange_item(emulator, uid_of(hourly))
    assert (doctor.subject, doctor.recurrence) == ("Doctor", None)
    assert exchange_item(emulator, "todo-1") is None


def test_edits_on_both_sides_are_a_conflict_until_resolved(stack, emulator, tmp_path):
    sync = two_way(stack, tmp_path)
    target = local_file(sync, "Old planning meeting")
    uid = uid_of(target)
    edit(target, "SUMMARY:Old planning meeting", "SUMMARY:Retro (laptop)")
    outlook_rename(emulator, uid, "Retro (Outlook)")

    refused = sync.sync(check=False)  # no conflict_resolution: vdirsyncer stops at the conflict
    assert not refused.ok and "conflict" in refused.output.lower()
    assert exchange_item(emulator, uid).subject == "Retro (Outlook)"
    assert summary_of(target) == "Retro (laptop)"

    sync.conflict_resolution = "a wins"
    sync.write_config()
    sync.sync()
    assert exchange_item(emulator, uid).subject == "Retro (laptop)"
    settle(sync)


def test_an_outlook_edit_during_the_sync_is_not_overwritten(stack, emulator, tmp_path):
    """vdirsyncer listed the old ETag, then Outlook saved: the PUT with that ETag must not win (412)."""
    racing: list[str] = []

    def outlook_saves_first(method: str, path: str) -> None:
        if method == "PUT" and racing:
            outlook_rename(emulator, racing.pop(), "Renamed in Outlook mid-sync")

    with RecordingProxy(stack.base_url, before=outlook_saves_first) as proxy:
        sync = two_way(stack, tmp_path, url=proxy.base_url + "/dav/")
        target = local_file(sync, "Alice: focus time")
        uid = uid_of(target)
        edit(target, "SUMMARY:Alice: focus time", "SUMMARY:Renamed on the laptop")
        racing.append(uid)

        failed = sync.sync(check=False)
        assert not failed.ok
        assert [r.status for r in proxy.writes()] == [412]
        assert exchange_item(emulator, uid).subject == "Renamed in Outlook mid-sync"
        assert summary_of(target) == "Renamed on the laptop"  # the local edit is kept, too

        # the next sync sees both edits as the conflict they are; "b wins" takes Outlook's
        assert "conflict" in sync.sync(check=False).output.lower()
        sync.conflict_resolution = "b wins"
        sync.write_config()
        sync.sync()
    assert summary_of(target) == "Renamed in Outlook mid-sync"
    assert exchange_item(emulator, uid).subject == "Renamed in Outlook mid-sync"


def test_a_new_local_calendar_becomes_an_exchange_calendar_with_its_name_and_events(
    stack, emulator, tmp_path
):
    sync = Vdirsyncer(
        tmp_path / "vdirsyncer",
        url=stack.dav_url,
        username="alice",
        password=stack.password,
        collections=["from a", "from b"],
        conflict_resolution="a wins",
        pair_options={"metadata": ["displayname", "color"]},
    )
    trips = sync.local / "trips"
    trips.mkdir()
    uid = f"{uuid.uuid4()}"
    (trips / "flight.ics").write_text(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//khal//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20261120T100000Z\r\nDTSTART;VALUE=DATE:20261204\r\nDTEND;VALUE=DATE:20261206\r\n"
        "SUMMARY:Lisbon\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    (trips / "displayname").write_text("Trips")
    (trips / "color").write_text("#FF8800")
    sync.discover()
    sync.sync()
    sync.metasync()

    folder = next(f for f in exchange_account(emulator).calendar.children if f.name == "Trips")
    (item,) = list(folder.all())
    assert (item.uid, item.subject, item.is_all_day) == (uid, "Lisbon", True)
    remote = {str(c.url).rstrip("/").rsplit("/", 1)[-1]: c for c in dav_client(stack).principal().calendars()}
    assert remote["trips"].get_display_name() == "Trips"
    color = remote["trips"].get_properties([CalendarColor()])[CalendarColor.tag]
    assert color.upper().startswith("#FF8800")
    settle(sync)
