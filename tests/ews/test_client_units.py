"""Unit tests of the EWS client's pure parts: input handling, diagnosis, error translation, metrics."""

from __future__ import annotations

import socket
from types import SimpleNamespace

import pytest
import requests
from exchangelib import errors as ex
from urllib3.exceptions import NameResolutionError, NewConnectionError

from gateway.ews import errors
from gateway.ews.connect import (
    auth_failed_error,
    choose_auth_type,
    connection_error,
    server_version,
    srv_autodiscover_urls,
)
from gateway.ews.connection import ConnectError, ConnectionSettings, Credentials, ews_url_for, login_name
from gateway.ews.metrics import EwsMetrics, soap_operation


def _response(status: int, headers: list[tuple[str, str]] = (), body: bytes = b"") -> requests.Response:
    response = requests.Response()
    response.status_code = status
    for name, value in headers:
        existing = response.headers.get(name)
        response.headers[name] = f"{existing}, {value}" if existing else value
    response._content = body
    return response


# --- credentials and input -------------------------------------------------------------------


def test_credentials_never_show_the_password():
    creds = Credentials("alice@example.com", "s3cret-pw", "ntlm")
    settings = ConnectionSettings("alice@example.com", creds)
    for text in (repr(creds), str(creds), repr(settings), str(settings)):
        assert "s3cret-pw" not in text
    assert "alice@example.com" in repr(creds)


def test_fingerprint_tells_passwords_apart_without_containing_them():
    a = Credentials("alice", "one").fingerprint()
    assert a == Credentials("alice", "one").fingerprint()
    assert a != Credentials("alice", "two").fingerprint()
    assert a != Credentials("bob", "one").fingerprint()
    assert "one" not in a


@pytest.mark.parametrize(
    ("username", "domain", "expected"),
    [
        ("alice@example.com", "CORP", "alice@example.com"),
        ("CORP\\alice", None, "CORP\\alice"),
        ("alice", "CORP", "CORP\\alice"),
        ("alice", None, "alice"),
        (" alice ", " CORP ", "CORP\\alice"),
    ],
)
def test_login_name_combines_bare_user_with_domain(username, domain, expected):
    settings = ConnectionSettings("alice@example.com", Credentials(username, "pw"), domain=domain)
    assert login_name(settings) == expected


@pytest.mark.parametrize(
    ("server", "expected"),
    [
        ("mail.example.com", "https://mail.example.com/EWS/Exchange.asmx"),
        ("mail.example.com:8443", "https://mail.example.com:8443/EWS/Exchange.asmx"),
        ("https://mail.example.com/", "https://mail.example.com/EWS/Exchange.asmx"),
        ("https://mail.example.com/ews/exchange.asmx", "https://mail.example.com/ews/exchange.asmx"),
        ("http://127.0.0.1:8080/EWS/Exchange.asmx", "http://127.0.0.1:8080/EWS/Exchange.asmx"),
    ],
)
def test_ews_url_for_host_or_url(server, expected):
    assert ews_url_for(server) == expected


@pytest.mark.parametrize("server", ["mail example com", "ftp://mail.example.com/ews", "https:///nohost"])
def test_ews_url_for_rejects_garbage(server):
    with pytest.raises(ConnectError) as info:
        ews_url_for(server)
    assert info.value.code == "invalid_input"


# --- diagnosis ---------------------------------------------------------------------------------


def test_ntlm_is_preferred_over_basic():
    response = _response(
        401,
        [
            ("WWW-Authenticate", "Negotiate"),
            ("WWW-Authenticate", "NTLM"),
            ("WWW-Authenticate", 'Basic realm="EWS"'),
        ],
    )
    assert choose_auth_type(response) == "ntlm"
    assert choose_auth_type(_response(401, [("WWW-Authenticate", 'Basic realm="x"')])) == "basic"


def test_bearer_only_means_modern_auth_only():
    response = _response(401, [("WWW-Authenticate", 'Bearer client_id="00000002", trusted_issuers="x"')])
    with pytest.raises(ConnectError) as info:
        choose_auth_type(response)
    assert info.value.code == "modern_auth_only"
    assert "administrator" in info.value.message


def test_diagnostics_header_means_modern_auth_only():
    response = _response(401, [("x-ms-diagnostics", '4000000;reason="Basic Auth is disabled; use OAuth"')])
    with pytest.raises(ConnectError) as info:
        choose_auth_type(response)
    assert info.value.code == "modern_auth_only"


@pytest.mark.parametrize("status", [200, 302, 404])
def test_an_answer_without_challenge_is_not_ews(status):
    with pytest.raises(ConnectError) as info:
        choose_auth_type(_response(status, [("Content-Type", "text/html")], b"<html>OWA</html>"))
    assert info.value.code == "not_ews"
    assert "EWS/Exchange.asmx" in info.value.message


def test_server_version_from_soap_header():
    body = (
        b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header>'
        b'<h:ServerVersionInfo xmlns:h="http://schemas.microsoft.com/exchange/services/2006/types" '
        b'MajorVersion="15" MinorVersion="0" MajorBuildNumber="1497" MinorBuildNumber="2" Version="V2_23"/>'
        b"</s:Header><s:Body/></s:Envelope>"
    )
    version = server_version(body)
    assert str(version.build) == "15.0.1497.2"
    assert version.api_version.startswith("Exchange2013")
    assert server_version(b"<html><body>Outlook</body></html>") is None
    assert server_version(b"not xml at all") is None


def test_connection_errors_are_explained():
    refused = requests.ConnectionError(
        NewConnectionError(None, "Failed to establish a new connection: [Errno 111] Connection refused")
    )
    assert connection_error(refused, "http://127.0.0.1:1/EWS").code == "server_not_found"
    dns = requests.ConnectionError(
        NameResolutionError("nohost.invalid", None, socket.gaierror(-2, "unknown"))
    )
    error = connection_error(dns, "https://nohost.invalid/EWS/Exchange.asmx")
    assert error.code == "server_not_found"
    assert "nohost.invalid" in error.message
    tls = requests.exceptions.SSLError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    assert connection_error(tls, "https://mail.example.com/EWS").code == "tls_untrusted"
    assert connection_error(requests.exceptions.ReadTimeout("x"), "https://m/EWS").code == "unreachable"


def test_auth_failure_suggests_the_other_username_form():
    assert "DOMAIN\\user" in auth_failed_error("alice@example.com").message
    assert "user@domain" in auth_failed_error("CORP\\alice").message


def test_srv_records_pick_tls_endpoints_by_priority_then_weight():
    def record(priority, weight, port, target):
        return SimpleNamespace(priority=priority, weight=weight, port=port, target=target)

    records = [
        record(10, 5, 443, "b.example.com."),
        record(0, 1, 443, "a.example.com."),
        record(10, 50, 443, "c.example.com."),
        record(0, 100, 80, "plain.example.com."),
    ]
    assert srv_autodiscover_urls(records) == [
        "https://a.example.com/autodiscover/autodiscover.svc",
        "https://c.example.com/autodiscover/autodiscover.svc",
        "https://b.example.com/autodiscover/autodiscover.svc",
    ]


# --- error translation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (ex.UnauthorizedError("Invalid credentials for https://x"), errors.EwsAuthError),
        (ex.ErrorIrresolvableConflict("changed"), errors.EwsConflict),
        (ex.ErrorItemNotFound("gone"), errors.EwsNotFound),
        (ex.ErrorQuotaExceeded("full"), errors.EwsQuotaExceeded),
        (ex.ErrorAccessDenied("no"), errors.EwsAccessDenied),
        (ex.ErrorServerBusy("busy", back_off=2.5), errors.EwsUnavailable),
        (ex.ErrorInvalidPropertySet("bad"), errors.EwsInvalidRequest),
        (requests.ConnectionError("reset"), errors.EwsUnavailable),
    ],
)
def test_translate_maps_exchangelib_errors(exc, kind):
    error = errors.translate(exc, "FindItem")
    assert type(error) is kind
    assert error.operation == "FindItem" and error.code == type(exc).__name__
    if kind is errors.EwsUnavailable:  # a CalDAV client's 503 text: words, no EWS operation or code
        assert "FindItem" not in str(error) and error.code not in str(error)
    else:
        assert "FindItem" in str(error)


def test_translated_busy_keeps_the_back_off_and_hides_raw_text():
    error = errors.translate(ex.ErrorServerBusy("password=hunter2 in body", back_off=2.5), "GetItem")
    assert error.retry_after == 3
    assert "hunter2" not in str(error)
    raw = ex.MalformedResponseError("Unknown failure. headers: {'Authorization': 'Basic YWxpY2U6cHc='}")
    assert "YWxp" not in str(errors.translate(raw, "GetItem"))


# --- metrics -----------------------------------------------------------------------------------


def test_soap_operation_names_the_body_child():
    envelope = (
        b'<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">'
        b'<s:Header><t:RequestServerVersion Version="Exchange2016"/></s:Header>'
        b'<s:Body>\n  <m:FindItem Traversal="Shallow"><m:ItemShape/></m:FindItem></s:Body></s:Envelope>'
    )
    assert soap_operation(envelope) == "FindItem"
    assert (
        soap_operation(envelope.replace(b"FindItem", b"GetUserAvailabilityRequest")) == "GetUserAvailability"
    )
    assert (
        soap_operation(b"<Envelope><Body><a:GetUserSettingsRequestMessage/></Body></Envelope>")
        == "GetUserSettings"
    )
    assert soap_operation(None) is None
    assert soap_operation(b"plain text") is None


def test_prometheus_rendering():
    metrics = EwsMetrics(buckets=(0.1, 1.0))
    metrics.observe("FindItem", 0.05)
    metrics.observe("FindItem", 0.5)
    metrics.observe("FindItem", 5.0, failed=True)
    metrics.observe("GetItem", 0.01)
    text = metrics.render_prometheus()
    assert 'gateway_ews_requests_total{operation="FindItem"} 3' in text
    assert 'gateway_ews_requests_total{operation="GetItem"} 1' in text
    assert 'gateway_ews_request_failures_total{operation="FindItem"} 1' in text
    assert 'gateway_ews_request_duration_seconds_bucket{operation="FindItem",le="0.1"} 1' in text
    assert 'gateway_ews_request_duration_seconds_bucket{operation="FindItem",le="1"} 2' in text
    assert 'gateway_ews_request_duration_seconds_bucket{operation="FindItem",le="+Inf"} 3' in text
    assert 'gateway_ews_request_duration_seconds_count{operation="FindItem"} 3' in text
    assert 'gateway_ews_request_duration_seconds_sum{operation="FindItem"} 5.550000' in text
    assert "# TYPE gateway_ews_request_duration_seconds histogram" in text
    assert metrics.requests() == {"FindItem": 3, "GetItem": 1}
