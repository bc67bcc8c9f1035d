"""Which PUTs answer an invitation (gateway/ews/backend/replies.py): only a change of the owner's own
PARTSTAT (and a COMMENT) on a meeting someone else organises; and whether the answer is sent."""

from __future__ import annotations

from exchangelib import CalendarItem
from exchangelib.properties import Mailbox

from gateway.ews.backend.replies import answer_of, declines, own_answer, reply_options, settled
from gateway.ews.mapping import from_ical, show_own_response

OWNER = "alice@example.com"


def body(
    partstat: str = "NEEDS-ACTION", summary: str = "Budget review", extra: str = "", organizer: str = ""
) -> str:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//tests//EN\r\nBEGIN:VEVENT\r\nUID:u-1\r\n"
        "DTSTAMP:20261120T100000Z\r\nDTSTART;TZID=Europe/Berlin:20261215T100000\r\n"
        f"DTEND;TZID=Europe/Berlin:20261215T110000\r\nSUMMARY:{summary}\r\n"
        f"ORGANIZER;CN=Bob Brown{organizer}:mailto:bob@example.com\r\n"
        f"ATTENDEE;CN=Alice;PARTSTAT={partstat};RSVP=TRUE:mailto:Alice@Example.com\r\n"
        "ATTENDEE;PARTSTAT=ACCEPTED:mailto:carol@example.com\r\n"
        f"{extra}END:VEVENT\r\nEND:VCALENDAR\r\n"
    )


def held(response: str = "NoResponseReceived", organizer: str = "bob@example.com") -> CalendarItem:
    """Alice's copy of Bob's meeting as GetItem gives it: the organizer's attendee list, her MyResponseType."""
    item = from_ical(body(), default_tz="Europe/Berlin").master
    item.organizer = Mailbox(name="Bob Brown", email_address=organizer)
    item.my_response_type = response
    item.legacy_free_busy_status = "Tentative"
    return item


def resource(text: str):
    return from_ical(text, default_tz="Europe/Berlin")


def test_a_changed_own_partstat_is_the_answer():
    assert answer_of(OWNER, held(), resource(body("ACCEPTED"))) == "Accept"
    assert answer_of(OWNER, held(), resource(body("TENTATIVE"))) == "Tentative"
    assert answer_of(OWNER, held("Accept"), resource(body("DECLINED"))) == "Decline"
    # A COMMENT and unmapped properties do not make it more than an answer.
    extra = "COMMENT:Running late\r\nX-MOZ-RECEIVED-SEQUENCE:0\r\nSEQUENCE:0\r\n"
    assert answer_of(OWNER, held(), resource(body("ACCEPTED", extra=extra))) == "Accept"


def test_no_answer_when_nothing_is_answered_or_more_changes():
    assert answer_of(OWNER, held(), resource(body())) is None  # still NEEDS-ACTION
    assert answer_of(OWNER, held("Accept"), resource(body("ACCEPTED"))) is None  # already the answer
    assert answer_of(OWNER, held(), resource(body("ACCEPTED", summary="My own title"))) is None
    moved = body("ACCEPTED").replace("T100000\r\n", "T090000\r\n")
    assert answer_of(OWNER, held(), resource(moved)) is None
    someone_else = body().replace("PARTSTAT=ACCEPTED:mailto:carol", "PARTSTAT=DECLINED:mailto:carol")
    assert answer_of(OWNER, held(), resource(someone_else)) is None


def test_no_answer_on_the_owners_own_meeting_or_a_changed_organizer():
    assert answer_of(OWNER, held("Organizer", OWNER), resource(body("ACCEPTED"))) is None
    changed = body("ACCEPTED").replace("mailto:bob@example.com", "mailto:dave@example.com")
    assert answer_of(OWNER, held(), resource(changed)) is None
    assert own_answer(resource(body("ACCEPTED")).master, "nobody@example.com") is None


def test_a_retry_finds_the_answer_settled():
    assert settled(OWNER, held("Accept"), resource(body("ACCEPTED")))
    assert not settled(OWNER, held(), resource(body("ACCEPTED")))
    assert not settled(OWNER, held("Accept"), resource(body("ACCEPTED", summary="Changed")))
    assert not settled(OWNER, held("Accept"), resource(body()))


def test_comment_and_whether_to_send():
    assert reply_options(body("ACCEPTED"), OWNER, "auto") == (None, True)
    with_comment = body("DECLINED", extra="COMMENT:On leave that week\r\n")
    assert reply_options(with_comment, OWNER, "auto") == ("On leave that week", True)
    assert reply_options(body("ACCEPTED"), OWNER, "never") == (None, False)
    # RFC 6638 §7.1: the client schedules itself.
    client = body("ACCEPTED", organizer=";SCHEDULE-AGENT=CLIENT")
    assert reply_options(client, OWNER, "auto") == (None, False)
    own = body("ACCEPTED").replace("RSVP=TRUE:", "RSVP=TRUE;SCHEDULE-AGENT=NONE:")
    assert reply_options(own, OWNER, "auto") == (None, False)
    server = body("ACCEPTED", organizer=";SCHEDULE-AGENT=SERVER")
    assert reply_options(server, OWNER, "auto") == (None, True)


def test_a_decline_is_recognised_for_its_retry():
    assert declines(OWNER, resource(body("DECLINED")))
    assert not declines(OWNER, resource(body("ACCEPTED")))
    assert not declines("bob@example.com", resource(body("DECLINED")))  # the organizer's own


def test_the_owners_attendee_shows_her_own_answer():
    item = held("Tentative")
    show_own_response(item, "ALICE@example.com")
    answers = {a.mailbox.email_address.lower(): a.response_type for a in item.required_attendees}
    assert answers == {"alice@example.com": "Tentative", "carol@example.com": "Accept"}
    mine = held("Organizer", OWNER)
    show_own_response(mine, OWNER)
    assert [a.response_type for a in mine.required_attendees] == ["NoResponseReceived", "Accept"]
