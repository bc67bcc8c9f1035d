"""Unit tests of the calendar store, its XML serialisation and the seeds."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from lxml import etree

from gateway.ews.emulator.fields import CALENDAR_ITEM_FIELDS
from gateway.ews.emulator.generator import generate_mailboxes
from gateway.ews.emulator.items import Shape, apply_item, item_xml
from gateway.ews.emulator.model import StoreError
from gateway.ews.emulator.seed import demo_seed
from gateway.ews.emulator.soap import T_NS, M, T, success_message, wrap_response
from gateway.ews.emulator.store import CalendarStore
from tests.support.schema import schema_path

NOW = datetime(2026, 3, 23, 8, 0, tzinfo=UTC)  # a Monday, six days before the DST change in Europe
TODAY = NOW.date()


@pytest.fixture(scope="module")
def schema() -> etree.XMLSchema:
    if not schema_path().is_file():
        pytest.skip(f"EWS schema not found at {schema_path()} (set GATEWAY_SHARED_DIR)")
    return etree.XMLSchema(file=str(schema_path()))


@pytest.fixture
def store() -> CalendarStore:
    return CalendarStore.from_seed(demo_seed(TODAY), NOW)


def test_demo_seed_has_every_kind_of_event_in_the_next_14_days(store: CalendarStore) -> None:
    for email in ("alice@example.com", "bob@example.com"):
        events = store.busy_events(email, NOW, NOW + timedelta(days=14))
        assert {"Busy", "Tentative", "OOF", "WorkingElsewhere"} <= {e.busy_type for e in events}
        assert any(e.is_private for e in events)
        assert any(e.is_exception and e.subject.endswith("(moved)") for e in events)
        assert any(e.is_recurring and not e.is_exception for e in events)
        assert any(e.is_meeting for e in events)
        assert all(e.start.tzinfo is not None and e.end > e.start for e in events)
    for email in ("carol@example.com", "room-1@example.com"):
        assert store.busy_events(email, NOW, NOW + timedelta(days=14))


def test_meetings_are_copied_to_attendees_with_their_response(store: CalendarStore) -> None:
    room = store.mailbox("room-1@example.com")
    kickoff = [i for i in room.calendar.items.values() if i.subject == "Project kickoff"]
    assert len(kickoff) == 1
    assert kickoff[0].organizer is not None and kickoff[0].organizer.email == "alice@example.com"
    assert kickoff[0].my_response_type == "Accept"


def test_cancelled_occurrence_is_not_busy(store: CalendarStore) -> None:
    alice = store.mailbox("alice@example.com")
    series = next(i for i in alice.calendar.items.values() if i.subject == "Alice weekly 1:1")
    assert len(series.deleted) == 1 and len(series.exceptions) == 1
    (deleted_start,) = series.deleted.values()
    busy = store.busy_events(
        "alice@example.com", deleted_start - timedelta(hours=1), deleted_start + timedelta(hours=1)
    )
    assert not [e for e in busy if e.subject.startswith("Alice weekly")]


def test_occurrence_change_bumps_master_change_key(store: CalendarStore) -> None:
    alice = store.mailbox("alice@example.com")
    series = next(i for i in alice.calendar.items.values() if i.subject == "Team stand-up")
    before = series.change_key
    occ = alice.occurrence(series, 3)
    occ.subject = "Stand-up (special)"
    alice.commit_occurrence(occ, NOW)
    assert series.change_key != before and series.modified == NOW
    assert alice.get(occ.item_id).subject == "Stand-up (special)"
    with pytest.raises(StoreError) as info:
        alice.occurrence(series, 10_000)
    assert info.value.code == "ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange"


def test_ids_are_long_opaque_and_stable_across_rebuilds(store: CalendarStore) -> None:
    again = CalendarStore.from_seed(demo_seed(TODAY), NOW)
    ids = sorted(store.mailbox("alice@example.com").item_folder)
    assert ids == sorted(again.mailbox("alice@example.com").item_folder)
    assert all(len(i) >= 140 for i in ids)
    with pytest.raises(StoreError) as info:
        store.mailbox("alice@example.com").get("not base64!")
    assert info.value.code == "ErrorInvalidIdMalformed"


def test_distinguished_calendar_cannot_be_deleted(store: CalendarStore) -> None:
    alice = store.mailbox("alice@example.com")
    with pytest.raises(StoreError) as info:
        alice.delete_folder(alice.calendar.folder_id)
    assert info.value.code == "ErrorDeleteDistinguishedFolder"


def test_item_fields_are_declared_in_the_schema_sequence_order() -> None:
    """CALENDAR_ITEM_FIELDS is the order responses are written in: ItemType's then CalendarItemType's."""
    types = schema_path().with_name("types.xsd")
    if not types.is_file():
        pytest.skip(f"EWS schema not found at {types} (set GATEWAY_SHARED_DIR)")
    xs = "{http://www.w3.org/2001/XMLSchema}"
    tree = etree.parse(str(types))
    sequence: list[str] = []
    for type_name, prefix in (("ItemType", "item"), ("CalendarItemType", "calendar")):
        declared = tree.find(f"{xs}complexType[@name='{type_name}']")
        assert declared is not None
        names = [e.get("name") for e in declared.iter(f"{xs}element")]
        sequence += names
        for item_field in CALENDAR_ITEM_FIELDS:
            if item_field.name in names and item_field.uri:
                assert item_field.uri == f"{prefix}:{item_field.name}"
    positions = [sequence.index(f.name) for f in CALENDAR_ITEM_FIELDS]
    assert positions == sorted(positions)


_REQUEST_ITEM = f"""<t:CalendarItem xmlns:t="{T_NS}">
  <t:Subject>Quarterly</t:Subject><t:Body BodyType="HTML">&lt;p&gt;hi&lt;/p&gt;</t:Body>
  <t:Categories><t:String>Red</t:String></t:Categories>
  <t:ExtendedProperty><t:ExtendedFieldURI PropertySetId="C11FF724-AA03-4555-9952-8FA248A11C3E"
     PropertyName="Tags" PropertyType="StringArray"/><t:Values><t:Value>a</t:Value><t:Value>b</t:Value></t:Values>
  </t:ExtendedProperty>
  <t:UID>q@test</t:UID><t:Start>2026-01-15T10:00:00+01:00</t:Start><t:End>2026-01-15T11:00:00+01:00</t:End>
  <t:LegacyFreeBusyStatus>Tentative</t:LegacyFreeBusyStatus><t:Location>Room 2</t:Location>
  <t:RequiredAttendees><t:Attendee><t:Mailbox><t:Name>Bob</t:Name><t:EmailAddress>Bob@Example.com</t:EmailAddress>
  </t:Mailbox></t:Attendee></t:RequiredAttendees>
  <t:Recurrence><t:RelativeYearlyRecurrence><t:DaysOfWeek>Thursday</t:DaysOfWeek>
  <t:DayOfWeekIndex>Third</t:DayOfWeekIndex><t:Month>January</t:Month></t:RelativeYearlyRecurrence>
  <t:EndDateRecurrence><t:StartDate>2026-01-01</t:StartDate><t:EndDate>2030-12-31</t:EndDate></t:EndDateRecurrence>
  </t:Recurrence>
  <t:StartTimeZone Id="W. Europe Standard Time"/><t:EndTimeZone Id="W. Europe Standard Time"/>
</t:CalendarItem>"""


def test_full_item_serialises_in_schema_order(store: CalendarStore, schema: etree.XMLSchema) -> None:
    alice = store.mailbox("alice@example.com")
    item = alice.new_item(alice.calendar.folder_id, NOW)
    apply_item(item, etree.fromstring(_REQUEST_ITEM))
    alice.add_item(item)
    assert item.start == datetime(2026, 1, 15, 9, 0, tzinfo=UTC)  # third Thursday of January 2026
    occ = alice.occurrence(item, 2)
    occ.location = "Elsewhere"
    alice.commit_occurrence(occ, NOW)
    alice.delete(alice.occurrence(item, 3).item_id, NOW)

    shape = Shape(
        "AllProperties",
        extended=[
            {
                "PropertySetId": "c11ff724-aa03-4555-9952-8fa248a11c3e",
                "PropertyName": "Tags",
                "PropertyType": "StringArray",
            }
        ],
    )
    message = success_message("GetItem")
    message.append(M.Items(item_xml(item, shape), item_xml(alice.get(occ.item_id), shape)))
    response = wrap_response("GetItem", [message])
    schema.assertValid(response)
    master = response.find(f".//{{{T_NS}}}CalendarItem")
    values = [v.text for v in master.iterfind(f"{{{T_NS}}}ExtendedProperty/{{{T_NS}}}Values/{{{T_NS}}}Value")]
    assert values == ["a", "b"]
    # Echoed exactly as requested (lower-case GUID), not as stored.
    uri = master.find(f"{{{T_NS}}}ExtendedProperty/{{{T_NS}}}ExtendedFieldURI")
    assert uri.get("PropertySetId") == "c11ff724-aa03-4555-9952-8fa248a11c3e"
    assert master.findtext(f"{{{T_NS}}}CalendarItemType") == "RecurringMaster"
    assert len(master.findall(f"{{{T_NS}}}ModifiedOccurrences/{{{T_NS}}}Occurrence")) == 1
    assert len(master.findall(f"{{{T_NS}}}DeletedOccurrences/{{{T_NS}}}DeletedOccurrence")) == 1
    assert (
        master.findtext(
            f"{{{T_NS}}}RequiredAttendees/{{{T_NS}}}Attendee/{{{T_NS}}}Mailbox/{{{T_NS}}}EmailAddress"
        )
        == "bob@example.com"
    )


def test_idonly_shape_gives_just_the_id(store: CalendarStore) -> None:
    item = next(iter(store.mailbox("bob@example.com").calendar.items.values()))
    elem = item_xml(item, Shape("IdOnly"))
    assert [etree.QName(c).localname for c in elem] == ["ItemId"]
    elem = item_xml(item, Shape("IdOnly", fields={"calendar:End", "item:Subject"}))
    assert [etree.QName(c).localname for c in elem] == ["ItemId", "Subject", "End"]


def test_all_day_bounds_snap_to_local_midnight(store: CalendarStore) -> None:
    bob = store.mailbox("bob@example.com")
    item = bob.new_item(bob.calendar.folder_id, NOW)
    apply_item(
        item,
        T.CalendarItem(
            T.Start("2026-07-01T10:00:00Z"), T.End("2026-07-01T12:00:00Z"), T.IsAllDayEvent("true")
        ),
    )
    assert item.start == datetime(2026, 6, 30, 22, 0, tzinfo=UTC)  # midnight in Berlin (UTC+2)
    assert item.end - item.start == timedelta(days=1)


def test_invalid_recurrence_is_refused(store: CalendarStore) -> None:
    bob = store.mailbox("bob@example.com")
    item = bob.new_item(bob.calendar.folder_id, NOW)
    bad = T.CalendarItem(
        T.Recurrence(T.WeeklyRecurrence(T.Interval("1")), T.NoEndRecurrence(T.StartDate("2026-01-01")))
    )
    with pytest.raises(StoreError) as info:
        apply_item(item, bad)
    assert info.value.code == "ErrorCalendarInvalidRecurrence"


def test_generator_is_deterministic_and_loads() -> None:
    first = generate_mailboxes(2, events_per_mailbox=300, seed=5, today=date(2026, 1, 1))
    assert first == generate_mailboxes(2, events_per_mailbox=300, seed=5, today=date(2026, 1, 1))
    assert first != generate_mailboxes(2, events_per_mailbox=300, seed=6, today=date(2026, 1, 1))
    store = CalendarStore.from_seed(first, datetime(2026, 1, 1, tzinfo=UTC))
    box = store.mailbox("user0002@bench.example.com")
    masters = [i for i in box.calendar.items.values() if i.recurrence is not None]
    assert len(box.calendar.items) == 300
    assert 10 <= len(masters) <= 60 and all(m.exceptions and m.deleted for m in masters)


def test_json_seed_with_relative_dates() -> None:
    seed = json.loads((Path(__file__).parents[1] / "fixtures/ews/calendar-seed.json").read_text())
    now = datetime(2026, 6, 10, 20, 0, tzinfo=UTC)  # 13:00 in Los Angeles, still 10 June there
    store = CalendarStore.from_seed(seed, now)
    dana = store.mailbox("dana@example.org")
    standup = next(i for i in dana.calendar.items.values() if i.uid == "standup@example.org")
    la = standup.zone
    assert standup.start.astimezone(la).isoformat() == "2026-05-27T09:30:00-07:00"  # 14 days before 10 June
    assert [e.start.astimezone(la).strftime("%m-%d %H:%M") for e in standup.exceptions.values()] == [
        "06-11 11:00"
    ]
    assert [d.astimezone(la).strftime("%m-%d") for d in standup.deleted.values()] == ["06-12"]
    month_end = next(i for i in dana.calendar.items.values() if i.subject == "Month end close")
    assert month_end.start.astimezone(la).date() == date(2026, 1, 30)
    events = store.busy_events("dana@example.org", now, now + timedelta(days=7))
    assert {e.subject for e in events} >= {"Standup", "Off", "Lunch with Eve"}
    assert next(e for e in events if e.subject == "Off").is_private
    lunch = next(i for i in store.mailbox("eve@example.org").calendar.items.values())
    assert (lunch.subject, lunch.my_response_type) == ("Lunch with Eve", "Accept")
    (side,) = dana.children(dana.calendar.folder_id)
    assert side.name == "Side project" and len(side.items) == 1


def test_items_created_after_a_reset_get_new_ids() -> None:
    before, after = (CalendarStore.from_seed(demo_seed(TODAY), NOW) for _ in range(2))
    made = [
        s.mailbox("bob@example.com").new_item(s.mailbox("bob@example.com").calendar.folder_id, NOW).item_id
        for s in (before, after)
    ]
    assert made[0] != made[1]
