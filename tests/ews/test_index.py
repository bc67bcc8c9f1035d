"""The item index on a real SQLite file: change numbering when the gateway records its own writes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import event

from gateway.ews.index import ItemChange, ItemIndex
from gateway.store.database import Database

CAL = "account-1/calendar"


@pytest.fixture
async def index(tmp_path: Path) -> AsyncIterator[ItemIndex]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'gateway.sqlite3'}")
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


async def test_concurrent_look_ups_reuse_pooled_connections(tmp_path: Path) -> None:
    """Each new aiosqlite connection is a new thread whose start waits on the event loop, so a busy
    gateway must keep its connections rather than open one per query beyond a handful."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'gateway.sqlite3'}")
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
