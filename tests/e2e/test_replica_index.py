"""Two gateway replicas (each its own engine, locks and caches) on one PostgreSQL database, over real HTTP:
writes and syncs of one calendar through both at once number every change once, a sync-token of one
replica is valid on the other, and a write through one is reported by the other exactly once."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from lxml import etree
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.ews.index import ItemIndex
from tests.e2e.convergence import DAV, Client, event
from tests.e2e.test_read_path import dav_client, delta
from tests.support.gateway import GatewayStack


@pytest.fixture
def store() -> str:
    return "postgresql"


@pytest.fixture
def replicas(emulator, tmp_path, database_url) -> Iterator[tuple[GatewayStack, GatewayStack]]:
    first = GatewayStack(emulator, tmp_path / "a", database_url=database_url)
    with first, GatewayStack(emulator, tmp_path / "b", first.keyring, database_url=database_url) as second:
        yield first, second


def sync_hrefs(cal: Client, token: str) -> list[str]:
    """The hrefs of a sync-collection answer, repeats included."""
    body = (
        f'<sync-collection xmlns="DAV:"><sync-token>{token}</sync-token><sync-level>1</sync-level>'
        "<prop><getetag/></prop></sync-collection>"
    )
    answer = requests.request(
        "REPORT", cal.calendar_url, data=body, headers={"Depth": "1"}, auth=cal.auth, timeout=60
    )
    assert answer.status_code == 207, answer.text
    return [r.findtext(f"{DAV}href") for r in etree.fromstring(answer.content).iter(f"{DAV}response")]


def test_two_replicas_writing_and_syncing_one_calendar_number_each_change_once(
    replicas, database_url
) -> None:
    first, second = replicas
    url = str(dav_client(first).principal().calendars()[0].url)
    a, b = Client(first, url), Client(second, url.replace(first.base_url, second.base_url))
    token, _, _ = b.sync(None)

    names = [f"replica-{n}.ics" for n in range(12)]
    with ThreadPoolExecutor(8) as pool:
        puts = [
            pool.submit((a if n % 2 else b).put, name, event(str(uuid.uuid4())))
            for n, name in enumerate(names)
        ]
        syncs = [pool.submit((a if n % 2 else b).sync, None) for n in range(8)]
        assert [p.result().status_code for p in puts] == [201] * len(names)
        for s in syncs:
            s.result()

    hrefs = sync_hrefs(b, token)
    assert len(hrefs) == len(set(hrefs))  # each change reported once
    after, changed, deleted = b.sync(token)
    assert set(names) <= set(changed) and not deleted
    assert a.sync(after)[1:] == ({}, set())  # B's token is valid on A, and nothing is repeated
    assert b.sync(after)[1:] == ({}, set())

    # a write through A: B reports it once, then never again
    assert a.put("late.ics", event(str(uuid.uuid4()), "Late")).status_code == 201
    newer, changed, _ = b.sync(after)
    assert list(changed) == ["late.ics"]
    assert b.sync(newer)[1:] == ({}, set()) and a.sync(newer)[1:] == ({}, set())

    assert first.run(_repeated_numbers(database_url)) == []


def test_a_get_through_one_replica_right_after_a_put_through_another_asks_exchange_once(
    replicas, monkeypatch
) -> None:
    """A round-robin balancer sends the client's GET of a new resource (RFC 4791 §5.3.4: the PUT gave no
    ETag) to another replica: the PUT is answered once its index row is written (slow here, as on a busy
    database), so that replica finds the name in the index and costs one GetItem, not a SyncFolderItems
    first."""
    real = ItemIndex.record_created

    async def slow(self: ItemIndex, *args: Any) -> Any:
        await asyncio.sleep(0.3)
        return await real(self, *args)

    monkeypatch.setattr(ItemIndex, "record_created", slow)
    first, second = replicas
    url = str(dav_client(first).principal().calendars()[0].url)
    a, b = Client(first, url), Client(second, url.replace(first.base_url, second.base_url))
    b.sync(None)
    for n in range(5):
        uid = str(uuid.uuid4())
        assert a.put(f"hop-{n}.ics", event(uid)).status_code == 201
        before = first.ews_calls()
        fetched = requests.get(f"{b.calendar_url}hop-{n}.ics", auth=b.auth, timeout=60)
        assert fetched.status_code == 200 and f"UID:{uid}" in fetched.text
        assert delta(before, first.ews_calls()) == {"GetItem": 1}


async def _repeated_numbers(url: str) -> list[tuple[str, int]]:
    """(calendar, change number) given to more than one item."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT calendar_key, seq FROM ews_item GROUP BY calendar_key, seq HAVING count(*) > 1")
            )
            return [tuple(r) for r in rows]
    finally:
        await engine.dispose()


COLOR = "{http://apple.com/ns/ical/}calendar-color"
PROPPATCH = (
    '<propertyupdate xmlns="DAV:" xmlns:A="http://apple.com/ns/ical/"><set><prop>'
    "<A:calendar-color>{color}</A:calendar-color><displayname>{name}</displayname></prop></set></propertyupdate>"
)
PROPFIND = (
    '<propfind xmlns="DAV:" xmlns:A="http://apple.com/ns/ical/"><prop><A:calendar-color/><displayname/>'
    "</prop></propfind>"
)


def described(cal: Client) -> tuple[str | None, str | None]:
    """(calendar-color, displayname) of the collection, PROPFIND Depth 0."""
    answer = requests.request(
        "PROPFIND", cal.calendar_url, data=PROPFIND, headers={"Depth": "0"}, auth=cal.auth, timeout=60
    )
    assert answer.status_code == 207, answer.text
    tree = etree.fromstring(answer.content)
    return tree.findtext(f".//{COLOR}"), tree.findtext(f".//{DAV}displayname")


def test_collection_properties_set_through_one_replica_show_on_the_other_at_once(replicas) -> None:
    first, second = replicas
    url = str(dav_client(first).principal().calendars()[0].url)
    a, b = Client(first, url), Client(second, url.replace(first.base_url, second.base_url))
    assert not described(b)[0]  # B has read (and cached) the stored properties

    for color, name in (("#FF0000FF", "Red days"), ("#00FF00FF", "Green days")):
        answer = requests.request(
            "PROPPATCH",
            a.calendar_url,
            data=PROPPATCH.format(color=color, name=name),
            auth=a.auth,
            timeout=60,
        )
        assert answer.status_code == 207 and "200 OK" in answer.text, answer.text
        started = time.monotonic()
        while described(b) != (color, name):
            assert time.monotonic() - started < 1.0, described(b)
            time.sleep(0.05)


def test_a_sync_waiting_for_exchange_holds_no_lock_connection(replicas, emulator, database_url) -> None:
    """While A's SyncFolderItems waits for Exchange, B creates an event in the same calendar (its
    sync and its index record need the calendar's cross-replica lock) and syncs it; A's answer, then
    written on top of B's, reports the event once (docs/WRITES.md, "Replicas")."""
    first, second = replicas
    url = str(dav_client(first).principal().calendars()[0].url)
    a, b = Client(first, url), Client(second, url.replace(first.base_url, second.base_url))
    token, _, _ = a.sync(None)
    assert b.sync(token)[1:] == ({}, set())

    synced = emulator.stats()["operations"].get("SyncFolderItems", 0)
    emulator.set_faults(
        rules=[{"kind": "latency", "latency_ms": 6000, "operation": "SyncFolderItems", "count": 1}]
    )
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(a.sync, token)
        started = time.monotonic()
        while emulator.stats()["operations"].get("SyncFolderItems", 0) == synced:
            assert time.monotonic() - started < 5, "A's SyncFolderItems never reached Exchange"
            time.sleep(0.05)
        assert b.put("meanwhile.ics", event(str(uuid.uuid4()), "Meanwhile")).status_code == 201
        newer, changed, deleted = b.sync(token)
        assert list(changed) == ["meanwhile.ics"] and not deleted
        assert not slow.done()  # B neither waited for A's sync nor found the lock taken by it
        assert first.run(_advisory_locks(database_url)) == 0
        after, changed, deleted = slow.result()
    assert list(changed) == ["meanwhile.ics"] and not deleted
    assert after == newer  # A's answer was asked again from B's state: nothing more to number
    assert a.sync(after)[1:] == ({}, set()) and b.sync(after)[1:] == ({}, set())
    assert first.run(_repeated_numbers(database_url)) == []


async def _advisory_locks(url: str) -> int:
    """How many advisory locks (the index, create and discovery locks of every replica) are held."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return (
                await conn.execute(text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"))
            ).scalar()
    finally:
        await engine.dispose()
