"""calendar-query filters exactly as RFC 4791 §9.7-§9.9 define them: alarms, undefined properties,
the level a filter applies to, open-ended and extreme time ranges."""

from __future__ import annotations

import pytest
from icalendar import Calendar

from tests.caldav.test_reports import CAL, names, query, seed, single

C = "{urn:ietf:params:xml:ns:caldav}"


def alarm(trigger: str, extra: str = "") -> str:
    return f"BEGIN:VALARM\nACTION:DISPLAY\nDESCRIPTION:Reminder\n{trigger}\n{extra}END:VALARM\n"


def alarm_filter(start: str | None, end: str | None) -> str:
    bounds = (f' start="{start}"' if start else "") + (f' end="{end}"' if end else "")
    return (
        f'<C:comp-filter name="VEVENT"><C:comp-filter name="VALARM"><C:time-range{bounds}/>'
        "</C:comp-filter></C:comp-filter>"
    )


@pytest.fixture
def alarms(backend):
    # 10:00-11:00Z, alarm 30 minutes before the start (09:30Z).
    backend.seed(
        "alice",
        "calendar",
        "before.ics",
        single("before", "Before", "20250301T100000Z", "20250301T110000Z", alarm("TRIGGER:-PT30M")),
    )
    # Alarm 15 minutes before the end (10:45Z), repeated twice every 5 minutes (10:50Z, 10:55Z).
    backend.seed(
        "alice",
        "calendar",
        "end.ics",
        single(
            "end",
            "End",
            "20250302T100000Z",
            "20250302T110000Z",
            alarm("TRIGGER;RELATED=END:-PT15M", "REPEAT:2\nDURATION:PT5M\n"),
        ),
    )
    # An absolute alarm.
    backend.seed(
        "alice",
        "calendar",
        "absolute.ics",
        single(
            "absolute",
            "Absolute",
            "20250310T100000Z",
            "20250310T110000Z",
            alarm("TRIGGER;VALUE=DATE-TIME:20250309T180000Z"),
        ),
    )
    # A daily series with its alarm at 08:50Z each day, from 1 to 5 April.
    backend.seed(
        "alice",
        "calendar",
        "daily.ics",
        single(
            "daily",
            "Daily",
            "20250401T090000Z",
            "20250401T093000Z",
            "RRULE:FREQ=DAILY;COUNT=5\n" + alarm("TRIGGER:-PT10M"),
        ),
    )


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        ("20250301T092000Z", "20250301T094000Z", {"before.ics"}),
        ("20250301T093000Z", "20250301T093001Z", {"before.ics"}),  # start <= trigger
        ("20250301T092000Z", "20250301T093000Z", set()),  # end > trigger
        ("20250301T100000Z", "20250301T110000Z", set()),  # the event, not its alarm, is in range
        ("20250302T105200Z", "20250302T105600Z", {"end.ics"}),  # the second repetition
        ("20250309T170000Z", "20250309T190000Z", {"absolute.ics"}),
        ("20250404T084500Z", "20250404T085500Z", {"daily.ics"}),  # the fourth instance's alarm
        ("20250406T084500Z", "20250406T085500Z", set()),  # after the last instance
        ("20250401T000000Z", None, {"daily.ics"}),
        (None, "20250301T100000Z", {"before.ics"}),
    ],
)
async def test_alarm_time_ranges_match_the_trigger_times(dav, alarms, start, end, expected):
    assert await names(dav, query(alarm_filter(start, end))) == expected


NO_END = single("no-end", "No end", "20250401T100000Z", "X").replace("DTEND:X\n", "")
ALL_DAY = single("all-day", "All day", "X", "X").replace(
    "DTSTART:X\nDTEND:X\n", "DTSTART;VALUE=DATE:20250402\n"
)


@pytest.fixture
def open_events(backend):
    seed(backend)
    backend.seed("alice", "calendar", "no-end.ics", NO_END)
    backend.seed("alice", "calendar", "all-day.ics", ALL_DAY)
    backend.seed(
        "alice",
        "calendar",
        "private.ics",
        single("private", "Private", "20250403T100000Z", "20250403T110000Z", "CLASS:PRIVATE\n"),
    )


def defined(name: str, range_: str = "") -> str:
    return (
        f'<C:comp-filter name="VEVENT">{range_}<C:prop-filter name="{name}"><C:is-not-defined/>'
        "</C:prop-filter></C:comp-filter>"
    )


async def test_is_not_defined_looks_at_what_the_object_holds_even_within_a_time_range(dav, open_events):
    april = '<C:time-range start="20250401T000000Z" end="20250501T000000Z"/>'
    assert await names(dav, query(defined("DTEND"))) == {"no-end.ics", "all-day.ics"}
    # Instances of a time range are evaluated as stored: no DTEND is invented for them.
    assert await names(dav, query(defined("DTEND", april))) == {"no-end.ics", "all-day.ics"}
    assert await names(dav, query(defined("CLASS", april))) == {"no-end.ics", "all-day.ics"}


async def test_expanded_instances_keep_an_event_without_end_as_written(dav, open_events):
    prop = '<C:calendar-data><C:expand start="20250401T000000Z" end="20250402T000000Z"/></C:calendar-data>'
    tr = '<C:comp-filter name="VEVENT"><C:time-range start="20250401T000000Z" end="20250402T000000Z"/></C:comp-filter>'
    r = await dav("REPORT", CAL, query(tr, prop), depth="1")
    [instance] = Calendar.from_ical(r.prop(CAL + "no-end.ics", C + "calendar-data").text).walk("VEVENT")
    assert "DTEND" not in instance and "DURATION" not in instance


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        # RFC 4791 §9.9: a DATE-TIME DTSTART without end is an instant: start <= DTSTART < end.
        ("20250401T100000Z", None, {"no-end.ics", "all-day.ics", "private.ics", "party.ics"}),
        ("20250401T100001Z", None, {"all-day.ics", "private.ics", "party.ics"}),
        (None, "20250401T100000Z", {"standup.ics", "dentist.ics"}),
        (None, "20250401T100001Z", {"standup.ics", "dentist.ics", "no-end.ics"}),
        # A DATE DTSTART without end lasts the day.
        ("20250402T235959Z", "20250403T000000Z", {"all-day.ics"}),
        ("20250403T000000Z", "20250403T100000Z", set()),
    ],
)
async def test_open_ended_and_boundary_time_ranges(dav, open_events, start, end, expected):
    bounds = (f' start="{start}"' if start else "") + (f' end="{end}"' if end else "")
    tr = f'<C:comp-filter name="VEVENT"><C:time-range{bounds}/></C:comp-filter>'
    assert await names(dav, query(tr)) == expected


async def test_a_prop_filter_tests_the_component_it_is_in(dav, open_events):
    # RFC 4791 §9.7.2: a prop-filter directly in the VCALENDAR comp-filter tests VCALENDAR's own
    # properties; SUMMARY is a VEVENT property, so it matches nothing there (and every object lacks it).
    summary = '<C:prop-filter name="SUMMARY"><C:text-match>party</C:text-match></C:prop-filter>'
    assert await names(dav, query(summary)) == set()
    lacking = '<C:prop-filter name="SUMMARY"><C:is-not-defined/></C:prop-filter>'
    assert len(await names(dav, query(lacking))) == 6
    prodid = '<C:prop-filter name="PRODID"><C:text-match>-//test//</C:text-match></C:prop-filter>'
    assert len(await names(dav, query(prodid))) == 6
    nested = '<C:comp-filter name="VEVENT">' + summary + "</C:comp-filter>"
    assert await names(dav, query(nested)) == {"party.ics"}


async def test_a_time_range_on_vcalendar_is_an_invalid_filter(dav, open_events):
    body = query("").replace(
        '<C:comp-filter name="VCALENDAR">',
        '<C:comp-filter name="VCALENDAR"><C:time-range start="20250101T000000Z" end="20260101T000000Z"/>',
    )
    r = await dav("REPORT", CAL, body, depth="1")
    assert r.status == 400 and "valid-filter" in r.text and "VEVENT" in r.text


@pytest.mark.parametrize(
    ("start", "end"),
    [("00010101T000000Z", "99991231T235959Z"), ("99990101T000000Z", None), (None, "00010102T000000Z")],
)
async def test_extreme_query_ranges_answer_without_error(dav, open_events, start, end):
    bounds = (f' start="{start}"' if start else "") + (f' end="{end}"' if end else "")
    tr = f'<C:comp-filter name="VEVENT"><C:time-range{bounds}/></C:comp-filter>'
    found = await names(dav, query(tr))
    assert found == (
        {"standup.ics", "dentist.ics", "party.ics", "no-end.ics", "all-day.ics", "private.ics"}
        if start and end
        else set()
    )
    assert await names(dav, query(alarm_filter(start, end))) == set()


async def test_expand_over_extreme_ranges_answers_and_free_busy_says_what_it_covers(dav, open_events):
    prop = '<C:calendar-data><C:expand start="00010101T000000Z" end="99991231T235959Z"/></C:calendar-data>'
    r = await dav("REPORT", CAL, query('<C:comp-filter name="VEVENT"/>', prop), depth="1")
    assert r.status == 207
    standup = Calendar.from_ical(r.prop(CAL + "standup.ics", C + "calendar-data").text).walk("VEVENT")
    assert len(standup) == 10
    for start, end in (("00010101T000000Z", "00010102T000000Z"), ("99991230T000000Z", "99991231T235959Z")):
        body = (
            '<C:free-busy-query xmlns:C="urn:ietf:params:xml:ns:caldav">'
            f'<C:time-range start="{start}" end="{end}"/></C:free-busy-query>'
        )
        r = await dav("REPORT", CAL, body, depth="1")
        assert r.status == 400 and "between 1601-01-01 and 4500-12-31" in r.text, r.text
    r = await dav("GET", "/freebusy/alice@example.com.vfb?end=00010101T000000Z")
    assert r.status == 400 and "between 1601-01-01 and 4500-12-31" in r.text
