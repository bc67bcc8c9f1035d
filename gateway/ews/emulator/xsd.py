"""Element access and XML Schema simple values (xs:dateTime, xs:date, xs:boolean, xs:duration) as EWS
writes them in requests and responses."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from lxml import etree

from gateway.ews.emulator.model import StoreError
from gateway.ews.emulator.soap import T_NS


def local(elem: etree._Element) -> str:
    """The local name of an element (namespace stripped)."""
    return etree.QName(elem).localname


def child(elem: etree._Element, name: str) -> etree._Element | None:
    """The first ``t:<name>`` child of ``elem``."""
    return elem.find(f"{{{T_NS}}}{name}")


def text(elem: etree._Element | None, name: str, default: str = "") -> str:
    """The text of the ``t:<name>`` child (``""`` if empty, ``default`` if absent)."""
    found = None if elem is None else child(elem, name)
    return found.text or "" if found is not None else default


def fmt_dt(value: datetime) -> str:
    """xs:dateTime in UTC with a ``Z``, as Exchange answers."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_dt(value: str, zone: tzinfo = UTC) -> datetime:
    """xs:dateTime from a request, aware UTC; a value without offset is a local time of ``zone``."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise StoreError("ErrorInvalidValueForProperty", "Invalid xs:dateTime value.") from exc
    return (parsed.replace(tzinfo=zone) if parsed.tzinfo is None else parsed).astimezone(UTC)


def parse_date(value: str) -> date:
    """xs:date, tolerating the offset suffix Exchange sometimes adds (``2024-03-01+01:00``)."""
    return date.fromisoformat(value.strip()[:10])


def fmt_date(day: date, zone: ZoneInfo) -> str:
    """xs:date with the zone's offset on that day (``2026-03-10+01:00``), as Exchange writes range dates.

    exchangelib reads a date only in that form; a bare date would come back as a datetime.
    """
    offset = datetime.combine(day, datetime.min.time(), zone).utcoffset() or timedelta(0)
    if not offset:
        return f"{day.isoformat()}Z"
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{day.isoformat()}{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def parse_bool(value: str | None) -> bool:
    """xs:boolean (``true``/``1``; anything else is false)."""
    return (value or "").strip().lower() in ("true", "1")


def fmt_bool(value: bool) -> str:
    """xs:boolean as Exchange writes it."""
    return "true" if value else "false"


def fmt_duration(delta: timedelta) -> str:
    """xs:duration in whole minutes (``PT1H30M``, ``P1DT0H0M``)."""
    minutes = int(delta.total_seconds() // 60)
    days, minutes = divmod(minutes, 1440)
    return f"P{days}DT{minutes // 60}H{minutes % 60}M" if days else f"PT{minutes // 60}H{minutes % 60}M"
