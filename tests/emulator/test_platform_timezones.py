"""GetServerTimeZones through exchangelib, and the shared time zone helpers it is built on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from exchangelib import BASIC, Configuration, Credentials, EWSTimeZone
from exchangelib.properties import TimeZone
from exchangelib.protocol import Protocol

from gateway.common.timezones import (
    iana_to_windows,
    serializable_time_zone,
    time_zone_definition,
    windows_to_iana,
    windows_zone_ids,
)
from gateway.ews.emulator.availability import parse_time_zone

SAMPLE_ZONES = [
    "W. Europe Standard Time",
    "Pacific Standard Time",
    "AUS Eastern Standard Time",
    "India Standard Time",
    "UTC",
    "E. South America Standard Time",
    "New Zealand Standard Time",
    "Morocco Standard Time",
    "Iran Standard Time",
    "Newfoundland Standard Time",
]


@pytest.fixture
def proto(emulator):
    Protocol.clear_cache()
    config = Configuration(
        service_endpoint=emulator.ews_url,
        credentials=Credentials("alice@example.com", "alice-pw"),
        auth_type=BASIC,
    )
    yield Protocol(config=config)
    Protocol.clear_cache()


def test_exchangelib_reads_full_definitions(proto, emulator):
    zones = [EWSTimeZone("Europe/Berlin"), EWSTimeZone("America/Los_Angeles")]
    berlin, los_angeles = proto.get_timezones(timezones=zones, return_full_timezone_data=True)
    assert berlin.id == "W. Europe Standard Time"
    standard, daylight, period = berlin.get_std_and_dst(for_year=datetime.now(UTC).year)
    assert period.bias_in_minutes == -60
    assert (daylight.iso_month, daylight.occurrence, daylight.bias, daylight.time.hour) == (3, 5, -60, 2)
    assert (standard.iso_month, standard.occurrence, standard.time.hour) == (10, 5, 3)
    tz = TimeZone.from_server_timezone(tz_definition=los_angeles, for_year=datetime.now(UTC).year)
    assert tz.bias == 480 and tz.daylight_time.occurrence == 2 and tz.standard_time.iso_month == 11
    assert emulator.stats()["operations"]["GetServerTimeZones"] == 1


def test_all_server_zones_without_details(proto):
    zones = list(proto.get_timezones(return_full_timezone_data=False))
    ids = [z.id for z in zones]
    assert ids == windows_zone_ids() and len(ids) > 100
    assert all(z.name.startswith("(UTC") for z in zones)


def test_windows_iana_maps():
    assert windows_to_iana("W. Europe Standard Time") == "Europe/Berlin"
    assert iana_to_windows("Europe/Paris") == "Romance Standard Time"
    assert iana_to_windows("UTC") == "UTC"
    with pytest.raises(KeyError):
        windows_to_iana("Mars Standard Time")


@pytest.mark.parametrize("windows_id", SAMPLE_ZONES)
def test_serializable_zone_agrees_with_zoneinfo_all_year(windows_id):
    """The rules we emit give zoneinfo's offset at every hour sampled through the year."""
    year = 2026
    zone = ZoneInfo(windows_to_iana(windows_id))
    rules = parse_time_zone(serializable_time_zone(windows_id, year=year))
    moment = datetime(year, 1, 1, 12, tzinfo=UTC)
    while moment.year == year:
        assert moment.astimezone(rules).utcoffset() == moment.astimezone(zone).utcoffset(), moment
        moment += timedelta(hours=61)  # every weekday and many hours of the day


@pytest.mark.parametrize("windows_id", SAMPLE_ZONES)
def test_definition_periods_match_zoneinfo_offsets(windows_id):
    definition = time_zone_definition(windows_id, year=2026)
    t = "{http://schemas.microsoft.com/exchange/services/2006/types}"
    biases = {p.get("Name"): p.get("Bias") for p in definition.iter(f"{t}Period")}
    zone = ZoneInfo(windows_to_iana(windows_id))
    offsets = {datetime(2026, m, 15, tzinfo=UTC).astimezone(zone).utcoffset() for m in range(1, 13)}
    assert len(biases) == len(offsets)  # one period per distinct offset (no DST: Standard only)
    assert definition.get("Id") == windows_id
