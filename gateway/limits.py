"""Who the client is, behind a reverse proxy or not (``[limits] trusted_proxies``).

The failure budgets of sign-ins (``gateway.accounts.throttle``) count per client address. That is the
TCP peer, unless the peer is a configured trusted proxy: then the ``X-Forwarded-For`` header it adds
names the client (RFC 7239 §5.2 describes the same list as ``Forwarded: for=``). The header is read
from the right, skipping trusted proxies, so a client cannot choose its address by sending the header
itself: only what the last untrusted hop looked like counts.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Sequence

from aiohttp import web

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@functools.lru_cache(maxsize=8)
def _networks(trusted_proxies: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(p, strict=False) for p in trusted_proxies)


def _trusted(address: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_address(request: web.Request, trusted_proxies: tuple[str, ...] = ()) -> str:
    """The client's address: the TCP peer, or what trusted proxies say in ``X-Forwarded-For``."""
    peer = request.remote or ""
    networks = _networks(trusted_proxies)
    if not networks or not _trusted(peer, networks):
        return peer
    hops = [
        hop.strip() for value in request.headers.getall("X-Forwarded-For", []) for hop in value.split(",")
    ]
    hops = [hop for hop in hops if hop]
    for hop in reversed(hops):
        if not _trusted(hop, networks):
            return hop
    return hops[0] if hops else peer
