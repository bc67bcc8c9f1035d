"""GET/HEAD/PUT/DELETE of calendar objects (RFC 4791 §5.3.2, §5.3.4) and backend error mapping."""

from __future__ import annotations

import pytest

from gateway.caldav.backend import BackendUnavailable, Forbidden, InsufficientStorage, InvalidCalendarData

CAL = "/dav/calendars/alice/calendar/"
ICS = "text/calendar; charset=utf-8"


def event(
    uid: str = "ev-1",
    summary: str = "Lunch",
    start: str = "20250305T120000Z",
    end: str = "20250305T130000Z",
    extra: str = "",
) -> str:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20250101T000000Z\r\nDTSTART:{start}\r\nDTEND:{end}\r\n"
        f"SUMMARY:{summary}\r\n{extra}END:VEVENT\r\nEND:VCALENDAR\r\n"
    )


async def test_create_read_update_delete(dav):
    r = await dav("PUT", CAL + "ev-1.ics", event(), content_type=ICS, headers={"If-None-Match": "*"})
    assert r.status == 201
    etag = r.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"')

    r = await dav("GET", CAL + "ev-1.ics")
    assert r.status == 200 and "SUMMARY:Lunch" in r.text
    assert r.headers["ETag"] == etag
    assert r.headers["Content-Type"].startswith("text/calendar")
    assert (await dav("GET", CAL + "ev-1.ics", headers={"If-None-Match": etag})).status == 304
    head = await dav("HEAD", CAL + "ev-1.ics")
    assert head.status == 200 and head.body == b"" and head.headers["ETag"] == etag

    r = await dav(
        "PUT", CAL + "ev-1.ics", event(summary="Dinner"), content_type=ICS, headers={"If-Match": etag}
    )
    assert r.status == 204
    new_etag = r.headers["ETag"]
    assert new_etag != etag
    stale = await dav(
        "PUT", CAL + "ev-1.ics", event(summary="Late"), content_type=ICS, headers={"If-Match": etag}
    )
    assert stale.status == 412
    assert (await dav("DELETE", CAL + "ev-1.ics", headers={"If-Match": etag})).status == 412
    assert (await dav("DELETE", CAL + "ev-1.ics", headers={"If-Match": new_etag})).status == 204
    assert (await dav("GET", CAL + "ev-1.ics")).status == 404


async def test_if_none_match_star_refuses_overwrite(dav):
    await dav("PUT", CAL + "a.ics", event(), content_type=ICS)
    r = await dav("PUT", CAL + "a.ics", event(), content_type=ICS, headers={"If-None-Match": "*"})
    assert r.status == 412


async def test_if_match_star_needs_existing(dav):
    r = await dav("PUT", CAL + "new.ics", event(), content_type=ICS, headers={"If-Match": "*"})
    assert r.status == 412


async def test_put_needs_text_calendar(dav):
    r = await dav("PUT", CAL + "a.ics", event(), content_type="application/json")
    assert r.status == 415


async def test_put_too_large_is_413_with_max_resource_size(dav):
    big = event(extra="DESCRIPTION:" + "x" * 30_000 + "\r\n")
    r = await dav("PUT", CAL + "big.ics", big, content_type=ICS)
    assert r.status == 413 and "max-resource-size" in r.text


async def test_put_rejects_invalid_data_and_todos(dav):
    r = await dav("PUT", CAL + "bad.ics", "not a calendar", content_type=ICS)
    assert r.status == 400 and "valid-calendar-data" in r.text
    todo = event().replace("VEVENT", "VTODO")
    r = await dav("PUT", CAL + "todo.ics", todo, content_type=ICS)
    assert r.status == 403 and "supported-calendar-component" in r.text


async def test_uid_conflict_names_existing_resource(dav):
    await dav("PUT", CAL + "first.ics", event(uid="same"), content_type=ICS)
    r = await dav("PUT", CAL + "second.ics", event(uid="same"), content_type=ICS)
    assert r.status == 403
    href = r.xml.find("{urn:ietf:params:xml:ns:caldav}no-uid-conflict/{DAV:}href")
    assert href is not None and href.text == CAL + "first.ics"


async def test_depth1_propfind_lists_objects_with_etags(dav):
    await dav("PUT", CAL + "a.ics", event("a"), content_type=ICS)
    await dav("PUT", CAL + "b.ics", event("b"), content_type=ICS)
    body = '<propfind xmlns="DAV:"><prop><getetag/><getcontenttype/><getcontentlength/></prop></propfind>'
    r = await dav("PROPFIND", CAL, body, depth="1")
    assert set(r.responses()) == {CAL, CAL + "a.ics", CAL + "b.ics"}
    assert r.prop(CAL + "a.ics", "{DAV:}getetag").text.startswith('"')
    assert (
        r.prop(CAL + "a.ics", "{DAV:}getcontenttype").text == "text/calendar; charset=utf-8; component=VEVENT"
    )
    assert int(r.prop(CAL + "a.ics", "{DAV:}getcontentlength").text) == len(event("a").encode())


async def test_missing_object_and_calendar_are_404(dav):
    assert (await dav("GET", CAL + "nope.ics")).status == 404
    assert (await dav("PROPFIND", "/dav/calendars/alice/nope/", depth="0")).status == 404


@pytest.mark.parametrize(
    ("exc", "status", "fragment"),
    [
        (BackendUnavailable("Exchange is not answering.", retry_after=42), 503, "Exchange is not answering"),
        (InsufficientStorage("The mailbox is full."), 507, "mailbox is full"),
        (Forbidden("Read-only calendar.", "{DAV:}need-privileges"), 403, "need-privileges"),
        (
            InvalidCalendarData("Bad RRULE.", "{urn:ietf:params:xml:ns:caldav}valid-calendar-data", 400),
            400,
            "valid-calendar-data",
        ),
    ],
)
async def test_backend_errors_map_to_statuses(dav, backend, exc, status, fragment):
    backend.fail["put"] = exc
    r = await dav("PUT", CAL + "x.ics", event(), content_type=ICS)
    assert r.status == status and fragment in r.text
    if status == 503:
        assert r.headers["Retry-After"] == "42"


async def test_unexpected_error_is_plain_500_without_details(dav, backend):
    backend.fail["get"] = RuntimeError("secret internal detail password=hunter2")
    r = await dav("GET", CAL + "x.ics")
    assert r.status == 500
    assert "hunter2" not in r.text and "Traceback" not in r.text and "request id" in r.text


async def test_authenticator_failure_is_plain_500(dav, authenticator):
    async def broken(username: str, password: str):
        raise ConnectionError("database at db.internal:5432 refused, password alice-app-pw")

    authenticator.authenticate = broken
    r = await dav("PROPFIND", CAL, depth="0")
    assert r.status == 500 and "db.internal" not in r.text and "alice-app-pw" not in r.text


async def test_etag_listing_does_not_fetch_event_bodies(dav, backend):
    await dav("PUT", CAL + "a.ics", event("a"), content_type=ICS)
    backend.fail["get"] = RuntimeError("bodies must not be fetched for an ETag listing")
    r = await dav("PROPFIND", CAL, '<propfind xmlns="DAV:"><prop><getetag/></prop></propfind>', depth="1")
    assert r.status == 207 and r.prop(CAL + "a.ics", "{DAV:}getetag") is not None


async def test_getlastmodified_from_last_modified(dav):
    await dav("PUT", CAL + "a.ics", event("a", extra="LAST-MODIFIED:20250102T030405Z\r\n"), content_type=ICS)
    r = await dav(
        "PROPFIND",
        CAL + "a.ics",
        '<propfind xmlns="DAV:"><prop><getlastmodified/></prop></propfind>',
        depth="0",
    )
    assert r.prop(CAL + "a.ics", "{DAV:}getlastmodified").text == "Thu, 02 Jan 2025 03:04:05 GMT"


async def test_a_put_never_changes_the_uid_of_an_existing_resource(dav):
    """RFC 4791 §5.3.2.1 no-uid-conflict: the resource keeps its UID; the precondition names it."""
    await dav("PUT", CAL + "kept.ics", event(uid="original"), content_type=ICS)
    r = await dav("PUT", CAL + "kept.ics", event(uid="another", summary="Changed"), content_type=ICS)
    assert r.status == 403
    href = r.xml.find("{urn:ietf:params:xml:ns:caldav}no-uid-conflict/{DAV:}href")
    assert href is not None and href.text == CAL + "kept.ics"
    stored = (await dav("GET", CAL + "kept.ics")).text
    assert "UID:original" in stored and "SUMMARY:Lunch" in stored
