"""VFREEBUSY answers are written as text (RFC 5545 §3.6.4): they must read back with icalendar."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from icalendar import Calendar

from gateway.caldav.backend import BusyPeriod
from gateway.caldav.freebusy import NO_DATA_COMMENT, vfreebusy
from tests.caldav.test_scheduling import ICS, OUTBOX, C, responses, seed_bob
from tests.support.dav import fixture

START = datetime(2025, 3, 3, tzinfo=UTC)
END = datetime(2025, 3, 10, tzinfo=UTC)
PLUS_ONE = timezone(timedelta(hours=1))


def at(day: int, hour: int, minute: int = 0, tz=UTC) -> datetime:
    return datetime(2025, 3, day, hour, minute, tzinfo=tz)


def test_periods_are_clipped_coalesced_per_type_and_in_utc() -> None:
    periods = [
        BusyPeriod(at(4, 10, tz=PLUS_ONE), at(4, 11, tz=PLUS_ONE), "BUSY"),  # 09:00-10:00Z
        BusyPeriod(at(4, 9, 30), at(4, 11), "BUSY"),
        BusyPeriod(at(4, 9, 30), at(4, 12), "BUSY-TENTATIVE"),
        BusyPeriod(at(2, 22), at(3, 1), "BUSY-UNAVAILABLE"),  # starts before the window
        BusyPeriod(at(5, 9), at(5, 10), "FREE"),
        BusyPeriod(at(12, 9), at(12, 10), "BUSY"),  # after the window
    ]
    text = vfreebusy(
        START,
        END,
        periods,
        method="REPLY",
        organizer="mailto:alice@example.com",
        attendee="mailto:bob@example.com",
        uid="uid,1;x",
        status="2.0;Success",
    )
    lines = text.split("\r\n")
    assert [line for line in lines if line.startswith("FREEBUSY")] == [
        "FREEBUSY;FBTYPE=BUSY-UNAVAILABLE:20250303T000000Z/20250303T010000Z",
        "FREEBUSY;FBTYPE=BUSY:20250304T090000Z/20250304T110000Z",
        "FREEBUSY;FBTYPE=BUSY-TENTATIVE:20250304T093000Z/20250304T120000Z",
    ]
    assert "REQUEST-STATUS:2.0;Success" in lines  # statcode;statdesc, not one escaped TEXT
    reply = Calendar.from_ical(text)
    assert str(reply["METHOD"]) == "REPLY" and str(reply["VERSION"]) == "2.0"
    (fb,) = reply.walk("VFREEBUSY")
    assert str(fb["UID"]) == "uid,1;x"
    assert (fb["DTSTART"].dt, fb["DTEND"].dt) == (START, END)
    assert (
        str(fb["ORGANIZER"]) == "mailto:alice@example.com" and str(fb["ATTENDEE"]) == "mailto:bob@example.com"
    )
    found = [(p.params["FBTYPE"], p.dt) for p in fb["FREEBUSY"]]
    assert found[1] == ("BUSY", (at(4, 9), at(4, 11)))


def test_no_data_is_one_unavailable_period_with_an_explanation() -> None:
    text = vfreebusy(START, END, [BusyPeriod(at(4, 9), at(4, 10), "BUSY")], no_data=True)
    (fb,) = Calendar.from_ical(text).walk("VFREEBUSY")
    assert str(fb["COMMENT"]) == NO_DATA_COMMENT
    assert fb["FREEBUSY"].params["FBTYPE"] == "BUSY-UNAVAILABLE" and fb["FREEBUSY"].dt == (START, END)
    assert "METHOD" not in Calendar.from_ical(text) and str(fb["UID"])


async def test_outbox_answer_reads_back_with_icalendar(dav, backend):
    seed_bob(backend)
    r = await dav("POST", OUTBOX, fixture("thunderbird-freebusy-post.ics"), content_type=ICS)
    data = responses(r)["mailto:bob@example.com"].findtext(f"{C}calendar-data")
    (fb,) = Calendar.from_ical(data).walk("VFREEBUSY")
    assert str(fb["REQUEST-STATUS"]) == "2.0;Success"
    assert [p.params["FBTYPE"] for p in fb["FREEBUSY"]] == ["BUSY", "BUSY-TENTATIVE"]
