"""The demo seed loads at any time of day: its day offsets count from the date it was made for."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from gateway.ews.emulator.seed import demo_seed
from gateway.ews.emulator.store import CalendarStore


@pytest.mark.parametrize("clock", ["00:30", "12:00", "23:30"])
def test_demo_seed_loads_when_berlin_is_already_tomorrow(clock):
    today = date(2026, 11, 23)  # a Monday; at 23:30 UTC it is Tuesday in the mailboxes' zone
    now = datetime.fromisoformat(f"{today.isoformat()}T{clock}:00+00:00").astimezone(UTC)
    store = CalendarStore.from_seed(demo_seed(today), now)
    busy = store.busy_events("alice@example.com", now - timedelta(days=1), now + timedelta(days=14))
    moved = [e for e in busy if e.subject.endswith("(moved)")]
    assert len(moved) == 1 and moved[0].start.date() > today
    focus = next(e for e in busy if e.subject == "Alice: focus time")
    assert focus.start.date() == today  # offset 0 is the seed's today, whatever the mailbox's local date


@pytest.mark.parametrize("day", range(7))
def test_the_sub_calendar_series_occurs_within_the_demo_fortnight_on_every_weekday(day):
    """The demo's "Projects" busy time (free/busy merges it when chosen) exists whichever day the demo starts."""
    today = date(2026, 11, 23) + timedelta(days=day)
    now = datetime.combine(today, datetime.min.time(), UTC) + timedelta(hours=9)
    store = CalendarStore.from_seed(demo_seed(today), now)
    box = store.mailboxes["alice@example.com"]
    projects = next(f.folder_id for f in box.folders.values() if f.name == "Projects")
    start = datetime.combine(today, datetime.min.time(), UTC)
    sprints = [
        i for i in box.expand(projects, start, start + timedelta(days=14)) if i.subject == "Sprint planning"
    ]
    assert sprints and all(i.start.strftime("%A") == "Wednesday" for i in sprints)
