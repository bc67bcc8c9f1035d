"""The emulator's calendar store as real exchangelib sees it (over HTTP, Basic auth, Exchange 2016).

The ``emulator`` fixture (tests/conftest.py) validates every SOAP message against the EWS schema.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
import requests
from exchangelib import (
    BASIC,
    DELEGATE,
    Account,
    Attendee,
    CalendarItem,
    Configuration,
    Credentials,
    EWSDateTime,
    EWSTimeZone,
    ExtendedProperty,
    Mailbox,
)
from exchangelib.errors import (
    ErrorAccessDenied,
    ErrorDeleteDistinguishedFolder,
    ErrorInvalidSyncStateData,
    ErrorIrresolvableConflict,
    ErrorItemNotFound,
    ErrorOccurrenceCrossingBoundary,
)
from exchangelib.folders import Calendar
from exchangelib.items import NEVER_OVERWRITE
from exchangelib.recurrence import (
    AbsoluteMonthlyPattern,
    AbsoluteYearlyPattern,
    DailyPattern,
    Recurrence,
    RelativeMonthlyPattern,
    RelativeYearlyPattern,
    WeeklyPattern,
)
from exchangelib.version import Build, Version
from lxml import etree

from tests.support.emulator import EmulatorServer

BERLIN = EWSTimeZone("Europe/Berlin")


class CalDavHref(ExtendedProperty):
    """The kind of named property the gateway stores with an item."""

    property_set_id = "c11ff724-aa03-4555-9952-8fa248a11c3e"
    property_name = "CalDavHref"
    property_type = "String"


@pytest.fixture
def account(emulator: EmulatorServer) -> Iterator[Account]:
    """Alice's account on the demo-seeded emulator (reset for this test)."""
    CalendarItem.register("caldav_href", CalDavHref)
    config = Configuration(
        service_endpoint=emulator.ews_url,
        credentials=Credentials("alice@example.com", "alice-pw"),
        auth_type=BASIC,
        version=Version(build=Build(15, 1, 2507, 6)),
    )
    yield Account(
        "alice@example.com", config=config, autodiscover=False, access_type=DELEGATE, default_timezone=BERLIN
    )
    CalendarItem.deregister("caldav_href")


def _dt(*args: int) -> EWSDateTime:
    return EWSDateTime(*args, tzinfo=BERLIN)


def _weekly_series(account: Account, **extra) -> CalendarItem:
    """Tuesdays 09:00 Berlin from 2026-03-10, six times: summer time starts on 2026-03-29."""
    item = CalendarItem(
        account=account,
        folder=account.calendar,
        subject="Weekly sync",
        start=_dt(2026, 3, 10, 9),
        end=_dt(2026, 3, 10, 10),
        uid="weekly-sync@test",
        recurrence=Recurrence(
            pattern=WeeklyPattern(interval=1, weekdays=["Tuesday"], first_day_of_week="Monday"),
            start=dt.date(2026, 3, 10),
            number=6,
        ),
        **extra,
    )
    item.save()
    return item


def test_calendars_include_the_primary_and_the_sub_calendar(account: Account) -> None:
    assert account.calendar.name == "Calendar"
    children = list(account.calendar.children)
    assert [c.name for c in children] == ["Projects"]
    assert isinstance(children[0], Calendar)
    assert children[0].total_count == 2


def test_demo_series_shows_moved_occurrence_and_hides_cancelled_one(account: Account) -> None:
    start = EWSDateTime.now(BERLIN).replace(hour=0, minute=0, second=0, microsecond=0)
    items = list(account.calendar.view(start=start, end=start + dt.timedelta(days=14)))
    series = [i for i in items if i.subject.startswith("Alice weekly 1:1")]
    # Two Tuesdays fall in [tomorrow, tomorrow + 13 days]: one moved to 14:00, the other cancelled.
    moved = [i for i in series if i.type == "Exception"]
    assert len(moved) == 1 and moved[0].start.astimezone(BERLIN).hour == 14
    assert all(i.type in ("Exception", "Occurrence") for i in series)
    dates = {i.start.astimezone(BERLIN).date() for i in series}
    assert moved[0].start.astimezone(BERLIN).date() + dt.timedelta(days=7) not in dates
    kinds = {i.legacy_free_busy_status for i in items}
    assert {"Busy", "Tentative", "OOF", "WorkingElsewhere"} <= kinds


def test_view_across_dst_with_moved_and_deleted_occurrences(account: Account) -> None:
    master = _weekly_series(account)
    moved = master.occurrence(index=2)
    moved.refresh()
    moved.start, moved.end = _dt(2026, 3, 18, 15), _dt(2026, 3, 18, 16)
    moved.save(update_fields=["start", "end"])
    via_occurrence = moved.recurring_master()  # RecurringMasterItemId
    via_occurrence.refresh()
    assert via_occurrence.id == master.id
    too_far = master.occurrence(index=3)
    too_far.refresh()
    too_far.start, too_far.end = _dt(2026, 3, 31, 9), _dt(2026, 3, 31, 10)  # the day of occurrence 4
    with pytest.raises(ErrorOccurrenceCrossingBoundary):
        too_far.save(update_fields=["start", "end"])
    gone = master.occurrence(index=4)
    gone.refresh()
    gone.delete()

    seen = list(account.calendar.view(start=_dt(2026, 3, 1), end=_dt(2026, 4, 30)))
    seen = [i for i in seen if i.uid == "weekly-sync@test"]
    local = [(i.start.astimezone(BERLIN).date().isoformat(), i.start.astimezone(BERLIN).hour) for i in seen]
    assert local == [
        ("2026-03-10", 9),
        ("2026-03-18", 15),
        ("2026-03-24", 9),
        ("2026-04-07", 9),
        ("2026-04-14", 9),
    ]
    # Across the DST change the UTC hour moves and the local hour does not.
    assert seen[0].start.astimezone(EWSTimeZone("UTC")).hour == 8
    assert seen[-1].start.astimezone(EWSTimeZone("UTC")).hour == 7

    fresh = account.calendar.get(id=master.id)
    fresh.subject = "Weekly sync (renamed)"
    fresh.save()  # a full save resends the unchanged Recurrence: the exceptions must survive
    fresh = account.calendar.get(id=master.id)
    assert fresh.type == "RecurringMaster"
    assert fresh.changekey != master.changekey  # changing an occurrence changes the master
    assert [o.start.astimezone(BERLIN).hour for o in fresh.modified_occurrences] == [15]
    assert [d.start.astimezone(BERLIN).date() for d in fresh.deleted_occurrences] == [dt.date(2026, 3, 31)]


@pytest.mark.parametrize(
    "pattern",
    [
        DailyPattern(interval=3),
        WeeklyPattern(interval=2, weekdays=["Monday", "Thursday"], first_day_of_week="Monday"),
        AbsoluteMonthlyPattern(interval=1, day_of_month=31),
        RelativeMonthlyPattern(interval=2, weekday="Weekday", week_number="Last"),
        AbsoluteYearlyPattern(day_of_month=29, month="February"),
        RelativeYearlyPattern(weekday="Sunday", week_number="First", month="November"),
    ],
    ids=lambda p: type(p).__name__,
)
def test_create_every_pattern_round_trips(account: Account, pattern) -> None:
    item = CalendarItem(
        account=account,
        folder=account.calendar,
        subject="Series",
        start=_dt(2026, 1, 5, 8),
        end=_dt(2026, 1, 5, 9),
        uid=f"{type(pattern).__name__}@test",
        recurrence=Recurrence(pattern=pattern, start=dt.date(2026, 1, 5), number=4),
    )
    item.save()
    back = account.calendar.get(id=item.id)
    assert back.uid == item.uid
    assert back.recurrence.pattern == pattern
    assert back.recurrence.boundary.number == 4
    assert back.recurrence.boundary.start == dt.date(2026, 1, 5)  # a date, not a datetime
    occurrences = [
        i for i in account.calendar.view(start=_dt(2026, 1, 1), end=_dt(2032, 1, 1)) if i.uid == item.uid
    ]
    assert len(occurrences) == 4
    assert occurrences[0].start == back.start  # the master starts on its first occurrence


def test_meeting_with_attendees_and_extended_property(account: Account, emulator: EmulatorServer) -> None:
    item = CalendarItem(
        account=account,
        folder=account.calendar,
        subject="Budget",
        start=_dt(2026, 5, 4, 10),
        end=_dt(2026, 5, 4, 11),
        uid="budget@test",
        caldav_href="budget.ics",
        location="Room 1",
        required_attendees=[
            Attendee(mailbox=Mailbox(email_address="bob@example.com"), response_type="Unknown")
        ],
        resources=[Attendee(mailbox=Mailbox(email_address="room-1@example.com"), response_type="Unknown")],
    )
    item.save(send_meeting_invitations="SendToAllAndSaveCopy")
    back = account.calendar.get(id=item.id)
    assert back.caldav_href == "budget.ics"
    assert back.is_meeting and back.organizer.email_address == "alice@example.com"
    assert [a.mailbox.email_address for a in back.required_attendees] == ["bob@example.com"]
    assert back._start_timezone.key == "Europe/Berlin"
    sent = emulator.state.store.stats()["alice@example.com"]["sent"]
    assert sent == [
        {
            "kind": "Invitation",
            "recipients": ["bob@example.com", "room-1@example.com"],
            "subject": "Budget",
            "uid": "budget@test",
        }
    ]


def test_a_large_string_extended_property_is_stored_and_returned_exactly(account: Account) -> None:
    """The gateway keeps up to 64 KB of a client's iCalendar in one named string property
    (gateway.ews.mapping.residual): every character, line break and markup character comes back,
    after CreateItem and after UpdateItem, and every message stays schema-valid (the fixture)."""
    lines = [f'X-LINE-{n};X-P="a;b:c":Grüße <&> \\, caf\u00e9 \U0001f600 {"z" * 40}' for n in range(700)]
    text = "BEGIN:VCALENDAR\n" + "\r\n".join(lines) + "\nEND:VCALENDAR"
    assert 60_000 < len(text.encode("utf-8")) <= 64 * 1024
    item = CalendarItem(
        account=account,
        folder=account.calendar,
        subject="Kept",
        start=_dt(2026, 5, 4, 10),
        end=_dt(2026, 5, 4, 11),
        caldav_href=text,
    )
    item.save()
    assert account.calendar.get(id=item.id).caldav_href == text
    changed = text.replace("Grüße", "Tschüss")
    item.caldav_href = changed
    item.save(update_fields=["caldav_href"])
    assert account.calendar.get(id=item.id).caldav_href == changed
    item.caldav_href = None
    item.save(update_fields=["caldav_href"])  # exchangelib deletes an emptied field (DeleteItemField)
    assert account.calendar.get(id=item.id).caldav_href is None


def test_update_and_stale_change_key_conflict(account: Account) -> None:
    item = CalendarItem(
        account=account,
        folder=account.calendar,
        subject="Draft",
        start=_dt(2026, 6, 1, 9),
        end=_dt(2026, 6, 1, 10),
    )
    item.save()
    stale = account.calendar.get(id=item.id)
    item.subject = "Final"
    item.save(update_fields=["subject"])
    assert account.calendar.get(id=item.id).subject == "Final"
    assert item.changekey != stale.changekey
    stale.subject = "Lost update"
    with pytest.raises(ErrorIrresolvableConflict):
        stale.save(update_fields=["subject"], conflict_resolution=NEVER_OVERWRITE)
    assert account.calendar.get(id=item.id).subject == "Final"


def test_delete_item_then_it_is_gone(account: Account) -> None:
    item = CalendarItem(
        account=account,
        folder=account.calendar,
        subject="Temp",
        start=_dt(2026, 6, 2, 9),
        end=_dt(2026, 6, 2, 10),
    )
    item.save()
    item_id = item.id
    item.delete()
    with pytest.raises(ErrorItemNotFound):
        account.calendar.get(id=item_id)


def test_sync_items_initial_then_delta(account: Account) -> None:
    folder = account.calendar
    initial = list(folder.sync_items())
    assert initial and all(kind == "create" for kind, _ in initial)
    state = folder.item_sync_state
    assert list(folder.sync_items(sync_state=state)) == []

    created = CalendarItem(
        account=account, folder=folder, subject="New", start=_dt(2026, 7, 1, 9), end=_dt(2026, 7, 1, 10)
    )
    created.save()
    victim_id = initial[0][1].id
    changed = folder.get(id=initial[1][1].id)
    changed.subject = "Changed"
    changed.save(update_fields=["subject"])
    folder.get(id=victim_id).delete()

    delta = list(folder.sync_items(sync_state=state))
    kinds = {(kind, getattr(obj, "id", None)) for kind, obj in delta}
    assert (
        ("create", created.id) in kinds and ("update", changed.id) in kinds and ("delete", victim_id) in kinds
    )
    assert len(delta) == 3


def test_sync_items_ignores_listed_items(account: Account) -> None:
    folder = account.calendar
    list(folder.sync_items())
    state = folder.item_sync_state
    mine = CalendarItem(
        account=account, folder=folder, subject="Mine", start=_dt(2026, 7, 2, 9), end=_dt(2026, 7, 2, 10)
    )
    mine.save()
    other = CalendarItem(
        account=account, folder=folder, subject="Other", start=_dt(2026, 7, 2, 9), end=_dt(2026, 7, 2, 10)
    )
    other.save()
    delta = list(folder.sync_items(sync_state=state, ignore=[mine]))
    assert [(kind, item.id) for kind, item in delta] == [("create", other.id)]
    assert list(folder.sync_items(sync_state=folder.item_sync_state)) == []


def test_sync_items_pages_with_max_changes(account: Account, emulator: EmulatorServer) -> None:
    folder = account.calendar
    total = len(list(folder.sync_items()))
    folder.item_sync_state = None
    before = emulator.state.stats.operations["SyncFolderItems"]
    pages = list(folder.sync_items(max_changes_returned=3))
    assert len(pages) == total
    assert emulator.state.stats.operations["SyncFolderItems"] - before >= total // 3


def test_create_rename_delete_calendar_folder(account: Account) -> None:
    folder = Calendar(parent=account.calendar, name="Team")
    folder.save()
    folder.name = "Team events"
    folder.save(update_fields=["name"])
    account.root.refresh()
    assert "Team events" in [c.name for c in account.calendar.children]
    folder.delete()
    account.root.refresh()
    assert "Team events" not in [c.name for c in account.calendar.children]
    with pytest.raises(ErrorDeleteDistinguishedFolder):
        account.calendar.delete()


def test_paging_with_indexed_page_item_view(account: Account, emulator: EmulatorServer) -> None:
    everything = list(account.calendar.all().order_by("subject"))
    assert [i.subject for i in everything] == sorted(i.subject for i in everything)
    query = account.calendar.all().order_by("subject")
    query.page_size = 3
    before = emulator.state.stats.operations["FindItem"]
    paged = list(query)
    assert [i.id for i in paged] == [i.id for i in everything]
    assert emulator.state.stats.operations["FindItem"] - before >= len(everything) // 3


def test_restriction_on_extended_property(account: Account) -> None:
    for name in ("a.ics", "b.ics"):
        CalendarItem(
            account=account,
            folder=account.calendar,
            subject=name,
            start=_dt(2026, 8, 1, 9),
            end=_dt(2026, 8, 1, 10),
            caldav_href=name,
        ).save()
    found = list(account.calendar.filter(caldav_href="b.ics"))
    assert [i.subject for i in found] == ["b.ics"]


_FIND_BY_UID = """<?xml version="1.0" encoding="utf-8"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"
  xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"
  xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">
 <s:Header><t:RequestServerVersion Version="Exchange2016"/></s:Header>
 <s:Body><m:FindItem Traversal="Shallow">
  <m:ItemShape><t:BaseShape>IdOnly</t:BaseShape>
   <t:AdditionalProperties><t:FieldURI FieldURI="calendar:UID"/><t:FieldURI FieldURI="item:Subject"/>
   </t:AdditionalProperties></m:ItemShape>
  <m:IndexedPageItemView MaxEntriesReturned="10" Offset="0" BasePoint="Beginning"/>
  <m:Restriction><t:And>
   <t:IsEqualTo><t:FieldURI FieldURI="calendar:UID"/><t:FieldURIOrConstant><t:Constant Value="{uid}"/>
   </t:FieldURIOrConstant></t:IsEqualTo>
   <t:Not><t:Contains ContainmentMode="Substring" ContainmentComparison="IgnoreCase">
    <t:FieldURI FieldURI="item:Subject"/><t:Constant Value="NOPE"/></t:Contains></t:Not>
  </t:And></m:Restriction>
  <m:ParentFolderIds><t:DistinguishedFolderId Id="calendar"/></m:ParentFolderIds>
 </m:FindItem></s:Body></s:Envelope>"""


def test_restriction_on_uid_over_soap(account: Account, emulator: EmulatorServer) -> None:
    _weekly_series(account)
    response = requests.post(
        emulator.ews_url,
        data=_FIND_BY_UID.format(uid="weekly-sync@test").encode(),
        auth=("alice@example.com", "alice-pw"),
        timeout=10,
        headers={"Content-Type": "text/xml; charset=utf-8"},
    )
    root = etree.fromstring(response.content)
    t = "{http://schemas.microsoft.com/exchange/services/2006/types}"
    items = root.findall(f".//{t}CalendarItem")
    assert [i.findtext(f"{t}Subject") for i in items] == ["Weekly sync"]
    assert items[0].findtext(f"{t}UID") == "weekly-sync@test"


def _account_as(emulator: EmulatorServer, user: str, mailbox: str) -> Account:
    config = Configuration(
        service_endpoint=emulator.ews_url,
        credentials=Credentials(f"{user}@example.com", f"{user}-pw"),
        auth_type=BASIC,
        version=Version(build=Build(15, 1, 2507, 6)),
    )
    return Account(
        f"{mailbox}@example.com",
        config=config,
        autodiscover=False,
        access_type=DELEGATE,
        default_timezone=BERLIN,
    )


def test_delegate_reads_calendar_and_others_are_denied(account: Account, emulator: EmulatorServer) -> None:
    as_bob = _account_as(emulator, "bob", "alice")  # alice lists bob as a delegate in the demo seed
    assert as_bob.calendar.total_count == account.calendar.total_count
    assert as_bob.calendar.id == account.calendar.id
    as_carol = _account_as(emulator, "carol", "alice")
    with pytest.raises(ErrorAccessDenied):
        as_carol.calendar.refresh()


def test_full_save_clears_fields_and_all_day_round_trips(account: Account) -> None:
    item = CalendarItem(
        account=account,
        folder=account.calendar,
        subject="Offsite",
        start=dt.date(2026, 5, 2),
        end=dt.date(2026, 5, 3),
        is_all_day=True,
        location="Lake",
        body="Bring boots",
    )
    item.save()
    item.location = None  # a full save sends DeleteItemField for every empty field
    item.save()
    back = account.calendar.get(id=item.id)
    assert (back.start, back.end, back.is_all_day, back.location) == (
        dt.date(2026, 5, 2),
        dt.date(2026, 5, 3),
        True,
        None,
    )
    assert back.body == "Bring boots"


def test_get_many_ids_reports_missing_ones_individually(account: Account) -> None:
    item = _weekly_series(account)
    missing = item.id[:-12] + "AAAAAAAAAA=="
    got = list(account.fetch(ids=[(item.id, item.changekey), (missing, None)]))
    assert isinstance(got[0], CalendarItem) and got[0].uid == "weekly-sync@test"
    assert isinstance(got[1], ErrorItemNotFound)


def test_invalid_sync_state_is_refused(account: Account) -> None:
    with pytest.raises(ErrorInvalidSyncStateData):
        list(account.calendar.sync_items(sync_state="Zm9vYmFy"))


def test_deep_folder_walk_and_cancelling_an_occurrence_of_a_meeting(
    account: Account, emulator: EmulatorServer
) -> None:
    assert {"Calendar", "Projects"} <= {f.name for f in account.root.walk()}
    series = _weekly_series(
        account, required_attendees=[Attendee(mailbox=Mailbox(email_address="bob@example.com"))]
    )
    occurrence = series.occurrence(index=3)
    occurrence.refresh()
    occurrence.delete(send_meeting_cancellations="SendToAllAndSaveCopy")
    sent = emulator.state.store.stats()["alice@example.com"]["sent"]
    assert [m["kind"] for m in sent] == ["Cancellation"]
    assert len(account.calendar.get(id=series.id).deleted_occurrences) == 1


def test_invitations_reach_internal_attendees(account: Account, emulator: EmulatorServer) -> None:
    meeting = CalendarItem(
        account=account,
        folder=account.calendar,
        subject="Roadmap",
        start=_dt(2026, 10, 6, 10),
        end=_dt(2026, 10, 6, 11),
        uid="roadmap@test",
        required_attendees=[Attendee(mailbox=Mailbox(email_address="bob@example.com"))],
    )
    meeting.save(send_meeting_invitations="SendToAllAndSaveCopy")
    bob = _account_as(emulator, "bob", "bob")

    def bobs_copy() -> CalendarItem:
        (found,) = [
            i
            for i in bob.calendar.view(start=_dt(2026, 10, 1), end=_dt(2026, 10, 31))
            if i.uid == "roadmap@test"
        ]
        return found

    copy = bobs_copy()
    assert copy.id != meeting.id and copy.organizer.email_address == "alice@example.com"
    assert (copy.my_response_type, copy.legacy_free_busy_status) == ("NoResponseReceived", "Tentative")

    meeting.start, meeting.end = _dt(2026, 10, 6, 14), _dt(2026, 10, 6, 15)
    meeting.save(update_fields=["start", "end"], send_meeting_invitations="SendToAllAndSaveCopy")
    assert bobs_copy().start.astimezone(BERLIN).hour == 14

    bobs_copy().accept()
    assert (bobs_copy().my_response_type, bobs_copy().legacy_free_busy_status) == ("Accept", "Busy")
    (answer,) = account.calendar.get(id=meeting.id).required_attendees
    assert answer.response_type == "Accept"

    meeting.refresh()
    meeting.delete(send_meeting_cancellations="SendToAllAndSaveCopy")
    assert bobs_copy().is_cancelled
    busy = emulator.state.store.busy_events("bob@example.com", _dt(2026, 10, 6, 0), _dt(2026, 10, 7, 0))
    assert "Roadmap" not in [e.subject for e in busy]  # a cancelled meeting no longer blocks bob


def test_filters_on_dates_and_text(account: Account) -> None:
    for day, subject in ((3, "Alpha review"), (4, "Beta review"), (5, "Gamma planning")):
        CalendarItem(
            account=account,
            folder=account.calendar,
            subject=subject,
            start=_dt(2027, 2, day, 9),
            end=_dt(2027, 2, day, 10),
        ).save()
    window = account.calendar.filter(start__gte=_dt(2027, 2, 4), start__lt=_dt(2027, 2, 6))
    assert sorted(i.subject for i in window) == ["Beta review", "Gamma planning"]
    reviews = account.calendar.filter(subject__icontains="REVIEW", start__gte=_dt(2027, 1, 1))
    assert sorted(i.subject for i in reviews) == ["Alpha review", "Beta review"]
    assert account.calendar.filter(subject__startswith="Gamma").count() == 1
    assert not list(
        account.calendar.filter(subject="Alpha review")
        .exclude(start__lt=_dt(2027, 1, 1))
        .filter(subject__contains="Beta")
    )
