"""Seeds: the ``calendars``/``events`` part of an emulator seed, and the demo seed.

The format is documented in docs/EMULATOR-CALENDARS.md. Dates may be ISO dates or whole-day
offsets from "today" (in the mailbox's time zone), so a seed file stays current.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from gateway.ews.emulator.ids import new_uid
from gateway.ews.emulator.model import DEFAULT_TIME_ZONE, Attendee, CalendarItem, zone_for
from gateway.ews.emulator.recurrence import Recurrence, instances
from gateway.ews.emulator.series import make_occurrence
from gateway.ews.emulator.store import CalendarStore, MailboxStore


def resolve_date(value: int | str, today: date) -> date:
    """An ISO date, or an integer day offset from ``today`` (``-30``, ``0``, ``"+3"``)."""
    if isinstance(value, int) or (isinstance(value, str) and value.lstrip("+-").isdigit()):
        return today + timedelta(days=int(value))
    return date.fromisoformat(value)


def seed_today(seed: dict, now: datetime, time_zone: str) -> date:
    """The day relative dates count from: the seed's own ``today`` when it names one (a seed whose
    offsets were computed for a given date, such as the demo's), else the mailbox's local date."""
    if seed.get("today"):
        return date.fromisoformat(seed["today"])
    return now.astimezone(zone_for(time_zone)).date()


def load_calendars(store: CalendarStore, seed: dict, now: datetime) -> None:
    """Fill ``store`` with every mailbox's calendars; meetings are copied to attendees' Calendars."""
    meetings: list[CalendarItem] = []
    for mailbox in seed.get("mailboxes", []):
        box = store.mailbox(mailbox["email"], mailbox.get("time_zone", DEFAULT_TIME_ZONE))
        today = seed_today(seed, now, box.time_zone)
        for calendar in mailbox.get("calendars", []):
            folder = (
                box.calendar
                if calendar.get("primary")
                else box.create_folder(box.calendar.folder_id, calendar["name"], "IPF.Appointment")
            )
            for event in calendar.get("events", []):
                item = add_event(box, folder.folder_id, event, today, now)
                if item.is_meeting and folder.distinguished == "calendar":
                    meetings.append(item)
    # After every mailbox exists: attendees' copies of the seeded meetings.
    for item in meetings:
        store.deliver(item, now)
    from gateway.ews.emulator.task_seed import load_tasks  # task_seed.py builds on this module

    load_tasks(store, seed, now)


def add_event(
    box: MailboxStore, folder_id: str, event: dict[str, Any], today: date, now: datetime
) -> CalendarItem:
    """Store one seed event (single, all-day, multi-day or recurring with exceptions)."""
    item = box.new_item(folder_id, now)
    item.start_tz = item.end_tz = event.get("time_zone", box.time_zone)
    zone = item.zone
    day = resolve_date(event.get("date", 0), today)
    if event.get("all_day"):
        item.is_all_day = True
        item.start = datetime.combine(day, time(), zone).astimezone(UTC)
        item.end = datetime.combine(day + timedelta(days=event.get("days", 1)), time(), zone).astimezone(UTC)
        item.free_busy = "Free"
    else:
        item.start = datetime.combine(day, time.fromisoformat(event.get("time", "09:00")), zone).astimezone(
            UTC
        )
        item.end = item.start + timedelta(minutes=event.get("duration", 60))
    item.subject = event.get("subject", "")
    item.body = event.get("body", "")
    item.location = event.get("location", "")
    item.uid = event.get("uid") or new_uid(item.item_id)
    item.free_busy = event.get("free_busy", item.free_busy)
    item.sensitivity = event.get("sensitivity", "Normal")
    item.importance = event.get("importance", "Normal")
    item.categories = list(event.get("categories", []))
    item.reminder_is_set = "reminder" in event
    item.reminder_minutes = event.get("reminder", 15)
    _people(item, box, event)
    if "recurrence" in event:
        item.recurrence = recurrence(event["recurrence"], day, today)
    box.add_item(item)
    for change in event.get("modified", []):
        _modify(box, item, change, today, now)
    for when in event.get("deleted", []):
        _delete(box, item, resolve_date(when, today), now)
    return item


def _people(item: CalendarItem, box: MailboxStore, event: dict[str, Any]) -> None:
    attendees = {
        k: [Attendee(e.lower(), response_type="Accept") for e in event.get(k, [])]
        for k in ("required", "optional", "resources")
    }
    item.required, item.optional, item.resources = (
        attendees["required"],
        attendees["optional"],
        attendees["resources"],
    )
    if item.is_meeting:
        organizer = event.get("organizer", box.email).lower()
        item.organizer = Attendee(organizer)
        item.my_response_type = "Organizer" if organizer == box.email else "Accept"


def recurrence(data: dict[str, Any], first: date, today: date, pattern: str | None = None) -> Recurrence:
    """A seed's recurrence keys as a validated pattern (events, and task_seed.py's tasks); ``pattern``
    replaces the seed's own (a regenerating task's rule is counted in days)."""
    rec = Recurrence(
        pattern=pattern or data["pattern"],
        start_date=resolve_date(data.get("start", first.isoformat()), today),
        interval=data.get("interval", 1),
        days_of_week=list(data.get("days_of_week", [])),
        first_day_of_week=data.get("first_day_of_week", "Monday"),
        day_of_month=data.get("day_of_month"),
        day_of_week_index=data.get("day_of_week_index"),
        month=data.get("month"),
        range_type="EndDate" if "end" in data else "Numbered" if "count" in data else "NoEnd",
        end_date=resolve_date(data["end"], today) if "end" in data else None,
        number_of_occurrences=data.get("count"),
    )
    rec.validate()
    return rec


def _occurrence_on(master: CalendarItem, day: date) -> CalendarItem:
    """The occurrence of ``master`` whose original local date is ``day``."""
    assert master.recurrence is not None
    for inst in instances(master.recurrence, master.start, master.end, master.zone):
        local_day = inst.start.astimezone(master.zone).date()
        if local_day == day:
            return make_occurrence(master, inst)
        if local_day > day:
            break
    raise ValueError(f"seed: no occurrence of {master.subject!r} on {day}")


def _modify(
    box: MailboxStore, master: CalendarItem, change: dict[str, Any], today: date, now: datetime
) -> None:
    occ = _occurrence_on(master, resolve_date(change["occurrence"], today))
    zone = master.zone
    local_start = occ.start.astimezone(zone)
    length = occ.end - occ.start
    day = resolve_date(change["date"], today) if "date" in change else local_start.date()
    clock = time.fromisoformat(change["time"]) if "time" in change else local_start.time()
    occ.start = datetime.combine(day, clock, zone).astimezone(UTC)
    occ.end = (
        occ.start + timedelta(minutes=change["duration"]) if "duration" in change else occ.start + length
    )
    for key, attr in (("subject", "subject"), ("location", "location"), ("free_busy", "free_busy")):
        if key in change:
            setattr(occ, attr, change[key])
    box.commit_occurrence(occ, now)


def _delete(box: MailboxStore, master: CalendarItem, day: date, now: datetime) -> None:
    box.delete(_occurrence_on(master, day).item_id, now)


# -- the demo ----------------------------------------------------------------------------------------

_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_WORKING_HOURS = {
    "days": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"],
    "start": "09:00",
    "end": "17:00",
}
_PEOPLE = {
    "alice": ("Alice Adams", "W. Europe Standard Time"),
    "bob": ("Bob Brown", "W. Europe Standard Time"),
    "carol": ("Carol Clark", "Pacific Standard Time"),
}


def _next_weekday(today: date, weekday: int, offset: int = 0) -> int:
    """Day offset from ``today`` of the first ``weekday`` (0 = Monday) on or after today + offset."""
    start = today + timedelta(days=offset)
    return offset + (weekday - start.weekday()) % 7


def _weekly_series(
    today: date, subject: str, weekday: int, clock: str, extra: dict[str, Any]
) -> dict[str, Any]:
    """A weekly series from about a month ago to a month ahead, one occurrence moved, one cancelled."""
    first = _next_weekday(today, weekday, -35)
    moved = _next_weekday(today, weekday, 1)
    cancelled = moved + 7
    return {
        "subject": subject,
        "date": first,
        "time": clock,
        "duration": 30,
        "recurrence": {"pattern": "Weekly", "days_of_week": [_DAY_NAMES[weekday]], "end": 35},
        "modified": [{"occurrence": moved, "time": "14:00", "subject": f"{subject} (moved)"}],
        "deleted": [cancelled],
        **extra,
    }


def _personal_events(today: date, who: str) -> list[dict[str, Any]]:
    """Every kind of event at least once within the 14 days starting today (offsets relative to today)."""
    workday = _next_weekday(today, 0 if who == "alice" else 1, 0)
    return [
        {"subject": f"{who.title()}: focus time", "date": 0, "time": "10:00", "duration": 90, "reminder": 10},
        {"subject": "Public holiday", "date": 3, "all_day": True, "free_busy": "OOF"},
        {
            "subject": "Conference in Berlin",
            "date": 5,
            "all_day": True,
            "days": 3,
            "location": "Berlin",
            "free_busy": "Busy",
        },
        {
            "subject": "Maybe: vendor demo",
            "date": 1,
            "time": "15:00",
            "duration": 60,
            "free_busy": "Tentative",
        },
        {"subject": "Vacation", "date": 9, "all_day": True, "days": 2, "free_busy": "OOF"},
        {
            "subject": "Working from the Lyon office",
            "date": workday + 2,
            "all_day": True,
            "free_busy": "WorkingElsewhere",
        },
        {"subject": "Doctor", "date": 2, "time": "08:00", "duration": 45, "sensitivity": "Private"},
        {"subject": "Old planning meeting", "date": -10, "time": "11:00", "duration": 60},
        _weekly_series(today, f"{who.title()} weekly 1:1", 1 if who == "alice" else 3, "09:00", {}),
    ]


def _meetings(today: date) -> list[dict[str, Any]]:
    return [
        {
            "subject": "Project kickoff",
            "date": 1,
            "time": "11:00",
            "duration": 60,
            "location": "Room 1",
            "required": ["bob@example.com", "carol@example.com"],
            "resources": ["room-1@example.com"],
            "body": "Agenda: scope, owners, dates.",
        },
        {
            "subject": "Design review",
            "date": 4,
            "time": "16:00",
            "duration": 60,
            "required": ["bob@example.com"],
            "optional": ["carol@example.com"],
        },
        {
            "subject": "Team stand-up",
            "date": _next_weekday(today, 0, -28),
            "time": "09:30",
            "duration": 15,
            "recurrence": {"pattern": "Weekly", "days_of_week": _DAY_NAMES[:5], "count": 40},
            "required": ["bob@example.com"],
            "resources": ["room-1@example.com"],
        },
    ]


def _mailbox(local: str, calendars: list[dict[str, Any]], *, kind: str = "user") -> dict[str, Any]:
    name, zone = _PEOPLE.get(local, ("Room 1", "W. Europe Standard Time"))
    return {
        "email": f"{local}@example.com",
        "display_name": name,
        "password": f"{local}-pw",
        "auth": ["basic", "ntlm"],
        "tokens": [],
        "delegates": [],
        "time_zone": zone,
        "kind": kind,
        "working_hours": _WORKING_HOURS,
        "calendars": calendars,
    }


def demo_seed(today: date) -> dict[str, Any]:
    """The full demo seed (docs/EMULATOR-INTERNALS.md format) with events around ``today``.

    Passwords are ``<local part>-pw``: demo only. Dates are written as day offsets from today.
    """
    alice = _mailbox(
        "alice",
        [
            {
                "name": "Calendar",
                "primary": True,
                "events": _personal_events(today, "alice") + _meetings(today),
            },
            {
                "name": "Projects",
                "events": [
                    {"subject": "Milestone: beta", "date": 6, "all_day": True, "free_busy": "Free"},
                    # Starts on a Wednesday within the week: a fortnightly series starting on another weekday
                    # would first occur in its third week, outside the 14 days the demo covers.
                    {
                        "subject": "Sprint planning",
                        "date": _next_weekday(today, 2, 1),
                        "time": "13:00",
                        "duration": 90,
                        "recurrence": {
                            "pattern": "Weekly",
                            "interval": 2,
                            "days_of_week": ["Wednesday"],
                            "count": 10,
                        },
                    },
                ],
            },
        ],
    )
    alice["delegates"] = ["bob@example.com"]
    from gateway.ews.emulator.task_seed import demo_task_lists  # task_seed.py builds on this module

    alice["task_lists"] = demo_task_lists(today)
    bob = _mailbox("bob", [{"name": "Calendar", "primary": True, "events": _personal_events(today, "bob")}])
    carol = _mailbox(
        "carol",
        [
            {
                "name": "Calendar",
                "primary": True,
                "events": [
                    {"subject": "Customer call", "date": 1, "time": "08:00", "duration": 60},
                    {"subject": "Offsite", "date": 6, "all_day": True, "free_busy": "OOF"},
                ],
            }
        ],
    )
    room = _mailbox(
        "room-1",
        [
            {
                "name": "Calendar",
                "primary": True,
                "events": [
                    {"subject": "Booked: facilities check", "date": 2, "time": "14:00", "duration": 120},
                ],
            }
        ],
        kind="room",
    )
    return {
        # The weekday-aligned offsets below are computed for this date: pin it, or a mailbox whose
        # local date is already tomorrow (Berlin after 23:00 UTC) would shift every event by a day.
        "today": today.isoformat(),
        "mailboxes": [alice, bob, carol, room],
        "autodiscover": {"example.com": {"mode": "success"}},
        "impersonation": {},
        "faults": {},
    }
