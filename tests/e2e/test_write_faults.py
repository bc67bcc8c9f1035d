"""Writes through HTTP when Exchange fails: before a request, after it (answer lost), or between the
several EWS writes one PUT needs. Each failed request is followed by the client's ordinary retry (the
same request again): 0 lost, 0 duplicated, 0 half-applied, and the retry succeeds.

The emulator's fault rules (gateway/ews/emulator/faults.py) choose the request and the moment:
``when: after`` carries the request out and then loses the answer; ``skip`` picks the second write.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.e2e.convergence import Client, event, exchange_names, series
from tests.e2e.test_read_path import dav_client, exchange_account
from tests.ews.test_mapping_corpus import assert_same_event
from tests.support.gateway import GatewayStack

TIMEOUT_S = 3.0  # the gateway's EWS request timeout in these tests
LOST_ANSWER = (502, 503, 504)  # the gateway cannot tell whether Exchange did it: try again


def first_answer_ok(status: int, kind: str, when: str) -> bool:
    """What the failed request may answer. Exchange refusing as busy (server_busy) makes the gateway run
    the request again itself, looking first, so it may succeed at once; a fault before the request may be
    retried by the gateway too; a lost answer (after) is 503: the gateway cannot tell what happened."""
    if kind == "server_busy" or when == "before":
        return status in (201, 204, *LOST_ANSWER)
    return status in LOST_ANSWER


@pytest.fixture
def cal(emulator, tmp_path) -> Iterator[Client]:
    """The primary calendar of alice through a gateway with a short EWS timeout, already synced once."""
    with GatewayStack(emulator, tmp_path / "data", request_timeout_seconds=TIMEOUT_S) as stack:
        client = Client(stack, str(dav_client(stack).principal().calendars()[0].url))
        client.sync(None)
        yield client


def fault(emulator, operation: str, kind: str, when: str = "before", skip: int = 0) -> None:
    rule = {"kind": kind, "operation": operation, "count": 1, "skip": skip}
    if kind == "timeout":
        rule["latency_ms"] = int(TIMEOUT_S * 1000) + 1500
    else:
        rule["when"] = when
    emulator.set_faults(rules=[rule])


def items_with_uid(emulator, uid: str) -> int:
    box = emulator.state.store.mailboxes["alice@example.com"]
    return sum(1 for item in list(box.calendar.items.values()) if item.uid == uid)


def assert_holds(cal: Client, emulator, name: str, uid: str, body: str) -> None:
    """Exchange holds exactly one item for the UID, under this name, with the body's content, and the
    client sees it once (listing, GET)."""
    assert items_with_uid(emulator, uid) == 1
    assert exchange_names(emulator).get(name) == uid
    assert name in cal.listing()
    fetched = cal.get(name)
    assert fetched.status_code == 200
    assert_same_event(body, fetched.text)


def etag(cal: Client, name: str) -> str:
    return cal.get(name).headers["ETag"]


LOST = [("drop", "after"), ("timeout", "after"), ("http_503", "after"), ("server_busy", "after")]
FAILED = [("drop", "before"), ("http_503", "before")]


# --- PUT create -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "when"), LOST + FAILED + [("http_500", "after")])
def test_a_create_whose_answer_is_lost_is_retried_once(cal, emulator, kind, when):
    uid, body = str(uuid.uuid4()), None
    body = event(uid)
    fault(emulator, "CreateItem", kind, when)
    first = cal.put("create.ics", body, {"If-None-Match": "*"})
    assert first_answer_ok(first.status_code, kind, when), first.text
    assert items_with_uid(emulator, uid) == (1 if when == "after" or first.ok else 0)  # never two
    retried = cal.put("create.ics", body, {"If-None-Match": "*"})
    assert retried.status_code in (201, 204), retried.text
    assert_holds(cal, emulator, "create.ics", uid, body)


@pytest.mark.parametrize(
    ("operation", "kind", "when"),
    [
        ("CreateItem", "drop", "after"),
        ("UpdateItem", "drop", "before"),  # the second write: the moved occurrence
        ("UpdateItem", "server_busy", "before"),  # refused: the gateway runs the whole PUT again
        ("UpdateItem", "drop", "after"),
        ("UpdateItem", "timeout", "after"),
        ("DeleteItem", "http_503", "before"),  # the third write: the EXDATE
        ("DeleteItem", "drop", "after"),
    ],
)
def test_a_series_create_failing_between_its_writes_is_retried_whole(cal, emulator, operation, kind, when):
    uid = str(uuid.uuid4())
    body = series(uid, exdates=("20261202T100000",), moved=("20261209T100000",))
    fault(emulator, operation, kind, when)
    first = cal.put("series.ics", body, {"If-None-Match": "*"})
    assert first_answer_ok(first.status_code, kind, when), first.text
    # Never two; when CreateItem got through but the occurrences failed, the new item is deleted again
    # (only a CreateItem whose own answer is lost leaves the gateway nothing to undo).
    assert items_with_uid(emulator, uid) == (1 if operation == "CreateItem" or first.ok else 0)
    retried = cal.put("series.ics", body, {"If-None-Match": "*"})
    assert retried.status_code in (201, 204), retried.text
    assert_holds(cal, emulator, "series.ics", uid, body)


# --- PUT update -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "when"), LOST + FAILED)
def test_an_update_whose_answer_is_lost_is_retried_with_the_old_etag(cal, emulator, kind, when):
    uid = str(uuid.uuid4())
    assert cal.put("update.ics", event(uid)).status_code == 201
    old = etag(cal, "update.ics")
    body = event(uid, "Planning v2")
    fault(emulator, "UpdateItem", kind, when)
    first = cal.put("update.ics", body, {"If-Match": old})
    assert first_answer_ok(first.status_code, kind, when), first.text
    retried = cal.put("update.ics", body, {"If-Match": old})  # the client's ordinary retry
    assert retried.status_code == 204, retried.text
    assert_holds(cal, emulator, "update.ics", uid, body)


@pytest.mark.parametrize(
    ("operation", "skip", "kind", "when"),
    [
        ("UpdateItem", 0, "drop", "after"),  # the series itself
        ("UpdateItem", 0, "timeout", "after"),
        ("UpdateItem", 1, "http_503", "before"),  # its moved occurrence
        ("UpdateItem", 1, "server_busy", "before"),
        ("UpdateItem", 1, "drop", "after"),
        ("DeleteItem", 0, "http_503", "before"),  # its new EXDATE
        ("DeleteItem", 0, "drop", "after"),
    ],
)
def test_a_series_update_failing_between_its_writes_is_completed_by_the_retry(
    cal, emulator, operation, skip, kind, when
):
    uid = str(uuid.uuid4())
    assert cal.put("weekly.ics", series(uid, exdates=("20261202T100000",))).status_code == 201
    old = etag(cal, "weekly.ics")
    body = series(
        uid, "Weekly v2", exdates=("20261202T100000", "20261216T100000"), moved=("20261209T100000",)
    )
    fault(emulator, operation, kind, when, skip)
    first = cal.put("weekly.ics", body, {"If-Match": old})
    assert first_answer_ok(first.status_code, kind, when), first.text
    retried = cal.put("weekly.ics", body, {"If-Match": old})
    assert retried.status_code == 204, retried.text
    assert_holds(cal, emulator, "weekly.ics", uid, body)


def test_a_retry_after_an_outlook_change_is_still_refused(cal, emulator):
    """The retry succeeds because Exchange holds exactly what it asks for; a change made in Outlook after
    the lost answer means it does not, and If-Match keeps protecting that change."""
    uid = str(uuid.uuid4())
    assert cal.put("guarded.ics", event(uid)).status_code == 201
    old = etag(cal, "guarded.ics")
    body = event(uid, "Planning v2")
    fault(emulator, "UpdateItem", "drop", "after")
    assert cal.put("guarded.ics", body, {"If-Match": old}).status_code in LOST_ANSWER
    item = next(i for i in exchange_account(emulator).calendar.all() if i.uid == uid)
    item.subject = "Changed in Outlook"
    item.save(update_fields=["subject"])
    assert cal.put("guarded.ics", body, {"If-Match": old}).status_code == 412
    assert "Changed in Outlook" in cal.get("guarded.ics").text


def test_a_stale_etag_for_other_content_is_still_refused(cal, emulator):
    uid = str(uuid.uuid4())
    assert cal.put("stale.ics", event(uid)).status_code == 201
    old = etag(cal, "stale.ics")
    assert cal.put("stale.ics", event(uid, "v2"), {"If-Match": old}).status_code == 204
    assert cal.put("stale.ics", event(uid, "v3"), {"If-Match": old}).status_code == 412
    assert "v2" in cal.get("stale.ics").text


# --- DELETE -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("with_etag", [False, True], ids=["plain", "if-match"])
@pytest.mark.parametrize(("kind", "when"), [("drop", "after"), ("timeout", "after"), ("http_503", "after")])
def test_a_delete_whose_answer_is_lost_is_retried(cal, emulator, kind, when, with_etag):
    uid = str(uuid.uuid4())
    assert cal.put("delete.ics", event(uid)).status_code == 201
    token, _, _ = cal.sync(None)
    headers = {"If-Match": etag(cal, "delete.ics")} if with_etag else {}
    fault(emulator, "DeleteItem", kind, when)
    first = cal.delete("delete.ics", headers)
    assert first_answer_ok(first.status_code, kind, when), first.text
    assert items_with_uid(emulator, uid) == 0
    assert cal.delete("delete.ics", headers).status_code == 204  # the gateway deleted it: the retry succeeds
    assert "delete.ics" not in cal.listing()
    assert cal.get("delete.ics").status_code == 404
    after, changed, deleted = cal.sync(token)
    assert deleted == {"delete.ics"} and not changed
    assert cal.sync(after)[1:] == ({}, set())


def test_a_delete_of_something_deleted_elsewhere_is_404(cal, emulator):
    uid = str(uuid.uuid4())
    assert cal.put("elsewhere.ics", event(uid)).status_code == 201
    cal.sync(None)
    next(i for i in exchange_account(emulator).calendar.all() if i.uid == uid).delete()
    assert cal.delete("elsewhere.ics").status_code == 404
    assert "elsewhere.ics" not in cal.listing()
