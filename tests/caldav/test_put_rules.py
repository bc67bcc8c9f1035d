"""What a PUT body may hold beyond RFC 4791 §4.1's basics: METHOD, dates, and the limits that bound
the work one request causes (RFC 4791 §5.2.5-§5.2.9, §5.3.2.1)."""

from __future__ import annotations

import pytest

from gateway.caldav import validation
from gateway.caldav.limits import Limits
from tests.caldav.test_objects import CAL, ICS, event

C = "{urn:ietf:params:xml:ns:caldav}"
PROPS = (
    '<D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><C:max-resource-size/>'
    "<C:max-attendees-per-instance/><C:min-date-time/><C:max-date-time/></D:prop></D:propfind>"
)


def with_method(method: str) -> str:
    return event().replace("PRODID:-//test//EN\r\n", f"PRODID:-//test//EN\r\nMETHOD:{method}\r\n")


async def test_method_publish_is_removed_and_the_event_stored(dav):
    r = await dav("PUT", CAL + "exported.ics", with_method("PUBLISH"), content_type=ICS)
    # RFC 4791 §5.3.4: the stored object differs from the request, so the answer carries no ETag.
    assert r.status == 201 and "ETag" not in r.headers
    stored = await dav("GET", CAL + "exported.ics")
    assert stored.status == 200 and "METHOD" not in stored.text
    assert stored.text == event()


@pytest.mark.parametrize("method", ["REQUEST", "REPLY", "CANCEL", "COUNTER"])
async def test_other_methods_are_itip_messages_and_refused(dav, method):
    r = await dav("PUT", CAL + "invite.ics", with_method(method), content_type=ICS)
    assert r.status == 403 and f"{C}valid-calendar-object-resource" in _precondition(r)
    assert f"METHOD:{method}" in r.text and "scheduling message" in r.text
    assert (await dav("GET", CAL + "invite.ics")).status == 404


def _precondition(r) -> str:
    return r.xml[0].tag if len(r.xml) else ""


@pytest.mark.parametrize(
    ("start", "end", "precondition", "words"),
    [
        ("00010101T000000Z", "99991231T235959Z", "min-date-time", "DTSTART 0001-01-01"),
        ("20250101T000000Z", "99991231T235959Z", "max-date-time", "DTEND 9999-12-31"),
        ("15000101T000000Z", "15000101T010000Z", "min-date-time", "before 1601-01-01"),
        ("45010101T000000Z", "45010101T010000Z", "max-date-time", "after 4500-12-31"),
    ],
)
async def test_dates_outside_what_a_calendar_holds_are_refused_not_500(dav, start, end, precondition, words):
    r = await dav("PUT", CAL + "far.ics", event(start=start, end=end), content_type=ICS)
    assert r.status == 403, r.text
    assert _precondition(r) == C + precondition and words in r.text
    assert (await dav("GET", CAL + "far.ics")).status == 404


async def test_a_duration_past_the_latest_date_is_refused(dav):
    body = event(start="45001231T000000Z").replace("DTEND:20250305T130000Z", "DURATION:P400D")
    r = await dav("PUT", CAL + "long.ics", body, content_type=ICS)
    assert r.status == 403 and _precondition(r) == C + "max-date-time"


async def test_until_and_exdate_far_out_are_refused(dav):
    r = await dav(
        "PUT", CAL + "u.ics", event(extra="RRULE:FREQ=DAILY;UNTIL=99991231T000000Z\r\n"), content_type=ICS
    )
    assert r.status == 403 and _precondition(r) == C + "max-date-time"
    r = await dav("PUT", CAL + "x.ics", event(extra="EXDATE:00010101T000000Z\r\n"), content_type=ICS)
    assert r.status == 403 and _precondition(r) == C + "min-date-time"


async def test_calendars_advertise_the_limits(dav):
    r = await dav("PROPFIND", CAL, PROPS, depth="0")
    values = {
        name: r.prop(CAL, C + name).text for name in ("max-resource-size", "max-attendees-per-instance")
    }
    assert values == {"max-resource-size": "20000", "max-attendees-per-instance": "300"}
    assert r.prop(CAL, C + "min-date-time").text == "16010101T000000Z"
    assert r.prop(CAL, C + "max-date-time").text == "45001231T235959Z"


def attendees(count: int) -> str:
    return "".join(f"ATTENDEE:mailto:person{n}@example.com\r\n" for n in range(count))


def test_too_many_attendees_are_refused_with_max_attendees_per_instance():
    limits = Limits(max_resource_size=10_000_000)
    body = event(extra="ORGANIZER:mailto:alice@example.com\r\n" + attendees(301)).encode()
    with pytest.raises(validation.DavError) as refused:
        validation.check(body, limits)
    assert refused.value.precondition == C + "max-attendees-per-instance"
    assert refused.value.message == "An event may invite at most 300 attendees."
    validation.check(event(extra=attendees(300)).encode(), limits)  # the limit itself is allowed


VTIMEZONE = (
    "BEGIN:VTIMEZONE\r\nTZID:Zone{n}\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\n"
    "TZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n"
)
ALARM = "BEGIN:VALARM\r\nACTION:DISPLAY\r\nDESCRIPTION:x\r\nTRIGGER:-PT{n}M\r\nEND:VALARM\r\n"


def overrides(count: int) -> str:
    return "".join(
        f"BEGIN:VEVENT\r\nUID:ev-1\r\nDTSTAMP:20250101T000000Z\r\nRECURRENCE-ID:202503{5 + n:02d}T120000Z\r\n"
        f"DTSTART:202503{5 + n:02d}T140000Z\r\nDTEND:202503{5 + n:02d}T150000Z\r\nEND:VEVENT\r\n"
        for n in range(1, count + 1)
    )


@pytest.mark.parametrize(
    ("body", "sentence"),
    [
        (
            event().replace(
                "VERSION:2.0\r\n", "VERSION:2.0\r\n" + "".join(VTIMEZONE.format(n=n) for n in range(21))
            ),
            "A calendar object may hold at most 20 VTIMEZONEs; this one has 21.",
        ),
        (
            event(extra="".join(ALARM.format(n=n) for n in range(21))),
            "An event may have at most 20 alarms (VALARM).",
        ),
        (
            event(extra="RRULE:FREQ=DAILY\r\n").replace("END:VCALENDAR", overrides(3) + "END:VCALENDAR"),
            "A series may have at most 2 modified occurrences (RECURRENCE-ID); this one has 3.",
        ),
    ],
)
def test_counts_beyond_the_limits_are_refused_with_a_sentence(body, sentence):
    limits = Limits(max_overrides=2)
    for text in (body, _folded(body)):  # counted before the parse, and exactly after it
        with pytest.raises(validation.DavError) as refused:
            validation.check(text.encode(), limits)
        assert refused.value.status == 403 and refused.value.message == sentence
        assert refused.value.precondition == C + "valid-calendar-object-resource"


def test_a_body_of_too_many_lines_is_refused_before_it_is_parsed():
    body = event(extra="X-A:1\r\n" * 100)
    with pytest.raises(validation.DavError) as refused:
        validation.check(body.encode(), Limits(max_properties=100))
    assert (
        refused.value.message
        == "A calendar object may have at most 100 lines (properties); this one has 111."
    )
    assert refused.value.precondition == C + "valid-calendar-object-resource"
    folded = event(extra="DESCRIPTION:" + "x\r\n " * 200 + "\r\n")  # continuation lines are no properties
    validation.check(folded.encode(), Limits(max_properties=100))


def _folded(body: str) -> str:
    """The same body with every BEGIN/RECURRENCE-ID line folded (RFC 5545 §3.1): no line starts with them."""
    return body.replace("BEGIN:V", "BEG\r\n IN:V").replace("RECURRENCE-ID:", "RECURRENCE\r\n -ID:")


async def test_the_configured_limits_apply_to_puts(aiohttp_client, backend, authenticator):
    from tests.support.dav import Dav, build_app

    app = build_app(backend, authenticator, limits=Limits(max_attendees=2))
    dav = Dav(await aiohttp_client(app), "alice", "alice-app-pw")
    r = await dav("PUT", CAL + "meeting.ics", event(extra=attendees(3)), content_type=ICS)
    assert r.status == 403 and "at most 2 attendees" in r.text
    r = await dav("PROPFIND", CAL, PROPS, depth="0")
    assert r.prop(CAL, C + "max-attendees-per-instance").text == "2"
    assert r.prop(CAL, C + "max-resource-size").text == "1000000"
