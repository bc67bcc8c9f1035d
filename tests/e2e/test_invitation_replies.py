"""Answering an invitation through CalDAV (RFC 6638 §3.2.2): the attendee's client changes its own
PARTSTAT and PUTs the event; the gateway sends Exchange's AcceptItem, TentativelyAcceptItem or
DeclineItem, and the organizer's mailbox (another mailbox of the emulator, read through exchangelib)
records the answer."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import requests
from exchangelib import CalendarItem, EWSDateTime, EWSTimeZone
from exchangelib.items import SEND_TO_ALL_AND_SAVE_COPY
from exchangelib.properties import Attendee, Mailbox
from exchangelib.recurrence import Recurrence, WeeklyPattern

from tests.e2e.test_read_path import dav_client, delta, exchange_account
from tests.e2e.test_write_path import ICS, set_invitations

ALICE, BOB = "alice@example.com", "bob@example.com"


def invite(emulator, subject: str = "Budget review", attendees: tuple[str, ...] = (ALICE,)) -> str:
    """Bob organises a meeting in Outlook (exchangelib) and invites Alice: Exchange delivers her copy."""
    bob = exchange_account(emulator, BOB)
    zone = EWSTimeZone("Europe/Berlin")
    start = EWSDateTime(2026, 12, 15, 10, 0, tzinfo=zone)
    item = CalendarItem(
        account=bob,
        folder=bob.calendar,
        subject=subject,
        start=start,
        end=start + dt.timedelta(hours=1),
        required_attendees=[
            Attendee(mailbox=Mailbox(email_address=a), response_type="Unknown") for a in attendees
        ],
    )
    item.save(send_meeting_invitations=SEND_TO_ALL_AND_SAVE_COPY)
    item.refresh()  # the UID Exchange gave it
    return item.uid


def organizer_sees(emulator, uid: str, attendee: str = ALICE) -> str | None:
    """The response the organizer's item records for ``attendee``."""
    bob = exchange_account(emulator, BOB)
    (item,) = [i for i in bob.calendar.all() if i.uid == uid]
    return next(a.response_type for a in item.required_attendees if a.mailbox.email_address == attendee)


def in_alices_calendar(emulator, uid: str) -> list:
    return [i for i in exchange_account(emulator).calendar.all() if i.uid == uid]


def resource_url(stack, uid: str) -> str:
    """The URL of Alice's copy of the meeting, found as a client finds it (a calendar-query by UID)."""
    calendar = dav_client(stack).principal().calendars()[0]
    return str(calendar.object_by_uid(uid).url)


def own_partstat(text: str, who: str = ALICE) -> str:
    unfolded = re.sub(r"\r?\n[ \t]", "", text)
    line = next(line for line in unfolded.splitlines() if line.startswith("ATTENDEE") and who in line.lower())
    return re.search(r"PARTSTAT=([A-Z-]+)", line).group(1)


def answered(text: str, partstat: str, who: str = ALICE) -> str:
    """The body with ``who``'s PARTSTAT changed (added when Exchange gave none), nothing else."""
    unfolded = re.sub(r"\r?\n[ \t]", "", text)
    lines = []
    for line in unfolded.splitlines():
        if line.startswith("ATTENDEE") and who in line.lower():
            head, address = line.split(":", 1)
            head = re.sub(r";PARTSTAT=[A-Z-]+", "", head)
            line = f"{head};PARTSTAT={partstat}:{address}"
        lines.append(line)
    return "\r\n".join(lines) + "\r\n"


def test_python_caldav_accepts_an_invitation_and_the_organizer_hears_it(stack, emulator):
    uid = invite(emulator)
    calendar = dav_client(stack).principal().calendars()[0]
    event = calendar.object_by_uid(uid)
    assert own_partstat(event.data) == "NEEDS-ACTION"
    # python-caldav finds Alice's ATTENDEE through her principal's calendar-user-address-set.
    event.change_attendee_status(partstat="ACCEPTED")
    event.save()
    assert organizer_sees(emulator, uid) == "Accept"
    assert [i.my_response_type for i in in_alices_calendar(emulator, uid)] == ["Accept"]
    # What the client reads back shows its answer, under a new ETag.
    again = calendar.object_by_uid(uid)
    assert own_partstat(again.data) == "ACCEPTED"
    sent = emulator.state.store.mailboxes[ALICE].sent
    assert [m.kind for m in sent if m.uid == uid] == ["Accept"]


def removed_since(stack, calendar_url: str, token: str) -> list[str]:
    """The names a sync-collection REPORT since ``token`` reports removed (RFC 6578 §3.5.2)."""
    report = requests.request(
        "REPORT",
        calendar_url,
        data=(
            '<D:sync-collection xmlns:D="DAV:"><D:sync-token>'
            f"{token}</D:sync-token><D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop>"
            "</D:sync-collection>"
        ),
        headers={"Content-Type": "application/xml"},
        auth=("alice", stack.password),
    )
    assert report.status_code == 207, report.text
    found = re.findall(
        r"<D:response><D:href>([^<]*)</D:href><D:status>HTTP/1.1 404", report.text.replace("\n", "")
    )
    return [href.rsplit("/", 1)[1] for href in found]


def test_python_caldav_declines_and_the_meeting_leaves_the_calendar(stack, emulator):
    uid = invite(emulator, "Offsite planning")
    calendar = dav_client(stack).principal().calendars()[0]
    token = calendar.objects_by_sync_token(load_objects=False).sync_token
    event = calendar.object_by_uid(uid)
    url = str(event.url)
    event.change_attendee_status(partstat="DECLINED")
    event.save()
    assert organizer_sees(emulator, uid) == "Decline"
    assert in_alices_calendar(emulator, uid) == []
    assert requests.get(url, auth=("alice", stack.password)).status_code == 404
    assert removed_since(stack, str(calendar.url), token) == [url.rsplit("/", 1)[1]]


def test_an_answer_costs_one_ews_call_beyond_the_puts_look_ups(stack, emulator):
    uid = invite(emulator)
    url = resource_url(stack, uid)
    auth = ("alice", stack.password)
    # An ordinary update of the invitation (nothing answered): its look-ups and UpdateItem, nothing sent.
    read = requests.get(url, auth=auth)
    before = stack.ews_calls()
    plain = requests.put(url, data=answered(read.text, "NEEDS-ACTION").encode(), headers=ICS, auth=auth)
    assert plain.status_code == 204, plain.text
    looked_up = delta(before, stack.ews_calls())
    assert looked_up.pop("UpdateItem") == 1 and organizer_sees(emulator, uid) == "Unknown"
    read = requests.get(url, auth=auth)
    before = stack.ews_calls()
    answer = requests.put(
        url,
        data=answered(read.text, "TENTATIVE").encode(),
        headers={**ICS, "If-Match": read.headers["ETag"]},
        auth=auth,
    )
    assert answer.status_code == 204, answer.text
    # The same look-ups (the item, and the re-read for the stored schedule tag: two GetItems), then the
    # response object.
    assert (
        delta(before, stack.ews_calls()) == {**looked_up, "CreateItem": 1} == {"GetItem": 2, "CreateItem": 1}
    )
    assert organizer_sees(emulator, uid) == "Tentative"
    back = requests.get(url, auth=auth)
    assert own_partstat(back.text) == "TENTATIVE" and back.headers["ETag"] != read.headers["ETag"]


def sent_answers(emulator, uid: str) -> list[str]:
    return [m.kind for m in emulator.state.store.mailboxes[ALICE].sent if m.uid == uid]


@pytest.mark.parametrize(
    ("kind", "partstat"),
    [
        ("drop", "ACCEPTED"),
        ("http_503", "DECLINED"),
        ("server_busy", "ACCEPTED"),
        ("server_busy", "DECLINED"),
        ("drop", "DECLINED"),
    ],
)
def test_an_answer_whose_reply_is_lost_is_sent_once(stack, emulator, kind, partstat):
    """Exchange does the CreateItem and the answer is lost: the client's retry (same body, same If-Match)
    succeeds, and the organizer hears once."""
    uid = invite(emulator)
    url = resource_url(stack, uid)
    auth = ("alice", stack.password)
    read = requests.get(url, auth=auth)
    request = {
        "data": answered(read.text, partstat).encode(),
        "headers": {**ICS, "If-Match": read.headers["ETag"]},
        "auth": auth,
    }
    emulator.set_faults(rules=[{"kind": kind, "operation": "CreateItem", "count": 1, "when": "after"}])
    first = requests.put(url, **request)
    # A lost answer is 503; Exchange's busy refusal makes the gateway look again itself and succeed.
    assert first.status_code in ((204,) if kind == "server_busy" else (502, 503, 504)), first.text
    emulator.set_faults(rules=[])
    retry = requests.put(url, **request)
    assert retry.status_code == 204, retry.text
    expected = {"ACCEPTED": "Accept", "DECLINED": "Decline"}[partstat]
    assert sent_answers(emulator, uid) == [expected]
    assert organizer_sees(emulator, uid) == expected
    if partstat == "DECLINED":
        assert in_alices_calendar(emulator, uid) == []  # not put back by the retry
        assert requests.get(url, auth=auth).status_code == 404
    else:
        assert own_partstat(requests.get(url, auth=auth).text) == "ACCEPTED"


# How three clients store their answer to Bob's invitation (RFC 6638 §3.2.2): each rewrites the event
# in its own words — its PRODID, its own VTIMEZONE, parameters in its order, its X- properties, a fresh
# DTSTAMP — but changes nothing Exchange holds except Alice's PARTSTAT (and, for Evolution, a COMMENT).
BERLIN = (
    "BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:DAYLIGHT\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\n"
    "TZNAME:CEST\r\nDTSTART:19700329T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nEND:DAYLIGHT\r\n"
    "BEGIN:STANDARD\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nTZNAME:CET\r\nDTSTART:19701025T030000\r\n"
    "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n"
)
THUNDERBIRD_ACCEPT = (
    "BEGIN:VCALENDAR\r\nPRODID:-//Mozilla.org/NONSGML Mozilla Calendar V1.1//EN\r\nVERSION:2.0\r\n"
    f"{BERLIN}BEGIN:VEVENT\r\nCREATED:20261206T120000Z\r\nLAST-MODIFIED:20261207T081500Z\r\n"
    "DTSTAMP:20261207T081500Z\r\nUID:{uid}\r\nSUMMARY:Budget review\r\n"
    'ORGANIZER;CN="Bob Brown":mailto:bob@example.com\r\n'
    "ATTENDEE;CN=Alice Adams;PARTSTAT=ACCEPTED;ROLE=REQ-PARTICIPANT;CUTYPE=INDIVIDUAL:mailto:alice@example.com\r\n"
    "ATTENDEE;CN=Guest;PARTSTAT=NEEDS-ACTION;ROLE=REQ-PARTICIPANT;CUTYPE=INDIVIDUAL:mailto:guest@elsewhere.example\r\n"
    "X-MOZ-RECEIVED-SEQUENCE:0\r\nX-MOZ-RECEIVED-DTSTAMP:20261206T120000Z\r\nX-MOZ-GENERATION:1\r\n"
    "DTSTART;TZID=Europe/Berlin:20261215T100000\r\nDTEND;TZID=Europe/Berlin:20261215T110000\r\n"
    "TRANSP:OPAQUE\r\nSEQUENCE:0\r\nBEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER;VALUE=DURATION:-PT15M\r\n"
    "DESCRIPTION:Default Mozilla Description\r\nEND:VALARM\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)
APPLE_TENTATIVE = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Apple Inc.//macOS 14.5//EN\r\nCALSCALE:GREGORIAN\r\n"
    f"{BERLIN}BEGIN:VEVENT\r\nTRANSP:OPAQUE\r\nDTEND;TZID=Europe/Berlin:20261215T110000\r\n"
    "ATTENDEE;CN=Alice Adams;CUTYPE=INDIVIDUAL;EMAIL=alice@example.com;PARTSTAT=TENTATIVE;ROLE=REQ-PARTI\r\n"
    " CIPANT:mailto:alice@example.com\r\n"
    "ATTENDEE;CN=Guest;CUTYPE=INDIVIDUAL;EMAIL=guest@elsewhere.example;PARTSTAT=NEEDS-ACTION;ROLE=REQ-PA\r\n"
    " RTICIPANT:mailto:guest@elsewhere.example\r\n"
    "UID:{uid}\r\nDTSTAMP:20261207T081500Z\r\nSEQUENCE:0\r\nX-APPLE-TRAVEL-ADVISORY-BEHAVIOR:AUTOMATIC\r\n"
    "SUMMARY:Budget review\r\nLAST-MODIFIED:20261207T081500Z\r\nCREATED:20261206T120000Z\r\n"
    "DTSTART;TZID=Europe/Berlin:20261215T100000\r\n"
    'ORGANIZER;CN="Bob Brown";EMAIL=bob@example.com:mailto:bob@example.com\r\n'
    "BEGIN:VALARM\r\nX-WR-ALARMUID:5C1F6B0E-64A4-4BC5-9A39-7C2D7F1C0B11\r\nUID:5C1F6B0E-64A4-4BC5-9A39-7C2D7F1C0B11\r\n"
    "TRIGGER:-PT15M\r\nDESCRIPTION:Reminder\r\nACTION:DISPLAY\r\nEND:VALARM\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)
EVOLUTION_DECLINE = (
    "BEGIN:VCALENDAR\r\nCALSCALE:GREGORIAN\r\nPRODID:-//Ximian//NONSGML Evolution Calendar//EN\r\nVERSION:2.0\r\n"
    f"{BERLIN}BEGIN:VEVENT\r\nUID:{{uid}}\r\nDTSTAMP:20261207T081500Z\r\nDTSTART;TZID=Europe/Berlin:20261215T100000\r\n"
    "DTEND;TZID=Europe/Berlin:20261215T110000\r\nSEQUENCE:0\r\nSUMMARY:Budget review\r\nTRANSP:OPAQUE\r\n"
    "ORGANIZER;CN=Bob Brown:MAILTO:bob@example.com\r\n"
    "ATTENDEE;CUTYPE=INDIVIDUAL;ROLE=REQ-PARTICIPANT;PARTSTAT=DECLINED;RSVP=TRUE;CN=Alice Adams;LANGUAGE=en:\r\n"
    " MAILTO:alice@example.com\r\n"
    "ATTENDEE;CUTYPE=INDIVIDUAL;ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=TRUE;CN=Guest;LANGUAGE=en:\r\n"
    " MAILTO:guest@elsewhere.example\r\n"
    "COMMENT:On leave that week\\, sorry.\r\nCREATED:20261206T120000Z\r\nLAST-MODIFIED:20261207T081500Z\r\n"
    "X-EVOLUTION-CALDAV-ETAG:placeholder\r\n"
    "BEGIN:VALARM\r\nX-EVOLUTION-ALARM-UID:20261206T120000Z-4242-1000-1-0@laptop\r\nACTION:DISPLAY\r\n"
    "TRIGGER;VALUE=DURATION;RELATED=START:-PT15M\r\nDESCRIPTION:Budget review\r\nEND:VALARM\r\n"
    "END:VEVENT\r\nEND:VCALENDAR\r\n"
)


@pytest.mark.parametrize(
    ("client", "body", "answer"),
    [
        ("thunderbird", THUNDERBIRD_ACCEPT, "Accept"),
        ("apple", APPLE_TENTATIVE, "Tentative"),
        ("evolution", EVOLUTION_DECLINE, "Decline"),
    ],
)
def test_each_clients_answer_reaches_the_organizer(stack, emulator, client, body, answer):
    uid = invite(emulator, attendees=(ALICE, "guest@elsewhere.example"))
    url = resource_url(stack, uid)
    auth = ("alice", stack.password)
    read = requests.get(url, auth=auth)
    # Apple Calendar guards an attendee's change with the schedule tag (RFC 6638 §3.2.10), the others
    # with the ETag.
    guard = (
        {"If-Schedule-Tag-Match": read.headers["Schedule-Tag"]}
        if client == "apple"
        else {"If-Match": read.headers["ETag"]}
    )
    stored = requests.put(url, data=body.replace("{uid}", uid).encode(), headers={**ICS, **guard}, auth=auth)
    assert stored.status_code == 204, stored.text
    assert organizer_sees(emulator, uid) == answer
    assert sent_answers(emulator, uid) == [answer]
    if answer == "Decline":
        assert requests.get(url, auth=auth).status_code == 404
        (message,) = [m for m in emulator.state.store.mailboxes[ALICE].sent if m.uid == uid]
        assert message.body == "On leave that week, sorry."  # COMMENT is the response's text
    else:
        assert own_partstat(requests.get(url, auth=auth).text) == answer.upper().replace("ACCEPT", "ACCEPTED")


def test_an_answer_the_client_schedules_itself_is_recorded_but_not_sent(stack, emulator):
    """SCHEDULE-AGENT=CLIENT on the ORGANIZER (RFC 6638 §7.1): the client sends its own iTIP REPLY."""
    uid = invite(emulator)
    url = resource_url(stack, uid)
    auth = ("alice", stack.password)
    text = answered(requests.get(url, auth=auth).text, "ACCEPTED")
    text = text.replace("ORGANIZER;", "ORGANIZER;SCHEDULE-AGENT=CLIENT;")
    assert requests.put(url, data=text.encode(), headers=ICS, auth=auth).status_code == 204
    assert [i.my_response_type for i in in_alices_calendar(emulator, uid)] == ["Accept"]
    assert sent_answers(emulator, uid) == [] and organizer_sees(emulator, uid) == "Unknown"
    assert own_partstat(requests.get(url, auth=auth).text) == "ACCEPTED"


def test_an_account_that_never_sends_records_the_answer_only(stack, emulator):
    set_invitations(stack, "never")
    uid = invite(emulator)
    url = resource_url(stack, uid)
    auth = ("alice", stack.password)
    text = answered(requests.get(url, auth=auth).text, "TENTATIVE")
    assert requests.put(url, data=text.encode(), headers=ICS, auth=auth).status_code == 204
    assert [i.my_response_type for i in in_alices_calendar(emulator, uid)] == ["Tentative"]
    assert sent_answers(emulator, uid) == [] and organizer_sees(emulator, uid) == "Unknown"


def test_an_answer_with_other_changes_is_an_ordinary_update(stack, emulator):
    """A PUT that also changes what Exchange holds is not only an answer: it is stored as before
    (UpdateItem), and nothing is sent."""
    uid = invite(emulator)
    url = resource_url(stack, uid)
    auth = ("alice", stack.password)
    text = answered(requests.get(url, auth=auth).text, "ACCEPTED").replace(
        "SUMMARY:Budget review", "SUMMARY:Mine"
    )
    before = stack.ews_calls()
    assert requests.put(url, data=text.encode(), headers=ICS, auth=auth).status_code == 204
    assert "CreateItem" not in delta(before, stack.ews_calls())
    assert sent_answers(emulator, uid) == [] and organizer_sees(emulator, uid) == "Unknown"
    assert [i.subject for i in in_alices_calendar(emulator, uid)] == ["Mine"]


def test_a_series_with_a_moved_occurrence_is_answered_whole(stack, emulator):
    """Bob's weekly meeting with one occurrence moved: Alice's client accepts the series (its master and
    its override carry her answer); the series is answered once, the look-up of the exception included."""
    bob = exchange_account(emulator, BOB)
    zone = EWSTimeZone("Europe/Berlin")
    start = EWSDateTime(2026, 12, 1, 9, 0, tzinfo=zone)
    series = CalendarItem(
        account=bob,
        folder=bob.calendar,
        subject="Weekly sync",
        start=start,
        end=start + dt.timedelta(minutes=30),
        recurrence=Recurrence(
            pattern=WeeklyPattern(interval=1, weekdays=["Tuesday"]), start=start.date(), number=4
        ),
        required_attendees=[Attendee(mailbox=Mailbox(email_address=ALICE), response_type="Unknown")],
    )
    series.save(send_meeting_invitations=SEND_TO_ALL_AND_SAVE_COPY)
    second = series.occurrence(2)
    second.refresh()
    second.start, second.end = second.start + dt.timedelta(hours=2), second.end + dt.timedelta(hours=2)
    second.save(update_fields=["start", "end"], send_meeting_invitations=SEND_TO_ALL_AND_SAVE_COPY)
    series.refresh()
    calendar = dav_client(stack).principal().calendars()[0]
    event = calendar.object_by_uid(series.uid)
    assert event.data.count("RECURRENCE-ID") == 1
    text = answered(event.data, "ACCEPTED")  # every VEVENT's ATTENDEE of Alice, as clients do
    before = stack.ews_calls()
    stored = requests.put(str(event.url), data=text.encode(), headers=ICS, auth=("alice", stack.password))
    assert stored.status_code == 204, stored.text
    used = delta(before, stack.ews_calls())
    assert used.get("CreateItem") == 1 and "UpdateItem" not in used, used
    assert organizer_sees(emulator, series.uid) == "Accept"
    assert sent_answers(emulator, series.uid) == ["Accept"]
    # The answer reaches the moved occurrence too: every VEVENT shows it.
    back = requests.get(str(event.url), auth=("alice", stack.password)).text
    assert [own_partstat(block) for block in back.split("BEGIN:VEVENT")[1:]] == ["ACCEPTED", "ACCEPTED"]


def test_python_caldav_answers_a_series_through_its_main_event(stack, emulator):
    """python-caldav's change_attendee_status changes the main VEVENT only: its override left at
    NEEDS-ACTION takes the series' answer."""
    series = weekly_invitation(emulator, "Weekly review")
    second = series.occurrence(2)
    second.refresh()
    second.subject = "Weekly review (room change)"
    second.save(update_fields=["subject"], send_meeting_invitations=SEND_TO_ALL_AND_SAVE_COPY)
    event = dav_client(stack).principal().calendars()[0].object_by_uid(series.uid)
    event.change_attendee_status(partstat="TENTATIVE")
    event.save()
    assert organizer_sees(emulator, series.uid) == "Tentative"
    back = requests.get(str(event.url), auth=("alice", stack.password)).text
    assert [own_partstat(block) for block in back.split("BEGIN:VEVENT")[1:]] == ["TENTATIVE", "TENTATIVE"]


def test_an_answer_keeps_the_schedule_tag_so_its_retry_passes(stack, emulator):
    """RFC 6638 §3.2.10: the schedule tag follows what the organizer decides, not the attendee's own
    participation — a client guarding its answer with If-Schedule-Tag-Match (Apple Calendar) can repeat
    it after a lost answer."""
    uid = invite(emulator)
    url = resource_url(stack, uid)
    auth = ("alice", stack.password)
    read = requests.get(url, auth=auth)
    request = {
        "data": answered(read.text, "ACCEPTED").encode(),
        "headers": {**ICS, "If-Schedule-Tag-Match": read.headers["Schedule-Tag"]},
        "auth": auth,
    }
    emulator.set_faults(rules=[{"kind": "drop", "operation": "CreateItem", "count": 1, "when": "after"}])
    assert requests.put(url, **request).status_code in (502, 503, 504)
    emulator.set_faults(rules=[])
    assert requests.get(url, auth=auth).headers["Schedule-Tag"] == read.headers["Schedule-Tag"]
    retry = requests.put(url, **request)
    assert retry.status_code == 204, retry.text
    assert sent_answers(emulator, uid) == ["Accept"] and organizer_sees(emulator, uid) == "Accept"


def weekly_invitation(emulator, subject: str) -> CalendarItem:
    """Bob's four weekly half-hour meetings from Tuesday 1 December 2026, 09:00 Berlin, with Alice invited."""
    bob = exchange_account(emulator, BOB)
    zone = EWSTimeZone("Europe/Berlin")
    start = EWSDateTime(2026, 12, 1, 9, 0, tzinfo=zone)
    series = CalendarItem(
        account=bob,
        folder=bob.calendar,
        subject=subject,
        start=start,
        end=start + dt.timedelta(minutes=30),
        recurrence=Recurrence(
            pattern=WeeklyPattern(interval=1, weekdays=["Tuesday"]), start=start.date(), number=4
        ),
        required_attendees=[Attendee(mailbox=Mailbox(email_address=ALICE), response_type="Unknown")],
    )
    series.save(send_meeting_invitations=SEND_TO_ALL_AND_SAVE_COPY)
    series.refresh()
    return series


def with_override(text: str, day: str, partstat: str) -> str:
    """The served series plus an override of its occurrence on ``day`` (YYYYMMDD), the same as the series
    but for Alice's PARTSTAT — how Thunderbird stores an answer to one occurrence."""
    unfolded = re.sub(r"\r?\n[ \t]", "", text)
    start = unfolded.index("BEGIN:VEVENT")
    block = unfolded[start : unfolded.index("END:VEVENT", start) + len("END:VEVENT")]
    lines = []
    for line in block.splitlines():
        if line.startswith(("RRULE", "EXDATE")):
            continue
        if line.startswith(("DTSTART", "DTEND")):
            line = re.sub(r":\d{8}T", f":{day}T", line)
        if line.startswith("DTSTART"):
            lines.append(line.replace("DTSTART", "RECURRENCE-ID", 1))
        lines.append(line)
    occurrence = answered("\r\n".join(lines), partstat).rstrip("\r\n")
    return (
        unfolded.replace("END:VCALENDAR", occurrence + "\r\nEND:VCALENDAR")
        .replace("\n", "\r\n")
        .replace("\r\r", "\r")
    )


def test_answers_to_single_occurrences_reach_the_organizer(stack, emulator):
    """Alice declines the third week and tentatively accepts the fourth, leaving the series unanswered:
    one CreateItem with two response objects, each on its occurrence (Exchange keeps an answer per
    occurrence); the declined week leaves her calendar (an EXDATE), the other shows her answer."""
    series = weekly_invitation(emulator, "Weekly planning")
    url = resource_url(stack, series.uid)
    auth = ("alice", stack.password)
    read = requests.get(url, auth=auth)
    text = with_override(with_override(read.text, "20261215", "DECLINED"), "20261222", "TENTATIVE")
    before = stack.ews_calls()
    stored = requests.put(
        url, data=text.encode(), headers={**ICS, "If-Match": read.headers["ETag"]}, auth=auth
    )
    assert stored.status_code == 204, stored.text
    # The item and the two occurrences (one GetItem), the answers (one CreateItem); then the re-read for
    # the answer's schedule tag (methods.py), which now holds an exception: two GetItems.
    assert delta(before, stack.ews_calls()) == {"GetItem": 4, "CreateItem": 1}
    assert sent_answers(emulator, series.uid) == ["Decline", "Tentative"]
    organizer = emulator.state.store.mailboxes[BOB]
    (master,) = [i for i in organizer.calendar.items.values() if i.uid == series.uid]
    answers = {
        index: next(a.response_type for a in item.attendees() if a.email == ALICE)
        for index, item in master.exceptions.items()
    }
    assert answers == {3: "Decline", 4: "Tentative"}
    (copy,) = in_alices_calendar(emulator, series.uid)
    assert copy.my_response_type == "NoResponseReceived"
    back = requests.get(url, auth=auth).text
    assert "EXDATE" in back and "20261215T090000" in back.split("EXDATE", 1)[1].splitlines()[0]
    overrides = [block for block in back.split("BEGIN:VEVENT")[1:] if "RECURRENCE-ID" in block]
    assert len(overrides) == 1 and own_partstat(overrides[0]) == "TENTATIVE"
    # The client's retry of the same PUT, its answer lost: nothing more is sent.
    retry = requests.put(
        url, data=text.encode(), headers={**ICS, "If-Match": read.headers["ETag"]}, auth=auth
    )
    assert retry.status_code == 204, retry.text
    assert sent_answers(emulator, series.uid) == ["Decline", "Tentative"]
