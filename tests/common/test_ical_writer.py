"""The direct iCalendar writer (gateway.common.ical): every line it writes must read back with icalendar."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from icalendar import Calendar

from gateway.common import ical

AWKWARD = [
    "plain",
    "comma, semicolon; colon: backslash \\ end",
    "line one\nline two\r\nline three\rline four",
    "literal \\N and \\n in text",
    "Umlaute äöüß, Emoji 🎉🎉, CJK 会議室",
    "x" * 200,
    "é" * 100,
    "\\" * 80,
    "",
]


def read_back(*lines: str) -> object:
    """The VEVENT holding ``lines``, parsed by icalendar."""
    text = ical.component(
        "VCALENDAR", [ical.line("VERSION", "2.0"), ical.component("VEVENT", [ical.line("UID", "u"), *lines])]
    )
    return Calendar.from_ical(text).walk("VEVENT")[0]


def physical_lines(text: str) -> list[str]:
    assert text.endswith("\r\n")
    return text[:-2].split("\r\n")


@pytest.mark.parametrize("value", AWKWARD)
def test_text_values_read_back_unchanged(value: str) -> None:
    event = read_back(ical.text_line("SUMMARY", value))
    expected = value.replace("\\N", "\n").replace("\r\n", "\n").replace("\r", "\n")
    assert str(event["SUMMARY"]) == expected


@pytest.mark.parametrize("value", AWKWARD)
def test_folded_lines_stay_under_75_octets_and_split_no_character(value: str) -> None:
    text = ical.text_line("DESCRIPTION", value, (("LANGUAGE", "de"),))
    lines = physical_lines(text)
    assert all(len(piece.encode("utf-8")) <= 75 for piece in lines)
    assert all(piece.startswith(" ") for piece in lines[1:])
    # unfolding (RFC 5545 §3.1) gives the unfolded line back
    assert "".join([lines[0], *(piece[1:] for piece in lines[1:])]) == (
        f"DESCRIPTION;LANGUAGE=de:{ical.escape_text(value)}"
    )


def test_a_fold_never_separates_a_backslash_from_what_it_escapes() -> None:
    for prefix in range(60, 80):
        for tail in (",;\\", "\\\\\\", "\n,\\;"):
            text = ical.text_line("SUMMARY", "a" * prefix + tail)
            for piece in physical_lines(text):
                run = len(piece) - len(piece.rstrip("\\"))
                assert run % 2 == 0, (prefix, tail, piece)  # a piece ends with whole escapes only
            assert str(read_back(text)["SUMMARY"]) == "a" * prefix + tail


def test_short_ascii_lines_are_not_folded() -> None:
    assert ical.line("SUMMARY", "x" * 65) == "SUMMARY:" + "x" * 65 + "\r\n"  # 73 octets
    assert len(physical_lines(ical.line("SUMMARY", "x" * 67))) == 2  # 75 octets


@pytest.mark.parametrize(
    "name",
    [
        "Bob",
        "O'Brien, Pat",
        'Zoë "Z" Ünal',
        "Sales: EMEA; West",
        "caret ^ sign",
        "two\nlines",
        "Jane Doe",
    ],
)
def test_parameter_values_read_back(name: str) -> None:
    event = read_back(ical.line("ATTENDEE", "mailto:x@example.com", (("CN", name), ("PARTSTAT", "ACCEPTED"))))
    attendee = event["ATTENDEE"]
    assert str(attendee) == "mailto:x@example.com"
    assert attendee.params["CN"] == name.replace("\n", "\n")
    assert attendee.params["PARTSTAT"] == "ACCEPTED"


def test_parameters_are_sorted_and_quoted_only_when_needed() -> None:
    text = ical.line(
        "ATTENDEE",
        "mailto:x@example.com",
        (("ROLE", "REQ-PARTICIPANT"), ("CN", "Jane Doe"), ("CUTYPE", "INDIVIDUAL")),
    )
    unfolded = text.replace("\r\n ", "")
    assert (
        unfolded == 'ATTENDEE;CN="Jane Doe";CUTYPE=INDIVIDUAL;ROLE=REQ-PARTICIPANT:mailto:x@example.com\r\n'
    )
    assert ical.param_value("TZID", "Europe/Berlin") == "Europe/Berlin"
    assert ical.param_value("X-NAME", "a:b") == '"a:b"'


def test_date_and_date_time_forms() -> None:
    berlin_winter = timezone(timedelta(hours=1))
    event = read_back(
        ical.line("DTSTART", ical.format_date(date(2024, 2, 29)), (("VALUE", "DATE"),)),
        ical.line("DTEND", ical.format_local(datetime(2024, 3, 1, 9, 5, 7)), (("TZID", "Europe/Berlin"),)),
        ical.line("DTSTAMP", ical.format_utc(datetime(2024, 3, 1, 9, 5, 7, 999, tzinfo=berlin_winter))),
        ical.line("CREATED", ical.format_utc(datetime(2024, 3, 1, 9, 5, 7))),  # naive: taken as UTC
    )
    assert event["DTSTART"].dt == date(2024, 2, 29)
    assert event["DTEND"].dt.replace(tzinfo=None) == datetime(2024, 3, 1, 9, 5, 7)
    assert str(event["DTEND"].dt.tzinfo) == "Europe/Berlin"
    assert event["DTSTAMP"].dt == datetime(2024, 3, 1, 8, 5, 7, tzinfo=UTC)
    assert event["CREATED"].dt == datetime(2024, 3, 1, 9, 5, 7, tzinfo=UTC)


@pytest.mark.parametrize("minutes", [0, 1, 15, 59, 60, 61, 90, 1080, 1440, 1441, 2880, 20160])
def test_durations_read_back(minutes: int) -> None:
    for delta in (timedelta(minutes=minutes), -timedelta(minutes=minutes)):
        text = ical.format_duration(delta)
        event = read_back(ical.line("DURATION", text))
        assert event["DURATION"].dt == delta, text


def test_durations_for_seconds_read_back() -> None:
    for delta in (timedelta(seconds=5), timedelta(hours=1, seconds=5), -timedelta(days=2, seconds=1)):
        assert read_back(ical.line("DURATION", ical.format_duration(delta)))["DURATION"].dt == delta


def test_periods_are_utc_start_and_end() -> None:
    start = datetime(2025, 3, 4, 10, tzinfo=timezone(timedelta(hours=1)))
    text = ical.line("FREEBUSY", ical.format_period(start, start + timedelta(hours=1)), (("FBTYPE", "BUSY"),))
    assert text == "FREEBUSY;FBTYPE=BUSY:20250304T090000Z/20250304T100000Z\r\n"


@pytest.mark.parametrize("value", AWKWARD)
def test_unescape_inverts_escape(value: str) -> None:
    expected = value.replace("\\N", "\n").replace("\r\n", "\n").replace("\r", "\n")
    assert ical.unescape_text(ical.escape_text(value)) == expected
