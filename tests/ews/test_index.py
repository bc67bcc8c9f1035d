"""The item index on a real SQLite file and on PostgreSQL: change numbering when the gateway records its
own writes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import event

from gateway.ews.index import ItemChange, ItemIndex
from gateway.store.database import Database
from tests.support.postgres import on_both_stores

# Every test here runs on SQLite and on PostgreSQL (tests/support/postgres.py).
pytestmark = on_both_stores

CAL = "account-1/calendar"


@pytest.fixture
async def index(database_url: str) -> AsyncIterator[ItemIndex]:
    db = Database(database_url)
    await db.open()
    try:
        yield ItemIndex(db.engine)
    finally:
        await db.close()


def upsert(item_id: str, changekey: str, name: str | None = None) -> ItemChange:
    return ItemChange(item_id, changekey, name or f"{item_id}.ics", f"uid-{item_id}")


async def names_since(index: ItemIndex, seq: int) -> list[tuple[str, bool]]:
    return [(i.name, i.deleted) for i in await index.items(CAL, seq, include_deleted=True)]


async def test_a_recorded_create_counts_once_when_the_sync_reports_it(index: ItemIndex) -> None:
    first = await index.apply(CAL, "state-1", [upsert("a", "ck1")], "epoch")
    recorded = await index.record_created(CAL, upsert("b", "ck1"))
    assert recorded == first + 1 and (await index.state(CAL)).seq == recorded
    assert (await index.by_name(CAL, "b.ics")).item_id == "b"  # found without a sync
    assert (
        await index.state(CAL)
    ).sync_state == "state-1"  # the next sync still starts where Exchange left off

    # SyncFolderItems then reports b as created, with the ChangeKey the CreateItem answer gave.
    assert await index.apply(CAL, "state-2", [upsert("b", "ck1")], "epoch") == recorded
    assert (await index.state(CAL)).sync_state == "state-2"
    assert await names_since(index, recorded) == []


async def test_a_newer_version_or_a_deletion_still_counts(index: ItemIndex) -> None:
    await index.apply(CAL, "s1", [upsert("a", "ck1")], "epoch")
    recorded = await index.record_created(CAL, upsert("b", "ck1"))
    seq = await index.apply(CAL, "s2", [upsert("b", "ck2"), ItemChange("a")], "epoch")
    assert seq == recorded + 2
    assert await names_since(index, recorded) == [("b.ics", False), ("a.ics", True)]
    # A deletion seen again, or of an item the index never held, is no change.
    assert await index.apply(CAL, "s3", [ItemChange("a"), ItemChange("never-seen")], "epoch") == seq


async def test_an_item_created_and_deleted_in_one_answer_ends_deleted(index: ItemIndex) -> None:
    await index.apply(CAL, "s1", [upsert("a", "ck1")], "epoch")
    await index.apply(CAL, "s2", [upsert("a", "ck2"), ItemChange("a")], "epoch")
    assert await index.by_name(CAL, "a.ics") is None


async def test_nothing_is_recorded_for_a_calendar_never_synced(index: ItemIndex) -> None:
    assert await index.record_created(CAL, upsert("b", "ck1")) is None
    assert await index.state(CAL) is None and await index.by_name(CAL, "b.ics") is None


async def test_a_create_the_sync_already_recorded_is_left_as_the_sync_saw_it(index: ItemIndex) -> None:
    # The sync ran between CreateItem and the record, and saw a newer version already.
    seq = await index.apply(CAL, "s1", [upsert("b", "ck2")], "epoch")
    assert await index.record_created(CAL, upsert("b", "ck1")) is None
    assert (await index.state(CAL)).seq == seq and (await index.by_name(CAL, "b.ics")).changekey == "ck2"


async def test_a_deleted_calendar_loses_its_properties_only(index: ItemIndex) -> None:
    await index.set_properties("account-1", "trips", {"{A}color": "#00FF00", "{A}order": "2"})
    await index.set_properties("account-1", "work", {"{A}color": "#FF0000"})
    await index.drop_properties("account-1", "trips")
    assert await index.properties("account-1") == {"work": {"{A}color": "#FF0000"}}


async def test_concurrent_look_ups_reuse_pooled_connections(database_url: str) -> None:
    """Each new aiosqlite connection is a new thread whose start waits on the event loop (and each new
    PostgreSQL connection a log-in), so a busy gateway must keep its connections rather than open one
    per query beyond a handful."""
    db = Database(database_url)
    opened = []
    event.listen(db.engine.sync_engine, "connect", lambda *_: opened.append(1))
    await db.open()
    try:
        index = ItemIndex(db.engine)
        await index.apply(CAL, "s1", [upsert("a", "ck1")], "epoch")
        for _ in range(3):
            found = await asyncio.gather(*(index.by_name(CAL, "a.ics") for _ in range(20)))
            assert all(item is not None and item.item_id == "a" for item in found)
        assert len(opened) <= 21  # one per concurrent query at most, reused in the later rounds
    finally:
        await db.close()


async def test_a_provisional_row_the_next_sync_does_not_report_is_deleted(index: ItemIndex) -> None:
    """The sync started from a state older than the create; Exchange reports nothing of an item
    created and deleted since, so the row the create wrote must go by this rule, not by a report."""
    await index.apply(CAL, "s1", [upsert("a", "ck1")], "epoch")
    recorded = await index.record_created(CAL, upsert("b", "ck1"))
    state = await index.state(CAL)
    assert state.provisional and state.seq == recorded
    seq = await index.apply(CAL, "s2", [], "epoch", started_seq=state.seq)
    assert seq == recorded + 1
    assert await index.by_name(CAL, "b.ics") is None
    assert await names_since(index, recorded) == [("b.ics", True)]  # sync-collection reports it
    assert not (await index.state(CAL)).provisional


async def test_a_reported_provisional_row_is_confirmed_and_kept(index: ItemIndex) -> None:
    await index.apply(CAL, "s1", [upsert("a", "ck1")], "epoch")
    recorded = await index.record_created(CAL, upsert("b", "ck1"))
    assert await index.apply(CAL, "s2", [upsert("b", "ck1")], "epoch", started_seq=recorded) == recorded
    assert not (await index.state(CAL)).provisional
    # later syncs from a state that saw b report nothing of it: b stays
    assert await index.apply(CAL, "s3", [], "epoch", started_seq=recorded) == recorded
    assert (await index.by_name(CAL, "b.ics")).item_id == "b"


async def test_a_row_recorded_after_the_sync_read_the_state_waits_for_the_next_sync(index: ItemIndex) -> None:
    """Another process's sync may have made its EWS call before the create: it must not judge the row."""
    started = await index.apply(CAL, "s1", [upsert("a", "ck1")], "epoch")
    recorded = await index.record_created(CAL, upsert("b", "ck1"))
    assert await index.apply(CAL, "s2", [], "epoch", started_seq=started) == recorded
    assert (await index.by_name(CAL, "b.ics")).provisional


async def test_a_gateway_delete_is_recorded_at_once_and_counted_once(index: ItemIndex) -> None:
    await index.apply(CAL, "s1", [upsert("a", "ck1")], "epoch")
    await index.request_delete(CAL, "a", 1234.5)
    seq = await index.record_deleted(CAL, "a")
    assert await index.by_name(CAL, "a.ics") is None
    (tombstone,) = await index.deleted_by_name(CAL, "a.ics")
    assert tombstone.delete_requested_at == 1234.5 and tombstone.seq == seq
    assert await index.record_deleted(CAL, "a") is None  # already deleted: no second number
    # Exchange's report of the same deletion takes no number either
    assert await index.apply(CAL, "s2", [ItemChange("a")], "epoch", started_seq=seq) == seq


async def test_an_index_of_schema_1_is_upgraded_with_confirmed_rows_and_unbounded_names(
    database_url: str,
) -> None:
    from sqlalchemy import text

    db = Database(database_url)
    await db.open()
    async with db.engine.begin() as conn:  # make it look as schema 1 wrote it
        await conn.execute(text("DROP TABLE ews_item"))
        await conn.execute(
            text(
                "CREATE TABLE ews_item (calendar_key VARCHAR(200) NOT NULL, item_id VARCHAR(512) NOT NULL, "
                "name VARCHAR(512) NOT NULL, uid TEXT, changekey VARCHAR(512) NOT NULL, seq INTEGER NOT NULL, "
                "deleted BOOLEAN NOT NULL, PRIMARY KEY (calendar_key, item_id))"
            )
        )
        await conn.execute(text("DELETE FROM schema_migrations"))
        await conn.execute(text("INSERT INTO schema_migrations VALUES (1, '2026-01-01 00:00:00')"))
        await conn.execute(text("INSERT INTO ews_calendar_state VALUES ('c', 's1', 1, 'e')"))
        await conn.execute(text("INSERT INTO ews_item VALUES ('c', 'a', 'a.ics', 'uid-a', 'ck1', 1, FALSE)"))
    await db.close()
    db = Database(database_url)
    await db.open()
    try:
        index = ItemIndex(db.engine)
        assert not (await index.state("c")).provisional
        assert await index.apply("c", "s2", [], "e", started_seq=1) == 1
        assert (await index.by_name("c", "a.ics")).item_id == "a"
        # schema 3: the VARCHAR(512) of schema 1 takes a longer name on PostgreSQL too
        long_name = "n" * 600 + ".ics"
        assert await index.apply("c", "s3", [upsert("b" * 600, "ck" * 300, long_name)], "e") == 2
        assert (await index.by_name("c", long_name)).item_id == "b" * 600
    finally:
        await db.close()
