"""Authentication and mailbox access of the EWS emulator, through real HTTP and real exchangelib."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest
import requests
from exchangelib import BASIC, DELEGATE, IMPERSONATION, NTLM, Account, Configuration, Credentials
from exchangelib.errors import ErrorAccessDenied, ErrorImpersonateUserDenied, UnauthorizedError
from exchangelib.protocol import Protocol
from requests_ntlm import HttpNtlmAuth

from gateway.ews.emulator.seed import demo_seed
from tests.support.emulator import EmulatorServer
from tests.support.schema import observe_message

RESOLVE_NAMES = b"""<?xml version="1.0" encoding="utf-8"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"
  xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"
  xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages">
  <s:Header><t:RequestServerVersion Version="Exchange2016"/></s:Header>
  <s:Body><m:ResolveNames ReturnFullContactData="false"><m:UnresolvedEntry>bob</m:UnresolvedEntry></m:ResolveNames></s:Body>
</s:Envelope>"""
HEADERS = {"Content-Type": "text/xml; charset=utf-8"}


def protocol(emu: EmulatorServer, user: str, password: str, auth_type: str = BASIC) -> Protocol:
    config = Configuration(
        service_endpoint=emu.ews_url, credentials=Credentials(user, password), auth_type=auth_type
    )
    result = Protocol(config=config)
    result.version  # noqa: B018 - like Account(), probe the server version first (ConvertId)
    return result


@pytest.fixture(autouse=True)
def fresh_protocols():
    """exchangelib caches protocols per endpoint and credentials: start every test with none."""
    Protocol.clear_cache()
    yield
    Protocol.clear_cache()


def test_basic_login_with_exchangelib(emulator):
    names = protocol(emulator, "alice@example.com", "alice-pw").resolve_names(["bob"])
    assert [m.email_address for m in names] == ["bob@example.com"]
    assert emulator.stats()["mailboxes"]["alice@example.com"]["ResolveNames"] == 1


def test_ntlm_login_with_exchangelib(emulator):
    names = protocol(emulator, "alice@example.com", "alice-pw", NTLM).resolve_names(["carol"])
    assert [m.email_address for m in names] == ["carol@example.com"]


@pytest.mark.parametrize("username", ["EXAMPLE\\alice", "\\alice@example.com", "alice@example.com"])
def test_ntlm_authenticates_the_connection_once(emulator, username):
    with requests.Session() as session:
        session.auth = HttpNtlmAuth(username, "alice-pw")
        first = session.post(emulator.ews_url, data=RESOLVE_NAMES, headers=HEADERS)
        assert first.status_code == 200
        assert [r.status_code for r in first.history] == [401, 401]  # anonymous, then type-1 → challenge
        second = session.post(emulator.ews_url, data=RESOLVE_NAMES, headers=HEADERS)
    # The keep-alive connection stays authenticated: no new handshake, no Authorization header.
    assert second.status_code == 200 and second.history == []
    assert "Authorization" not in second.request.headers
    assert emulator.stats()["mailboxes"]["alice@example.com"]["ResolveNames"] == 2


def test_ntlm_wrong_password_is_refused(emulator):
    with requests.Session() as session:
        session.auth = HttpNtlmAuth("alice@example.com", "not-her-password")
        response = session.post(emulator.ews_url, data=RESOLVE_NAMES, headers=HEADERS)
    assert response.status_code == 401


def test_wrong_password_gets_401(emulator):
    response = requests.post(
        emulator.ews_url, data=RESOLVE_NAMES, headers=HEADERS, auth=("alice@example.com", "nope")
    )
    assert response.status_code == 401
    with pytest.raises(UnauthorizedError):
        protocol(emulator, "alice@example.com", "nope").resolve_names(["bob"])
    assert (
        emulator.stats()["operations"].get("ResolveNames", 0) == 0
    )  # unauthenticated requests are not counted


def test_www_authenticate_lists_the_configured_schemes(emulator):
    response = requests.post(emulator.ews_url, data=RESOLVE_NAMES, headers=HEADERS)
    assert response.status_code == 401
    offered = response.raw.headers.getlist("WWW-Authenticate")
    assert [value.split()[0] for value in offered] == ["NTLM", "Basic"]


def _seed_with(**changes) -> dict:
    seed = copy.deepcopy(demo_seed(datetime.now(UTC).date()))
    for mailbox in seed["mailboxes"]:
        mailbox.update(changes.get(mailbox["email"], {}))
    seed.update(changes.get("top", {}))
    return seed


def test_basic_only_server_makes_exchangelib_choose_basic():
    seed = _seed_with(
        **{
            m: {"auth": ["basic"]}
            for m in ("alice@example.com", "bob@example.com", "carol@example.com", "room-1@example.com")
        }
    )
    with EmulatorServer(seed, message_observer=observe_message) as emu:
        response = requests.post(emu.ews_url, data=RESOLVE_NAMES, headers=HEADERS)
        assert response.raw.headers.getlist("WWW-Authenticate") == ['Basic realm="EWS"']
        config = Configuration(
            service_endpoint=emu.ews_url, credentials=Credentials("bob@example.com", "bob-pw")
        )
        assert Protocol(config=config).auth_type == BASIC  # exchangelib's guess from the 401
        # NTLM is not enabled for this mailbox: a valid NTLM handshake is still refused.
        with requests.Session() as session:
            session.auth = HttpNtlmAuth("bob@example.com", "bob-pw")
            assert session.post(emu.ews_url, data=RESOLVE_NAMES, headers=HEADERS).status_code == 401


def test_bearer_token_from_the_seed():
    seed = _seed_with(
        **{"carol@example.com": {"auth": ["basic", "ntlm", "bearer"], "tokens": ["carol-token-1"]}}
    )
    with EmulatorServer(seed, message_observer=observe_message) as emu:
        offered = requests.post(emu.ews_url, data=RESOLVE_NAMES, headers=HEADERS).raw.headers.getlist(
            "WWW-Authenticate"
        )
        assert 'Bearer realm="EWS"' in offered
        ok = requests.post(
            emu.ews_url, data=RESOLVE_NAMES, headers={**HEADERS, "Authorization": "Bearer carol-token-1"}
        )
        assert ok.status_code == 200 and b"bob@example.com" in ok.content
        bad = requests.post(
            emu.ews_url, data=RESOLVE_NAMES, headers={**HEADERS, "Authorization": "Bearer guessed"}
        )
        assert bad.status_code == 401
        assert emu.stats()["mailboxes"]["carol@example.com"]["ResolveNames"] == 1


def _account(emu: EmulatorServer, owner: str, user: str, password: str, access=DELEGATE) -> Account:
    config = Configuration(
        service_endpoint=emu.ews_url, credentials=Credentials(user, password), auth_type=BASIC
    )
    return Account(owner, config=config, autodiscover=False, access_type=access)


def test_other_mailbox_is_denied_but_delegate_is_allowed(emulator):
    # The demo seed makes bob a delegate of alice; carol has no rights on alice's mailbox.
    delegate = _account(emulator, "alice@example.com", "bob@example.com", "bob-pw")
    assert delegate.calendar.total_count >= 1
    stranger = _account(emulator, "alice@example.com", "carol@example.com", "carol-pw")
    with pytest.raises(ErrorAccessDenied):
        stranger.calendar.refresh()


def test_impersonation_granted_by_the_seed():
    seed = _seed_with(top={"impersonation": {"room-1@example.com": ["alice@example.com"]}})
    with EmulatorServer(seed, message_observer=observe_message) as emu:
        acting = _account(emu, "alice@example.com", "room-1@example.com", "room-1-pw", IMPERSONATION)
        assert acting.calendar.total_count >= 1
        refused = _account(emu, "bob@example.com", "room-1@example.com", "room-1-pw", IMPERSONATION)
        with pytest.raises(ErrorImpersonateUserDenied):
            refused.calendar.refresh()


def test_basic_for_an_ntlm_only_mailbox_gets_that_mailboxs_schemes():
    seed = _seed_with(**{"bob@example.com": {"auth": ["ntlm"]}})
    with EmulatorServer(seed, message_observer=observe_message) as emu:
        refused = requests.post(
            emu.ews_url, data=RESOLVE_NAMES, headers=HEADERS, auth=("bob@example.com", "bob-pw")
        )
        assert refused.status_code == 401
        assert refused.raw.headers.getlist("WWW-Authenticate") == ["NTLM"]
        with requests.Session() as session:
            session.auth = HttpNtlmAuth("bob@example.com", "bob-pw")
            assert session.post(emu.ews_url, data=RESOLVE_NAMES, headers=HEADERS).status_code == 200
