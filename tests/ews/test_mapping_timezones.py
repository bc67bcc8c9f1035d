"""Time zones for the mapping: TZID resolution and the VTIMEZONEs to_ical writes."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime, timedelta

import pytest
from icalendar import Calendar, Timezone

from gateway.ews.ical_tz import UnknownTimezoneError, iana_name, resolve_tzid, vtimezone_text


@pytest.mark.parametrize(
    ("name", "year"),
    [
        ("Europe/Berlin", 2024),
        ("America/New_York", 2024),
        ("Australia/Sydney", 2024),  # southern hemisphere: DST across the new year
        ("Asia/Kolkata", 2024),  # no DST, half-hour offset
        ("Pacific/Chatham", 2024),  # +12:45 / +13:45
        ("America/Sao_Paulo", 2018),  # DST abolished in 2019: no stable yearly rule
        ("Africa/Casablanca", 2024),  # Ramadan-dependent transitions
        ("Europe/London", 2006),
    ],
)
def test_generated_vtimezone_gives_the_zones_offsets(name: str, year: int) -> None:
    """Read back by icalendar, the VTIMEZONE agrees with the tz database hour by hour for three years."""
    text = vtimezone_text(zoneinfo.ZoneInfo(name), name, year).encode()
    component = Calendar.from_ical(b"BEGIN:VCALENDAR\r\n" + text + b"END:VCALENDAR\r\n").walk("VTIMEZONE")[0]
    assert component["TZID"] == name
    ours, reference = component.to_tz(), zoneinfo.ZoneInfo(name)
    start = datetime(year, 1, 1, tzinfo=UTC)
    wrong = [
        moment
        for moment in (start + timedelta(hours=h) for h in range(0, 3 * 366 * 24, 1))
        if moment.astimezone(ours).utcoffset() != moment.astimezone(reference).utcoffset()
    ]
    assert wrong == []


def test_stable_zones_get_compact_rules() -> None:
    text = vtimezone_text(zoneinfo.ZoneInfo("Europe/Berlin"), "Europe/Berlin", 2024)
    assert "RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3" in text
    assert "RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10" in text
    assert "RDATE" not in text


@pytest.mark.parametrize(
    ("tzid", "ms_id"),
    [
        ("Europe/Berlin", "W. Europe Standard Time"),
        ("W. Europe Standard Time", "W. Europe Standard Time"),
        ("Eastern Standard Time", "Eastern Standard Time"),
        ("/freeassociation.sourceforge.net/Tzfile/Europe/Vienna", "W. Europe Standard Time"),
        ("/mozilla.org/20050126_1/America/New_York", "Eastern Standard Time"),
        ("America/Argentina/Buenos_Aires", "Argentina Standard Time"),
        ("UTC", "UTC"),
    ],
)
def test_tzid_names_resolve(tzid: str, ms_id: str) -> None:
    assert resolve_tzid(tzid).ms_id == ms_id


def custom(text: str) -> Timezone:
    return Calendar.from_ical(f"BEGIN:VCALENDAR\r\n{text}END:VCALENDAR\r\n").walk("VTIMEZONE")[0]


OLD_US_EASTERN = custom(
    "BEGIN:VTIMEZONE\r\nTZID:US-Eastern\r\n"
    "BEGIN:STANDARD\r\nDTSTART:19671029T020000\r\nRRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10\r\n"
    "TZOFFSETFROM:-0400\r\nTZOFFSETTO:-0500\r\nEND:STANDARD\r\n"
    "BEGIN:DAYLIGHT\r\nDTSTART:19870405T020000\r\nRRULE:FREQ=YEARLY;BYDAY=1SU;BYMONTH=4\r\n"
    "TZOFFSETFROM:-0500\r\nTZOFFSETTO:-0400\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n"
)
SLOPPY_CET = custom(  # GroupWise: transitions an hour off, a German name
    "BEGIN:VTIMEZONE\r\nTZID:Mitteleuropäische Zeit\r\n"
    "BEGIN:STANDARD\r\nDTSTART:20001025T020000\r\nRRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10\r\n"
    "TZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\n"
    "BEGIN:DAYLIGHT\r\nDTSTART:20000329T010000\r\nRRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3\r\n"
    "TZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n"
)
INDIA = custom(
    "BEGIN:VTIMEZONE\r\nTZID:My India\r\nBEGIN:STANDARD\r\nDTSTART:19700101T000000\r\n"
    "TZOFFSETFROM:+0530\r\nTZOFFSETTO:+0530\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n"
)


def test_custom_vtimezones_match_the_zone_with_their_rules() -> None:
    assert resolve_tzid("US-Eastern", OLD_US_EASTERN).key == "America/New_York"
    cet = resolve_tzid("Mitteleuropäische Zeit", SLOPPY_CET)
    assert cet.utcoffset(datetime(2024, 7, 1)) == timedelta(hours=2)
    assert cet.utcoffset(datetime(2024, 1, 1)) == timedelta(hours=1)
    assert resolve_tzid("My India", INDIA).ms_id == "India Standard Time"


def test_x_lic_location_names_the_zone() -> None:
    component = custom(
        "BEGIN:VTIMEZONE\r\nTZID:Some/Odd/Name\r\nX-LIC-LOCATION:Europe/Helsinki\r\nBEGIN:STANDARD\r\n"
        "DTSTART:19700101T000000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0200\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n"
    )
    assert resolve_tzid("Some/Odd/Name", component).key == "Europe/Helsinki"


def test_unknown_tzids_and_unmatched_vtimezones_are_errors() -> None:
    with pytest.raises(UnknownTimezoneError, match="Nowhere"):
        resolve_tzid("Nowhere Standard Time")
    odd = custom(
        "BEGIN:VTIMEZONE\r\nTZID:Odd\r\nBEGIN:STANDARD\r\nDTSTART:19700101T000000\r\n"
        "TZOFFSETFROM:+0537\r\nTZOFFSETTO:+0537\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n"
    )
    with pytest.raises(UnknownTimezoneError):
        resolve_tzid("Odd", odd)


def test_iana_name_of_an_exchange_zone() -> None:
    assert iana_name(resolve_tzid("Pacific Standard Time")) == "America/Los_Angeles"
