"""DavMail, unmodified, against the EWS emulator: the emulator's fidelity with a second real EWS client.

DavMail (Java) reads Exchange through MAPI properties, MIME content and restrictions, not the way
exchangelib does. One DavMail runs for the module (gateway/benchmarks/davmail.py starts it, as the
benchmark does); every SOAP message it exchanges with the session emulator is schema-validated like all
others (tests/conftest.py). Marked ``davmail``: it needs Java and DavMail (scripts/test.sh installs them
as root); without them it fails in CI and is skipped, saying why, elsewhere.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import caldav
import icalendar
import pytest
import recurring_ical_events
import requests
from lxml import etree

from gateway.benchmarks import davmail as peer
from tests.e2e.test_read_path import dav_client

pytestmark = pytest.mark.davmail
ALICE = "alice@example.com"
AUTH = (ALICE, "alice-pw")
DAV = "{DAV:}"
CALDAV = "{urn:ietf:params:xml:ns:caldav}"
BERLIN = ZoneInfo("Europe/Berlin")
CTAG = '<D:propfind xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/"><D:prop><CS:getctag/></D:prop></D:propfind>'


@pytest.fixture(scope="module")
def davmail(emulator_server, tmp_path_factory) -> Iterator[peer.DavMail]:
    reason = peer.missing_reason()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"the DavMail tests cannot run: {reason}")
        pytest.skip(reason)
    running = peer.start(emulator_server.ews_url, tmp_path_factory.mktemp("davmail"))
    yield running
    running.stop()


def month() -> tuple[dt.datetime, dt.datetime]:
    today = dt.datetime.now(dt.UTC)
    start = dt.datetime(today.year, today.month, 1, tzinfo=dt.UTC)
    return start, dt.datetime(today.year + today.month // 12, today.month % 12 + 1, 1, tzinfo=dt.UTC)


def month_query(start: dt.datetime, end: dt.datetime) -> str:
    return (
        '<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
        "<D:prop><D:getetag/><C:calendar-data/></D:prop>"
        '<C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
        f'<C:time-range start="{start:%Y%m%dT%H%M%SZ}" end="{end:%Y%m%dT%H%M%SZ}"/>'
        "</C:comp-filter></C:comp-filter></C:filter></C:calendar-query>"
    )


def occurrences(multistatus: bytes, start: dt.datetime, end: dt.datetime) -> set[tuple]:
    """(UID, start, end, summary) of every occurrence the calendar objects of an answer have in the window."""
    found = set()
    for data in etree.fromstring(multistatus).iter(f"{CALDAV}calendar-data"):
        for event in recurring_ical_events.of(icalendar.Calendar.from_ical(data.text)).between(start, end):
            begin, finish = event.decoded("DTSTART"), event.decoded("DTEND")
            if isinstance(begin, dt.datetime):
                begin, finish = begin.astimezone(dt.UTC), finish.astimezone(dt.UTC)
            found.add((str(event["UID"]), begin, finish, str(event["SUMMARY"])))
    return found


def report(url: str, body: str, auth: tuple[str, str]) -> bytes:
    answer = requests.request(
        "REPORT",
        url,
        data=body,
        auth=auth,
        headers={"Depth": "1", "Content-Type": "application/xml"},
        timeout=60,
    )
    assert answer.status_code == 207, answer.text[:500]
    return answer.content


def ctag(davmail: peer.DavMail) -> str:
    answer = requests.request(
        "PROPFIND", davmail.calendar_url(ALICE), data=CTAG, auth=AUTH, headers={"Depth": "0"}, timeout=30
    )
    assert answer.status_code == 207
    value = etree.fromstring(answer.content).findtext(".//{http://calendarserver.org/ns/}getctag")
    assert value
    return value


def event_ics(uid: str, summary: str, day: dt.date) -> str:
    """A one-hour event in Berlin time, as Thunderbird writes one (TZID, VTIMEZONE)."""
    return "\r\n".join(
        [
            "BEGIN:VCALENDAR",
            "VERSION:2.0",
            "PRODID:-//Mozilla.org/NONSGML Mozilla Calendar V1.1//EN",
            "BEGIN:VTIMEZONE",
            "TZID:Europe/Berlin",
            "BEGIN:DAYLIGHT",
            "TZOFFSETFROM:+0100",
            "TZOFFSETTO:+0200",
            "TZNAME:CEST",
            "DTSTART:19700329T020000",
            "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU",
            "END:DAYLIGHT",
            "BEGIN:STANDARD",
            "TZOFFSETFROM:+0200",
            "TZOFFSETTO:+0100",
            "TZNAME:CET",
            "DTSTART:19701025T030000",
            "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU",
            "END:STANDARD",
            "END:VTIMEZONE",
            "BEGIN:VEVENT",
            f"UID:{uid}",
            "DTSTAMP:20260101T000000Z",
            f"DTSTART;TZID=Europe/Berlin:{day:%Y%m%d}T150000",
            f"DTEND;TZID=Europe/Berlin:{day:%Y%m%d}T160000",
            f"SUMMARY:{summary}",
            "END:VEVENT",
            "END:VCALENDAR",
            "",
        ]
    )


def exchange_items(emulator, uid: str) -> list:
    """Alice's stored items with this UID (what Outlook would see)."""
    return [i for i in emulator.state.store.mailboxes[ALICE].calendar.items.values() if i.uid == uid]


def put(davmail: peer.DavMail, name: str, ics: str, **headers: str) -> requests.Response:
    headers = {"Content-Type": "text/calendar; charset=utf-8", **headers}
    return requests.put(
        davmail.calendar_url(ALICE) + name, data=ics.encode(), auth=AUTH, headers=headers, timeout=30
    )


def test_a_caldav_client_discovers_the_calendar_through_davmail(emulator, davmail):
    client = caldav.DAVClient(url=davmail.base_url + "/", username=ALICE, password="alice-pw")
    urls = [str(c.url) for c in client.principal().calendars()]
    assert davmail.calendar_url(ALICE) in urls


def test_the_month_view_has_the_occurrences_the_gateway_serves(stack, emulator, davmail):
    start, end = month()
    gateway_calendar = str(dav_client(stack).principal().calendars()[0].url)  # the primary calendar
    served = occurrences(
        report(gateway_calendar, month_query(start, end), ("alice", stack.password)), start, end
    )
    through_davmail = occurrences(
        report(davmail.calendar_url(ALICE), month_query(start, end), AUTH), start, end
    )
    assert through_davmail == served and len(served) >= 5


def test_put_creates_the_event_and_the_ctag_moves(emulator, davmail):
    uid = f"davmail-{uuid.uuid4()}"
    day = dt.date.today() + dt.timedelta(days=9)
    before = ctag(davmail)
    created = put(
        davmail, f"{uid}.ics", event_ics(uid, "Booked through DavMail", day), **{"If-None-Match": "*"}
    )
    assert created.status_code == 201, created.text
    (item,) = exchange_items(emulator, uid)
    assert item.subject == "Booked through DavMail"
    assert (item.start, item.end) == (
        dt.datetime.combine(day, dt.time(15), BERLIN),
        dt.datetime.combine(day, dt.time(16), BERLIN),
    )
    assert ctag(davmail) != before
    answer = requests.get(davmail.base_url + created.headers["Location"], auth=AUTH, timeout=30)
    assert answer.status_code == 200
    (event,) = icalendar.Calendar.from_ical(answer.text).walk("VEVENT")
    assert (str(event["UID"]), str(event["SUMMARY"])) == (uid, "Booked through DavMail")
    assert event.decoded("DTSTART") == dt.datetime.combine(day, dt.time(15), BERLIN)


def test_put_updates_the_title_and_delete_removes_the_event(emulator, davmail):
    uid = f"davmail-{uuid.uuid4()}"
    day = dt.date.today() + dt.timedelta(days=10)
    created = put(davmail, f"{uid}.ics", event_ics(uid, "Draft title", day), **{"If-None-Match": "*"})
    assert created.status_code == 201
    location = created.headers["Location"].rsplit("/", 1)[-1]
    updated = put(
        davmail, location, event_ics(uid, "Final title", day), **{"If-Match": created.headers["ETag"]}
    )
    assert updated.status_code in (200, 204), updated.text
    (item,) = exchange_items(emulator, uid)
    assert item.subject == "Final title"
    assert item.start == dt.datetime.combine(day, dt.time(15), BERLIN)  # local times stay local

    deleted = requests.delete(davmail.calendar_url(ALICE) + location, auth=AUTH, timeout=30)
    assert deleted.status_code in (200, 204)
    assert exchange_items(emulator, uid) == []
    assert requests.get(davmail.calendar_url(ALICE) + location, auth=AUTH, timeout=30).status_code == 404


def test_free_busy_of_two_attendees_is_valid_icalendar(emulator, davmail):
    start = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    end = start + dt.timedelta(days=7)
    request = "\r\n".join(
        [
            "BEGIN:VCALENDAR",
            "VERSION:2.0",
            "PRODID:-//test//EN",
            "METHOD:REQUEST",
            "BEGIN:VFREEBUSY",
            f"UID:{uuid.uuid4()}",
            f"DTSTAMP:{start:%Y%m%dT%H%M%SZ}",
            f"DTSTART:{start:%Y%m%dT%H%M%SZ}",
            f"DTEND:{end:%Y%m%dT%H%M%SZ}",
            f"ORGANIZER:mailto:{ALICE}",
            "ATTENDEE:mailto:bob@example.com",
            "ATTENDEE:mailto:carol@example.com",
            "END:VFREEBUSY",
            "END:VCALENDAR",
            "",
        ]
    )
    answer = requests.post(
        davmail.outbox_url(ALICE),
        data=request,
        auth=AUTH,
        headers={"Content-Type": "text/calendar"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text[:500]
    replies = {}
    for response in etree.fromstring(answer.content).iter(f"{CALDAV}response"):
        (freebusy,) = icalendar.Calendar.from_ical(response.findtext(f"{CALDAV}calendar-data")).walk(
            "VFREEBUSY"
        )
        replies[response.findtext(f"{CALDAV}recipient/{DAV}href").lower()] = freebusy
    assert set(replies) == {"mailto:bob@example.com", "mailto:carol@example.com"}
    for email in ("bob@example.com", "carol@example.com"):
        periods = {}
        for prop in _as_list(replies[f"mailto:{email}"].get("FREEBUSY")):
            assert prop.params["FBTYPE"] in ("BUSY", "BUSY-TENTATIVE", "BUSY-UNAVAILABLE")
            for begin, finish in prop.dts if hasattr(prop, "dts") else [prop.dt]:
                periods[(begin, finish)] = prop.params["FBTYPE"]
        busy = [e for e in emulator.state.store.busy_events(email, start, end) if e.busy_type == "Busy"]
        assert busy and all(any(b <= e.start < f for b, f in periods) for e in busy)


def _as_list(value):
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
