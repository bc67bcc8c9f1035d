"""SOAP Autodiscover of the EWS emulator, driven by real exchangelib.

exchangelib always starts discovery at ``https://<domain>/autodiscover/autodiscover.svc`` after a DNS
lookup. As docs/EMULATOR.md describes, the tests aim its first step at the emulator's plain-HTTP
endpoint (and skip the DNS check); everything after that (auth guessing, GetUserSettings, redirects,
error handling, building the EWS protocol) is exchangelib's own code.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import requests
from exchangelib import Account, Credentials
from exchangelib.autodiscover import Autodiscovery, clear_cache, discover
from exchangelib.errors import AutoDiscoverFailed, ErrorNonExistentMailbox
from exchangelib.protocol import Protocol
from lxml import etree

from gateway.ews.emulator.seed import demo_seed
from tests.support.emulator import EmulatorServer
from tests.support.schema import observe_message

A = "{http://schemas.microsoft.com/exchange/2010/Autodiscover}"
GET_USER_SETTINGS = """<?xml version="1.0" encoding="utf-8"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:a="http://schemas.microsoft.com/exchange/2010/Autodiscover">
  <s:Body><a:GetUserSettingsRequestMessage><a:Request>
    <a:Users><a:User><a:Mailbox>{user}</a:Mailbox></a:User></a:Users>
    <a:RequestedSettings><a:Setting>ExternalEwsUrl</a:Setting><a:Setting>UserDisplayName</a:Setting></a:RequestedSettings>
  </a:Request></a:GetUserSettingsRequestMessage></s:Body></s:Envelope>"""


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    seed = demo_seed(datetime.now(UTC).date())
    seed["autodiscover"] = {
        "example.com": {"mode": "success"},
        "old.example": {"mode": "redirect_address", "target": "example.com"},
        "moved.example": {
            "mode": "redirect_url",
            "url": "http://mail.moved.example/autodiscover/autodiscover.svc",
        },
        "nowhere.example": {"mode": "none"},
    }
    with EmulatorServer(seed, message_observer=observe_message) as emu:
        yield emu


@pytest.fixture
def emu(server: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[EmulatorServer]:
    """Aim exchangelib's first discovery step at the emulator; isolate its autodiscover cache."""
    server.reset()

    def step_1(self: Autodiscovery, hostname: str):
        ok, response = self._attempt_response(url=server.autodiscover_url)
        return self._step_5(ad=response) if ok else self._step_6()

    monkeypatch.setattr(Autodiscovery, "_ensure_valid_hostname", lambda self, url: None)
    monkeypatch.setattr(Autodiscovery, "_step_1", step_1)
    clear_cache()
    Protocol.clear_cache()
    yield server
    clear_cache()
    Protocol.clear_cache()


def test_exchangelib_account_autodiscovers_the_ews_url(emu):
    account = Account(
        "alice@example.com", credentials=Credentials("alice@example.com", "alice-pw"), autodiscover=True
    )
    assert account.protocol.service_endpoint == emu.ews_url
    assert account.protocol.version.build.major_version == 15
    assert account.calendar.total_count >= 1  # the discovered endpoint serves EWS
    assert emu.stats()["operations"]["Autodiscover"] >= 1


def test_redirect_address_restarts_discovery_with_the_new_address(emu):
    response, protocol = discover(
        "alice@old.example", credentials=Credentials("alice@example.com", "alice-pw")
    )
    assert response.autodiscover_smtp_address == "alice@example.com"
    assert response.user_settings["user_display_name"] == "Alice Adams"
    assert protocol.service_endpoint == emu.ews_url


def test_unknown_user_is_reported_as_non_existent_mailbox(emu):
    with pytest.raises(ErrorNonExistentMailbox):
        discover("nobody@example.com", credentials=Credentials("alice@example.com", "alice-pw"))


def test_no_autodiscover_service_fails_discovery(emu):
    with pytest.raises(AutoDiscoverFailed):
        discover("alice@nowhere.example", credentials=Credentials("alice@example.com", "alice-pw"))
    assert (
        requests.post(
            emu.autodiscover_url, data=GET_USER_SETTINGS.format(user="x@nowhere.example")
        ).status_code
        == 404
    )


def test_redirect_url_is_answered_and_plain_http_targets_are_refused_by_exchangelib(emu):
    response = requests.post(
        emu.autodiscover_url,
        data=GET_USER_SETTINGS.format(user="alice@moved.example"),
        auth=("alice@example.com", "alice-pw"),
    )
    user = etree.fromstring(response.content).find(f".//{A}UserResponse")
    assert user.findtext(f"{A}ErrorCode") == "RedirectUrl"
    assert user.findtext(f"{A}RedirectTarget") == "http://mail.moved.example/autodiscover/autodiscover.svc"
    with pytest.raises(AutoDiscoverFailed):  # exchangelib follows only https redirects
        discover("alice@moved.example", credentials=Credentials("alice@example.com", "alice-pw"))


def test_autodiscover_requires_authentication(emu):
    response = requests.post(emu.autodiscover_url, data=GET_USER_SETTINGS.format(user="alice@example.com"))
    assert response.status_code == 401
    wrong = requests.post(
        emu.autodiscover_url,
        data=GET_USER_SETTINGS.format(user="alice@example.com"),
        auth=("alice@example.com", "wrong"),
    )
    assert wrong.status_code == 401
    assert "Autodiscover" not in emu.stats()["operations"]


def test_unrequested_settings_are_not_sent(emu):
    response = requests.post(
        emu.autodiscover_url,
        data=GET_USER_SETTINGS.format(user="bob@example.com"),
        auth=("alice@example.com", "alice-pw"),
    )
    names = [n.text for n in etree.fromstring(response.content).iter(f"{A}Name")]
    assert names == ["ExternalEwsUrl", "UserDisplayName"]
    assert emu.stats()["mailboxes"]["alice@example.com"]["Autodiscover"] == 1


def test_https_redirect_url_to_another_server_is_followed(monkeypatch):
    """A mailbox moved to another (TLS) server: RedirectUrl, then settings from the new server."""
    moved = {
        "email": "dana@moved.example",
        "display_name": "Dana Dunn",
        "password": "dana-pw",
        "calendars": [{"name": "Calendar", "primary": True, "events": []}],
    }
    with EmulatorServer({"mailboxes": [moved]}, tls=True, message_observer=observe_message) as new_home:
        old_seed = {
            "mailboxes": [moved],
            "autodiscover": {"moved.example": {"mode": "redirect_url", "url": new_home.autodiscover_url}},
        }
        with EmulatorServer(old_seed, message_observer=observe_message) as old_home:

            def step_1(self: Autodiscovery, hostname: str):
                ok, response = self._attempt_response(url=old_home.autodiscover_url)
                return self._step_5(ad=response) if ok else self._step_6()

            monkeypatch.setattr(Autodiscovery, "_ensure_valid_hostname", lambda self, url: None)
            monkeypatch.setattr(Autodiscovery, "_step_1", step_1)
            monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(new_home.ca_file))  # trust exactly that certificate
            clear_cache()
            try:
                response, protocol = discover(
                    "dana@moved.example", credentials=Credentials("dana@moved.example", "dana-pw")
                )
            finally:
                clear_cache()
                Protocol.clear_cache()
            assert protocol.service_endpoint == new_home.ews_url
            assert response.user_settings["user_display_name"] == "Dana Dunn"
            assert old_home.stats()["operations"]["Autodiscover"] >= 1
            assert new_home.stats()["operations"]["Autodiscover"] >= 1
