"""The booking API for a user with two connected accounts: what a booking and a slots question cost
Exchange, and that the re-check still sees every conflict calendar of both accounts.

alice (first account) checks her Calendar and "Projects" (also the calendar for new events); carol's mailbox
is her second account, with its Calendar and, where a test says so, a "Side" sub-calendar checked too.
The floor: accounts are separately credentialed (possibly on other servers), so each account is one request
at least, and the booking one CreateItem more; the first account's mailbox working hours come only with a
GetUserAvailability, which reads no sub-calendar, so with a checked sub-calendar and the mailbox's working
hours the first account is two requests (docs/BOOKING.md, "Round trips").
"""

from __future__ import annotations

import datetime as dt

from exchangelib import EWSDateTime, EWSTimeZone
from exchangelib.folders import Calendar
from exchangelib.items import CalendarItem

from gateway.accounts.service import ConnectRequest
from gateway.accounts.settings import UserSettings
from gateway.ews.calendar_ids import primary_calendar_id
from tests.e2e.test_booking import book, choose_calendars, free_slot, items_at, parse, slots, two_weeks
from tests.e2e.test_freebusy import alice_ids
from tests.e2e.test_read_path import delta, exchange_account

UTC = dt.UTC


def connect_carol(stack, emulator, *, side: bool = False) -> None:
    """alice checks her Calendar, Projects and carol's Calendar (and carol's "Side" with ``side``)."""
    if side:
        carol = exchange_account(emulator, "carol@example.com")
        Calendar(parent=carol.calendar, name="Side").save()
    accounts = stack.stack.services.accounts
    user_id, account_id = alice_ids(stack)
    stack.run(
        accounts.connect_account(user_id, ConnectRequest("carol@example.com", "carol-pw", auth_type="basic"))
    )
    principal = stack.run(accounts.principal(user_id))
    calendars = stack.run(stack.backend.calendars(principal))
    projects = next(c.calendar_id for c in calendars if c.display_name == "Projects")
    carols = [
        c
        for c in calendars
        if not c.calendar_id.startswith(account_id) and not c.calendar_id.endswith("tasks")
    ]
    chosen = [primary_calendar_id(account_id), projects] + [
        c.calendar_id for c in carols if c.calendar_id.endswith("calendar") or c.display_name == "Side"
    ]
    assert len(chosen) == (4 if side else 3)
    stack.run(
        accounts.save_settings(
            user_id, UserSettings(conflict_calendar_ids=tuple(chosen), add_events_calendar_id=projects)
        )
    )


def carol_busy(emulator, moment: dt.datetime, folder: str = "Calendar") -> None:
    """A busy hour around ``moment`` in one of carol's calendars (made straight at Exchange)."""
    carol = exchange_account(emulator, "carol@example.com")
    target = carol.calendar if folder == "Calendar" else carol.calendar / folder

    def ews(moment: dt.datetime) -> EWSDateTime:
        return EWSDateTime.from_datetime(moment.astimezone(UTC)).astimezone(EWSTimeZone("UTC"))

    CalendarItem(
        account=carol,
        folder=target,
        subject="Carol: busy",
        legacy_free_busy_status="Busy",
        start=ews(moment - dt.timedelta(minutes=15)),
        end=ews(moment + dt.timedelta(minutes=45)),
    ).save()


def counted_booking(stack, moment: dt.datetime, **extra) -> tuple[int, dict[str, int]]:
    before = stack.ews_calls()
    answer = book(stack, moment, **extra)
    return answer.status_code, delta(before, stack.ews_calls())


# --------------------------------------------------------------------------- bookings


def test_a_booking_with_two_accounts_and_the_mailbox_working_hours_costs_the_floor(stack, emulator):
    connect_carol(stack, emulator)
    moment = free_slot(stack)
    status, calls = counted_booking(stack, moment)
    assert status == 201
    # alice: working hours + Calendar, and Projects; carol: Calendar; the event.
    assert calls == {"GetUserAvailability": 2, "FindItem": 1, "CreateItem": 1}


def test_a_booking_with_two_accounts_and_working_hours_given_costs_three_calls(stack, emulator):
    connect_carol(stack, emulator)
    moment = free_slot(stack)
    status, calls = counted_booking(stack, moment, hours="08:00-18:00", days="mon-fri")
    assert status == 201
    # alice: Calendar and Projects in one FindItem; carol: her Calendar; the event.
    assert calls == {"GetUserAvailability": 1, "FindItem": 1, "CreateItem": 1}
    status, calls = counted_booking(stack, moment + dt.timedelta(hours=1), hours="any")
    assert status == 201
    assert calls == {"GetUserAvailability": 1, "FindItem": 1, "CreateItem": 1}


def test_a_conflict_in_the_second_account_refuses_the_booking(stack, emulator):
    connect_carol(stack, emulator)
    moment = free_slot(stack)
    carol_busy(emulator, moment)
    for extra in ({}, {"hours": "any"}):
        status, calls = counted_booking(stack, moment, **extra)
        assert status == 409, extra
        assert "CreateItem" not in calls
    assert items_at(emulator, "alice@example.com", moment) == []


def test_a_second_account_with_a_sub_calendar_is_one_request(stack, emulator):
    connect_carol(stack, emulator, side=True)
    moment = free_slot(stack)
    status, calls = counted_booking(stack, moment)
    assert status == 201
    # alice: GetUserAvailability (working hours + Calendar) and Projects; carol: Calendar and Side together.
    assert calls == {"GetUserAvailability": 1, "FindItem": 2, "CreateItem": 1}
    status, calls = counted_booking(stack, moment + dt.timedelta(hours=1), hours="any")
    assert status == 201
    assert calls == {"FindItem": 2, "CreateItem": 1}


def test_a_conflict_in_the_second_accounts_sub_calendar_refuses_the_booking(stack, emulator):
    connect_carol(stack, emulator, side=True)
    moment = free_slot(stack)
    carol_busy(emulator, moment, folder="Side")
    for extra in ({}, {"hours": "any"}):
        status, calls = counted_booking(stack, moment, **extra)
        assert status == 409, extra
    assert items_at(emulator, "alice@example.com", moment) == []


def test_one_account_with_a_sub_calendar_and_working_hours_given_is_one_request(stack, emulator):
    choose_calendars(stack)
    offered = [parse(s)[0] for s in slots(stack, *two_weeks()).json()["slots"]]
    moment, later = offered[len(offered) // 2], offered[len(offered) // 2 + 8]
    status, calls = counted_booking(stack, moment, hours="any")
    assert status == 201
    assert calls == {"FindItem": 1, "CreateItem": 1}  # alice's Calendar and Projects together; the event
    alice = exchange_account(emulator)
    CalendarItem(
        account=alice,
        folder=alice.calendar,
        subject="Alice: busy",
        legacy_free_busy_status="Busy",
        start=EWSDateTime.from_datetime(later.astimezone(UTC)).astimezone(EWSTimeZone("UTC")),
        end=EWSDateTime.from_datetime(later.astimezone(UTC)).astimezone(EWSTimeZone("UTC"))
        + dt.timedelta(hours=1),
    ).save()
    status, _ = counted_booking(stack, later, hours="any")
    assert (
        status == 409
    )  # offered as free a moment ago: the primary calendar, read by the FindItem, refuses it


# --------------------------------------------------------------------------- slots


def test_free_slots_with_two_accounts_cost_one_request_per_account_and_sub_calendars(stack, emulator):
    connect_carol(stack, emulator, side=True)
    start, end = two_weeks()
    slots(stack, start - dt.timedelta(days=1), end)  # discovery and sign-in are not counted
    before = stack.ews_calls()
    answer = slots(stack, start, end)
    assert answer.status_code == 200, answer.text
    # alice: GetUserAvailability (working hours, Calendar) + Projects; carol: Calendar and Side in one FindItem.
    assert delta(before, stack.ews_calls()) == {"GetUserAvailability": 1, "FindItem": 2}
    offered = [parse(s) for s in answer.json()["slots"]]
    carol_busy(emulator, offered[len(offered) // 2][0], folder="Side")
    later = slots(stack, start, end + dt.timedelta(minutes=5))  # another window: not from the cache
    assert offered[len(offered) // 2] not in [parse(s) for s in later.json()["slots"]]


def test_a_checked_calendar_deleted_in_outlook_makes_the_booking_wait_not_guess(stack, emulator):
    """The one FindItem of carol's Calendar and Side fails for the deleted Side: her busy time is not known,
    so the booking is refused as Exchange being unable to tell (never booked as if free, never a 500)."""
    connect_carol(stack, emulator, side=True)
    moment = free_slot(stack)
    carol = exchange_account(emulator, "carol@example.com")
    (carol.calendar / "Side").delete()
    before = stack.ews_calls()
    answer = book(stack, moment, hours="any")
    calls = delta(before, stack.ews_calls())
    assert answer.status_code == 503, answer.text
    assert "Side" in answer.json()["message"]
    assert "CreateItem" not in calls
    assert items_at(emulator, "alice@example.com", moment) == []
