"""Contract tests: the exchangelib internals ``gateway/ews/exchange.py`` relies on, one test per reach
(and the ``AutodiscoverProtocol`` entry point ``gateway/ews/connect.py`` drives instead of ``Autodiscovery``).

Each test fails with a message naming the internal when an exchangelib release changes it;
``pyproject.toml`` pins exchangelib to the minor versions these tests passed on. The tests drive
exchangelib directly against the EWS emulator (not through EwsClient), so a failure points at
exchangelib rather than at the gateway's pool.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import exchangelib
import pytest
import requests
from exchangelib import BASIC, Configuration, Credentials, FailFast
from exchangelib import errors as exl_errors
from exchangelib.ewsdatetime import UTC as EWS_UTC
from exchangelib.ewsdatetime import EWSDateTime
from exchangelib.folders import Calendar, Inbox
from exchangelib.items import MeetingRequest
from exchangelib.properties import FreeBusyViewOptions, MailboxData, TimeWindow
from exchangelib.protocol import CachingProtocol, Protocol
from exchangelib.services import GetUserAvailability
from exchangelib.version import Build, Version

from gateway.ews.exchange import (
    ChunkedReadAdapter,
    GatewayProtocol,
    ProtocolClasses,
    calendar_and_tasks,
    connection_broke,
    distinguished_calendar,
    forget_cached_protocol,
    get_unauthenticated,
    new_account,
    post_probe,
    protocol_classes,
    refused_by_exchange,
    unfetched_folder,
    user_availability,
)
from gateway.ews.freebusy import _UTC_TIMEZONE
from gateway.ews.metrics import EwsMetrics
from tests.support.emulator import EmulatorServer

VERSION = Version(build=Build(15, 1, 2507, 6), api_version="Exchange2016")  # what the emulator reports


@contextmanager
def relies_on(internal: str) -> Iterator[None]:
    """Any failure inside becomes one assertion naming the exchangelib internal that changed."""
    try:
        yield
    except Exception as exc:
        raise AssertionError(
            f"exchangelib {exchangelib.__version__}: {internal} does not behave as the gateway expects "
            f"(see gateway/ews/exchange.py; {type(exc).__name__}: {exc})"
        ) from exc


def _config(
    emulator: EmulatorServer, who: str = "alice", max_connections: int | None = None
) -> Configuration:
    return Configuration(
        service_endpoint=emulator.ews_url,
        credentials=Credentials(f"{who}@example.com", f"{who}-pw"),
        auth_type=BASIC,
        version=VERSION,
        retry_policy=FailFast(),
        max_connections=max_connections,
    )


def _classes(metrics: EwsMetrics | None = None, timeout: float = 10.0) -> ProtocolClasses:
    return protocol_classes(metrics, None, timeout)


def _account(emulator: EmulatorServer, protocol_class: type[Protocol], **config: Any) -> exchangelib.Account:
    return new_account("alice@example.com", protocol_class(config=_config(emulator, **config)))


def _open_root(account: exchangelib.Account) -> str:
    """One GetFolder of the root folder, through exchangelib's public ``Account.root``."""
    return account.root.name


def _cache_size() -> int:
    return len(CachingProtocol._protocol_cache)


def test_answers_are_read_through_iter_content_without_a_size(emulator):
    """ChunkedReadAdapter replaces ``Response.iter_content``'s one-byte default: it must be what exchangelib reads."""
    calls: list[tuple[tuple, dict]] = []

    class Recording(ChunkedReadAdapter):
        def build_response(self, req: requests.PreparedRequest, resp: Any) -> requests.Response:
            response = super().build_response(req, resp)
            chunked = response.iter_content

            def iter_content(*args: Any, **kwargs: Any) -> Any:
                calls.append((args, kwargs))
                return chunked(*args, **kwargs)

            response.iter_content = iter_content  # type: ignore[method-assign]
            return response

    protocol_class = type("P", (GatewayProtocol,), {"HTTP_ADAPTER_CLS": Recording, "TIMEOUT": 10})
    with relies_on("EWSService._get_soap_parts reading the answer with response.iter_content()"):
        assert _open_root(_account(emulator, protocol_class))
        assert ((), {}) in calls, f"iter_content was called as {calls}"


def test_every_request_goes_through_the_adapter_class_attribute(emulator):
    """_MeteredAdapter: exchangelib builds its sessions' adapter from ``HTTP_ADAPTER_CLS`` itself."""
    metrics = EwsMetrics()
    classes = _classes(metrics)
    with relies_on("BaseProtocol.get_adapter instantiating the class attribute HTTP_ADAPTER_CLS"):
        assert isinstance(classes.ews.get_adapter(), classes.ews.HTTP_ADAPTER_CLS)
        _open_root(_account(emulator, classes.ews))
        assert metrics.requests() == {"GetFolder": 1}


def test_autodiscover_asks_get_user_settings_through_the_protocol_class(emulator):
    """gateway/ews/connect.py drives ``AutodiscoverProtocol.get_user_settings`` itself, not ``Autodiscovery``."""
    metrics = EwsMetrics()
    classes = _classes(metrics)
    with relies_on("AutodiscoverProtocol.get_user_settings(user=...) and its UserResponse"):
        autodiscover = classes.autodiscover(
            config=Configuration(
                service_endpoint=emulator.autodiscover_url,
                credentials=Credentials("alice@example.com", "alice-pw"),
                auth_type=BASIC,
                retry_policy=FailFast(),
            )
        )
        answer = autodiscover.get_user_settings(user="alice@example.com")
        answer.raise_errors()
        assert (answer.ews_url, answer.redirect_address, answer.redirect_url) == (
            emulator.ews_url,
            None,
            None,
        )
        assert answer.autodiscover_smtp_address == "alice@example.com"
        assert answer.user_settings.get("user_display_name") == "Alice Adams"
        assert metrics.requests() == {"GetUserSettings": 1}


def test_the_timeout_class_attribute_bounds_each_request(emulator):
    """protocol_classes sets ``TIMEOUT`` on the class: exchangelib has no per-instance request timeout."""
    account = _account(emulator, _classes(timeout=0.3).ews)
    emulator.set_faults(latency_ms=1500)
    started = time.monotonic()
    with relies_on("post_ratelimited taking its timeout from the protocol's TIMEOUT attribute"):
        with pytest.raises(exl_errors.ErrorTimeoutExpired):
            _open_root(account)
        assert time.monotonic() - started < 1.2


def test_protocols_bypass_the_global_protocol_cache(emulator):
    """UncachedProtocolMeta overrides ``CachingProtocol.__call__``, where exchangelib caches protocols."""
    config = _config(emulator, "carol")
    before = _cache_size()
    try:
        with relies_on("CachingProtocol.__call__ (Protocol's metaclass) caching by endpoint and credentials"):
            assert isinstance(Protocol, CachingProtocol)
            assert GatewayProtocol(config=config) is not GatewayProtocol(config=config)
            assert _cache_size() == before
            assert Protocol(config=config) is Protocol(config=config)  # what the gateway avoids
    finally:
        forget_cached_protocol(config)


def test_a_cached_protocol_is_forgotten_by_its_config(emulator):
    """forget_cached_protocol: ``del Protocol[config]`` removes what ``Protocol(config=config)`` cached."""
    config = _config(emulator, "bob")
    before = _cache_size()
    with relies_on("CachingProtocol.__delitem__ keyed by the config's endpoint and credentials"):
        stock = Protocol(config=config)
        assert _cache_size() == before + 1
        forget_cached_protocol(config)
        assert _cache_size() == before
        assert Protocol(config=config) is not stock
        forget_cached_protocol(config)
        forget_cached_protocol(config)  # nothing cached: no error
        assert _cache_size() == before


def test_an_account_uses_the_protocol_it_is_given(emulator):
    """new_account replaces ``account.protocol`` and leaves nothing in the global cache, without traffic."""
    metrics = EwsMetrics()
    protocol = _classes(metrics).ews(config=_config(emulator))
    before = _cache_size()
    with relies_on("Account(config=..., autodiscover=False) and its protocol attribute"):
        account = new_account("alice@example.com", protocol)
        assert emulator.stats()["operations"] == {}
        assert account.protocol is protocol
        _open_root(account)
        assert metrics.requests() == emulator.stats()["operations"] == {"GetFolder": 1}
        assert _cache_size() == before


def test_the_calendar_is_opened_in_one_get_folder(emulator):
    """distinguished_calendar builds a Root from its distinguished id alone (a private field)."""
    account = _account(emulator, _classes().ews)
    with relies_on("Root(_distinguished_id=...) with Calendar.get_distinguished(root=...)"):
        assert distinguished_calendar(account).name == "Calendar"
        assert emulator.stats()["operations"] == {"GetFolder": 1}


def test_the_inbox_is_searched_and_read_without_a_get_folder(emulator):
    """unfetched_folder gives a distinguished folder by its private _distinguished_id: FindItem (paged, so
    the folder's hash must not change) and GetItem with the folder's fields, and no GetFolder."""
    bob = new_account("bob@example.com", _classes().ews(config=_config(emulator, "bob")))
    start = EWSDateTime(2026, 11, 5, 9, tzinfo=EWS_UTC)
    meeting = exchangelib.CalendarItem(
        account=bob,
        folder=bob.calendar,
        subject="Contract",
        start=start,
        end=start + timedelta(hours=1),
        required_attendees=[
            exchangelib.Attendee(mailbox=exchangelib.Mailbox(email_address="alice@example.com"))
        ],
    )
    meeting.save(send_meeting_invitations="SendToAllAndSaveCopy")
    before = emulator.stats()["operations"]
    account = _account(emulator, _classes().ews)
    with relies_on("Folder(root=Root(account=...), _distinguished_id=...) for FindItem and Account.fetch"):
        inbox = unfetched_folder(account, Inbox)
        found = list(inbox.filter(item_class__in=["IPM.Schedule.Meeting.Request"]).only("item_class"))
        assert found and all(isinstance(m, MeetingRequest) for m in found)
        fetched = list(
            account.fetch(ids=found[:1], folder=inbox, only_fields=["associated_calendar_item_id"])
        )
        assert fetched[0].associated_calendar_item_id.id
        after = emulator.stats()["operations"]
        assert {op: after[op] - before.get(op, 0) for op in after if after[op] != before.get(op)} == {
            "FindItem": 1,
            "GetItem": 1,
        }


def test_calendar_and_tasks_are_opened_in_one_get_folder(emulator):
    """calendar_and_tasks resolves both distinguished folders through one Root known by its id alone."""
    account = _account(emulator, _classes().ews)
    with relies_on("Root(_distinguished_id=...) and FolderCollection.resolve of two distinguished folders"):
        folders = calendar_and_tasks(account)
        assert [(type(f).__name__, f.name) for f in folders] == [("Calendar", "Calendar"), ("Tasks", "Tasks")]
        assert emulator.stats()["operations"] == {"GetFolder": 1}


def test_a_busy_answer_without_back_off_gets_the_protocol_retry_wait(emulator):
    """GatewayProtocol.RETRY_WAIT is what exchangelib attaches to ErrorServerBusy without BackOffMilliseconds."""
    account = _account(emulator, _classes().ews)
    emulator.set_faults(
        rules=[{"kind": "server_busy", "operation": "GetFolder", "count": 1, "back_off_ms": 0}]
    )
    with relies_on("EWSService._get_elements using protocol.RETRY_WAIT as a busy answer's default back-off"):
        with pytest.raises(exl_errors.ErrorServerBusy) as busy:
            _open_root(account)
        assert busy.value.back_off == GatewayProtocol.RETRY_WAIT
        assert not connection_broke(busy.value)  # a real busy answer: repeating it is safe
        assert refused_by_exchange(busy.value)  # Exchange's own refusal: nothing was done


@pytest.mark.parametrize(
    "rule",
    [
        {"kind": "http_503", "when": "after"},
        {"kind": "http_503"},
        {"kind": "drop", "when": "after"},
    ],
)
def test_busy_from_the_transport_is_not_a_refusal(emulator, rule):
    """refused_by_exchange: an HTTP 503 or a broken connection reaches the gateway as ErrorServerBusy (or
    the timeout behind it) raised inside exchangelib's ``except`` blocks, never as the SOAP fault's."""
    account = _account(emulator, _classes().ews)
    _open_root(account)
    emulator.set_faults(rules=[{**rule, "operation": "GetFolder", "count": 1}])
    with relies_on("exchangelib raising transport failures as ErrorServerBusy with a __context__"):
        with pytest.raises((exl_errors.ErrorServerBusy, exl_errors.ErrorTimeoutExpired)) as failed:
            Calendar.get_distinguished(root=account.root)
        if isinstance(failed.value, exl_errors.ErrorServerBusy):
            assert not refused_by_exchange(failed.value), f"context: {failed.value.__context__!r}"


def test_a_dropped_connection_is_reported_as_busy_from_a_timeout(emulator):
    """connection_broke: with several sessions, exchangelib re-raises ErrorTimeoutExpired as ErrorServerBusy."""
    account = _account(emulator, _classes().ews, max_connections=2)
    root = account.root
    emulator.set_faults(latency_ms=300)  # two overlapping calls: the session pool grows to two
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda _: Calendar.get_distinguished(root=root), range(2)))
    emulator.reset()
    emulator.set_faults(rules=[{"kind": "drop", "operation": "GetFolder", "count": 1}])
    with relies_on(
        "EWSService._get_elements re-raising ErrorTimeoutExpired as ErrorServerBusy in its except"
    ):
        assert account.protocol.session_pool_size > 1
        with pytest.raises(exl_errors.ErrorServerBusy) as busy:
            Calendar.get_distinguished(root=root)
        assert connection_broke(busy.value), f"context: {busy.value.__context__!r}"


def test_probes_post_exchangelibs_minimal_request(emulator):
    """post_probe: ``dummy_xml()`` for ``api_version_hint``, sent by ``raw_session``/``create_session``."""
    classes = _classes()
    anonymous = classes.ews(config=Configuration(service_endpoint=emulator.ews_url, retry_policy=FailFast()))
    signed_in = classes.ews(
        config=Configuration(
            service_endpoint=emulator.ews_url,
            credentials=Credentials("alice@example.com", "alice-pw"),
            auth_type=BASIC,
            retry_policy=FailFast(),
        )
    )
    with relies_on("Protocol.dummy_xml, api_version_hint, raw_session(url) and create_session()"):
        refused = post_probe(anonymous, authenticated=False)
        assert refused.status_code == 401 and "WWW-Authenticate" in refused.headers
        body = anonymous.dummy_xml()
        assert b"ConvertId" in body and b'Version="Exchange2013"' in body
        answered = post_probe(signed_in, authenticated=True)
        assert answered.status_code == 200 and b"ServerVersionInfo" in answered.content
        assert emulator.stats()["operations"] == {"ConvertId": 1}


def test_an_unauthenticated_get_uses_the_protocol_classes_adapter(emulator):
    """get_unauthenticated: the class method ``raw_session(prefix)`` mounts the class's adapter."""
    classes = _classes()
    url = emulator.autodiscover_url
    with relies_on("BaseProtocol.raw_session(prefix) as a class method mounting HTTP_ADAPTER_CLS"):
        with classes.autodiscover.raw_session(url) as session:
            assert isinstance(session.get_adapter(url), classes.autodiscover.HTTP_ADAPTER_CLS)
        assert isinstance(get_unauthenticated(classes.autodiscover, url, 5).status_code, int)


def test_availability_views_are_handed_to_the_reader(emulator):
    """user_availability: ``GetUserAvailability.call`` converts each FreeBusyView with ``_elem_to_obj``."""
    account = _account(emulator, _classes().ews)
    read: list[Any] = []

    def read_view(elem: Any) -> str:
        read.append(elem)
        return f"view {len(read)}"

    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    with relies_on(
        "GetUserAvailability.call(tzinfo, mailbox_data, timezone, free_busy_view_options) and _elem_to_obj"
    ):
        answers = user_availability(
            account.protocol,
            read_view,
            chunk_size=100,
            tzinfo=EWS_UTC,
            mailbox_data=[
                MailboxData(email=e, attendee_type="Required", exclude_conflicts=False)
                for e in ("bob@example.com", "nobody@example.com")
            ],
            timezone=_UTC_TIMEZONE,
            free_busy_view_options=FreeBusyViewOptions(
                time_window=TimeWindow(
                    start=EWSDateTime.from_datetime(start),
                    end=EWSDateTime.from_datetime(start + timedelta(days=7)),
                ),
                merged_free_busy_interval=30,
                requested_view="DetailedMerged",
            ),
        )
        assert "_elem_to_obj" in vars(GetUserAvailability)
        assert answers[0] == "view 1" and read[0].tag.endswith("FreeBusyView")
        assert isinstance(answers[1], exl_errors.ErrorMailRecipientNotFound)
        assert emulator.stats()["operations"] == {"GetUserAvailability": 1}
