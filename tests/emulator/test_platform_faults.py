"""Faults on demand and the control API (stats, reset) of the EWS emulator."""

from __future__ import annotations

import copy
import threading
import time
from datetime import UTC, datetime

import pytest
import requests
from exchangelib import BASIC, DELEGATE, Account, Configuration, Credentials
from exchangelib.errors import ErrorServerBusy, TransportError
from exchangelib.protocol import FailFast, Protocol

from gateway.ews.emulator.seed import demo_seed
from tests.support.emulator import EmulatorServer
from tests.support.schema import observe_message

HEADERS = {"Content-Type": "text/xml; charset=utf-8"}
ALICE = ("alice@example.com", "alice-pw")
RESOLVE = b"""<?xml version="1.0" encoding="utf-8"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"
  xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"
  xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages">
  <s:Header><t:RequestServerVersion Version="Exchange2016"/></s:Header>
  <s:Body><m:ResolveNames ReturnFullContactData="false"><m:UnresolvedEntry>bob</m:UnresolvedEntry></m:ResolveNames></s:Body>
</s:Envelope>"""


@pytest.fixture
def proto(emulator):
    Protocol.clear_cache()
    config = Configuration(
        service_endpoint=emulator.ews_url,
        credentials=Credentials(*ALICE),
        auth_type=BASIC,
        retry_policy=FailFast(),
    )
    result = Protocol(config=config)
    result.version  # noqa: B018 - probe the version before faults are switched on
    yield result
    Protocol.clear_cache()


def post(emulator) -> requests.Response:
    return requests.post(emulator.ews_url, data=RESOLVE, headers=HEADERS, auth=ALICE, timeout=10)


def test_server_busy_with_back_off_reaches_exchangelib(emulator, proto):
    emulator.set_faults(
        rules=[{"kind": "server_busy", "operation": "ResolveNames", "count": 1, "back_off_ms": 1500}]
    )
    with pytest.raises(ErrorServerBusy) as caught:
        proto.resolve_names(["bob"])
    assert caught.value.back_off == 1.5
    # Only the next matching call was faulty.
    assert [m.email_address for m in proto.resolve_names(["bob"])] == ["bob@example.com"]


def test_server_busy_is_a_soap_fault_on_http_500(emulator):
    emulator.set_faults(rules=[{"kind": "server_busy", "back_off_ms": 250}])
    response = post(emulator)
    assert response.status_code == 500
    assert b"ErrorServerBusy" in response.content
    assert b'<t:Value Name="BackOffMilliseconds">250</t:Value>' in response.content
    assert b"ServerVersionInfo" in response.content


def test_http_503_and_500(emulator, proto):
    emulator.set_faults(rules=[{"kind": "http_503", "count": 1}, {"kind": "http_500", "count": 1}])
    assert post(emulator).status_code == 503
    assert post(emulator).status_code == 500
    assert post(emulator).status_code == 200
    emulator.set_faults(rules=[{"kind": "http_503", "count": 1}])
    with pytest.raises((ErrorServerBusy, TransportError)):
        proto.resolve_names(["bob"])


def test_fault_scoped_to_another_user_or_operation_does_not_apply(emulator):
    emulator.set_faults(
        rules=[{"kind": "http_503", "user": "bob@example.com"}, {"kind": "http_503", "operation": "FindItem"}]
    )
    assert post(emulator).status_code == 200


def test_dropped_connection(emulator):
    emulator.set_faults(rules=[{"kind": "drop", "count": 1}])
    with pytest.raises(requests.ConnectionError):
        post(emulator)
    assert post(emulator).status_code == 200


def test_latency_is_added(emulator):
    emulator.set_faults(latency_ms=300)
    started = time.monotonic()
    assert post(emulator).status_code == 200
    assert time.monotonic() - started >= 0.3
    emulator.set_faults(
        rules=[{"kind": "latency", "latency_ms": 250, "operation": "ResolveNames", "count": 1}]
    )
    started = time.monotonic()
    post(emulator)
    assert time.monotonic() - started >= 0.25


def test_per_user_concurrency_limit(emulator):
    emulator.set_faults(latency_ms=400, max_concurrent_per_user=1)
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(post(emulator).status_code)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [200, 500, 500]


def test_bad_fault_configuration_is_rejected(emulator):
    response = requests.post(f"{emulator.base_url}/_emulator/faults", json={"rules": [{"kind": "meteor"}]})
    assert response.status_code == 400 and "meteor" in response.json()["error"]


def test_stats_count_operations_and_reset_zeroes_them(emulator, proto):
    proto.resolve_names(["bob"])
    proto.resolve_names(["carol"])
    stats = emulator.stats()
    assert stats["operations"]["ResolveNames"] == 2
    assert stats["mailboxes"]["alice@example.com"]["ResolveNames"] == 2
    emulator.set_faults(rules=[{"kind": "http_503"}])
    emulator.reset()
    zeroed = emulator.stats()
    assert (zeroed["operations"], zeroed["mailboxes"]) == ({}, {})
    assert all(box["sent"] == [] for box in zeroed["calendars"].values())
    assert post(emulator).status_code == 200  # faults from the control API are gone too
    assert emulator.stats()["operations"] == {"ResolveNames": 1}


def test_reset_restores_the_seeded_calendar(emulator):
    Protocol.clear_cache()
    config = Configuration(
        service_endpoint=emulator.ews_url, credentials=Credentials(*ALICE), auth_type=BASIC
    )
    account = Account("alice@example.com", config=config, autodiscover=False, access_type=DELEGATE)
    before = account.calendar.total_count
    next(iter(account.calendar.all().only("subject"))).delete()
    assert account.calendar.refresh().total_count == before - 1
    emulator.reset()
    assert account.calendar.refresh().total_count == before


def test_faults_from_the_seed_survive_reset():
    seed = copy.deepcopy(demo_seed(datetime.now(UTC).date()))
    seed["faults"] = {"rules": [{"kind": "http_503", "operation": "ResolveNames", "count": 1}]}
    with EmulatorServer(seed, message_observer=observe_message) as emu:
        assert post(emu).status_code == 503
        assert post(emu).status_code == 200
        emu.reset()
        assert post(emu).status_code == 503


def test_tls_runner_serves_https_with_its_own_certificate():
    with EmulatorServer(tls=True, message_observer=observe_message) as emu:
        assert emu.ews_url.startswith("https://")
        response = requests.post(
            emu.ews_url, data=RESOLVE, headers=HEADERS, auth=ALICE, verify=str(emu.ca_file)
        )
        assert response.status_code == 200
        assert emu.stats()["operations"] == {"ResolveNames": 1}
        with pytest.raises(requests.exceptions.SSLError):
            requests.post(emu.ews_url, data=RESOLVE, headers=HEADERS, auth=ALICE)


# --- faults after the request was carried out: the mailbox changed, the answer is lost --------------------

CREATE = b"""<?xml version="1.0" encoding="utf-8"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"
  xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"
  xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages">
  <s:Header><t:RequestServerVersion Version="Exchange2016"/></s:Header>
  <s:Body><m:CreateItem SendMeetingInvitations="SendToNone">
    <m:SavedItemFolderId><t:DistinguishedFolderId Id="calendar"/></m:SavedItemFolderId>
    <m:Items><t:CalendarItem><t:Subject>SUBJECT</t:Subject>
      <t:Start>2026-11-25T10:00:00Z</t:Start><t:End>2026-11-25T11:00:00Z</t:End>
    </t:CalendarItem></m:Items></m:CreateItem></s:Body>
</s:Envelope>"""


def create(emulator, subject: str, timeout: float = 10) -> requests.Response:
    body = CREATE.replace(b"SUBJECT", subject.encode())
    return requests.post(emulator.ews_url, data=body, headers=HEADERS, auth=ALICE, timeout=timeout)


def subjects(emulator) -> list[str]:
    box = emulator.state.store.mailboxes["alice@example.com"]
    return [item.subject for item in list(box.calendar.items.values())]


@pytest.mark.parametrize(("kind", "status"), [("http_503", 503), ("http_500", 500), ("server_busy", 500)])
def test_an_error_after_the_request_was_carried_out(emulator, kind, status):
    emulator.set_faults(rules=[{"kind": kind, "operation": "CreateItem", "when": "after", "count": 1}])
    answer = create(emulator, f"Created before the {kind}")
    assert answer.status_code == status
    assert b"CreateItemResponse" not in answer.content  # the answer is lost...
    assert subjects(emulator).count(f"Created before the {kind}") == 1  # ...but the item was created
    assert create(emulator, "Next one").status_code == 200  # count: 1 → only once


def test_a_drop_after_the_request_was_carried_out(emulator):
    emulator.set_faults(rules=[{"kind": "drop", "operation": "CreateItem", "when": "after", "count": 1}])
    with pytest.raises(requests.ConnectionError):
        create(emulator, "Created, then the connection broke")
    assert subjects(emulator).count("Created, then the connection broke") == 1


def test_a_timeout_carries_the_request_out_and_answers_too_late(emulator):
    emulator.set_faults(
        rules=[{"kind": "timeout", "operation": "CreateItem", "latency_ms": 1500, "count": 1}]
    )
    started = time.monotonic()
    with pytest.raises(requests.Timeout):
        create(emulator, "Created while the client waited", timeout=0.5)
    assert time.monotonic() - started < 1.4
    assert subjects(emulator).count("Created while the client waited") == 1


def test_a_fault_before_the_request_changes_nothing(emulator):
    emulator.set_faults(rules=[{"kind": "drop", "operation": "CreateItem", "count": 1}])
    with pytest.raises(requests.ConnectionError):
        create(emulator, "Never created")
    assert "Never created" not in subjects(emulator)


def test_an_after_fault_waits_for_a_request_that_succeeds(emulator):
    """An EWS error answer (nothing was carried out) is delivered; the rule stays for the next request."""
    emulator.set_faults(
        rules=[{"kind": "http_503", "operation": "ResolveNames", "when": "after", "count": 1}]
    )
    unknown = RESOLVE.replace(b">bob<", b">nobody-at-all<")
    answer = requests.post(emulator.ews_url, data=unknown, headers=HEADERS, auth=ALICE, timeout=10)
    assert answer.status_code == 200 and b"ErrorNameResolutionNoResults" in answer.content
    assert post(emulator).status_code == 503
    assert post(emulator).status_code == 200


@pytest.mark.parametrize(
    "rule",
    [
        {"kind": "latency", "when": "after"},
        {"kind": "timeout", "when": "before"},
        {"kind": "drop", "when": "during"},
    ],
)
def test_impossible_after_rules_are_rejected(emulator, rule):
    response = requests.post(f"{emulator.base_url}/_emulator/faults", json={"rules": [rule]})
    assert response.status_code == 400 and "error" in response.json()


def test_skip_lets_the_first_matching_requests_pass(emulator):
    emulator.set_faults(rules=[{"kind": "http_503", "operation": "ResolveNames", "skip": 2, "count": 1}])
    assert [post(emulator).status_code for _ in range(4)] == [200, 200, 503, 200]
