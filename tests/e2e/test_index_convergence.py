"""The item index converges to what Exchange holds, whatever the order of PUT, DELETE, sync and restart.

The gateway indexes its own creates at once (so the client's GET after a PUT needs no SyncFolderItems),
outside the SyncFolderItems stream; Exchange never reports the deletion of an item a sync state never saw.
These tests pin the cases where that used to leave a ghost: listed forever, 404 on GET, 412 on PUT.
"""

from __future__ import annotations

import uuid

from tests.e2e.convergence import Client, event, exchange_names
from tests.e2e.test_read_path import dav_client, exchange_account
from tests.support.postgres import on_both_stores

# Every test here runs on SQLite and on PostgreSQL (tests/support/postgres.py).
pytestmark = on_both_stores


def client(stack) -> Client:
    return Client(stack, str(dav_client(stack).principal().calendars()[0].url))


def test_an_event_created_and_deleted_before_the_next_sync_leaves_no_ghost(stack, emulator):
    cal = client(stack)
    token, _, _ = cal.sync(None)  # the index exists: the create below is recorded at once
    uid = str(uuid.uuid4())
    assert cal.put("ghost.ics", event(uid)).status_code == 201
    assert cal.delete("ghost.ics").status_code == 204
    assert "ghost.ics" not in exchange_names(emulator)
    assert "ghost.ics" not in cal.listing()
    _, changed, _ = cal.sync(token)
    assert "ghost.ics" not in changed
    assert cal.get("ghost.ics").status_code == 404
    # the name and the UID are free again
    assert cal.put("ghost.ics", event(uid, "Second life"), {"If-None-Match": "*"}).status_code == 201
    assert exchange_names(emulator)["ghost.ics"] == uid
    assert "Second life" in cal.get("ghost.ics").text


def test_an_event_deleted_in_outlook_before_the_next_sync_disappears(stack, emulator):
    cal = client(stack)
    token, _, _ = cal.sync(None)
    uid = str(uuid.uuid4())
    assert cal.put("outlook-deletes.ics", event(uid)).status_code == 201
    assert cal.get("outlook-deletes.ics").status_code == 200  # the create is indexed
    next(i for i in exchange_account(emulator).calendar.all() if i.uid == uid).delete()
    assert "outlook-deletes.ics" not in cal.listing()
    new_token, changed, _ = cal.sync(token)
    assert "outlook-deletes.ics" not in changed
    assert cal.put("outlook-deletes.ics", event(uid, "Again")).status_code == 201
    assert exchange_names(emulator)["outlook-deletes.ics"] == uid


def test_a_client_that_saw_the_event_is_told_it_was_deleted_once(stack, emulator):
    cal = client(stack)
    cal.sync(None)
    uid = str(uuid.uuid4())
    assert cal.put("seen.ics", event(uid)).status_code == 201
    token, changed, _ = cal.sync(None)
    assert "seen.ics" in changed  # this client has seen it
    next(i for i in exchange_account(emulator).calendar.all() if i.uid == uid).delete()
    after, changed, deleted = cal.sync(token)
    assert deleted == {"seen.ics"} and "seen.ics" not in changed
    assert cal.sync(after)[1:] == ({}, set())  # reported once, not again


def test_a_gateway_delete_is_reported_once_and_frees_the_name_at_once(stack, emulator):
    cal = client(stack)
    cal.sync(None)
    uid = str(uuid.uuid4())
    assert cal.put("gone.ics", event(uid)).status_code == 201
    token, changed, _ = cal.sync(None)
    assert "gone.ics" in changed
    before = stack.ews_calls()
    assert cal.delete("gone.ics").status_code == 204
    assert "SyncFolderItems" not in {k for k, v in stack.ews_calls().items() if v != before.get(k, 0)}
    after, changed, deleted = cal.sync(token)
    assert deleted == {"gone.ics"} and not changed
    assert cal.sync(after)[1:] == ({}, set())  # Exchange's own report of the deletion takes no second number
    assert "gone.ics" not in cal.listing()


def test_a_restart_between_create_and_outlook_delete_still_converges(stack, emulator):
    cal = client(stack)
    cal.sync(None)
    uid = str(uuid.uuid4())
    assert cal.put("restarted.ics", event(uid)).status_code == 201
    assert cal.get("restarted.ics").status_code == 200
    stack.restart()  # a new backend on the same database
    next(i for i in exchange_account(emulator).calendar.all() if i.uid == uid).delete()
    cal = client(stack)
    assert "restarted.ics" not in cal.listing()
    assert cal.put("restarted.ics", event(uid), {"If-None-Match": "*"}).status_code == 201
