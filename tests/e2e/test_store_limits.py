"""What the database stores has the same limits on SQLite (which enforces no VARCHAR length) and on
PostgreSQL (which does): a client's long resource name or UID behaves the same on both stores."""

from __future__ import annotations

import uuid

import requests

from tests.e2e.test_write_path import event, primary_url, put
from tests.support.postgres import on_both_stores

pytestmark = on_both_stores


def test_a_long_resource_name_and_uid_are_stored_alike(stack) -> None:
    uid = f"{uuid.uuid4()}-" + "u" * 700
    url = primary_url(stack) + "n" * 600 + ".ics"
    response = put(stack, url, event(uid))
    assert response.status_code == 201, response.text
    got = requests.get(url, auth=("alice", stack.password))
    assert got.status_code == 200 and uid in got.text.replace("\r\n ", "")
    listing = requests.request(
        "PROPFIND", primary_url(stack), headers={"Depth": "1"}, auth=("alice", stack.password)
    )
    assert "n" * 600 + ".ics" in listing.text
