"""CalDAV details real clients and test suites rely on, end to end through the EWS emulator: a PUT never
changes a UID, events without end, schedule tags, exact queries, dates out of range."""

from __future__ import annotations

import uuid

import requests
from exchangelib.properties import Attendee
from icalendar import Calendar
from lxml import etree

from tests.e2e.test_read_path import dav_client, delta, exchange_account
from tests.e2e.test_write_path import CALDAV_NS, event, exchange_subjects, primary_url, put, writes

PROPFIND_TAG = (
    '<D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
    "<D:prop><D:getetag/><C:schedule-tag/></D:prop></D:propfind>"
)


def body(uid: str, lines: str, summary: str = "Details") -> str:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//tests//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20261120T100000Z\r\n{lines}SUMMARY:{summary}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )


def get(stack, url: str) -> requests.Response:
    return requests.get(url, auth=("alice", stack.password))


def report(stack, url: str, inner: str, prop: str = "<D:getetag/>") -> set[str]:
    query = (
        f'<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop>{prop}</D:prop>'
        f'<C:filter><C:comp-filter name="VCALENDAR">{inner}</C:comp-filter></C:filter></C:calendar-query>'
    )
    answer = requests.request(
        "REPORT",
        url,
        data=query,
        headers={"Depth": "1", "Content-Type": "application/xml"},
        auth=("alice", stack.password),
    )
    assert answer.status_code == 207, answer.text
    return {h.text.rsplit("/", 1)[1] for h in etree.fromstring(answer.content).iter("{DAV:}href")}


def vevent(text: str):
    return Calendar.from_ical(text).walk("VEVENT")[0]


def test_a_put_cannot_change_the_uid_of_an_existing_resource(stack, emulator):
    uid, other = str(uuid.uuid4()), str(uuid.uuid4())
    url = primary_url(stack) + "keeps-its-uid.ics"
    assert put(stack, url, event(uid)).status_code == 201
    before = stack.ews_calls()
    answer = put(stack, url, event(other, "Renamed"))
    # RFC 4791 §5.3.2.1 no-uid-conflict, naming the resource that holds the UID: this one.
    assert answer.status_code == 403, answer.text
    conflict = etree.fromstring(answer.content).find(f"{CALDAV_NS}no-uid-conflict")
    assert conflict is not None and conflict.findtext("{DAV:}href").endswith("/keeps-its-uid.ics")
    assert "cannot change" in answer.text
    assert writes(delta(before, stack.ews_calls())) == 0
    assert exchange_subjects(emulator, uid) == ["Planning"] and exchange_subjects(emulator, other) == []
    assert f"UID:{uid}" in get(stack, url).text


def test_events_without_end_are_stored_and_served_back_as_written(stack, emulator):
    base = primary_url(stack)
    timed, day = str(uuid.uuid4()), str(uuid.uuid4())
    assert (
        put(
            stack, base + "instant.ics", body(timed, "DTSTART;TZID=Europe/Berlin:20261125T100000\r\n")
        ).status_code
        == 201
    )
    assert put(stack, base + "day.ics", body(day, "DTSTART;VALUE=DATE:20261126\r\n")).status_code == 201
    served = vevent(get(stack, base + "instant.ics").text)
    assert "DTEND" not in served and "DURATION" not in served
    assert served.decoded("DTSTART").isoformat() == "2026-11-25T10:00:00+01:00"
    served_day = vevent(get(stack, base + "day.ics").text)
    assert "DTEND" not in served_day and str(served_day.decoded("DTSTART")) == "2026-11-26"
    # Exchange holds an appointment that ends where it starts, and an all-day event of one day.
    items = {
        i.uid: i for i in exchange_account(emulator).calendar.all().only("uid", "start", "end", "is_all_day")
    }
    assert items[timed].end == items[timed].start and not items[timed].is_all_day
    assert items[day].is_all_day and items[day].start == items[day].end  # exchangelib's inclusive end date
    # The events match a query for events without DTEND, and an instant matches at its start.
    november = '<C:time-range start="20261125T000000Z" end="20261127T000000Z"/>'
    no_end = f'<C:comp-filter name="VEVENT">{november}<C:prop-filter name="DTEND"><C:is-not-defined/></C:prop-filter></C:comp-filter>'
    assert report(stack, base, no_end) == {"instant.ics", "day.ics"}
    at_start = '<C:comp-filter name="VEVENT"><C:time-range start="20261125T090000Z" end="20261125T090001Z"/></C:comp-filter>'
    assert "instant.ics" in report(stack, base, at_start)
    # Given an end later, the event shows it.
    later = body(
        timed, "DTSTART;TZID=Europe/Berlin:20261125T100000\r\nDTEND;TZID=Europe/Berlin:20261125T103000\r\n"
    )
    assert put(stack, base + "instant.ics", later).status_code == 204
    assert (
        vevent(get(stack, base + "instant.ics").text).decoded("DTEND").isoformat()
        == "2026-11-25T10:30:00+01:00"
    )


def meeting(uid: str, summary: str) -> str:
    return event(
        uid,
        summary,
        extra="ORGANIZER:mailto:alice@example.com\r\nATTENDEE;ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION:"
        "mailto:bob@example.com\r\n",
    )


def test_a_meeting_has_a_schedule_tag_that_replies_keep_and_if_schedule_tag_match_checks(stack, emulator):
    uid = str(uuid.uuid4())
    url = primary_url(stack) + "review.ics"
    assert put(stack, url, meeting(uid, "Review")).status_code == 201
    first = get(stack, url)
    tag, etag = first.headers["Schedule-Tag"], first.headers["ETag"]
    found = requests.request(
        "PROPFIND", url, data=PROPFIND_TAG, headers={"Depth": "0"}, auth=("alice", stack.password)
    )
    assert etree.fromstring(found.content).findtext(f".//{CALDAV_NS}schedule-tag") == tag
    # Bob accepts: Exchange records his response, the item (and the ETag) changes, the schedule tag not.
    account = exchange_account(emulator)
    item = next(i for i in account.calendar.all() if i.uid == uid)
    item.required_attendees = [
        Attendee(mailbox=a.mailbox, response_type="Accept") for a in item.required_attendees
    ]
    item.save(update_fields=["required_attendees"], send_meeting_invitations="SendToNone")
    replied = get(stack, url)
    assert "PARTSTAT=ACCEPTED" in replied.text and replied.headers["ETag"] != etag
    assert replied.headers["Schedule-Tag"] == tag
    # The organizer's client, holding the tag but not the new ETag, may still write; a stale tag may not.
    updated = put(stack, url, meeting(uid, "Review, with agenda"), {"If-Schedule-Tag-Match": tag})
    assert updated.status_code == 204, updated.text
    assert exchange_subjects(emulator, uid) == ["Review, with agenda"]
    assert get(stack, url).headers["Schedule-Tag"] != tag
    stale = put(stack, url, meeting(uid, "Overwritten?"), {"If-Schedule-Tag-Match": tag})
    assert stale.status_code == 412
    assert exchange_subjects(emulator, uid) == ["Review, with agenda"]
    plain = primary_url(stack) + "plain.ics"
    assert put(stack, plain, event(str(uuid.uuid4()))).status_code == 201
    assert "Schedule-Tag" not in get(stack, plain).headers


def test_the_answer_to_a_put_of_a_meeting_carries_the_schedule_tag_of_what_exchange_stored(stack):
    """RFC 6638 §3.2.10: "A response to any successful GET or PUT request targeting a scheduling object
    resource MUST include a Schedule-Tag" equal to its schedule-tag property. Exchange re-renders the
    event, so the gateway reads it back (one GetItem, for meetings only); still no ETag (RFC 4791 §5.3.4)."""
    uid = str(uuid.uuid4())
    url = primary_url(stack) + "tagged.ics"
    before = stack.ews_calls()
    created = put(stack, url, meeting(uid, "Review"))
    assert created.status_code == 201, created.text
    tag = created.headers.get("Schedule-Tag")
    assert tag, "no Schedule-Tag in the answer to the PUT"
    assert delta(before, stack.ews_calls()).get("GetItem") == 1
    assert "ETag" not in created.headers
    assert tag == get(stack, url).headers["Schedule-Tag"]
    # python-caldav's save(if_schedule_tag_match=True) then expects the new tag in the answer
    updated = put(stack, url, meeting(uid, "Review, with agenda"), {"If-Schedule-Tag-Match": tag})
    assert updated.status_code == 204, updated.text
    new_tag = updated.headers.get("Schedule-Tag")
    assert new_tag and new_tag != tag and new_tag == get(stack, url).headers["Schedule-Tag"]
    # an event without ORGANIZER is no scheduling object: no tag, and its PUT reads nothing back
    plain_url = primary_url(stack) + "untagged.ics"
    before = stack.ews_calls()
    plain = put(stack, plain_url, event(str(uuid.uuid4())))
    assert plain.status_code == 201 and "Schedule-Tag" not in plain.headers
    assert "GetItem" not in delta(before, stack.ews_calls())


def test_open_ended_ranges_and_undefined_class_are_answered_exactly(stack):
    base = primary_url(stack)
    early, late = str(uuid.uuid4()), str(uuid.uuid4())
    assert (
        put(
            stack, base + "early.ics", body(early, "DTSTART:20310110T100000Z\r\nDTEND:20310110T110000Z\r\n")
        ).status_code
        == 201
    )
    private = "DTSTART:20310310T100000Z\r\nDTEND:20310310T110000Z\r\nCLASS:PRIVATE\r\n"
    assert put(stack, base + "late.ics", body(late, private)).status_code == 201
    after = report(
        stack, base, '<C:comp-filter name="VEVENT"><C:time-range start="20310201T000000Z"/></C:comp-filter>'
    )
    before = report(
        stack, base, '<C:comp-filter name="VEVENT"><C:time-range end="20310201T000000Z"/></C:comp-filter>'
    )
    assert "late.ics" in after and "early.ics" not in after
    assert "early.ics" in before and "late.ics" not in before
    year = '<C:time-range start="20310101T000000Z" end="20320101T000000Z"/>'
    no_class = f'<C:comp-filter name="VEVENT">{year}<C:prop-filter name="CLASS"><C:is-not-defined/></C:prop-filter></C:comp-filter>'
    assert {"early.ics", "late.ics"} & report(stack, base, no_class) == {"early.ics"}
    assert "CLASS" not in get(stack, base + "early.ics").text


def test_dates_out_of_range_are_refused_and_extreme_queries_answer(stack, emulator):
    base = primary_url(stack)
    before = stack.ews_calls()
    far = put(
        stack,
        base + "far.ics",
        body(str(uuid.uuid4()), "DTSTART:00010101T000000Z\r\nDTEND:99991231T235959Z\r\n"),
    )
    assert (
        far.status_code == 403 and etree.fromstring(far.content).find(f"{CALDAV_NS}min-date-time") is not None
    )
    assert writes(delta(before, stack.ews_calls())) == 0
    everything = '<C:comp-filter name="VEVENT"><C:time-range start="00010101T000000Z" end="99991231T235959Z"/></C:comp-filter>'
    assert len(report(stack, base, everything)) > 1
    expand = '<C:calendar-data><C:expand start="00010101T000000Z" end="00010102T000000Z"/></C:calendar-data>'
    assert (
        report(
            stack,
            base,
            '<C:comp-filter name="VEVENT"><C:time-range start="00010101T000000Z" end="00010102T000000Z"/></C:comp-filter>',
            expand,
        )
        == set()
    )
    for start, end in (("00010101T000000Z", "00010102T000000Z"), ("99991230T000000Z", "99991231T000000Z")):
        query = (
            '<C:free-busy-query xmlns:C="urn:ietf:params:xml:ns:caldav">'
            f'<C:time-range start="{start}" end="{end}"/></C:free-busy-query>'
        )
        busy = requests.request(
            "REPORT", base, data=query, headers={"Depth": "1"}, auth=("alice", stack.password)
        )
        assert busy.status_code == 400 and "between 1601-01-01 and 4500-12-31" in busy.text
        url = f"{stack.base_url}/freebusy/alice@example.com.vfb?start={start}&end={end}"
        assert requests.get(url, auth=("alice", stack.password)).status_code == 400
    only_end = f"{stack.base_url}/freebusy/alice@example.com.vfb?end=00010101T000000Z"
    assert requests.get(only_end, auth=("alice", stack.password)).status_code == 400


def test_an_itip_message_is_refused_and_an_exported_file_stored(stack, emulator):
    base = primary_url(stack)
    uid = str(uuid.uuid4())
    request = event(uid).replace("PRODID:-//tests//EN\r\n", "PRODID:-//tests//EN\r\nMETHOD:REQUEST\r\n")
    refused = put(stack, base + "invite.ics", request)
    assert refused.status_code == 403 and "METHOD:REQUEST" in refused.text
    assert exchange_subjects(emulator, uid) == []
    exported = request.replace("METHOD:REQUEST", "METHOD:PUBLISH")
    assert put(stack, base + "exported.ics", exported).status_code == 201
    assert exchange_subjects(emulator, uid) == ["Planning"]
    assert "METHOD" not in get(stack, base + "exported.ics").text


def proppatch_name(stack, url: str, name: str) -> requests.Response:
    body = (
        '<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop>'
        f"<D:displayname>{name}</D:displayname></D:prop></D:set></D:propertyupdate>"
    )
    return requests.request(
        "PROPPATCH",
        url,
        data=body,
        auth=("alice", stack.password),
        headers={"Content-Type": "application/xml"},
    )


def test_calendars_may_share_a_name_although_exchange_folders_may_not(stack, emulator):
    """CalDAV lets two calendars have one DAV:displayname; Exchange refuses a second folder of the same
    name under Calendar (ErrorFolderExists). The folder gets the first free "Name (n)" and the calendar
    shows the name its client gave, until the folder is renamed in Outlook."""
    principal = dav_client(stack).principal()
    first = principal.make_calendar(name="Team", cal_id="team-one")
    second = principal.make_calendar(name="Team", cal_id="team-two")  # python-caldav's examples do this

    def shown() -> dict[str, str]:
        return {str(c.url).rstrip("/").rsplit("/", 1)[1]: c.get_display_name() for c in principal.calendars()}

    def folders() -> list[str]:
        return sorted(f.name for f in exchange_account(emulator).calendar.children)

    assert shown()["team-one"] == shown()["team-two"] == "Team"
    assert folders() == ["Projects", "Team", "Team (2)"]
    uid = str(uuid.uuid4())
    second.save_event(event(uid, "In the second Team"))
    assert uid in str(second.event_by_uid(uid).data) and first.events() == []
    # PROPPATCH to a name another calendar has works the same way; to its own name changes nothing
    assert proppatch_name(stack, str(first.url), "Projects").status_code == 207
    assert proppatch_name(stack, str(second.url), "Team").status_code == 207
    assert shown()["team-one"] == "Projects" and shown()["team-two"] == "Team"
    assert folders() == ["Projects", "Projects (2)", "Team (2)"]
    # renamed in Outlook, the folder's name shows
    folder = next(f for f in exchange_account(emulator).calendar.children if f.name == "Team (2)")
    folder.name = "Offsite"
    folder.save(update_fields=["name"])
    assert shown()["team-two"] == "Offsite"
