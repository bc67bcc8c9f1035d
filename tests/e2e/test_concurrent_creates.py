"""PUTs of one new event sent at the same moment (a client retrying at once, two devices of one user,
two replicas behind a balancer) make one Exchange item, never two.

RFC 4791 §5.3.2.1 (CALDAV:no-uid-conflict): one UID per calendar; RFC 9110 §9.3.4: PUT of one target
URI twice leaves one resource. docs/WRITES.md rule 6: one PUT never creates two items.
"""

from __future__ import annotations

import threading

import requests

from tests.e2e.convergence import ICS, event, exchange_names
from tests.e2e.test_read_path import dav_client
from tests.support.gateway import GatewayStack
from tests.support.postgres import on_both_stores

CALENDARS = 4  # twice the lock connections the starvation test leaves a process
ATTEMPTS = 4  # rounds of simultaneous PUTs: the race needs both past the look-up before either creates


def at_once(requests_to_send: list[tuple[str, str]], password: str) -> list[int]:
    """PUT each (url, body) from its own thread, released together; their statuses in order."""
    barrier = threading.Barrier(len(requests_to_send))
    statuses: list[int] = [0] * len(requests_to_send)

    def send(position: int, url: str, body: str) -> None:
        barrier.wait()
        statuses[position] = requests.put(
            url, data=body.encode(), headers=ICS, auth=("alice", password), timeout=60
        ).status_code

    threads = [threading.Thread(target=send, args=(n, *r)) for n, r in enumerate(requests_to_send)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return statuses


def primary(stack) -> str:
    return str(dav_client(stack).principal().calendars()[0].url)


def uids_in_exchange(emulator) -> list[str]:
    box = emulator.state.store.mailboxes["alice@example.com"]
    folder = next(f for f in list(box.folders.values()) if f.name == "Calendar")
    return [item.uid for item in list(folder.items.values())]


@on_both_stores
def test_simultaneous_puts_of_one_new_name_create_one_item(stack, emulator):
    url = primary(stack)
    for attempt in range(ATTEMPTS):
        name = f"twice-{attempt}.ics"
        statuses = at_once(
            [
                (url + name, event(f"twice-uid-{attempt}", "First")),
                (url + name, event(f"twice-uid-{attempt}", "Second")),
            ],
            stack.password,
        )
        assert sorted(statuses) == [201, 204], statuses  # one creates, the other replaces it
        uids = uids_in_exchange(emulator)
        assert uids.count(f"twice-uid-{attempt}") == 1, f"attempt {attempt}: {sorted(uids)}"
        assert list(exchange_names(emulator).values()).count(f"twice-uid-{attempt}") == 1


@on_both_stores
def test_simultaneous_puts_of_one_uid_under_two_names_create_one_item(stack, emulator):
    url = primary(stack)
    for attempt in range(ATTEMPTS):
        uid = f"one-uid-{attempt}"
        statuses = at_once(
            [(url + f"a-{attempt}.ics", event(uid, "A")), (url + f"b-{attempt}.ics", event(uid, "B"))],
            stack.password,
        )
        assert sorted(statuses) == [201, 403], statuses  # CALDAV:no-uid-conflict for the second
        assert uids_in_exchange(emulator).count(uid) == 1, f"attempt {attempt}"


def test_creates_in_many_calendars_at_once_do_not_starve_the_lock_connections(
    emulator, tmp_path, postgres_cluster, monkeypatch
):
    """Each create holds its calendar's create lock (one lock connection) and then needs the calendar's
    index lock (another) for its look-up: creates in as many calendars as there are lock connections,
    all at once, must not each hold one and wait for another until the pool gives up."""
    from gateway.store import locks

    monkeypatch.setattr(locks, "LOCK_POOL_SIZE", 1)
    monkeypatch.setattr(locks, "LOCK_POOL_OVERFLOW", 1)
    monkeypatch.setattr(locks, "LOCK_WAIT_SECONDS", 5.0)
    database = postgres_cluster.create_database()
    try:
        with GatewayStack(emulator, tmp_path / "data", database_url=postgres_cluster.url(database)) as stack:
            principal = dav_client(stack).principal()
            urls = [str(principal.calendars()[0].url)]
            urls += [str(principal.make_calendar(name=f"Other {n}").url) for n in range(CALENDARS - 1)]
            for attempt in range(ATTEMPTS):
                statuses = at_once(
                    [
                        (url + f"many-{attempt}.ics", event(f"many-{n}-{attempt}", "Many"))
                        for n, url in enumerate(urls)
                    ],
                    stack.password,
                )
                assert statuses == [201] * CALENDARS, f"attempt {attempt}: {statuses}"
    finally:
        postgres_cluster.drop_database(database)
