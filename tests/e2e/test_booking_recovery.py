"""Bookings whose answer was lost: Exchange made the event, the tool never heard of it, and retries with
the same Idempotency-Key. The retry gets the first booking (201, the body a success has) and Exchange
holds one event, not two. Requests → gateway (HTTP) → exchangelib → EWS emulator with fault rules
(docs/EMULATOR.md: ``when: after`` carries the request out, then loses its answer)."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.e2e.test_booking import book, choose_calendars, free_slot, items_at
from tests.e2e.test_read_path import delta
from tests.support.gateway import GatewayStack
from tests.support.postgres import on_both_stores

TIMEOUT_S = 3.0  # the gateway's EWS request timeout here


@pytest.fixture
def short(emulator, tmp_path, database_url) -> Iterator[GatewayStack]:
    """A gateway whose EWS requests give up after TIMEOUT_S, alice's calendars chosen as in test_booking."""
    with GatewayStack(
        emulator, tmp_path / "data", database_url=database_url, request_timeout_seconds=TIMEOUT_S
    ) as stack:
        choose_calendars(stack)
        yield stack


def lose_the_answer(emulator, kind: str) -> None:
    rule: dict[str, object] = {"kind": kind, "operation": "CreateItem", "count": 1}
    if kind == "timeout":
        rule["latency_ms"] = int(TIMEOUT_S * 1000) + 1500
    else:
        rule["when"] = "after"
    emulator.set_faults(rules=[rule])


@on_both_stores
@pytest.mark.parametrize("kind", ["drop", "http_503", "timeout"])
def test_a_booking_whose_answer_was_lost_is_found_by_its_retry(short, emulator, kind):
    stack = short
    moment = free_slot(stack)
    lose_the_answer(emulator, kind)
    lost = book(stack, moment, key="lost-once")
    assert lost.status_code in (502, 503, 504), lost.text
    emulator.set_faults(rules=[])
    [made] = items_at(emulator, "alice@example.com", moment)  # Exchange did make it

    before = stack.ews_calls()
    again = book(stack, moment, key="lost-once")
    assert again.status_code == 201, again.text
    assert delta(before, stack.ews_calls()) == {"FindItem": 1}  # looked for it; no re-check, no CreateItem
    body = again.json()
    assert set(body) == {"id", "start", "end", "title", "invitee", "calendar_id", "href"}
    assert body["href"].endswith(f"/{made.uid}.ics")
    assert dt.datetime.fromisoformat(body["start"]) == moment
    assert len(items_at(emulator, "alice@example.com", moment)) == 1
    served = requests.get(stack.base_url + body["href"], auth=("alice", stack.password), timeout=30)
    assert served.status_code == 200 and made.uid in served.text

    # Once found, the answer is kept: a third try costs Exchange nothing and says the same.
    before = stack.ews_calls()
    third = book(stack, moment, key="lost-once")
    assert third.status_code == 201 and third.json() == body
    assert delta(before, stack.ews_calls()) == {}

    # The found booking is a booking like any other: it can be cancelled.
    url = f"{stack.base_url}/api/v1/users/alice/bookings/{body['id']}"
    assert requests.delete(url, auth=("alice", stack.password), timeout=30).status_code == 204
    assert items_at(emulator, "alice@example.com", moment) == []


def test_a_booking_that_failed_before_exchange_made_it_is_made_by_the_retry(short, emulator):
    moment = free_slot(short)
    emulator.set_faults(rules=[{"kind": "http_503", "operation": "CreateItem", "when": "before", "count": 1}])
    assert book(short, moment, key="not-made").status_code == 503
    emulator.set_faults(rules=[])
    assert items_at(emulator, "alice@example.com", moment) == []
    again = book(short, moment, key="not-made")
    assert again.status_code == 201, again.text
    [made] = items_at(emulator, "alice@example.com", moment)
    assert again.json()["href"].endswith(f"/{made.uid}.ics")


# --------------------------------------------------------------------------- two gateway processes


@pytest.fixture
def replicas(emulator, tmp_path, postgres_cluster) -> Iterator[tuple[GatewayStack, GatewayStack]]:
    """Two gateways (each its own engine, locks and caches) on one PostgreSQL database."""
    name = postgres_cluster.create_database()
    url = postgres_cluster.url(name)
    try:
        first = GatewayStack(emulator, tmp_path / "a", database_url=url)
        with first, GatewayStack(emulator, tmp_path / "b", first.keyring, database_url=url) as second:
            choose_calendars(first)
            yield first, second
    finally:
        postgres_cluster.drop_database(name)


def test_one_slot_booked_through_two_gateways_at_once_is_booked_once(replicas, emulator):
    """The booking lock holds across processes: the second re-check waits for the first CreateItem (made
    slow here, so both re-checks would otherwise find the slot free)."""
    first, second = replicas
    moment = free_slot(first)
    emulator.set_faults(rules=[{"kind": "latency", "operation": "CreateItem", "latency_ms": 800, "count": 2}])
    gate = threading.Barrier(2)

    def attempt(stack: GatewayStack, key: str) -> requests.Response:
        gate.wait()
        return book(stack, moment, key=key)

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(attempt, (first, second), ("tool-a", "tool-b")))
    assert sorted(a.status_code for a in answers) == [201, 409], [a.text for a in answers]
    refused = next(a for a in answers if a.status_code == 409)
    assert refused.json()["error"] == "not_free"
    assert len(items_at(emulator, "alice@example.com", moment)) == 1


def test_a_lost_booking_is_found_by_a_retry_through_another_gateway(replicas, emulator):
    first, second = replicas
    moment = free_slot(first)
    lose_the_answer(emulator, "drop")
    assert book(first, moment, key="via-a").status_code in (502, 503, 504)
    emulator.set_faults(rules=[])
    again = book(second, moment, key="via-a")
    assert again.status_code == 201, again.text
    [made] = items_at(emulator, "alice@example.com", moment)
    assert again.json()["href"].endswith(f"/{made.uid}.ics")
