"""Free/busy: RFC 6638 outbox POST as Thunderbird, Evolution and Apple send it; .vfb URL; JSON API."""

from __future__ import annotations

from icalendar import Calendar

from tests.support.dav import fixture

OUTBOX = "/dav/calendars/alice/outbox/"
C = "{urn:ietf:params:xml:ns:caldav}"
ICS = "text/calendar; charset=utf-8"


def busy_event(uid: str, start: str, end: str, extra: str = "") -> str:
    return (
        f"BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//test//EN\nBEGIN:VEVENT\nUID:{uid}\nDTSTAMP:20250101T000000Z\n"
        f"DTSTART:{start}\nDTEND:{end}\nSUMMARY:{uid}\n{extra}END:VEVENT\nEND:VCALENDAR\n"
    )


def seed_bob(backend) -> None:
    backend.seed("bob", "calendar", "a.ics", busy_event("a", "20250304T090000Z", "20250304T100000Z"))
    backend.seed("bob", "calendar", "b.ics", busy_event("b", "20250304T093000Z", "20250304T110000Z"))
    backend.seed(
        "bob",
        "calendar",
        "c.ics",
        busy_event("c", "20250305T090000Z", "20250305T100000Z", "X-MICROSOFT-CDO-BUSYSTATUS:TENTATIVE\n"),
    )
    backend.seed(
        "bob",
        "calendar",
        "d.ics",
        busy_event("d", "20250306T090000Z", "20250306T100000Z", "TRANSP:TRANSPARENT\n"),
    )


def responses(r) -> dict[str, object]:
    return {resp.findtext(f"{C}recipient/{{DAV:}}href").lower(): resp for resp in r.xml.iter(f"{C}response")}


def freebusy_lines(resp) -> list[str]:
    data = resp.findtext(f"{C}calendar-data")
    return [line for line in data.splitlines() if line.startswith("FREEBUSY")]


async def test_thunderbird_post_returns_coalesced_busy(dav, backend):
    seed_bob(backend)
    r = await dav("POST", OUTBOX, fixture("thunderbird-freebusy-post.ics"), content_type=ICS)
    assert r.status == 200 and r.xml.tag == f"{C}schedule-response"
    bob = responses(r)["mailto:bob@example.com"]
    assert bob.findtext(f"{C}request-status") == "2.0;Success"
    reply = Calendar.from_ical(bob.findtext(f"{C}calendar-data"))
    assert str(reply["METHOD"]) == "REPLY"
    fb = reply.walk("VFREEBUSY")[0]
    assert str(fb["UID"]) == "8c0a3d9c-7d6f-4bb1-9d6b-2d1f2b6f7e11"
    assert str(fb["ATTENDEE"]) == "mailto:bob@example.com"
    assert freebusy_lines(bob) == [
        "FREEBUSY;FBTYPE=BUSY:20250304T090000Z/20250304T110000Z",
        "FREEBUSY;FBTYPE=BUSY-TENTATIVE:20250305T090000Z/20250305T100000Z",
    ]
    [(attendees, start, end)] = backend.free_busy_calls
    assert attendees == ["mailto:bob@example.com"] and start.isoformat() == "2025-03-03T00:00:00+00:00"


async def test_evolution_post_several_recipients_with_statuses(dav, backend):
    seed_bob(backend)
    r = await dav("POST", OUTBOX, fixture("evolution-freebusy-post.ics"), content_type=ICS)
    assert r.status == 200
    by = responses(r)
    assert list(by) == ["mailto:bob@example.com", "mailto:nobody@example.com", "mailto:alice@example.com"]
    assert by["mailto:nobody@example.com"].findtext(f"{C}request-status").startswith("3.7;")
    assert by["mailto:nobody@example.com"].find(f"{C}calendar-data") is None
    assert by["mailto:alice@example.com"].findtext(f"{C}request-status") == "2.0;Success"
    # The backend sees normalised addresses; the response keeps Evolution's MAILTO: spelling.
    assert backend.free_busy_calls[0][0][0] == "mailto:bob@example.com"
    assert r.xml.findtext(f"{C}response/{C}recipient/{{DAV:}}href") == "MAILTO:bob@example.com"


async def test_apple_post(dav, backend):
    seed_bob(backend)
    r = await dav("POST", OUTBOX, fixture("apple-freebusy-post.ics"), content_type=ICS)
    assert r.status == 200
    assert len(freebusy_lines(responses(r)["mailto:bob@example.com"])) == 2


async def test_no_data_is_never_presented_as_free(dav, backend):
    backend.no_data.add("bob@example.com")
    r = await dav("POST", OUTBOX, fixture("thunderbird-freebusy-post.ics"), content_type=ICS)
    bob = responses(r)["mailto:bob@example.com"]
    data = bob.findtext(f"{C}calendar-data")
    assert "COMMENT:No free/busy information" in data
    assert freebusy_lines(bob) == ["FREEBUSY;FBTYPE=BUSY-UNAVAILABLE:20250303T000000Z/20250310T000000Z"]


async def test_bad_ranges_and_organizer(dav):
    body = fixture("thunderbird-freebusy-post.ics")
    inverted = body.replace("DTEND:20250310T000000Z", "DTEND:20250301T000000Z")
    assert (await dav("POST", OUTBOX, inverted, content_type=ICS)).status == 400
    missing = body.replace("DTEND:20250310T000000Z\n", "")
    assert (await dav("POST", OUTBOX, missing, content_type=ICS)).status == 400
    too_long = body.replace("DTEND:20250310T000000Z", "DTEND:20260310T000000Z")
    r = await dav("POST", OUTBOX, too_long, content_type=ICS)
    assert r.status == 403 and "100 days" in r.text
    foreign = body.replace("ORGANIZER:mailto:alice@example.com", "ORGANIZER:mailto:bob@example.com")
    r = await dav("POST", OUTBOX, foreign, content_type=ICS)
    assert r.status == 403 and "organizer-allowed" in r.text
    assert (await dav("POST", OUTBOX, body, content_type="text/plain")).status == 415


async def test_vfb_url(dav, backend):
    seed_bob(backend)
    r = await dav("GET", "/freebusy/bob@example.com.vfb?start=2025-03-01&end=2025-03-08")
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/calendar")
    assert "FREEBUSY;FBTYPE=BUSY:20250304T090000Z/20250304T110000Z" in r.text
    assert (await dav("GET", "/freebusy/bob@example.com.ifb", auth=False)).status == 401
    assert (await dav("GET", "/freebusy/nobody@example.com.vfb")).status == 404
    assert (await dav("GET", "/freebusy/bob@example.com.vfb?start=2025-03-08&end=2025-03-01")).status == 400


async def test_vfb_default_window(dav, backend):
    r = await dav("GET", "/freebusy/bob@example.com.vfb")
    assert r.status == 200
    [(_, start, end)] = backend.free_busy_calls
    assert (end - start).days == 67


async def test_json_api(dav, backend):
    seed_bob(backend)
    backend.no_data.add("carol@example.com")
    r = await dav(
        "GET",
        "/api/v1/freebusy?attendee=bob@example.com&attendee=carol@example.com"
        "&attendee=nobody@example.com&start=2025-03-01T00:00:00Z&end=2025-03-08T00:00:00Z",
    )
    assert r.status == 200
    payload = __import__("json").loads(r.text)
    bob, carol, nobody = payload["attendees"]
    assert bob["status"] == "2.0" and bob["busy"][0] == {
        "start": "2025-03-04T09:00:00Z",
        "end": "2025-03-04T11:00:00Z",
        "type": "BUSY",
    }
    assert carol["no_data"] is True and carol["busy"] is None  # known busy parts alone would read as free
    assert nobody["status"] == "3.7" and nobody["no_data"] is True and nobody["busy"] is None
    assert (await dav("GET", "/api/v1/freebusy?start=2025-03-01")).status == 400


async def test_backend_down_gives_503_with_retry_after(dav, backend):
    from gateway.caldav.backend import BackendUnavailable

    backend.fail["free_busy"] = BackendUnavailable("Exchange is not reachable.", retry_after=12)
    r = await dav("POST", OUTBOX, fixture("thunderbird-freebusy-post.ics"), content_type=ICS)
    assert r.status == 503 and r.headers["Retry-After"] == "12" and "Exchange" in r.text


async def test_a_request_for_thousands_of_attendees_is_refused_before_exchange_is_asked(dav, backend):
    body = fixture("thunderbird-freebusy-post.ics")
    many = "".join(f"ATTENDEE:mailto:p{n}@example.com\n" for n in range(5000))
    r = await dav("POST", OUTBOX, body.replace("ATTENDEE;", many + "ATTENDEE;", 1), content_type=ICS)
    assert r.status == 403 and "at most 300 attendees" in r.text
    assert backend.free_busy_calls == []
    year_one = body.replace("DTSTART:20250303T000000Z", "DTSTART:00010101T000000Z").replace(
        "DTEND:20250310T000000Z", "DTEND:00010102T000000Z"
    )
    r = await dav("POST", OUTBOX, year_one, content_type=ICS)
    assert r.status == 400 and "between 1601-01-01 and 4500-12-31" in r.text
