"""The availability and booking API end to end: requests → gateway (HTTP) → exchangelib → EWS emulator.

The demo user alice (W. Europe time, working 09:00-17:00 Monday to Friday) checks her Calendar and
her "Projects" sub-calendar for conflicts (and, where a test says so, carol's mailbox connected as her
second account); new events go to "Projects". Answers are compared with the emulator's own store, and
the EWS round trips are counted by the emulator.
"""

from __future__ import annotations

import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor
from zoneinfo import ZoneInfo

import pytest
import requests
from exchangelib import EWSDateTime, EWSTimeZone
from exchangelib.items import CalendarItem

from gateway.accounts.service import ConnectRequest
from gateway.accounts.settings import UserSettings
from gateway.ews.calendar_ids import primary_calendar_id
from tests.e2e.test_freebusy import alice_ids, folder_truth, today_utc, truth
from tests.e2e.test_read_path import delta, exchange_account

BERLIN = ZoneInfo("Europe/Berlin")
UTC = dt.UTC


def choose_calendars(stack, *, carol: bool = False) -> dict[str, str]:
    """Conflicts: alice's Calendar and Projects (and carol's Calendar as a second account); new events to
    Projects. Returns the calendar ids by name; the folders are discovered once here."""
    accounts = stack.stack.services.accounts
    user_id, account_id = alice_ids(stack)
    if carol:
        stack.run(
            accounts.connect_account(
                user_id, ConnectRequest("carol@example.com", "carol-pw", auth_type="basic")
            )
        )
    principal = stack.run(accounts.principal(user_id))
    ids = {c.display_name: c.calendar_id for c in stack.run(stack.backend.calendars(principal))}
    projects = next(cid for name, cid in ids.items() if name == "Projects")
    chosen = [primary_calendar_id(account_id), projects]
    if carol:
        chosen.append(
            next(cid for cid in ids.values() if cid.endswith("calendar") and not cid.startswith(account_id))
        )
    stack.run(
        accounts.save_settings(
            user_id, UserSettings(conflict_calendar_ids=tuple(chosen), add_events_calendar_id=projects)
        )
    )
    ids["projects"] = projects
    return ids


def slots(stack, start: dt.datetime, end: dt.datetime, **params) -> requests.Response:
    query = {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "duration": 30,
        "tz": "Europe/Berlin",
        **params,
    }
    return requests.get(
        f"{stack.base_url}/api/v1/users/alice/slots", params=query, auth=("alice", stack.password), timeout=60
    )


def book(stack, start: dt.datetime, minutes: int = 30, key: str | None = None, **extra) -> requests.Response:
    body = {
        "start": start.isoformat(),
        "duration": minutes,
        "title": "Intro call",
        "invitee": {"email": "bob@example.com", "name": "Bob Brown"},
        **extra,
    }
    headers = {"Idempotency-Key": key} if key else {}
    return requests.post(
        f"{stack.base_url}/api/v1/users/alice/bookings",
        json=body,
        headers=headers,
        auth=("alice", stack.password),
        timeout=60,
    )


def two_weeks() -> tuple[dt.datetime, dt.datetime]:
    start = today_utc() + dt.timedelta(days=1)
    return start, start + dt.timedelta(days=14)


def parse(slot: dict) -> tuple[dt.datetime, dt.datetime]:
    return dt.datetime.fromisoformat(slot["start"]), dt.datetime.fromisoformat(slot["end"])


def free_slot(stack) -> dt.datetime:
    """The start of a free 30-minute slot in alice's working hours, as the API offers it."""
    start, end = two_weeks()
    answer = slots(stack, start, end)
    assert answer.status_code == 200, answer.text
    return parse(answer.json()["slots"][len(answer.json()["slots"]) // 2])[0]


def items_at(emulator, email: str, moment: dt.datetime) -> list:
    """Every item of a mailbox (any calendar folder) starting at ``moment``."""
    box = emulator.state.store.mailboxes[email]
    return [
        item
        for folder in box.folders.values()
        if folder.folder_class == "IPF.Appointment"  # not tasks, not the Inbox's meeting messages
        for item in box.expand(folder.folder_id, moment, moment + dt.timedelta(minutes=1))
        if item.start == moment.astimezone(UTC)
    ]


# --------------------------------------------------------------------------- availability


def test_free_slots_over_three_calendars_in_two_accounts(stack, emulator):
    choose_calendars(stack, carol=True)
    start, end = two_weeks()
    slots(stack, start - dt.timedelta(days=1), end)  # another window: discovery and sign-in are not counted
    before = stack.ews_calls()
    answer = slots(stack, start, end)
    assert answer.status_code == 200, answer.text
    assert delta(before, stack.ews_calls()) == {"GetUserAvailability": 2, "FindItem": 1}
    found = [parse(s) for s in answer.json()["slots"]]
    assert found
    busy = (
        truth(emulator, "alice@example.com", start, end)
        | folder_truth(emulator, "alice@example.com", "Projects", start, end)
        | truth(emulator, "carol@example.com", start, end)
    )
    for slot_start, slot_end in found:
        assert slot_end - slot_start == dt.timedelta(minutes=30)
        assert not any(b < slot_end and slot_start < e for b, e, _ in busy), (slot_start, busy)
        local = slot_start.astimezone(BERLIN)
        assert (
            local.weekday() < 5
            and dt.time(9) <= local.time()
            and slot_end.astimezone(BERLIN).time() <= dt.time(17)
        )
        assert slot_start.utcoffset() == local.utcoffset()  # answered in the caller's time zone
    assert answer.json()["working_hours"] == [
        {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00"}
    ]

    before = stack.ews_calls()
    for _ in range(100):
        assert slots(stack, start, end).json() == answer.json()
    assert delta(before, stack.ews_calls()) == {}


def test_a_hundred_visitors_at_once_cost_exchange_one_question(stack, emulator):
    """Concurrent identical questions wait for the one being asked rather than asking again."""
    choose_calendars(stack)
    start, end = two_weeks()
    slots(stack, start - dt.timedelta(days=1), end)  # discovery and sign-in are not counted
    before = stack.ews_calls()
    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(lambda _: slots(stack, start, end), range(100)))
    assert {a.status_code for a in answers} == {200}
    assert len({a.text for a in answers}) == 1
    assert delta(before, stack.ews_calls()) == {"GetUserAvailability": 1, "FindItem": 1}


def test_other_attendees_busy_time_is_left_out(stack, emulator):
    choose_calendars(stack)
    start, end = two_weeks()
    alone = {parse(s) for s in slots(stack, start, end).json()["slots"]}
    # bob is busy during one of alice's free slots, whatever the seed holds for these dates
    busy_from, busy_to = sorted(alone)[len(alone) // 2]
    bob_account = exchange_account(emulator, "bob@example.com")
    CalendarItem(
        account=bob_account,
        folder=bob_account.calendar,
        subject="Bob: busy",
        legacy_free_busy_status="Busy",
        start=EWSDateTime.from_datetime(busy_from.astimezone(dt.UTC)).astimezone(EWSTimeZone("UTC")),
        end=EWSDateTime.from_datetime(busy_to.astimezone(dt.UTC)).astimezone(EWSTimeZone("UTC")),
    ).save()
    together = {parse(s) for s in slots(stack, start, end, attendee="bob@example.com").json()["slots"]}
    bob = truth(emulator, "bob@example.com", start, end)
    assert together < alone
    assert {s for s in alone if any(b < s[1] and s[0] < e for b, e, _ in bob)} == alone - together


def test_working_hours_can_be_overridden(stack, emulator):
    choose_calendars(stack)
    start, end = two_weeks()
    early = slots(stack, start, end, hours="07:00-09:00", days="mon-fri").json()["slots"]
    assert early and all(dt.time(7) <= parse(s)[0].time() < dt.time(9) for s in early)
    anytime = slots(stack, start, end, hours="any").json()["slots"]
    assert any(parse(s)[0].time() < dt.time(7) for s in anytime)


# --------------------------------------------------------------------------- bookings


def test_a_booking_lands_in_the_chosen_calendar_and_invites_the_invitee(stack, emulator):
    ids = choose_calendars(stack)
    moment = free_slot(stack)
    before = stack.ews_calls()
    answer = book(stack, moment, key="first-try")
    assert answer.status_code == 201, answer.text
    assert delta(before, stack.ews_calls()) == {"GetUserAvailability": 1, "FindItem": 1, "CreateItem": 1}
    made = answer.json()
    assert made["calendar_id"] == ids["projects"]
    [mine] = items_at(emulator, "alice@example.com", moment)
    box = emulator.state.store.mailboxes["alice@example.com"]
    assert box.folders[mine.folder_id].name == "Projects"
    assert [a.email for a in mine.required] == ["bob@example.com"]
    [invited] = items_at(emulator, "bob@example.com", moment)  # Exchange delivered the invitation
    assert invited.uid == mine.uid and not invited.is_cancelled
    served = requests.get(stack.base_url + made["href"], auth=("alice", stack.password), timeout=30)
    assert served.status_code == 200 and "bob@example.com" in served.text

    # The cache forgot alice's answers: the booked slot is no longer offered.
    start, end = two_weeks()
    offered = {parse(s)[0] for s in slots(stack, start, end).json()["slots"]}
    assert moment not in offered

    before = stack.ews_calls()
    again = book(stack, moment, key="first-try")  # the answer was lost: the tool sends it again
    assert again.status_code == 201 and again.json() == made
    assert delta(before, stack.ews_calls()) == {}
    assert len(items_at(emulator, "alice@example.com", moment)) == 1

    other = book(stack, moment, minutes=45, key="first-try")
    assert other.status_code == 422 and "Idempotency-Key" in other.json()["message"]


def test_two_concurrent_bookings_of_one_slot_make_one_event(stack, emulator):
    choose_calendars(stack)
    moment = free_slot(stack)
    answers: list[requests.Response] = []
    gate = threading.Barrier(2)

    def attempt(key: str) -> None:
        gate.wait()
        answers.append(book(stack, moment, key=key))

    threads = [threading.Thread(target=attempt, args=(key,)) for key in ("tool-a", "tool-b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(a.status_code for a in answers) == [201, 409], [a.text for a in answers]
    refused = next(a for a in answers if a.status_code == 409)
    assert refused.json()["error"] == "not_free" and "no longer free" in refused.json()["message"]
    assert len(items_at(emulator, "alice@example.com", moment)) == 1


def test_cancelling_a_booking_sends_the_cancellation(stack, emulator):
    choose_calendars(stack)
    moment = free_slot(stack)
    made = book(stack, moment).json()
    url = f"{stack.base_url}/api/v1/users/alice/bookings/{made['id']}"
    before = stack.ews_calls()
    assert requests.delete(url, auth=("alice", stack.password), timeout=30).status_code == 204
    assert delta(before, stack.ews_calls()) == {"DeleteItem": 1}
    assert items_at(emulator, "alice@example.com", moment) == []
    [copy] = items_at(emulator, "bob@example.com", moment)
    assert copy.is_cancelled
    assert requests.delete(url, auth=("alice", stack.password), timeout=30).status_code == 204  # a retry
    gone = requests.delete(url + "x", auth=("alice", stack.password), timeout=30)
    assert gone.status_code == 404 and gone.json()["message"]
    assert book(stack, moment).status_code == 201  # the time is free again


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("params", "status", "words"),
    [
        ({"end_days": 70}, 422, "62 days"),
        ({"duration": 0}, 422, "at least one minute"),
        ({"duration": -5}, 422, "at least one minute"),
        ({"end_days": 0.01, "duration": 60}, 422, "longer than the window"),
        ({"duration": "half an hour"}, 400, "whole number"),
        ({"start": "soon"}, 400, "not a date-time"),
        ({"tz": "Mars/Olympus"}, 400, "time zone"),
        ({"attendee": [f"p{i}@example.com" for i in range(21)]}, 422, "At most 20"),
        ({"attendee": "nobody@example.com"}, 404, "nobody@example.com"),
        ({"hours": "9 to 5"}, 400, "HH:MM-HH:MM"),
    ],
)
def test_bad_availability_questions_get_a_sentence(stack, emulator, params, status, words):
    choose_calendars(stack)
    start = today_utc() + dt.timedelta(days=1)
    end = start + dt.timedelta(days=params.pop("end_days", 14))
    query = {"start": start.isoformat(), "end": end.isoformat(), "duration": 30, **params}
    before = stack.ews_calls()
    answer = requests.get(
        f"{stack.base_url}/api/v1/users/alice/slots", params=query, auth=("alice", stack.password), timeout=30
    )
    assert answer.status_code == status, answer.text
    assert words in answer.json()["message"]
    if status != 404:
        assert delta(before, stack.ews_calls()) == {}


def test_another_or_unknown_user_is_not_found(stack):
    start, end = two_weeks()
    for user in ("bob", "nobody"):
        answer = requests.get(
            f"{stack.base_url}/api/v1/users/{user}/slots",
            params={"start": start.isoformat(), "end": end.isoformat(), "duration": 30},
            auth=("alice", stack.password),
            timeout=30,
        )
        assert answer.status_code == 404 and user in answer.json()["message"]
    assert requests.get(f"{stack.base_url}/api/v1/users/alice/slots", timeout=30).status_code == 401


def test_bad_bookings_write_nothing(stack, emulator):
    choose_calendars(stack)
    moment = free_slot(stack)
    night = moment.astimezone(BERLIN).replace(hour=3, minute=0)
    cases = [
        (book(stack, night), 422, "working hours"),
        (book(stack, moment, minutes=0), 422, "end after it starts"),
        (book(stack, moment, invitee={"name": "No address"}), 400, "invitee.email"),
        (book(stack, moment, time_zone="Nowhere/Land"), 400, "time zone"),
        (book(stack, moment, time_zone=5), 400, "time zone"),
        (book(stack, moment, hours=9), 400, "hours and days are texts"),
        (book(stack, moment, title=["x"]), 400, "title"),
        (book(stack, moment - dt.timedelta(days=30), hours="any"), 422, "in the past"),
        (book(stack, dt.datetime.now(UTC) - dt.timedelta(minutes=10), hours="any"), 422, "in the past"),
    ]
    for answer, status, words in cases:
        assert answer.status_code == status, answer.text
        assert words in answer.json()["message"]
    assert "CreateItem" not in stack.ews_calls()
    garbage = requests.post(
        f"{stack.base_url}/api/v1/users/alice/bookings",
        data=b"{not json",
        auth=("alice", stack.password),
        timeout=30,
    )
    assert garbage.status_code == 400 and "JSON" in garbage.json()["message"]
    # Outside working hours is still possible when the tool says so.
    assert book(stack, night, hours="any").status_code == 201


def test_when_exchange_fails_nothing_is_left_half_done(stack, emulator):
    """A failed CreateItem frees the Idempotency-Key for the retry; a failed DeleteItem leaves the booking
    to be cancelled again."""
    choose_calendars(stack)
    moment = free_slot(stack)
    emulator.set_faults(rules=[{"kind": "http_503", "operation": "CreateItem"}])
    failed = book(stack, moment, key="retry-me")
    assert failed.status_code == 503 and failed.json()["error"] == "exchange_unavailable"
    assert failed.headers.get("Retry-After")
    emulator.set_faults(rules=[])
    made = book(stack, moment, key="retry-me")
    assert made.status_code == 201 and "Idempotent-Replayed" not in made.headers

    url = f"{stack.base_url}/api/v1/users/alice/bookings/{made.json()['id']}"
    emulator.set_faults(rules=[{"kind": "http_503", "operation": "DeleteItem"}])
    assert requests.delete(url, auth=("alice", stack.password), timeout=30).status_code == 503
    emulator.set_faults(rules=[])
    assert len(items_at(emulator, "alice@example.com", moment)) == 1
    assert requests.delete(url, auth=("alice", stack.password), timeout=30).status_code == 204
    assert items_at(emulator, "alice@example.com", moment) == []
