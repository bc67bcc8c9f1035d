"""Schedule tags (RFC 6638 §3.2.10, §3.3, §8.2, §8.3) on scheduling object resources."""

from __future__ import annotations

from gateway.caldav.schedule_tag import schedule_tag
from tests.caldav.test_objects import CAL, ICS, event

C = "{urn:ietf:params:xml:ns:caldav}"
PEOPLE = (
    "ORGANIZER;CN=Alice:mailto:alice@example.com\r\n"
    "ATTENDEE;CN=Bob;ROLE=REQ-PARTICIPANT;PARTSTAT={bob}:mailto:bob@example.com\r\n"
    'ATTENDEE;CN="Carol; Ltd";PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:carol@example.com\r\n'
)
PROPFIND = (
    '<D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
    "<D:prop><D:getetag/><C:schedule-tag/></D:prop></D:propfind>"
)


def meeting(summary: str = "Review", bob: str = "NEEDS-ACTION", stamp: str = "20250101T000000Z") -> str:
    return event(summary=summary, extra=PEOPLE.format(bob=bob)).replace(
        "DTSTAMP:20250101T000000Z", f"DTSTAMP:{stamp}\r\nLAST-MODIFIED:{stamp}"
    )


async def tag_of(dav, name: str = "m.ics") -> str:
    r = await dav("GET", CAL + name)
    assert r.status == 200
    return r.headers.get("Schedule-Tag")


async def test_a_scheduling_object_has_a_schedule_tag_on_get_head_put_and_propfind(dav):
    put = await dav("PUT", CAL + "m.ics", meeting(), content_type=ICS)
    assert put.status == 201
    tag = put.headers["Schedule-Tag"]
    assert tag.startswith('"') and tag.endswith('"')
    assert await tag_of(dav) == tag
    assert (await dav("HEAD", CAL + "m.ics")).headers["Schedule-Tag"] == tag
    r = await dav("PROPFIND", CAL + "m.ics", PROPFIND, depth="0")
    assert r.prop(CAL + "m.ics", C + "schedule-tag").text == tag
    query = (
        '<C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
        f"<D:prop><C:schedule-tag/></D:prop><D:href>{CAL}m.ics</D:href></C:calendar-multiget>"
    )
    r = await dav("REPORT", CAL, query, depth="1")
    assert r.prop(CAL + "m.ics", C + "schedule-tag").text == tag


async def test_an_event_without_organizer_has_none(dav):
    await dav("PUT", CAL + "plain.ics", event(), content_type=ICS)
    assert await tag_of(dav, "plain.ics") is None
    r = await dav("PROPFIND", CAL + "plain.ics", PROPFIND, depth="0")
    assert r.status_of(CAL + "plain.ics", C + "schedule-tag") == 404


async def test_replies_keep_the_tag_and_other_changes_change_it(dav, backend):
    await dav("PUT", CAL + "m.ics", meeting(), content_type=ICS)
    first = await tag_of(dav)
    # The store records Bob's reply: his PARTSTAT and the stamps change, and so does the ETag.
    etag = (await dav("GET", CAL + "m.ics")).headers["ETag"]
    backend.seed("alice", "calendar", "m.ics", meeting(bob="ACCEPTED", stamp="20250102T080000Z"))
    assert (await dav("GET", CAL + "m.ics")).headers["ETag"] != etag
    assert await tag_of(dav) == first
    backend.seed("alice", "calendar", "m.ics", meeting(summary="Review (moved)", bob="ACCEPTED"))
    assert await tag_of(dav) != first


async def test_if_schedule_tag_match_lets_a_write_pass_replies_but_not_changes(dav, backend):
    await dav("PUT", CAL + "m.ics", meeting(), content_type=ICS)
    tag = await tag_of(dav)
    backend.seed("alice", "calendar", "m.ics", meeting(bob="ACCEPTED", stamp="20250102T080000Z"))
    # A reply arrived since the organizer's client read the event: If-Match would fail, the tag holds.
    r = await dav(
        "PUT",
        CAL + "m.ics",
        meeting(summary="Review, agenda"),
        content_type=ICS,
        headers={"If-Schedule-Tag-Match": tag},
    )
    assert r.status == 204, r.text
    new_tag = r.headers["Schedule-Tag"]
    assert new_tag != tag
    stale = await dav(
        "PUT",
        CAL + "m.ics",
        meeting(summary="Overwrite?"),
        content_type=ICS,
        headers={"If-Schedule-Tag-Match": tag},
    )
    assert stale.status == 412
    assert "SUMMARY:Review, agenda" in (await dav("GET", CAL + "m.ics")).text
    assert (await dav("DELETE", CAL + "m.ics", headers={"If-Schedule-Tag-Match": tag})).status == 412
    assert (await dav("DELETE", CAL + "m.ics", headers={"If-Schedule-Tag-Match": new_tag})).status == 204


async def test_if_schedule_tag_match_on_a_missing_or_unscheduled_object_fails(dav):
    r = await dav(
        "PUT", CAL + "new.ics", meeting(), content_type=ICS, headers={"If-Schedule-Tag-Match": '"x"'}
    )
    assert r.status == 412 and (await dav("GET", CAL + "new.ics")).status == 404
    await dav("PUT", CAL + "plain.ics", event(), content_type=ICS)
    r = await dav(
        "PUT", CAL + "plain.ics", event(), content_type=ICS, headers={"If-Schedule-Tag-Match": '"x"'}
    )
    assert r.status == 412


async def test_if_match_sent_with_it_must_hold_too(dav, backend):
    await dav("PUT", CAL + "m.ics", meeting(), content_type=ICS)
    tag = await tag_of(dav)
    old_etag = (await dav("GET", CAL + "m.ics")).headers["ETag"]
    backend.seed("alice", "calendar", "m.ics", meeting(bob="ACCEPTED", stamp="20250102T080000Z"))
    r = await dav(
        "PUT",
        CAL + "m.ics",
        meeting(summary="x"),
        content_type=ICS,
        headers={"If-Schedule-Tag-Match": tag, "If-Match": old_etag},
    )
    assert r.status == 412


def test_recorded_replies_rerendering_the_people_keep_the_tag_but_a_new_attendee_changes_it() -> None:
    """Recording a reply may re-render ORGANIZER/ATTENDEE parameters (CN, RSVP, CUTYPE) and add CREATED;
    none of that is a consequential change (RFC 6638 §3.2.10). Another attendee is."""
    sent = (
        "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:u\r\nSUMMARY:Review\r\nDTSTAMP:20250101T000000Z\r\n"
        "ORGANIZER:mailto:alice@example.com\r\n"
        "ATTENDEE;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:bob@example.com\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    recorded = (
        sent.replace("ORGANIZER:", 'ORGANIZER;CN="Alice Adams":')
        .replace("PARTSTAT=NEEDS-ACTION;RSVP=TRUE", "CUTYPE=INDIVIDUAL;PARTSTAT=ACCEPTED")
        .replace("END:VEVENT", "CREATED:20250102T000000Z\r\nEND:VEVENT")
    )
    assert schedule_tag(recorded) == schedule_tag(sent)
    invited = sent.replace("END:VEVENT", "ATTENDEE:mailto:carol@example.com\r\nEND:VEVENT")
    assert schedule_tag(invited) != schedule_tag(sent)


def test_the_tag_ignores_how_a_reply_is_spelled_but_not_who_is_invited():
    """What Exchange shows after recording a reply (its CN, CUTYPE and parameter order, ROLE given where
    the client left the default, CREATED) is no consequential change (RFC 6638 §3.2.10); inviting
    someone else, or making an attendee optional, is."""

    def text(people: str, stamps: str = "") -> str:
        return (
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:u1\r\nSUMMARY:Review\r\n"
            f"DTSTART:20320601T100000Z\r\n{stamps}{people}END:VEVENT\r\nEND:VCALENDAR\r\n"
        )

    sent = text(
        "ORGANIZER:mailto:alice@example.com\r\n"
        "ATTENDEE;RSVP=TRUE;PARTSTAT=NEEDS-ACTION:mailto:alice@example.com\r\n"
        "ATTENDEE;RSVP=TRUE;PARTSTAT=NEEDS-ACTION:mailto:bob@example.com\r\n"
    )
    replied = text(
        "ATTENDEE;CUTYPE=INDIVIDUAL;PARTSTAT=ACCEPTED;ROLE=REQ-PARTICIPANT:mailto:Bob@example.com\r\n"
        "ATTENDEE;CN=Alice Adams;CUTYPE=INDIVIDUAL;PARTSTAT=ACCEPTED;ROLE=REQ-PARTICIPANT:\r\n"
        " mailto:alice@example.com\r\n"
        'ORGANIZER;CN="Alice Adams":mailto:alice@example.com\r\n',
        stamps="CREATED:20261206T212002Z\r\nLAST-MODIFIED:20261206T212003Z\r\nDTSTAMP:20261206T212003Z\r\n",
    )
    assert schedule_tag(replied) == schedule_tag(sent)
    invited = sent.replace("END:VEVENT", "ATTENDEE:mailto:carol@example.com\r\nEND:VEVENT")
    optional = sent.replace("NEEDS-ACTION:mailto:bob", "NEEDS-ACTION;ROLE=OPT-PARTICIPANT:mailto:bob")
    other_organizer = sent.replace("ORGANIZER:mailto:alice", "ORGANIZER:mailto:carol")
    tags = {schedule_tag(t) for t in (sent, invited, optional, other_organizer)}
    assert len(tags) == 4
