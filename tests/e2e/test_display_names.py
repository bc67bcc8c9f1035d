"""Calendar display names over PROPFIND when a user has several Exchange accounts: every mailbox's
primary is "Calendar" in Exchange, so the gateway names the mailbox beside it, renames nothing in
Exchange, and a name the client sets (PROPPATCH) wins."""

from __future__ import annotations

import requests
from lxml import etree

from gateway.accounts.exchange_accounts import ConnectRequest
from tests.e2e.test_read_path import exchange_account

DAV = "{DAV:}"
PROPFIND = '<propfind xmlns="DAV:"><prop><displayname/></prop></propfind>'


def names(stack, user: str = "alice") -> dict[str, str]:
    """calendar URL segment -> DAV:displayname, from a Depth 1 PROPFIND of the calendar home."""
    home = f"{stack.base_url}/dav/calendars/{user}/"
    answer = requests.request(
        "PROPFIND", home, auth=(user, stack.password), headers={"Depth": "1"}, data=PROPFIND
    )
    assert answer.status_code == 207, answer.text
    found = {}
    for response in etree.fromstring(answer.content).iter(f"{DAV}response"):
        segment = response.findtext(f"{DAV}href").rstrip("/").rsplit("/", 1)[-1]
        name = response.find(f".//{DAV}displayname")
        if name is not None and segment not in (user, "inbox", "outbox"):
            found[segment] = name.text
    return found


def proppatch(stack, segment: str, body: str, user: str = "alice") -> requests.Response:
    return requests.request(
        "PROPPATCH",
        f"{stack.base_url}/dav/calendars/{user}/{segment}/",
        auth=(user, stack.password),
        data=f'<propertyupdate xmlns="DAV:">{body}</propertyupdate>',
    )


def connect_carol(stack, emulator) -> tuple[str, str]:
    """Connects carol's mailbox to the gateway user alice; returns (alice's, carol's) primary segments."""
    accounts = stack.stack.services.accounts
    alice = stack.run(accounts.find_user("alice"))
    stack.run(
        accounts.connect_account(
            alice.user_id,
            ConnectRequest(email="carol@example.com", password="carol-pw", server=emulator.ews_url),
        )
    )
    first, second = stack.run(accounts.list_accounts(alice.user_id))
    return f"{first.account_id}-calendar", f"{second.account_id}-calendar"


def test_each_mailboxs_calendar_is_named_with_its_address(stack, emulator):
    alice_primary, _ = next(iter(names(stack).items()))
    assert names(stack)[alice_primary] == "Calendar"  # one account: nothing to tell apart
    alice_primary, carol_primary = connect_carol(stack, emulator)
    shown = names(stack)
    assert shown[alice_primary] == "Calendar (alice@example.com)"
    assert shown[carol_primary] == "Calendar (carol@example.com)"
    assert "Projects" in shown.values()  # a sub-calendar keeps the name its owner gave it
    # each mailbox's Tasks folder too: "Tasks (alice@example.com)", "Tasks (carol@example.com)"
    assert shown[alice_primary.replace("-calendar", "-tasks")] == "Tasks (alice@example.com)"
    assert shown[carol_primary.replace("-calendar", "-tasks")] == "Tasks (carol@example.com)"
    assert len(set(shown.values())) == len(shown)
    bob = names(stack, "bob")
    assert sorted(bob.values()) == ["Calendar", "Tasks"]
    # Nothing was renamed in Exchange.
    assert exchange_account(emulator).calendar.name == "Calendar"
    assert exchange_account(emulator, "carol@example.com").calendar.name == "Calendar"


def test_a_name_the_client_sets_wins_and_renames_nothing_in_exchange(stack, emulator):
    alice_primary, carol_primary = connect_carol(stack, emulator)
    # A client writing back the name it was given changes nothing.
    echo = proppatch(
        stack,
        carol_primary,
        "<set><prop><displayname>Calendar (carol@example.com)</displayname></prop></set>",
    )
    assert echo.status_code == 207 and " 200 " in echo.text
    renamed = proppatch(stack, alice_primary, "<set><prop><displayname>Work</displayname></prop></set>")
    assert renamed.status_code == 207 and " 200 " in renamed.text, renamed.text
    shown = names(stack)
    assert shown[alice_primary] == "Work" and shown[carol_primary] == "Calendar (carol@example.com)"
    assert exchange_account(emulator).calendar.name == "Calendar"
    removed = proppatch(stack, alice_primary, "<remove><prop><displayname/></prop></remove>")
    assert removed.status_code == 207 and " 200 " in removed.text, removed.text
    assert names(stack)[alice_primary] == "Calendar (alice@example.com)"
