"""Deterministic large seeds for benchmarks: many mailboxes with many events each.

The same arguments always give the same seed (``random.Random(seed)``), so benchmark runs are
comparable. Events are spread over ``span_days`` centred on ``today``; a share of them are
weekly or daily series with one moved and one cancelled occurrence each.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

_SUBJECTS = (
    "Review",
    "Planning",
    "1:1",
    "Customer call",
    "Workshop",
    "Lunch",
    "Interview",
    "Sync",
    "Demo",
    "Training",
    "Budget",
    "Retro",
)
_FREE_BUSY = ("Busy",) * 6 + ("Tentative", "Free", "OOF", "WorkingElsewhere")
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def generate_mailboxes(
    count: int,
    events_per_mailbox: int = 2000,
    span_days: int = 730,
    recurring_share: float = 0.1,
    seed: int = 1,
    *,
    today: date | None = None,
    domain: str = "bench.example.com",
) -> dict[str, Any]:
    """A seed (docs/EMULATOR-INTERNALS.md format) with ``count`` mailboxes ``user0001@<domain>`` …

    Passwords are ``<local part>-pw`` (benchmark only).
    """
    rng = random.Random(seed)
    today = today or datetime.now(UTC).date()
    first = today - timedelta(days=span_days // 2)
    mailboxes = []
    for number in range(1, count + 1):
        local = f"user{number:04d}"
        events = [_event(rng, first, span_days, recurring_share, i) for i in range(events_per_mailbox)]
        mailboxes.append(
            {
                "email": f"{local}@{domain}",
                "display_name": f"User {number:04d}",
                "password": f"{local}-pw",
                "auth": ["basic", "ntlm"],
                "tokens": [],
                "delegates": [],
                "time_zone": "W. Europe Standard Time",
                "working_hours": {"days": list(_WEEKDAYS[:5]), "start": "09:00", "end": "17:00"},
                "calendars": [{"name": "Calendar", "primary": True, "events": events}],
            }
        )
    return {
        "mailboxes": mailboxes,
        "autodiscover": {domain: {"mode": "success"}},
        "impersonation": {},
        "faults": {},
    }


def _event(
    rng: random.Random, first: date, span_days: int, recurring_share: float, index: int
) -> dict[str, Any]:
    day = first + timedelta(days=rng.randrange(span_days))
    event: dict[str, Any] = {
        "subject": f"{rng.choice(_SUBJECTS)} #{index}",
        "date": day.isoformat(),
        "free_busy": rng.choice(_FREE_BUSY),
        "uid": f"bench-{index}-{rng.getrandbits(48):012x}",
    }
    if rng.random() < 0.08:
        event.update(all_day=True, days=rng.choice((1, 1, 1, 2, 3)))
    else:
        event.update(
            time=f"{rng.randrange(7, 19):02d}:{rng.choice((0, 15, 30, 45)):02d}",
            duration=rng.choice((15, 30, 30, 45, 60, 60, 90, 120)),
        )
    if rng.random() < recurring_share:
        _make_series(rng, event, day)
    return event


def _make_series(rng: random.Random, event: dict[str, Any], day: date) -> None:
    """A weekly (on the start's weekday) or daily series with one moved and one deleted occurrence."""
    count = rng.randrange(4, 30)
    if rng.random() < 0.7:
        step = 7
        event["recurrence"] = {
            "pattern": "Weekly",
            "days_of_week": [_WEEKDAYS[day.weekday()]],
            "count": count,
        }
    else:
        step = 1
        event["recurrence"] = {"pattern": "Daily", "interval": 1, "count": count}
    moved, deleted = rng.sample(range(1, count), 2)
    change = {
        "occurrence": (day + timedelta(days=moved * step)).isoformat(),
        "subject": f"{event['subject']} (moved)",
    }
    if not event.get("all_day"):
        change["time"] = f"{rng.randrange(7, 19):02d}:00"
    event["modified"] = [change]
    event["deleted"] = [(day + timedelta(days=deleted * step)).isoformat()]
