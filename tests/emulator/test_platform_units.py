"""Unit checks of the emulator's directory and fault settings (the HTTP tests cover the rest)."""

from __future__ import annotations

import pytest

from gateway.ews.emulator.directory import Directory
from gateway.ews.emulator.faults import FaultSettings

SEED = {
    "mailboxes": [
        {
            "email": "Alice@Example.com",
            "display_name": "Alice Adams",
            "password": "s3cret",
            "tokens": ["tok-1"],
        },
        {"email": "alice@other.example", "display_name": "Alice Other", "password": "x"},
        {"email": "bob@example.com", "display_name": "Bob Brown", "password": "y"},
    ]
}


@pytest.mark.parametrize("login", ["alice@example.com", "EXAMPLE\\alice@example.com", "\\ALICE@example.com"])
def test_login_names_map_to_the_mailbox(login):
    assert Directory.from_seed(SEED).for_login(login).email == "alice@example.com"


def test_a_bare_user_name_must_be_unambiguous():
    directory = Directory.from_seed(SEED)
    assert directory.for_login("CORP\\bob").email == "bob@example.com"
    assert directory.for_login("alice") is None  # two mailboxes have that local part


def test_secrets_stay_out_of_reprs():
    alice = Directory.from_seed(SEED).get("alice@example.com")
    assert "s3cret" not in repr(alice) and "tok-1" not in repr(alice)
    assert alice.check_password("s3cret") and not alice.check_password("S3cret")


def test_resolve_names_search_by_display_name_words():
    directory = Directory.from_seed(SEED)
    assert [m.email for m in directory.search("brown")] == ["bob@example.com"]
    assert len(directory.search("alice")) == 2
    assert directory.search("SMTP:bob@example.com")[0].display_name == "Bob Brown"


def test_counted_rules_run_out():
    faults = FaultSettings.from_json({"rules": [{"kind": "http_500", "operation": "FindItem", "count": 2}]})
    assert faults.take("GetItem", "a@example.com") is None
    assert faults.take("FindItem", "a@example.com").kind == "http_500"
    assert faults.take("finditem", "a@example.com") is not None  # operation names are case-insensitive
    assert faults.take("FindItem", "a@example.com") is None


@pytest.mark.parametrize(
    "bad",
    [
        {"rules": [{"kind": "nope"}]},
        {"rules": [{"kind": "drop", "count": -1}]},
        {"max_concurrent_per_user": 0},
    ],
)
def test_invalid_fault_settings_are_refused(bad):
    with pytest.raises(ValueError):
        FaultSettings.from_json(bad)
