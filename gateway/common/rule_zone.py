"""An EWS ``SerializableTimeZone`` (types.xsd ``SerializableTimeZone``) as a tzinfo.

GetUserAvailability names a time zone this way twice: the request's ``t:TimeZone`` (read by the
emulator) and each mailbox's ``t:WorkingHours/t:TimeZone`` (read by the gateway): a bias in minutes
west of UTC and two yearly rules, ``StandardTime`` and ``DaylightTime`` (Bias, Time, DayOrder 1..4 or
5 = last, Month, DayOfWeek). Zones without daylight saving have rules with equal biases.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime, time, timedelta, tzinfo

from lxml import etree

_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass(frozen=True)
class Rule:
    """One yearly change of a SerializableTimeZone (``t:StandardTime`` / ``t:DaylightTime``)."""

    bias: int
    clock: time
    day_order: int  # 1..4, 5 = last
    month: int
    weekday: int  # 0 = Monday

    def moment(self, year: int) -> datetime:
        """The local wall-clock time of the change in ``year``."""
        first_weekday, days = calendar.monthrange(year, self.month)
        first = 1 + (self.weekday - first_weekday) % 7
        day = first + 7 * (self.day_order - 1)
        while day > days:
            day -= 7
        return datetime.combine(datetime(year, self.month, day).date(), self.clock)


class RuleZone(tzinfo):
    """A tzinfo for an EWS SerializableTimeZone (bias + standard/daylight rules)."""

    def __init__(self, bias: int, standard: Rule | None, daylight: Rule | None) -> None:
        self.bias = bias
        self.standard = standard
        self.daylight = daylight

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RuleZone) and (self.bias, self.standard, self.daylight) == (
            other.bias,
            other.standard,
            other.daylight,
        )

    def __hash__(self) -> int:
        return hash((self.bias, self.standard, self.daylight))

    def __repr__(self) -> str:
        return f"RuleZone(bias={self.bias}, standard={self.standard}, daylight={self.daylight})"

    def _in_daylight(self, local: datetime) -> bool:
        std, dst = self.standard, self.daylight
        if std is None or dst is None or std.bias == dst.bias:
            return False
        start, end = dst.moment(local.year), std.moment(local.year)
        if start < end:
            return start <= local < end
        return not end <= local < start  # southern hemisphere

    def _bias(self, local: datetime) -> int:
        rule = self.daylight if self._in_daylight(local) else self.standard
        return self.bias + (rule.bias if rule else 0)

    def utcoffset(self, dt: datetime | None) -> timedelta:
        return timedelta(minutes=-self._bias(dt.replace(tzinfo=None) if dt else datetime.now()))

    def dst(self, dt: datetime | None) -> timedelta:
        local = dt.replace(tzinfo=None) if dt else datetime.now()
        return timedelta(minutes=-(self.daylight.bias if self._in_daylight(local) and self.daylight else 0))

    def tzname(self, dt: datetime | None) -> str | None:
        return None

    def fromutc(self, dt: datetime) -> datetime:
        utc = dt.replace(tzinfo=None)
        std_bias = self.bias + (self.standard.bias if self.standard else 0)
        local = utc - timedelta(minutes=std_bias)
        if self._in_daylight(local):
            local = utc - timedelta(minutes=self.bias + (self.daylight.bias if self.daylight else 0))
        return local.replace(tzinfo=self)


def _rule(elem: etree._Element | None, ns: str) -> Rule | None:
    if elem is None:
        return None
    clock = time.fromisoformat(elem.findtext(f"{{{ns}}}Time", "00:00:00"))
    weekday = elem.findtext(f"{{{ns}}}DayOfWeek", "Sunday")
    order = int(elem.findtext(f"{{{ns}}}DayOrder", "1"))
    return Rule(
        bias=int(elem.findtext(f"{{{ns}}}Bias", "0")),
        clock=clock,
        day_order=5 if order in (-1, 5) else max(1, order),
        month=int(elem.findtext(f"{{{ns}}}Month", "1")),
        weekday=_WEEKDAYS.index(weekday) if weekday in _WEEKDAYS else 6,
    )


def serializable_zone(elem: etree._Element, ns: str) -> RuleZone:
    """A ``SerializableTimeZone`` element (children in namespace ``ns``) as a tzinfo.

    Raises ``ValueError`` for a malformed number or time.
    """
    return RuleZone(
        bias=int(elem.findtext(f"{{{ns}}}Bias", "0")),
        standard=_rule(elem.find(f"{{{ns}}}StandardTime"), ns),
        daylight=_rule(elem.find(f"{{{ns}}}DaylightTime"), ns),
    )
