"""Which PUTs answer an invitation (gateway/ews/backend/replies.py): only a change of the owner's own
PARTSTAT (and a COMMENT) on a meeting someone else organises — of the meeting, or of one occurrence —;
and whether the answer is sent."""

from __future__ import annotations

import copy
from datetime import date, datetime

from exchangelib import CalendarItem
from exchangelib.properties import Mailbox

from gateway.ews import mapping
from gateway.ews.backend.replies import (
    Answer,
    answers,
    declines,
    declines_on_delete,
    own_answer,
    reply_options,
)
from gateway.ews.mapping import from_ical, show_own_response

OWNER = "alice@example.com"
WEEKLY = "RRULE:FREQ=WEEKLY;COUNT=4\r\n"


def body(
    partstat: str = "NEEDS-ACTION",
    summary: str = "Budget review",
    extra: str = "",
    organizer: str = "",
    rrule: str = "",
) -> str:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//tests//EN\r\nBEGIN:VEVENT\r\nUID:u-1\r\n"
        "DTSTAMP:20261120T100000Z\r\nDTSTART;TZID=Europe/Berlin:20261215T100000\r\n"
        f"DTEND;TZID=Europe/Berlin:20261215T110000\r\n{rrule}SUMMARY:{summary}\r\n"
        f"ORGANIZER;CN=Bob Brown{organizer}:mailto:bob@example.com\r\n"
        f"ATTENDEE;CN=Alice;PARTSTAT={partstat};RSVP=TRUE:mailto:Alice@Example.com\r\n"
        "ATTENDEE;PARTSTAT=ACCEPTED:mailto:carol@example.com\r\n"
        f"{extra}END:VEVENT\r\n"
    )


def override(partstat: str, day: str = "20261222", comment: str = "") -> str:
    return (
        f"BEGIN:VEVENT\r\nUID:u-1\r\nRECURRENCE-ID;TZID=Europe/Berlin:{day}T100000\r\n"
        f"DTSTAMP:20261120T100000Z\r\nDTSTART;TZID=Europe/Berlin:{day}T100000\r\n"
        f"DTEND;TZID=Europe/Berlin:{day}T110000\r\nSUMMARY:Budget review\r\n"
        "ORGANIZER;CN=Bob Brown:mailto:bob@example.com\r\n"
        f"ATTENDEE;CN=Alice;PARTSTAT={partstat}:mailto:alice@example.com\r\n"
        f"ATTENDEE;PARTSTAT=ACCEPTED:mailto:carol@example.com\r\n{comment}END:VEVENT\r\n"
    )


def cal(*events: str) -> str:
    return "".join(events) + "END:VCALENDAR\r\n"


def held(
    response: str = "NoResponseReceived", organizer: str = "bob@example.com", rrule: str = ""
) -> CalendarItem:
    """Alice's copy of Bob's meeting as GetItem gives it: the organizer's attendee list, her MyResponseType."""
    item = from_ical(cal(body(rrule=rrule)), default_tz="Europe/Berlin").master
    item.organizer = Mailbox(name="Bob Brown", email_address=organizer)
    item.my_response_type = response
    item.legacy_free_busy_status = "Tentative"
    return item


def occurrence(master: CalendarItem, day: int, response: str) -> CalendarItem:
    """An occurrence of ``master`` (held by Exchange) a week or more later."""
    item = copy.deepcopy(master)
    item.recurrence = None
    shift = item.start.replace(day=day) - item.start
    item.start, item.end = item.start + shift, item.end + shift
    item.my_response_type = response
    item.id = f"occurrence-{day}"
    return item


def decide(current: CalendarItem, text: str, occurrences: dict | None = None) -> list[Answer] | None:
    def index_of(value: datetime | date) -> int | None:
        return mapping.occurrence_index(current, value)

    return answers(OWNER, current, from_ical(text, default_tz="Europe/Berlin"), occurrences or {}, index_of)


def test_a_changed_own_partstat_is_the_answer():
    assert decide(held(), cal(body("ACCEPTED"))) == [Answer("Accept")]
    assert decide(held(), cal(body("TENTATIVE"))) == [Answer("Tentative")]
    assert decide(held("Accept"), cal(body("DECLINED"))) == [Answer("Decline")]
    # A COMMENT and unmapped properties do not make it more than an answer.
    extra = "COMMENT:Running late\r\nX-MOZ-RECEIVED-SEQUENCE:0\r\nSEQUENCE:0\r\n"
    assert decide(held(), cal(body("ACCEPTED", extra=extra))) == [Answer("Accept")]


def test_no_answer_when_nothing_is_answered_or_more_changes():
    assert decide(held(), cal(body())) is None  # still NEEDS-ACTION
    assert decide(held(), cal(body("ACCEPTED", summary="My own title"))) is None
    assert decide(held(), cal(body("ACCEPTED").replace("T100000\r\n", "T090000\r\n"))) is None
    someone_else = body().replace("PARTSTAT=ACCEPTED:mailto:carol", "PARTSTAT=DECLINED:mailto:carol")
    assert decide(held(), cal(someone_else)) is None


def test_no_answer_on_the_owners_own_meeting_or_a_changed_organizer():
    assert decide(held("Organizer", OWNER), cal(body("ACCEPTED"))) is None
    changed = body("ACCEPTED").replace("mailto:bob@example.com", "mailto:dave@example.com")
    assert decide(held(), cal(changed)) is None
    assert own_answer(from_ical(cal(body("ACCEPTED")), default_tz="UTC").master, "nobody@example.com") is None


def test_a_retry_finds_nothing_left_to_send():
    assert decide(held("Accept"), cal(body("ACCEPTED"))) == []
    assert decide(held("Accept"), cal(body("ACCEPTED", summary="Changed"))) is None


def test_an_override_answers_its_occurrence():
    series = held(rrule=WEEKLY)
    second = occurrence(series, 22, "NoResponseReceived")
    # The series accepted, the second week declined: two response objects, the series' first.
    text = cal(body("ACCEPTED", rrule=WEEKLY), override("DECLINED"))
    assert decide(series, text, {2: second}) == [Answer("Accept"), Answer("Decline", 2)]
    # Only the second week answered.
    text = cal(body(rrule=WEEKLY), override("TENTATIVE"))
    assert decide(series, text, {2: second}) == [Answer("Tentative", 2)]
    # The series accepted and its override saying so too: one answer, for the series.
    text = cal(body("ACCEPTED", rrule=WEEKLY), override("ACCEPTED"))
    assert decide(series, text, {2: second}) == [Answer("Accept")]
    # An override that moves its occurrence is more than an answer.
    moved = override("ACCEPTED").replace(
        "DTSTART;TZID=Europe/Berlin:20261222T100000", "DTSTART;TZID=Europe/Berlin:20261222T090000"
    )
    assert decide(series, cal(body(rrule=WEEKLY), moved), {2: second}) is None
    # Exchange holding that answer already: nothing to send (a retry).
    assert (
        decide(
            series, cal(body(rrule=WEEKLY), override("TENTATIVE")), {2: occurrence(series, 22, "Tentative")}
        )
        == []
    )


def test_comment_and_whether_to_send():
    def options(text: str, policy: str = "auto"):
        return reply_options(text, OWNER, policy, lambda value: 2)

    assert options(cal(body("ACCEPTED"))) == ({}, True)
    with_comment = cal(
        body("DECLINED", extra="COMMENT:On leave that week\r\n"),
        override("ACCEPTED", comment="COMMENT:But this one\r\n"),
    )
    assert options(with_comment) == ({None: "On leave that week", 2: "But this one"}, True)
    assert options(cal(body("ACCEPTED")), "never") == ({}, False)
    # RFC 6638 §7.1: the client schedules itself.
    assert options(cal(body("ACCEPTED", organizer=";SCHEDULE-AGENT=CLIENT"))) == ({}, False)
    own = cal(body("ACCEPTED").replace("RSVP=TRUE:", "RSVP=TRUE;SCHEDULE-AGENT=NONE:"))
    assert options(own) == ({}, False)
    assert options(cal(body("ACCEPTED", organizer=";SCHEDULE-AGENT=SERVER"))) == ({}, True)


def test_a_decline_is_recognised_for_its_retry():
    def resource(text: str):
        return from_ical(text, default_tz="Europe/Berlin")

    assert declines(OWNER, resource(cal(body("DECLINED"))))
    assert not declines(OWNER, resource(cal(body("ACCEPTED"))))
    assert not declines("bob@example.com", resource(cal(body("DECLINED"))))  # the organizer's own


def test_the_owners_attendee_shows_her_own_answer():
    item = held("Tentative")
    show_own_response(item, "ALICE@example.com")
    answered = {a.mailbox.email_address.lower(): a.response_type for a in item.required_attendees}
    assert answered == {"alice@example.com": "Tentative", "carol@example.com": "Accept"}
    mine = held("Organizer", OWNER)
    show_own_response(mine, OWNER)
    assert [a.response_type for a in mine.required_attendees] == ["NoResponseReceived", "Accept"]


def _invitation(**fields: object) -> CalendarItem:
    item = CalendarItem(
        organizer=Mailbox(email_address="bob@example.com"),
        is_meeting=True,
        is_cancelled=False,
        my_response_type="Accept",
    )
    for name, value in fields.items():
        setattr(item, name, value)
    return item


class _Record:
    email = OWNER

    def __init__(self, invitations: str = "auto") -> None:
        self.invitations = invitations


def test_deleting_an_invitation_declines_it_unless_there_is_nothing_to_answer():
    assert declines_on_delete(_Record(), _invitation())
    assert declines_on_delete(_Record(), _invitation(my_response_type="NoResponseReceived"))
    assert not declines_on_delete(_Record("never"), _invitation())
    assert not declines_on_delete(_Record(), _invitation(is_cancelled=True))
    assert not declines_on_delete(_Record(), _invitation(my_response_type="Decline"))
    assert not declines_on_delete(_Record(), _invitation(my_response_type="Organizer"))
    assert not declines_on_delete(
        _Record(), _invitation(organizer=Mailbox(email_address="ALICE@example.com"))
    )
    assert not declines_on_delete(_Record(), _invitation(is_meeting=False))


def test_a_stored_schedule_agent_client_keeps_a_delete_silent():
    client = body(extra="").replace("ATTENDEE;CN=Alice;", "ATTENDEE;CN=Alice;SCHEDULE-AGENT=CLIENT;")
    residual = client + "END:VCALENDAR\r\n"
    assert not declines_on_delete(_Record(), _invitation(caldav_residual=residual))
    by_server = body() + "END:VCALENDAR\r\n"
    assert declines_on_delete(_Record(), _invitation(caldav_residual=by_server))
    assert declines_on_delete(_Record(), _invitation(caldav_residual="not iCalendar"))
