"""The EWS requests DavMail 6 sends, replayed from tests/fixtures/ews/davmail/ (schema-validated both ways).

Each fixture is a request body as DavMail writes it (its namespace prefixes, its attribute order, its
PropertyTag spelling such as ``0x670a``); ``${name}`` placeholders stand for ids of this run. The
answers are what Exchange gives (Microsoft's EWS reference for each operation); tests/e2e/test_davmail.py
runs DavMail itself against the emulator.
"""

from __future__ import annotations

import base64
import string
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import icalendar
import recurring_ical_events
import requests
from lxml import etree

from tests.support.emulator import EmulatorServer

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ews" / "davmail"
SOAP = "{http://schemas.xmlsoap.org/soap/envelope/}"
M = "{http://schemas.microsoft.com/exchange/services/2006/messages}"
T = "{http://schemas.microsoft.com/exchange/services/2006/types}"


def replay(emulator: EmulatorServer, fixture: str, user: str = "alice", **values: str) -> etree._Element:
    """POST one DavMail request (placeholders filled in) as ``user``; the operation's response element."""
    body = string.Template((FIXTURES / f"{fixture}.xml").read_text(encoding="utf-8")).substitute(values)
    response = requests.post(
        emulator.ews_url,
        data=body.encode(),
        auth=(f"{user}@example.com", f"{user}-pw"),
        headers={"Content-Type": "text/xml; charset=utf-8"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return etree.fromstring(response.content).find(f"{SOAP}Body")[0]


def codes(response: etree._Element) -> list[str]:
    return [m.findtext(f"{M}ResponseCode") for m in response.find(f"{M}ResponseMessages")]


def mapi(folder_or_item: etree._Element) -> dict[str, str]:
    """The extended properties of an answer by PropertyTag (or PropertyName / PropertyId)."""
    found = {}
    for prop in folder_or_item.iterfind(f"{T}ExtendedProperty"):
        uri = prop.find(f"{T}ExtendedFieldURI")
        key = uri.get("PropertyTag") or uri.get("PropertyName") or uri.get("PropertyId")
        found[key] = prop.findtext(f"{T}Value")
    return found


def get_folder(emulator: EmulatorServer, folder: str, user: str = "alice") -> etree._Element:
    response = replay(emulator, "GetFolder-distinguished-with-mapi-properties", user, folder=folder)
    assert codes(response) == ["NoError"], etree.tostring(response)
    return response.find(f".//{M}Folders")[0]


def folder_id(emulator: EmulatorServer, folder: str, user: str = "alice") -> str:
    return get_folder(emulator, folder, user).find(f"{T}FolderId").get("Id")


# --- sign-in: ConvertId, the distinguished folders, the folder properties -----------------------------


def test_convert_id_answers_the_owner_of_the_id_whatever_mailbox_the_request_names(emulator):
    """DavMail learns the signed-in address by converting the root folder id with Mailbox="blah@blah.com"."""
    root = folder_id(emulator, "root")
    response = replay(emulator, "ConvertId-root-folder", root_id=root)
    assert codes(response) == ["NoError"]
    alternate = response.find(f".//{M}AlternateId")
    assert (alternate.get("Mailbox"), alternate.get("Id"), alternate.get("Format")) == (
        "alice@example.com",
        root,
        "EwsId",
    )
    # Converted by bob, an id of alice's mailbox still names alice.
    alices_calendar = folder_id(emulator, "calendar")
    response = replay(emulator, "ConvertId-root-folder", user="bob", root_id=alices_calendar)
    assert response.find(f".//{M}AlternateId").get("Mailbox") == "alice@example.com"


def test_every_distinguished_folder_davmail_opens_exists_with_its_folder_type(emulator):
    expected = {
        "inbox": ("Folder", "IPF.Note"),
        "calendar": ("CalendarFolder", "IPF.Appointment"),
        "contacts": ("ContactsFolder", "IPF.Contact"),
        "sentitems": ("Folder", "IPF.Note"),
        "drafts": ("Folder", "IPF.Note"),
        "deleteditems": ("Folder", "IPF.Note"),
        "junkemail": ("Folder", "IPF.Note"),
        "outbox": ("Folder", "IPF.Note"),
        "tasks": ("TasksFolder", "IPF.Task"),
    }
    seen = {}
    for name in expected:
        folder = get_folder(emulator, name)
        seen[name] = (etree.QName(folder).localname, mapi(folder)["0x3613"])
    assert seen == expected
    assert len({folder_id(emulator, name) for name in expected}) == len(expected)


def test_folder_mapi_properties_and_a_ctag_that_moves_with_every_change(emulator):
    calendar = get_folder(emulator, "calendar")
    props = mapi(calendar)
    assert calendar.findtext(f"{T}DisplayName") == "Calendar"
    items = len(emulator.state.store.mailboxes["alice@example.com"].calendar.items)
    assert int(props["0x3602"]) == items > 0  # PR_CONTENT_COUNT
    assert props["0x3603"] == "0"  # PR_CONTENT_UNREAD
    assert props["0x360a"] == "true"  # PR_SUBFOLDERS: the Projects sub-calendar
    assert props["0x10f3"] == "Calendar"  # PR_URL_COMP_NAME
    assert int(props["0x6751"]) > int(props["0x6752"]) > 0  # next article number > the last one
    assert mapi(get_folder(emulator, "drafts"))["0x360a"] == "false"  # no sub-folders (Tasks has "Errands")

    assert mapi(get_folder(emulator, "calendar"))["0x670a"] == props["0x670a"]  # reading changes nothing
    ctags = [props["0x670a"]]
    for _ in range(2):  # each change after a read gives a new ctag, even within the same second
        emulator.state.store.mailboxes["alice@example.com"].calendar.bump()
        ctags.append(mapi(get_folder(emulator, "calendar"))["0x670a"])
    assert len(set(ctags)) == 3 and ctags == sorted(ctags)
    assert mapi(get_folder(emulator, "calendar"))["0x3008"] == ctags[-1]  # last modification


def test_find_folder_applies_its_restriction(emulator):
    """DavMail deletes "davmailtemp" before creating it: an unfiltered answer made it delete the Calendar."""
    response = replay(emulator, "FindFolder-davmailtemp-by-name")
    assert codes(response) == ["NoError"]
    root = response.find(f".//{M}RootFolder")
    assert (root.get("TotalItemsInView"), len(root.find(f"{T}Folders"))) == ("0", 0)

    box = emulator.state.store.mailboxes["alice@example.com"]
    top = box.distinguished_folder("msgfolderroot")
    box.create_folder(top.folder_id, "davmailtemp", "IPF.Appointment")
    found = replay(emulator, "FindFolder-davmailtemp-by-name").find(f".//{T}Folders")
    assert [f.findtext(f"{T}DisplayName") for f in found] == ["davmailtemp"]


def test_owa_user_options_name_the_mailbox_time_zone(emulator):
    """GetUserConfiguration of OWA.UserOptions on root: DavMail reads ``timezone`` from the dictionary."""
    response = replay(emulator, "GetUserConfiguration-owa-user-options", user="carol")
    assert codes(response) == ["NoError"]
    entries = {}
    for entry in response.iter(f"{T}DictionaryEntry"):
        key, value = (e.findtext(f"{T}Value") for e in entry)
        entries[key] = value
    assert entries["timezone"] == "Pacific Standard Time"
    body = (
        (FIXTURES / "GetUserConfiguration-owa-user-options.xml")
        .read_text()
        .replace("OWA.UserOptions", "OWA.Other")
    )
    answer = requests.post(
        emulator.ews_url, data=body.encode(), auth=("carol@example.com", "carol-pw"), timeout=10
    )
    other = etree.fromstring(answer.content).find(f"{SOAP}Body")[0]
    assert codes(other) == ["ErrorItemNotFound"]  # a configuration never saved: not a SOAP fault


def test_unauthenticated_ews_requests_are_counted_apart(emulator):
    """A client's 401 legs (its first anonymous request, NTLM's type-1) are round trips too."""
    body = (FIXTURES / "GetUserConfiguration-owa-user-options.xml").read_bytes()
    answer = requests.post(emulator.ews_url, data=body, headers={"Content-Type": "text/xml"}, timeout=10)
    assert answer.status_code == 401
    stats = emulator.stats()
    assert stats["unauthenticated"] == 1 and stats["operations"] == {}


# --- reading a calendar: FindItem on MAPI properties, GetItem with MIME content ------------------------


def calendar_box(emulator: EmulatorServer, user: str = "alice"):
    return emulator.state.store.mailboxes[f"{user}@example.com"]


def test_find_item_restricts_and_sorts_on_the_properties_exchange_maintains(emulator):
    """DavMail's month view: series (PidLidRecurring, or CDO instance type 1) and single events in the
    range, sorted by PR_INTERNET_ARTICLE_NUMBER, with subject, last modification and instance type."""
    box = calendar_box(emulator)
    now = datetime.now(UTC)
    start, end = now - timedelta(days=3), now + timedelta(days=4)
    response = replay(
        emulator,
        "FindItem-calendar-items-in-range",
        start=start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        end=end.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    assert codes(response) == ["NoError"]
    found = response.findall(f".//{T}CalendarItem")
    expected = {
        i.item_id
        for i in box.calendar.items.values()
        if i.recurrence is not None or (i.start < end and i.end > start)
    }
    assert {f.find(f"{T}ItemId").get("Id") for f in found} == expected
    assert any(i.recurrence is None for i in box.calendar.items.values() if i.item_id not in expected)
    props = [mapi(f) for f in found]
    articles = [int(p["0xe23"]) for p in props]
    assert articles == sorted(articles) and len(set(articles)) == len(articles) and articles[0] > 0
    for element, prop in zip(found, props, strict=True):
        item = box.get(element.find(f"{T}ItemId").get("Id"))
        assert prop["0x37"] == prop["0x3001"] == item.subject
        assert prop["urn:schemas:calendar:instancetype"] == ("1" if item.recurrence else "0")
        assert datetime.fromisoformat(prop["0x3008"]) == item.modified.replace(microsecond=0)


def event_mime(emulator: EmulatorServer, item) -> tuple[etree._Element, icalendar.Calendar]:
    response = replay(
        emulator, "GetItem-event-mime-content", item_id=item.item_id, change_key=item.change_key
    )
    assert codes(response) == ["NoError"]
    element = response.find(f".//{T}CalendarItem")
    mime = element.find(f"{T}MimeContent")
    assert mime is not None and mime.get("CharacterSet") == "UTF-8"
    return element, icalendar.Calendar.from_ical(base64.b64decode(mime.text))


def test_get_item_with_mime_content_answers_the_series_as_icalendar(emulator):
    box = calendar_box(emulator)
    (series,) = [i for i in box.calendar.items.values() if i.subject == "Alice weekly 1:1"]
    element, parsed = event_mime(emulator, series)
    assert etree.QName(element[0]).localname == "MimeContent"  # ItemType's sequence: before ItemId
    assert element[1].get("Id") == series.item_id
    (zone,) = parsed.walk("VTIMEZONE")
    assert str(zone["TZID"]) == "W. Europe Standard Time"
    events = parsed.walk("VEVENT")
    (master,) = [e for e in events if "RECURRENCE-ID" not in e]
    (moved,) = [e for e in events if "RECURRENCE-ID" in e]
    assert {str(e["UID"]) for e in events} == {series.uid}
    assert str(master["SUMMARY"]) == "Alice weekly 1:1" and master["RRULE"]["FREQ"] == ["WEEKLY"]
    assert master.decoded("DTSTART") == series.start
    (exception,) = series.exceptions.values()
    assert (moved.decoded("RECURRENCE-ID"), moved.decoded("DTSTART")) == (
        exception.original_start,
        exception.start,
    )
    (cancelled,) = series.deleted.values()
    assert [d.dt for d in master["EXDATE"].dts] == [cancelled]


def test_every_event_of_the_demo_expands_from_its_mime_content_as_from_a_calendar_view(emulator):
    """The iCalendar Exchange answers and its CalendarView are two renderings of one calendar."""
    box = calendar_box(emulator)
    now = datetime.now(UTC)
    start, end = now - timedelta(days=60), now + timedelta(days=60)
    expected = sorted(
        (i.uid, i.start, i.end, i.subject) for i in box.expand(box.calendar.folder_id, start, end)
    )
    got = []
    for item in box.calendar.items.values():
        _, parsed = event_mime(emulator, item)
        for event in recurring_ical_events.of(parsed).between(start, end):
            begin, finish = event.decoded("DTSTART"), event.decoded("DTEND")
            if not isinstance(begin, datetime):  # all-day: local midnights of the mailbox
                begin, finish = (
                    datetime.combine(d, time(), item.zone).astimezone(UTC) for d in (begin, finish)
                )
            got.append(
                (str(event["UID"]), begin.astimezone(UTC), finish.astimezone(UTC), str(event["SUMMARY"]))
            )
    assert sorted(got) == expected and len(expected) > 10


# --- writing: CreateItem from MIME content ------------------------------------------------------------


def create_from_mime(emulator: EmulatorServer, ics: str, name: str = "new.ics"):
    """DavMail's CreateItem: MimeContent, then ReminderIsSet, its file name, state flags and free/busy."""
    mime = base64.b64encode(ics.replace("\r\n", "\n").replace("\n", "\r\n").encode()).decode()
    response = replay(emulator, "CreateItem-event-from-mime-content", mime=mime, name=name)
    assert codes(response) == ["NoError"]
    return calendar_box(emulator).get(response.find(f".//{T}ItemId").get("Id"))


def test_create_item_builds_the_event_from_its_mime_content(emulator):
    ics = (FIXTURES / "event-as-davmail-sends-it.ics").read_text(encoding="utf-8")
    item = create_from_mime(emulator, ics, "davmail-put-1.ics")
    assert (item.subject, item.uid) == ("Created through DavMail", "davmail-put-1")
    # DTSTART;TZID=W. Europe Standard Time:20261208T100000Z: a UTC time (RFC 5545 §3.3.5 form 2)
    assert (item.start, item.end) == (
        datetime(2026, 12, 8, 10, tzinfo=UTC),
        datetime(2026, 12, 8, 11, tzinfo=UTC),
    )
    assert item.start_tz == "W. Europe Standard Time" and not item.is_meeting and not item.is_all_day
    # then the other properties of the request, as Exchange applies them after the MIME
    assert (item.free_busy, item.reminder_is_set) == ("Free", False)
    found = replay(
        emulator,
        "FindItem-by-file-name",
        name="davmail-put-1.ics",
    ).findall(f".//{T}CalendarItem")
    assert [f.find(f"{T}ItemId").get("Id") for f in found] == [item.item_id]


SERIES = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//test//EN
METHOD:PUBLISH
BEGIN:VTIMEZONE
TZID:Pacific Standard Time
BEGIN:STANDARD
DTSTART:16010101T020000
TZOFFSETFROM:-0700
TZOFFSETTO:-0800
RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=1SU;BYMONTH=11
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:16010101T020000
TZOFFSETFROM:-0800
TZOFFSETTO:-0700
RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=2SU;BYMONTH=3
END:DAYLIGHT
END:VTIMEZONE
BEGIN:VEVENT
UID:series-from-mime
SUMMARY:Planning
DESCRIPTION:Agenda\\, notes
LOCATION:Room 4
DTSTART;TZID=Pacific Standard Time:20270104T090000
DTEND;TZID=Pacific Standard Time:20270104T100000
RRULE:FREQ=WEEKLY;COUNT=6;BYDAY=MO;WKST=SU
EXDATE;TZID=Pacific Standard Time:20270118T090000
ORGANIZER;CN=Alice Adams:mailto:alice@example.com
ATTENDEE;ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION:mailto:bob@example.com
ATTENDEE;ROLE=OPT-PARTICIPANT;PARTSTAT=NEEDS-ACTION:mailto:carol@example.com
CATEGORIES:Work
CLASS:PRIVATE
BEGIN:VALARM
ACTION:DISPLAY
TRIGGER:-PT30M
END:VALARM
END:VEVENT
BEGIN:VEVENT
UID:series-from-mime
RECURRENCE-ID;TZID=Pacific Standard Time:20270125T090000
SUMMARY:Planning (late)
DTSTART;TZID=Pacific Standard Time:20270125T150000
DTEND;TZID=Pacific Standard Time:20270125T160000
END:VEVENT
END:VCALENDAR
"""


def test_create_item_from_mime_keeps_recurrence_exceptions_and_attendees(emulator):
    item = create_from_mime(emulator, SERIES)
    pacific = ZoneInfo("America/Los_Angeles")
    assert (item.subject, item.body, item.location, item.uid) == (
        "Planning",
        "Agenda, notes",
        "Room 4",
        "series-from-mime",
    )
    assert item.start_tz == "Pacific Standard Time" and item.start == datetime(2027, 1, 4, 9, tzinfo=pacific)
    assert (item.recurrence.pattern, item.recurrence.days_of_week, item.recurrence.number_of_occurrences) == (
        "Weekly",
        ["Monday"],
        6,
    )
    assert [a.email for a in item.required] == ["bob@example.com"]
    assert [a.email for a in item.optional] == ["carol@example.com"]
    assert item.organizer.email == "alice@example.com" and item.my_response_type == "Organizer"
    assert (item.categories, item.sensitivity, item.reminder_minutes) == (["Work"], "Private", 30)
    box = calendar_box(emulator)
    window = (datetime(2027, 1, 1, tzinfo=UTC), datetime(2027, 3, 1, tzinfo=UTC))
    expanded = [
        (o.subject, o.start) for o in box.expand(box.calendar.folder_id, *window) if o.uid == item.uid
    ]
    expected = [
        (event["SUMMARY"], event.decoded("DTSTART"))
        for event in recurring_ical_events.of(icalendar.Calendar.from_ical(SERIES)).between(*window)
    ]
    assert sorted(expanded) == sorted(expected) and len(expanded) == 5  # six Mondays, one cancelled
    assert ("Planning (late)", datetime(2027, 1, 25, 15, tzinfo=pacific)) in expanded


def test_create_item_from_mime_all_day_event_as_davmail_sends_it(emulator):
    """DavMail sends an all-day event as local midnights with X-MICROSOFT-CDO-ALLDAYEVENT:TRUE."""
    ics = (FIXTURES / "event-as-davmail-sends-it.ics").read_text(encoding="utf-8")
    ics = ics.replace("20261208T100000Z", "20261224T000000").replace("20261208T110000Z", "20261226T000000")
    item = create_from_mime(emulator, ics.replace("ALLDAYEVENT:FALSE", "ALLDAYEVENT:TRUE"))
    berlin = ZoneInfo("Europe/Berlin")
    assert item.is_all_day
    assert (item.start, item.end) == (
        datetime(2026, 12, 24, tzinfo=berlin),
        datetime(2026, 12, 26, tzinfo=berlin),
    )


# --- writing: UpdateItem through MAPI tags, times without an offset -----------------------------------


def update(emulator: EmulatorServer, item, start: str, end: str, subject: str) -> None:
    response = replay(
        emulator,
        "UpdateItem-event-fields-in-context-zone",
        item_id=item.item_id,
        change_key=item.change_key,
        start=start,
        end=end,
        subject=subject,
    )
    assert codes(response) == ["NoError"]


def test_update_item_through_mapi_tags_changes_the_subject_and_clears_the_body(emulator):
    """DavMail renames with SetItemField on PR_SUBJECT (0x37) and clears with DeleteItemField PR_BODY (0x1000)."""
    box = calendar_box(emulator)
    (item,) = [i for i in box.calendar.items.values() if i.subject == "Alice: focus time"]
    item.body = "no meetings please"
    update(emulator, item, "2026-12-08T19:00:00", "2026-12-08T20:00:00", "Deep work")
    changed = box.get(item.item_id)
    assert (changed.subject, changed.body) == ("Deep work", "")
    assert (changed.item_id, changed.change_key != item.change_key) == (item.item_id, True)
    assert changed.extended == {}  # the tags are the fields, not extra properties


def test_times_without_an_offset_are_read_in_the_request_time_zone(emulator):
    """``<t:Start>2026-12-08T19:00:00</t:Start>`` with a TimeZoneContext (or a StartTimeZone in the
    request) is 19:00 in that zone, not 19:00 UTC (Microsoft: "Time zones and EWS in Exchange")."""
    berlin = ZoneInfo("Europe/Berlin")
    box = calendar_box(emulator)
    (item,) = [i for i in box.calendar.items.values() if i.subject == "Alice: focus time"]
    update(emulator, item, "2026-12-08T19:00:00", "2026-12-08T20:00:00", "Evening")
    changed = box.get(item.item_id)
    assert (changed.start, changed.end) == (
        datetime(2026, 12, 8, 19, tzinfo=berlin),
        datetime(2026, 12, 8, 20, tzinfo=berlin),
    )
    update(emulator, changed, "2026-12-08T18:30:00Z", "2026-12-08T19:30:00+00:00", "Evening")
    assert box.get(item.item_id).start == datetime(2026, 12, 8, 18, 30, tzinfo=UTC)  # an offset wins

    # DavMail's time-zone probe: no TimeZoneContext, but a StartTimeZone in the item
    response = replay(
        emulator,
        "CreateItem-time-zone-probe",
        folder_id=folder_id(emulator, "calendar"),
        start="2026-07-01T08:00:00",
        end="2026-07-01T09:00:00",
    )
    created = box.get(response.find(f".//{T}ItemId").get("Id"))
    assert created.start == datetime(2026, 7, 1, 8, tzinfo=berlin)  # CEST: 06:00 UTC


# --- the rest of a DavMail session: its time-zone probe folder, deleting, free/busy ------------------


def test_davmails_time_zone_probe_in_a_folder_of_its_own(emulator):
    """At sign-in DavMail (re)creates "davmailtemp", stores an item in the mailbox's zone, reads its
    VTIMEZONE from the MIME content and hard-deletes the folder: the Calendar must come out untouched."""
    calendar_items = dict(calendar_box(emulator).calendar.items)
    assert len(replay(emulator, "FindFolder-davmailtemp-by-name").find(f".//{T}Folders")) == 0
    assert codes(replay(emulator, "CreateFolder-davmailtemp")) == ["NoError"]
    (temp,) = replay(emulator, "FindFolder-davmailtemp-by-name").find(f".//{T}Folders")
    temp_id = temp.find(f"{T}FolderId").get("Id")
    created = replay(
        emulator,
        "CreateItem-time-zone-probe",
        folder_id=temp_id,
        start="2026-12-06T20:00:00",
        end="2026-12-07T20:00:00",
    )
    item = calendar_box(emulator).get(created.find(f".//{T}ItemId").get("Id"))
    _, parsed = event_mime(emulator, item)
    (zone,) = parsed.walk("VTIMEZONE")
    assert str(zone["TZID"]) == "W. Europe Standard Time"
    assert {o.decoded("TZOFFSETTO") for o in zone.subcomponents} == {timedelta(hours=1), timedelta(hours=2)}
    assert codes(replay(emulator, "DeleteFolder-hard-delete", folder_id=temp_id)) == ["NoError"]
    assert len(replay(emulator, "FindFolder-davmailtemp-by-name").find(f".//{T}Folders")) == 0
    assert calendar_box(emulator).calendar.items == calendar_items


def test_delete_item_moving_to_deleted_items_takes_the_event_off_the_calendar(emulator):
    box = calendar_box(emulator)
    (item,) = [i for i in box.calendar.items.values() if i.subject == "Alice: focus time"]
    response = replay(
        emulator, "DeleteItem-move-to-deleted-items", item_id=item.item_id, change_key=item.change_key
    )
    assert codes(response) == ["NoError"]
    assert item.item_id not in box.calendar.items


def test_merged_only_free_busy_in_quarter_hours_as_davmail_asks_for_it(emulator):
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    end = start + timedelta(days=7)
    response = replay(
        emulator,
        "GetUserAvailability-merged-only",
        attendee="bob@example.com",
        start=start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        end=end.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    merged = response.findtext(f".//{T}MergedFreeBusy")
    assert len(merged) == 7 * 24 * 4 and set(merged) <= set("0123")
    digit = {"Busy": "2", "Tentative": "1", "OOF": "3", "WorkingElsewhere": "0"}
    for event in emulator.state.store.busy_events("bob@example.com", start, end):
        if event.busy_type in digit and event.start >= start:
            slot = int((event.start - start) / timedelta(minutes=15))
            assert merged[slot] >= digit[event.busy_type], (event, merged[slot])
    working_elsewhere = [
        e
        for e in emulator.state.store.busy_events("bob@example.com", start, end)
        if e.busy_type == "WorkingElsewhere"
    ]
    assert working_elsewhere  # the demo's WorkingElsewhere day: shown as free, 0
