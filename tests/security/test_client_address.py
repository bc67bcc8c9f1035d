"""The client address the failure budgets count: the peer, or what a trusted proxy forwarded."""

from __future__ import annotations

from aiohttp.test_utils import make_mocked_request

from gateway.limits import client_address


def _request(peer: str, forwarded: str | None = None):
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    request = make_mocked_request("GET", "/", headers=headers)
    return request.clone(remote=peer)


def test_without_trusted_proxies_the_peer_is_the_client_whatever_it_claims() -> None:
    assert client_address(_request("203.0.113.5", "192.0.2.77")) == "203.0.113.5"


def test_a_trusted_proxy_names_the_client_and_a_client_cannot_choose_its_address() -> None:
    proxies = ("10.0.0.0/8",)
    assert client_address(_request("10.0.0.2", "192.0.2.77"), proxies) == "192.0.2.77"
    # The client sent "X-Forwarded-For: 1.2.3.4" itself; the proxy appended the address it saw.
    assert client_address(_request("10.0.0.2", "1.2.3.4, 192.0.2.77"), proxies) == "192.0.2.77"
    # Two trusted proxies in a row are skipped.
    assert client_address(_request("10.0.0.2", "1.2.3.4, 192.0.2.77, 10.1.1.1"), proxies) == "192.0.2.77"
    # An untrusted peer's header counts for nothing.
    assert client_address(_request("198.51.100.1", "192.0.2.77"), proxies) == "198.51.100.1"
    assert client_address(_request("10.0.0.2"), proxies) == "10.0.0.2"


def test_a_proxy_without_trusted_proxies_is_pointed_out_once(caplog) -> None:
    import gateway.limits

    gateway.limits._proxy_warned = False
    for _ in range(3):
        assert client_address(_request("127.0.0.1", "192.0.2.77")) == "127.0.0.1"
    warnings = [r for r in caplog.records if "trusted_proxies" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelname == "WARNING"
