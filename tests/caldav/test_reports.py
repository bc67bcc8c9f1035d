"""REPORTs: calendar-query (RFC 4791 §7.8), multiget (§7.9), free-busy-query (§7.10), sync-collection (RFC 6578)."""

from __future__ import annotations

import threading

from icalendar import Calendar

from gateway.caldav import methods, reports
from gateway.caldav.call import OFF_LOOP_RESPONSES
from tests.support.dav import fixture

CAL = "/dav/calendars/alice/calendar/"
C = "{urn:ietf:params:xml:ns:caldav}"

WEEKLY = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//test//EN
BEGIN:VTIMEZONE
TZID:Europe/Berlin
BEGIN:STANDARD
DTSTART:19701025T030000
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:19700329T020000
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
END:DAYLIGHT
END:VTIMEZONE
BEGIN:VEVENT
UID:weekly-standup
DTSTAMP:20250101T000000Z
DTSTART;TZID=Europe/Berlin:20250106T100000
DTEND;TZID=Europe/Berlin:20250106T103000
RRULE:FREQ=WEEKLY;COUNT=10
SUMMARY:Standup
END:VEVENT
BEGIN:VEVENT
UID:weekly-standup
DTSTAMP:20250101T000000Z
RECURRENCE-ID;TZID=Europe/Berlin:20250120T100000
DTSTART;TZID=Europe/Berlin:20250120T140000
DTEND;TZID=Europe/Berlin:20250120T143000
SUMMARY:Standup (moved)
END:VEVENT
END:VCALENDAR
"""


def single(uid: str, summary: str, start: str, end: str, extra: str = "") -> str:
    return (
        f"BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//test//EN\nBEGIN:VEVENT\nUID:{uid}\nDTSTAMP:20250101T000000Z\n"
        f"DTSTART:{start}\nDTEND:{end}\nSUMMARY:{summary}\n{extra}END:VEVENT\nEND:VCALENDAR\n"
    )


def query(inner: str, prop: str = "<D:getetag/>") -> str:
    return (
        f'<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop>{prop}</D:prop>'
        f'<C:filter><C:comp-filter name="VCALENDAR">{inner}</C:comp-filter></C:filter></C:calendar-query>'
    )


def seed(backend) -> None:
    backend.seed("alice", "calendar", "standup.ics", WEEKLY)
    backend.seed(
        "alice",
        "calendar",
        "dentist.ics",
        single("dentist", "Dentist", "20250210T080000Z", "20250210T090000Z", "LOCATION:Main St\n"),
    )
    backend.seed(
        "alice",
        "calendar",
        "party.ics",
        single("party", "Birthday party", "20250601T180000Z", "20250601T230000Z"),
    )


async def names(dav, body: str) -> set[str]:
    r = await dav("REPORT", CAL, body, depth="1")
    assert r.status == 207, r.text
    return {href.rsplit("/", 1)[1] for href in r.responses()}


async def test_time_range_matches_recurring_instances_only_in_range(dav, backend):
    seed(backend)
    # 2025-02-03..04: the 5th standup instance, nothing else.
    tr = '<C:comp-filter name="VEVENT"><C:time-range start="20250203T000000Z" end="20250204T000000Z"/></C:comp-filter>'
    assert await names(dav, query(tr)) == {"standup.ics"}
    # After the 10th instance (10 Mar) only the party remains.
    tr = '<C:comp-filter name="VEVENT"><C:time-range start="20250315T000000Z"/></C:comp-filter>'
    assert await names(dav, query(tr)) == {"party.ics"}
    tr = '<C:comp-filter name="VEVENT"><C:time-range end="20250107T000000Z"/></C:comp-filter>'
    assert await names(dav, query(tr)) == {"standup.ics"}


async def test_thunderbird_open_ended_query(dav, backend):
    seed(backend)
    r = await dav("REPORT", CAL, fixture("thunderbird-calendar-query-etags.xml"), depth="1")
    assert {h.rsplit("/", 1)[1] for h in r.responses()} == {"standup.ics", "party.ics"}
    assert all(r.prop(h, "{DAV:}getetag") is not None for h in r.responses())


async def test_text_match_and_is_not_defined(dav, backend):
    seed(backend)
    summary = (
        '<C:comp-filter name="VEVENT"><C:prop-filter name="SUMMARY">'
        '<C:text-match collation="i;ascii-casemap">PARTY</C:text-match></C:prop-filter></C:comp-filter>'
    )
    assert await names(dav, query(summary)) == {"party.ics"}
    uid = (
        '<C:comp-filter name="VEVENT"><C:prop-filter name="UID">'
        '<C:text-match collation="i;octet">dentist</C:text-match></C:prop-filter></C:comp-filter>'
    )
    assert await names(dav, query(uid)) == {"dentist.ics"}
    negated = uid.replace('collation="i;octet"', 'negate-condition="yes"')
    assert await names(dav, query(negated)) == {"standup.ics", "party.ics"}
    no_location = (
        '<C:comp-filter name="VEVENT"><C:prop-filter name="LOCATION"><C:is-not-defined/>'
        "</C:prop-filter></C:comp-filter>"
    )
    assert await names(dav, query(no_location)) == {"standup.ics", "party.ics"}


async def test_expand_returns_instances_in_utc(dav, backend):
    seed(backend)
    prop = (
        '<C:calendar-data><C:expand start="20250113T000000Z" end="20250127T000000Z"/></C:calendar-data>'
        "<D:getetag/>"
    )
    tr = '<C:comp-filter name="VEVENT"><C:time-range start="20250113T000000Z" end="20250127T000000Z"/></C:comp-filter>'
    r = await dav("REPORT", CAL, query(tr, prop), depth="1")
    data = r.prop(CAL + "standup.ics", f"{C}calendar-data").text
    events = Calendar.from_ical(data).walk("VEVENT")
    assert "RRULE" not in data and "VTIMEZONE" not in data
    starts = sorted(e.decoded("DTSTART").isoformat() for e in events)
    # 13 Jan 10:00 Berlin = 09:00Z; the 20 Jan instance moved to 14:00 Berlin = 13:00Z.
    assert starts == ["2025-01-13T09:00:00+00:00", "2025-01-20T13:00:00+00:00"]
    assert all(e.get("RECURRENCE-ID") is not None for e in events)


async def test_limit_recurrence_set_drops_overrides_outside(dav, backend):
    seed(backend)
    prop = '<C:calendar-data><C:limit-recurrence-set start="20250201T000000Z" end="20250301T000000Z"/></C:calendar-data>'
    tr = '<C:comp-filter name="VEVENT"><C:time-range start="20250201T000000Z" end="20250301T000000Z"/></C:comp-filter>'
    r = await dav("REPORT", CAL, query(tr, prop), depth="1")
    data = r.prop(CAL + "standup.ics", f"{C}calendar-data").text
    assert "RRULE" in data and "moved" not in data


async def test_invalid_filter_is_400_valid_filter(dav):
    bad = '<C:comp-filter name="VEVENT"><C:time-range start="yesterday"/></C:comp-filter>'
    r = await dav("REPORT", CAL, query(bad), depth="1")
    assert r.status == 400 and "valid-filter" in r.text


async def test_multiget_for_evolution(dav, backend):
    seed(backend)
    hrefs = "".join(f"<D:href>{CAL}{n}</D:href>" for n in ("party.ics", "missing.ics"))
    r = await dav("REPORT", CAL, fixture("evolution-multiget.xml").replace("{hrefs}", hrefs), depth="1")
    assert r.status == 207
    assert "SUMMARY:Birthday party" in r.prop(CAL + "party.ics", f"{C}calendar-data").text
    assert r.prop(CAL + "party.ics", "{DAV:}getetag").text.startswith('"')
    missing = r.responses()[CAL + "missing.ics"]
    assert " 404 " in missing.findtext("{DAV:}status")


async def sync(dav, token: str = "", limit: int = 100):
    body = fixture("davx5-sync-collection.xml").replace("{token}", token).replace("{limit}", str(limit))
    return await dav("REPORT", CAL, body, depth="1")


async def test_sync_collection_initial_delta_and_deletion(dav, backend):
    seed(backend)
    r = await sync(dav)
    assert r.status == 207
    assert {h.rsplit("/", 1)[1] for h in r.responses()} == {"standup.ics", "dentist.ics", "party.ics"}
    token = r.xml.findtext("{DAV:}sync-token")
    assert (await sync(dav, token)).responses() == {}

    await dav("DELETE", CAL + "party.ics")
    backend.seed("alice", "calendar", "new.ics", single("new", "New", "20250701T100000Z", "20250701T110000Z"))
    r = await sync(dav, token)
    statuses = {h.rsplit("/", 1)[1]: resp for h, resp in r.responses().items()}
    assert set(statuses) == {"party.ics", "new.ics"}
    assert " 404 " in statuses["party.ics"].findtext("{DAV:}status")
    assert r.prop(CAL + "new.ics", "{DAV:}getetag") is not None


async def test_sync_collection_limit_truncates_with_507(dav, backend):
    seed(backend)
    r = await sync(dav, limit=2)
    responses = r.responses()
    assert " 507 " in responses[CAL].findtext("{DAV:}status")
    first = {h for h in responses if h != CAL}
    assert len(first) == 2
    r = await sync(dav, r.xml.findtext("{DAV:}sync-token"), limit=2)
    rest = set(r.responses())
    assert CAL not in rest and len(rest | first) == 3


async def test_invalid_sync_token_is_403_valid_sync_token(dav):
    r = await sync(dav, "urn:x-memory-sync:999:1")
    assert r.status == 403
    assert r.xml.find("{DAV:}valid-sync-token") is not None


async def test_free_busy_query_returns_vfreebusy(dav, backend):
    seed(backend)
    backend.seed(
        "alice",
        "calendar",
        "free.ics",
        single("free", "Lunch", "20250210T110000Z", "20250210T120000Z", "TRANSP:TRANSPARENT\n"),
    )
    body = (
        '<C:free-busy-query xmlns:C="urn:ietf:params:xml:ns:caldav">'
        '<C:time-range start="20250210T000000Z" end="20250211T000000Z"/></C:free-busy-query>'
    )
    r = await dav("REPORT", CAL, body, depth="1")
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/calendar")
    fb = Calendar.from_ical(r.text).walk("VFREEBUSY")[0]
    periods = fb.get("FREEBUSY")
    periods = periods if isinstance(periods, list) else [periods]
    # Dentist 08:00-09:00Z and the standup 09:00-09:30Z coalesce; the transparent lunch is free.
    assert [(p.dt[0].isoformat(), p.dt[1].isoformat()) for p in periods] == [
        ("2025-02-10T08:00:00+00:00", "2025-02-10T09:30:00+00:00")
    ]


async def test_unsupported_report_is_403(dav):
    r = await dav("REPORT", CAL, '<D:expand-property xmlns:D="DAV:"/>', depth="0")
    assert r.status == 403 and "supported-report" in r.text


async def test_open_ended_exact_filter_on_endless_series_terminates(dav, backend):
    endless = WEEKLY.replace("RRULE:FREQ=WEEKLY;COUNT=10", "RRULE:FREQ=DAILY")
    backend.seed("alice", "calendar", "endless.ics", endless)
    flt = (
        '<C:comp-filter name="VEVENT"><C:time-range start="20250101T000000Z"/>'
        '<C:prop-filter name="SUMMARY"><C:text-match>no such words</C:text-match></C:prop-filter></C:comp-filter>'
    )
    assert await names(dav, query(flt)) == set()


async def test_large_answers_are_built_off_the_event_loop_and_small_ones_on_it(dav, backend, monkeypatch):
    """A month view of many objects is CPU work; building it on the event loop would stall every other
    client, so it happens in a worker thread. A handful of objects is not worth the thread hop."""
    builders: list[str] = []
    real = reports.add_response

    def recording(*args, **kwargs):
        builders.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(reports, "add_response", recording)
    for n in range(OFF_LOOP_RESPONSES):
        backend.seed(
            "alice",
            "calendar",
            f"e{n}.ics",
            single(f"e{n}", f"Event {n}", "20250210T080000Z", "20250210T090000Z"),
        )
    in_february = (
        '<C:comp-filter name="VEVENT"><C:time-range start="20250201T000000Z" end="20250301T000000Z"/>'
        "</C:comp-filter>"
    )
    assert len(await names(dav, query(in_february, "<D:getetag/><C:calendar-data/>"))) == OFF_LOOP_RESPONSES
    assert len(builders) == OFF_LOOP_RESPONSES and threading.main_thread().name not in builders
    builders.clear()
    multiget = (
        '<C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
        f"<D:prop><D:getetag/></D:prop><D:href>{CAL}e3.ics</D:href></C:calendar-multiget>"
    )
    assert await names(dav, multiget) == {"e3.ics"}
    assert builders == [threading.main_thread().name]


async def test_a_few_large_objects_are_also_built_off_the_event_loop(dav, backend, monkeypatch):
    """Two events of 100 KB are as much work as a month of small ones: filtered, expanded or listed."""
    builders: list[str] = []
    real = reports.add_response

    def recording(*args, **kwargs):
        builders.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(reports, "add_response", recording)
    monkeypatch.setattr(methods, "add_response", recording)
    notes = "DESCRIPTION:" + "\n ".join(["x" * 70] * 1500) + "\n"
    for n in range(2):
        backend.seed(
            "alice",
            "calendar",
            f"big{n}.ics",
            single(f"big{n}", "Big", "20250210T080000Z", "20250210T090000Z", notes),
        )
    multiget = (
        '<C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><C:calendar-data/>'
        f"</D:prop><D:href>{CAL}big0.ics</D:href><D:href>{CAL}big1.ics</D:href></C:calendar-multiget>"
    )
    assert await names(dav, multiget) == {"big0.ics", "big1.ics"}
    listing = '<D:propfind xmlns:D="DAV:"><D:prop><D:getcontentlength/></D:prop></D:propfind>'
    assert (await dav("PROPFIND", CAL, listing, depth="1")).status == 207
    assert builders and threading.main_thread().name not in builders
