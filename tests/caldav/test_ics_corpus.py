"""Real-world iCalendar files from /work/shared/ics-corpus through the protocol layer.

Every event file must store, read back byte-for-byte (less a ``METHOD:PUBLISH`` line, which RFC 4791
§4.1 keeps out of stored objects), match a calendar-query and expand without a server error; malformed
ones may be refused, with a 4xx naming valid-calendar-data, never a 500. Files holding no single event
series (tasks, several UIDs) are refused with a 4xx, and so are iTIP messages (METHOD:REPLY, …).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from icalendar import Calendar

CAL = "/dav/calendars/alice/calendar/"
C = "{urn:ietf:params:xml:ns:caldav}"
SHARED = Path(os.environ.get("GATEWAY_SHARED_DIR", Path(__file__).resolve().parents[3] / "shared"))
CORPUS = SHARED / "ics-corpus"
FILES = sorted(CORPUS.glob("*.ics")) if CORPUS.is_dir() else []

pytestmark = pytest.mark.skipif(not FILES, reason=f"shared iCalendar corpus not found at {CORPUS}")


def _event_only(data: str) -> bool:
    """Files this events-only gateway must accept: one UID of VEVENTs."""
    try:
        calendar = Calendar.from_ical(data)
    except ValueError:
        return False
    kinds = {c.name for c in calendar.subcomponents} - {"VTIMEZONE"}
    uids = {e.get("UID") for e in calendar.walk("VEVENT")}
    return kinds == {"VEVENT"} and len(uids) == 1 and None not in uids


def _method(data: str) -> str | None:
    found = re.search(r"^METHOD:(.*?)\r?$", data, re.M | re.I)
    return found.group(1).strip().upper() if found else None


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
async def test_corpus_file_round_trip(dav, path):
    data = path.read_bytes().decode("utf-8", "replace")
    r = await dav("PUT", CAL + "item.ics", data, content_type="text/calendar; charset=utf-8")
    if not _event_only(data):
        assert 400 <= r.status < 500, r.text
        return
    if path.name.startswith("malformed-") and r.status != 201:
        # Refusing bad data is fine (a DTSTART-only event is legal and must be accepted).
        assert 400 <= r.status < 500 and "valid-calendar-data" in r.text, r.text
        return
    if _method(data) not in (None, "PUBLISH"):
        assert r.status == 403 and "valid-calendar-object-resource" in r.text, r.text
        return
    assert r.status == 201, r.text
    stored = re.sub(r"^METHOD:PUBLISH\r?\n", "", data, flags=re.M | re.I)
    assert (await dav("GET", CAL + "item.ics")).text == stored

    query = (
        '<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/>'
        '<C:calendar-data><C:expand start="19000101T000000Z" end="20300101T000000Z"/></C:calendar-data>'
        '</D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
        '<C:prop-filter name="UID"><C:is-not-defined/></C:prop-filter>'
        "</C:comp-filter></C:comp-filter></C:filter></C:calendar-query>"
    )
    r = await dav("REPORT", CAL, query, depth="1")
    assert r.status == 207 and r.responses() == {}  # every event has a UID

    r = await dav("REPORT", CAL, query.replace("<C:is-not-defined/>", ""), depth="1")
    assert r.status == 207, r.text
    expanded = r.prop(CAL + "item.ics", f"{C}calendar-data")
    assert expanded is not None
    instances = Calendar.from_ical(expanded.text).walk("VEVENT")
    assert instances and not any("RRULE" in e for e in instances)
