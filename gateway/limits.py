"""Server limits (``[limits]``): who the client is, slow clients, too many connections.

*The client's address.* The failure budgets of sign-ins (``gateway.accounts.throttle``) count per client address. That is the
TCP peer, unless the peer is a configured trusted proxy: then the ``X-Forwarded-For`` header it adds
names the client (RFC 7239 §5.2 describes the same list as ``Forwarded: for=``). The header is read
from the right, skipping trusted proxies, so a client cannot choose its address by sending the header
itself: only what the last untrusted hop looked like counts.

*Slow clients* hold a connection (a file descriptor, a parser, a task) for as long as they like unless
something ends it:

- a request's headers must arrive within ``header_timeout_seconds`` of the connection opening or of
  the previous response: aiohttp's keep-alive timer, which also runs while a request line or header
  is only partly received, closes the connection then;
- a request's body must arrive within ``body_timeout_seconds`` (:func:`body_deadline`): the handler's
  next read of it fails with 408 Request Timeout (RFC 9110 §15.5.9) and the connection is closed;
- a request answered before its body all arrived (a 413 refuses it unread) says ``Connection: close``, and
  aiohttp's read of the unwanted rest ends as soon as the client closes (it would wait up to 10 s, also
  holding up the server's shutdown);
- at most ``max_connections`` connections are open, ``max_connections_per_address`` of them from one
  address (trusted proxies count only towards the first): a connection beyond that gets 503 with a
  sentence and is closed at once (:class:`ConnectionGate`), so one client cannot hold them all.

:func:`start_server` starts an application with these limits; ``serve`` and ``demo`` use it.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import socket
import ssl
import time
import weakref
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import web

from gateway.config import GatewayConfig, LimitsConfig

log = logging.getLogger(__name__)

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


_proxy_warned = False


def _warn_about_proxy(peer: str) -> None:
    """Once per process: a proxy seems to be in front, but the budgets would count it as the client."""
    global _proxy_warned
    if not _proxy_warned:
        _proxy_warned = True
        log.warning(
            "a request from %s carries X-Forwarded-For, but [limits] trusted_proxies is empty: behind a "
            "reverse proxy every client shares the proxy's sign-in budgets and connection cap; list the "
            "proxy in trusted_proxies",
            peer,
        )


def client_address(request: web.Request, trusted_proxies: tuple[str, ...] = ()) -> str:
    """The client's address: the TCP peer, or what trusted proxies say in ``X-Forwarded-For``."""
    peer = request.remote or ""
    networks = _networks(trusted_proxies)
    if not networks:
        if "X-Forwarded-For" in request.headers:
            _warn_about_proxy(peer)
        return peer
    if not _trusted(peer, networks):
        return peer
    hops = [
        hop.strip() for value in request.headers.getall("X-Forwarded-For", []) for hop in value.split(",")
    ]
    hops = [hop for hop in hops if hop]
    for hop in reversed(hops):
        if not _trusted(hop, networks):
            return hop
    return hops[0] if hops else peer


# --- slow bodies ----------------------------------------------------------------------------------


class BodyTimeout(web.HTTPRequestTimeout):
    """The request body did not arrive in time (what the handler's read raises)."""


def body_deadline(seconds: float) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Middleware: a request body not fully received ``seconds`` after the request began makes the
    handler's next read of it fail, whichever reader it uses, and the answer is 408; handlers that do not
    read the body are not disturbed."""
    sentence = f"The request body did not arrive within {seconds:g} seconds.\n"

    @web.middleware
    async def read_body_in_time(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if not request.body_exists:
            return await handler(request)
        body = request.content
        expired = False

        def expire() -> None:
            nonlocal expired
            if not body.is_eof():
                expired = True
                body.set_exception(BodyTimeout(text=sentence))

        timer = asyncio.get_running_loop().call_later(seconds, expire)
        try:
            response = await handler(request)
        except BodyTimeout:
            log.info("request body from %s did not arrive within %g s: answered 408", request.remote, seconds)
            response = web.Response(status=408, text=sentence)
        except web.HTTPException as refusal:
            _close_if_unread(refusal, request)
            raise
        finally:
            timer.cancel()
        _close_if_unread(response, request)
        if expired:
            # The rest of the body is never read: answer and close now instead of letting aiohttp wait for
            # it (its lingering read would meet the timeout again, as an unhandled error).
            response.force_close()
            await response.prepare(request)
            await response.write_eof()
            request.protocol.force_close()
        return response

    return read_body_in_time


# The body of a request answered before it all arrived, by its connection: aiohttp then reads and drops the
# rest (for up to 10 s, its lingering close), and the read is not woken when the client closes instead.
_UNREAD_BODIES: weakref.WeakKeyDictionary[asyncio.BaseTransport, asyncio.StreamReader] = (
    weakref.WeakKeyDictionary()
)


def _close_if_unread(response: web.StreamResponse, request: web.Request) -> None:
    """An answer given before the whole body arrived (a 413 refuses it unread) says ``Connection: close``.

    The rest of the body is not wanted: the client stops sending and closes (RFC 9112 §9.6), and when it
    does, :class:`_GatedProtocol` ends aiohttp's read of the rest at once, so the connection neither stays
    open nor holds up the server's shutdown for the 10 s that read otherwise waits.
    """
    body = request.content
    if body.is_eof() or response.prepared:
        return
    response.force_close()
    if request.transport is not None:
        _UNREAD_BODIES[request.transport] = body


# --- too many connections -------------------------------------------------------------------------

_REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Retry-After: 10\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
)
_REFUSAL_TEXT = b"Too many connections to this gateway; try again in a few seconds.\n"


class ConnectionGate:
    """Counts open connections, in all and per address, and admits one only below both caps."""

    def __init__(self, limits: LimitsConfig) -> None:
        self.max_total = limits.max_connections
        self.max_per_address = limits.max_connections_per_address
        self._trusted = _networks(limits.trusted_proxies)
        self.total = 0
        self.per_address: Counter[str] = Counter()
        self.refused = 0  # since the last log line about refusals
        self._last_report = -60.0

    def admit(self, address: str) -> bool:
        per_address = not _trusted(address, self._trusted)
        if self.total >= self.max_total or (
            per_address and self.per_address[address] >= self.max_per_address
        ):
            return False
        self.total += 1
        self.per_address[address] += 1
        return True

    def log_refusal(self, address: str) -> None:
        """A WARNING for the first refusal, then at most one a minute with the count (a flood floods no log)."""
        self.refused += 1
        now = time.monotonic()
        if now - self._last_report >= 60:
            log.warning(
                "refused %d connection(s) in the last minute (too many open; the latest from %s)",
                self.refused,
                address,
            )
            self.refused, self._last_report = 0, now

    def release(self, address: str) -> None:
        self.total -= 1
        self.per_address[address] -= 1
        if self.per_address[address] <= 0:
            del self.per_address[address]


class _GatedProtocol(asyncio.Protocol):
    """One connection: handed to aiohttp's protocol if the gate admits it, else answered 503 and closed."""

    def __init__(self, gate: ConnectionGate, make_handler: Callable[[], asyncio.Protocol]) -> None:
        self._gate = gate
        self._make_handler = make_handler
        self._handler: asyncio.Protocol | None = None
        self._transport: asyncio.BaseTransport | None = None
        self._address = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self._address = str(peer[0]) if peer else ""
        if not self._gate.admit(self._address):
            self._gate.log_refusal(self._address)
            if isinstance(transport, asyncio.WriteTransport):
                transport.write(_REFUSAL % (len(_REFUSAL_TEXT), _REFUSAL_TEXT))
            transport.close()
            return
        self._handler = self._make_handler()
        self._handler.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._handler is not None:
            self._gate.release(self._address)
            self._handler.connection_lost(exc)
            self._handler = None
        unread = _UNREAD_BODIES.pop(self._transport, None) if self._transport is not None else None
        if unread is not None and not unread.is_eof():
            unread.feed_eof()  # nothing more will come: the lingering read of the rest ends now

    def data_received(self, data: bytes) -> None:
        if self._handler is not None:
            self._handler.data_received(data)

    def eof_received(self) -> bool | None:
        return self._handler.eof_received() if self._handler is not None else None

    def pause_writing(self) -> None:
        if self._handler is not None:
            self._handler.pause_writing()

    def resume_writing(self) -> None:
        if self._handler is not None:
            self._handler.resume_writing()


class _GatedRunner(web.AppRunner):
    """An AppRunner whose sites get every connection through the gate first."""

    def __init__(self, app: web.Application, gate: ConnectionGate, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.gate = gate

    @property
    def server(self) -> Any:  # what sites pass to loop.create_server as the protocol factory
        handlers = super().server
        if handlers is None:
            return None
        return functools.partial(_GatedProtocol, self.gate, handlers)


async def start_server(
    app: web.Application,
    config: GatewayConfig,
    *,
    ssl_context: ssl.SSLContext | None = None,
    sock: socket.socket | None = None,
    **runner_options: Any,
) -> web.AppRunner:
    """Serve ``app`` on ``[server] host``/``port`` with the ``[limits]`` of this module; the caller
    cleans the returned runner up (``runner.addresses`` has the bound port). The body deadline is the
    application's middleware (``gateway.app``). ``runner_options`` go to aiohttp's ``AppRunner``.
    ``sock``: a listening socket to accept on instead (a worker's, gateway/workers.py)."""
    limits = config.limits
    runner = _GatedRunner(
        app,
        ConnectionGate(limits),
        **runner_options,
        # aiohttp's keep-alive timer runs from the connection's start and from each response's end
        # until the next request's headers are complete: it is the header timeout.
        keepalive_timeout=limits.header_timeout_seconds,
    )
    await runner.setup()
    try:
        site: web.BaseSite = (
            web.SockSite(runner, sock, ssl_context=ssl_context)
            if sock is not None
            else web.TCPSite(runner, config.server.host, config.server.port, ssl_context=ssl_context)
        )
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner
