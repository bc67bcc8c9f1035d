"""PUT body checks shared by every store (gateway.caldav.validation, RFC 4791 §4.1 and §5.3.2.1).

Bodies every store refuses are refused here, before any backend sees them, with the status,
precondition and sentence a client has always got for them; what only Exchange cannot store is
refused by the EWS mapping (tests/ews/test_mapping.py).
"""

from __future__ import annotations

import pytest

from gateway.caldav import validation
from gateway.caldav.errors import DavError
from gateway.caldav.validation import SUPPORTED_COMPONENT, VALID_DATA, VALID_OBJECT
from tests.ews.test_mapping import TIMED, event_text

ONLY_EVENTS = "This calendar stores events (VEVENT) only."
ONE_UID = "A calendar object holds exactly one UID (one event series)."


@pytest.mark.parametrize(
    ("text", "precondition", "status", "words"),
    [
        ("not a calendar", VALID_DATA, 400, "The request body is not valid iCalendar."),
        ("BEGIN:VCARD\r\nVERSION:3.0\r\nFN:x\r\nEND:VCARD\r\n", VALID_DATA, 400, "not a VCALENDAR"),
        (event_text("DTSTART:INVALID"), VALID_DATA, 400, "DTSTART"),
        (
            event_text(*TIMED).replace("DTSTAMP:20240101T000000Z", "DTSTAMP:garbage"),
            VALID_DATA,
            400,
            "VEVENT property DTSTAMP is not valid",
        ),
        (
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VTODO\r\nUID:t\r\nSUMMARY:x\r\nEND:VTODO\r\n"
            "END:VCALENDAR\r\n",
            SUPPORTED_COMPONENT,
            403,
            ONLY_EVENTS,
        ),
        (
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VJOURNAL\r\nUID:t\r\nEND:VJOURNAL\r\n"
            "END:VCALENDAR\r\n",
            SUPPORTED_COMPONENT,
            403,
            ONLY_EVENTS,
        ),
        (
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nEND:VCALENDAR\r\n",
            SUPPORTED_COMPONENT,
            403,
            ONLY_EVENTS,
        ),
        (
            event_text(*TIMED, extra="BEGIN:X-THING\r\nX-A:b\r\nEND:X-THING\r\n"),
            SUPPORTED_COMPONENT,
            403,
            ONLY_EVENTS,
        ),
        (
            event_text(
                *TIMED,
                extra="BEGIN:VEVENT\r\nUID:u2\r\nDTSTART:20240101T100000Z\r\nDTEND:20240101T110000Z"
                "\r\nEND:VEVENT\r\n",
            ),
            VALID_OBJECT,
            403,
            ONE_UID,
        ),
        (event_text(*TIMED).replace("UID:u1\r\n", ""), VALID_OBJECT, 403, ONE_UID),
        (
            event_text(*TIMED).replace("UID:u1\r\n", "UID: \r\n"),
            VALID_OBJECT,
            403,
            "Every VEVENT needs a UID",
        ),
        (event_text(TIMED[1]), VALID_OBJECT, 403, "needs a DTSTART"),
    ],
)
def test_bodies_no_store_accepts_are_refused_with_the_caldav_precondition(text, precondition, status, words):
    with pytest.raises(DavError) as refused:
        validation.calendar_object(text.encode("utf-8"))
    assert refused.value.precondition == precondition
    assert refused.value.status == status
    assert words in refused.value.message


def test_a_body_that_is_not_utf8_is_refused() -> None:
    with pytest.raises(DavError) as refused:
        validation.calendar_object(event_text(*TIMED, "SUMMARY:caf\xe9").encode("latin-1"))
    assert (refused.value.status, refused.value.precondition) == (400, VALID_DATA)
    assert refused.value.message == "The request body is not UTF-8."


def test_a_valid_body_comes_back_as_its_text() -> None:
    text = event_text(*TIMED, "RRULE:FREQ=WEEKLY")
    assert validation.calendar_object(text.encode("utf-8")) == text
