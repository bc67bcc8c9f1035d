"""RRULE (RFC 5545 §3.3.10) ⇄ EWS recurrence, for the iCalendar (MIME content) of calendar items.

Exchange writes a series' pattern as an RRULE when a client asks for an item's MIME content, and reads
one back when a client creates an item from MIME (DavMail does both). The mapping is the one Exchange's
own converter uses: Daily/Weekly/Monthly/Yearly patterns, ``BYDAY`` ordinals First…Fourth and Last
(``-1``), pseudo-days (Day, Weekday, WeekendDay) as a ``BYDAY`` list with ``BYSETPOS``, a yearly rule
with an interval as a monthly one with 12 × that interval, ``COUNT`` and ``UNTIL`` ranges. A rule EWS
cannot express is refused with ErrorCalendarInvalidRecurrence.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from gateway.common.ical import format_date, format_utc
from gateway.ews.emulator.model import StoreError
from gateway.ews.emulator.recurrence import MONTHS, WEEKDAYS, Recurrence

_CODES = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_PSEUDO = {"Day": _CODES, "Weekday": _CODES[:5], "WeekendDay": _CODES[5:]}
_ORDINALS = {"First": "1", "Second": "2", "Third": "3", "Fourth": "4", "Last": "-1"}


def _day_code(name: str) -> str:
    return _CODES[WEEKDAYS.index(name)]


def _by_day(rec: Recurrence) -> list[str]:
    """BYDAY (and BYSETPOS) parts of a relative pattern."""
    day = rec.days_of_week[0]
    ordinal = _ORDINALS[rec.day_of_week_index or "First"]
    if day in _PSEUDO:
        return [f"BYDAY={','.join(_PSEUDO[day])}", f"BYSETPOS={ordinal}"]
    return [f"BYDAY={ordinal}{_day_code(day)}"]


def to_rrule(rec: Recurrence, first_start: datetime, zone: ZoneInfo, all_day: bool) -> str:
    """The RRULE value of an EWS recurrence whose first occurrence starts at ``first_start``."""
    parts: list[str]
    if rec.pattern == "Daily":
        parts = ["FREQ=DAILY", f"INTERVAL={rec.interval}"]
    elif rec.pattern == "Weekly":
        days = ",".join(_day_code(d) for d in rec.days_of_week)
        parts = [
            "FREQ=WEEKLY",
            f"INTERVAL={rec.interval}",
            f"BYDAY={days}",
            f"WKST={_day_code(rec.first_day_of_week)}",
        ]
    elif rec.pattern == "AbsoluteMonthly":
        parts = ["FREQ=MONTHLY", f"INTERVAL={rec.interval}", f"BYMONTHDAY={rec.day_of_month}"]
    elif rec.pattern == "RelativeMonthly":
        parts = ["FREQ=MONTHLY", f"INTERVAL={rec.interval}", *_by_day(rec)]
    elif rec.pattern == "AbsoluteYearly":
        parts = [
            "FREQ=YEARLY",
            f"BYMONTHDAY={rec.day_of_month}",
            f"BYMONTH={MONTHS.index(rec.month or '') + 1}",
        ]
    else:  # RelativeYearly
        parts = ["FREQ=YEARLY", *_by_day(rec), f"BYMONTH={MONTHS.index(rec.month or '') + 1}"]
    if rec.range_type == "Numbered":
        parts.insert(1, f"COUNT={rec.number_of_occurrences}")
    elif rec.range_type == "EndDate" and rec.end_date is not None:
        if all_day:
            parts.insert(1, f"UNTIL={format_date(rec.end_date)}")
        else:  # the last start the range admits, in UTC (RFC 5545: UNTIL is UTC when DTSTART has a TZID)
            clock = first_start.astimezone(zone).time()
            parts.insert(1, f"UNTIL={format_utc(datetime.combine(rec.end_date, clock, zone))}")
    return ";".join(parts)


# --- reading ------------------------------------------------------------------------------------


def _invalid(why: str) -> StoreError:
    return StoreError(
        "ErrorCalendarInvalidRecurrence", f"The recurrence rule cannot be expressed in EWS: {why}."
    )


def _weekday(code: str) -> str:
    try:
        return WEEKDAYS[_CODES.index(code.upper())]
    except ValueError:
        raise _invalid(f"unknown day {code}") from None


def _relative(values: dict[str, list[str]]) -> tuple[str, str]:
    """(DaysOfWeek, DayOfWeekIndex) of a BYDAY with an ordinal, or a BYDAY list with BYSETPOS."""
    by_day = values.get("BYDAY", [])
    if "BYSETPOS" in values:
        days = tuple(sorted((d.upper() for d in by_day), key=_CODES.index))
        pseudo = next((name for name, codes in _PSEUDO.items() if tuple(codes) == days), None)
        if pseudo is None:
            raise _invalid("BYSETPOS with these days")
        ordinal = values["BYSETPOS"][0]
    elif len(by_day) == 1 and by_day[0][:-2]:
        pseudo, ordinal = _weekday(by_day[0][-2:]), by_day[0][:-2].lstrip("+")
    else:
        raise _invalid("several or unnumbered BYDAY values in a monthly or yearly rule")
    index = next((name for name, number in _ORDINALS.items() if number == ordinal), None)
    if index is None:
        raise _invalid(f"the {ordinal}. weekday")
    return pseudo, index


def from_rrule(value: str, first: date, zone: ZoneInfo, clock: time) -> Recurrence:
    """An EWS recurrence for an RRULE whose series starts on the local date ``first``."""
    values: dict[str, list[str]] = {}
    for part in value.split(";"):
        key, _, text = part.partition("=")
        values[key.strip().upper()] = [v.strip() for v in text.split(",") if v.strip()]
    freq = (values.get("FREQ") or [""])[0].upper()
    interval = int((values.get("INTERVAL") or ["1"])[0])
    if any(k in values for k in ("BYHOUR", "BYMINUTE", "BYSECOND", "BYYEARDAY", "BYWEEKNO")):
        raise _invalid("time-of-day or week-number parts")
    rec = Recurrence(pattern="Daily", start_date=first, interval=interval)
    if freq == "DAILY" and "BYDAY" in values:  # "every weekday": a weekly pattern in EWS
        rec.pattern, rec.days_of_week = "Weekly", [_weekday(d) for d in values["BYDAY"]]
    elif freq == "DAILY":
        pass
    elif freq == "WEEKLY":
        rec.pattern = "Weekly"
        rec.days_of_week = [_weekday(d) for d in values.get("BYDAY", [])] or [WEEKDAYS[first.weekday()]]
        rec.first_day_of_week = _weekday((values.get("WKST") or ["MO"])[0])
    elif freq in ("MONTHLY", "YEARLY"):
        _monthly_or_yearly(rec, freq, values, first)
    else:
        raise _invalid(f"FREQ={freq or '?'}")
    _range(rec, values, zone, clock)
    try:
        rec.validate()
    except ValueError as exc:
        raise _invalid(str(exc)) from None
    return rec


def _monthly_or_yearly(rec: Recurrence, freq: str, values: dict[str, list[str]], first: date) -> None:
    month_days = values.get("BYMONTHDAY", [])
    if len(month_days) > 1 or len(values.get("BYMONTH", [])) > 1:
        raise _invalid("several BYMONTHDAY or BYMONTH values")
    yearly = freq == "YEARLY" and rec.interval == 1
    if freq == "YEARLY" and not yearly:  # MAPI keeps "every n years" as a monthly pattern of 12 n months
        rec.interval *= 12
    month = int((values.get("BYMONTH") or [str(first.month)])[0])
    if month_days == ["-1"]:  # the last day of the month
        rec.days_of_week, rec.day_of_week_index = ["Day"], "Last"
        kind = "Relative"
    elif "BYDAY" in values:
        day, index = _relative(values)
        rec.days_of_week, rec.day_of_week_index = [day], index
        kind = "Relative"
    else:
        rec.day_of_month = int(month_days[0]) if month_days else first.day
        kind = "Absolute"
    rec.pattern = f"{kind}{'Yearly' if yearly else 'Monthly'}"
    if yearly:
        rec.month = MONTHS[month - 1]


def _range(rec: Recurrence, values: dict[str, list[str]], zone: ZoneInfo, clock: time) -> None:
    if "COUNT" in values:
        rec.range_type, rec.number_of_occurrences = "Numbered", int(values["COUNT"][0])
    elif "UNTIL" in values:
        rec.range_type, rec.end_date = "EndDate", _until_date(values["UNTIL"][0], zone, clock)


def _until_date(text: str, zone: ZoneInfo, clock: time) -> date:
    """UNTIL as EWS's EndDate: the local date of the last occurrence it admits (occurrences start at
    ``clock``, local time)."""
    text = text.strip().upper()
    try:
        if len(text) == 8:
            return date(int(text[:4]), int(text[4:6]), int(text[6:8]))
        moment = datetime.strptime(text.rstrip("Z"), "%Y%m%dT%H%M%S")
    except ValueError:
        raise _invalid(f"UNTIL={text}") from None
    if text.endswith("Z"):
        moment = moment.replace(tzinfo=UTC).astimezone(zone).replace(tzinfo=None)
    return moment.date() if moment.time() >= clock else moment.date() - timedelta(days=1)
