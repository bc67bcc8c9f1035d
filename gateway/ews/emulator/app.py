"""The EWS emulator's aiohttp application: EWS endpoint, Autodiscover, control API.

Routes:
- ``POST /EWS/Exchange.asmx`` (any case): SOAP 1.1 EWS operations registered in ``soap.OPERATIONS``
  by the handler modules imported below.
- ``POST /autodiscover/autodiscover.svc`` (any case): SOAP Autodiscover ``GetUserSettings``.
- ``GET /_emulator/stats``, ``POST /_emulator/reset``, ``GET|POST /_emulator/faults``: control API.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

from aiohttp import web
from lxml import etree

# Besides autodiscover: the modules implementing the EWS operations. Importing them registers their
# handlers (``@operation``) in soap.OPERATIONS, the one registry ``_dispatch`` looks operations up in.
from gateway.ews.emulator import (  # noqa: F401
    autodiscover,
    availability,
    folder_ops,
    item_ops,
    misc_ops,
    sync_ops,
)
from gateway.ews.emulator.auth import Authenticator, Unauthorized
from gateway.ews.emulator.directory import Mailbox
from gateway.ews.emulator.faults import FaultRule, FaultSettings
from gateway.ews.emulator.soap import (
    MAX_BODY_BYTES,
    OPERATIONS,
    T_NS,
    BadRequest,
    Envelope,
    EwsError,
    OperationContext,
    ServerVersion,
    SoapFault,
    build_envelope,
    build_fault,
    error_message,
    parse_envelope,
    wrap_response,
)
from gateway.ews.emulator.state import EmulatorState

log = logging.getLogger(__name__)
MessageObserver = Callable[[str, str, bytes], None]
STATE: web.AppKey[EmulatorState] = web.AppKey("emulator_state", EmulatorState)
SOAP_CONTENT_TYPE = "text/xml; charset=utf-8"
# IIS paths are case-insensitive: /EWS/Exchange.asmx and /ews/exchange.asmx are the same resource.
EWS_PATH = r"/{ews:(?i:ews)}/{asmx:(?i:exchange\.asmx)}"
AUTODISCOVER_PATH = r"/{ad:(?i:autodiscover)}/{svc:(?i:autodiscover\.svc)}"


def default_seed() -> dict:
    """The demo seed of the calendar store (alice, bob, carol, room-1)."""
    from gateway.ews.emulator.seed import demo_seed

    return demo_seed(datetime.now(UTC).date())


class EmulatorApp:
    """Request handling; one instance per aiohttp application."""

    def __init__(self, state: EmulatorState, observer: MessageObserver | None) -> None:
        self.state = state
        self.observer = observer
        self.authenticator = Authenticator()
        self.in_flight: Counter[str] = Counter()

    # --- EWS ---------------------------------------------------------------------------------

    async def ews(self, request: web.Request) -> web.StreamResponse:
        """``POST /EWS/Exchange.asmx``: authenticate, apply faults, dispatch one SOAP operation."""
        body = await _read_body(request)
        try:
            mailbox = self.authenticator.authenticate(request, self.state.directory)
        except Unauthorized as exc:
            self.state.stats.unauthenticated += 1
            return _unauthorized(exc)
        try:
            envelope = parse_envelope(body)
        except BadRequest as exc:
            return web.Response(status=400, text=str(exc))
        op = envelope.operation
        self._observe("request", op, body)
        self.state.stats.record(op, mailbox.email)
        self.in_flight[mailbox.email] += 1
        try:
            return await self._answer(request, envelope, mailbox)
        finally:
            self.in_flight[mailbox.email] -= 1

    async def _answer(self, request: web.Request, envelope: Envelope, mailbox: Mailbox) -> web.StreamResponse:
        op = envelope.operation
        version = self.state.server_version
        try:
            injected = await self._apply_faults(request, op, mailbox)
            if injected is not None:
                return injected
            answer = self._dispatch(envelope, mailbox)
            payload, status = build_envelope(version, answer), 200
        except SoapFault as fault:
            payload, status, answer = build_fault(version, fault), 500, None
        self._observe("response", op, payload)
        carried_out = answer is not None and _carried_out(answer)
        after = self.state.faults.take(op, mailbox.email, when="after") if carried_out else None
        if after is not None:
            # The request was carried out; its answer is lost or replaced (see faults.py).
            return await _injected_after(request, after, version)
        return web.Response(status=status, body=payload, headers={"Content-Type": SOAP_CONTENT_TYPE})

    async def _apply_faults(
        self, request: web.Request, op: str, mailbox: Mailbox
    ) -> web.StreamResponse | None:
        """Latency, concurrency limit and the first matching fault rule (see faults.py)."""
        faults = self.state.faults
        limit = faults.max_concurrent_per_user
        if limit is not None and self.in_flight[mailbox.email] > limit:
            raise _server_busy(1000)
        delay = faults.latency_for(op, mailbox.email)
        if delay:
            await asyncio.sleep(delay / 1000)
        rule = faults.take(op, mailbox.email)
        return None if rule is None else _injected(request, rule)

    def _dispatch(self, envelope: Envelope, caller: Mailbox) -> etree._Element:
        op = envelope.operation
        request_version = _request_version(envelope)
        if request_version not in self.state.server_version.known_request_versions:
            # What Exchange answers when RequestServerVersion names a newer schema than it has.
            raise SoapFault(
                "ErrorInvalidServerVersion",
                "The specified server version is invalid.",
            )
        handler = OPERATIONS.get(op)
        if handler is None:
            # What Exchange says about an element it does not know; here: an operation not emulated.
            raise SoapFault(
                "ErrorSchemaValidation", f"The request failed schema validation: {op} is not emulated."
            )
        try:
            ctx = OperationContext(
                state=self.state,
                caller=caller,
                mailbox=self._impersonated(envelope, caller),
                server_version=self.state.server_version,
                request_version=request_version,
                timezone=_timezone_context(envelope),
                now=datetime.now(UTC),
            )
            return handler(ctx, envelope.body)
        except EwsError as exc:
            return wrap_response(op, [error_message(op, exc.code, exc.message)])
        except SoapFault:
            raise
        except Exception:
            # A bug in a handler: answer as Exchange does (a fault carrying the version header).
            log.exception("EWS operation %s failed", op)
            raise SoapFault(
                "ErrorInternalServerError", "An internal server error occurred. The operation failed."
            ) from None

    def _impersonated(self, envelope: Envelope, caller: Mailbox) -> Mailbox:
        """The mailbox named by ``t:ExchangeImpersonation`` (if any), after the rights check."""
        header = envelope.headers.get("ExchangeImpersonation")
        if header is None:
            return caller
        sid = header.find(f"{{{T_NS}}}ConnectingSID")
        address = None
        if sid is not None:
            for child in sid:
                if etree.QName(child).localname in ("PrimarySmtpAddress", "SmtpAddress", "PrincipalName"):
                    address = (child.text or "").strip()
        target = self.state.directory.get(address)
        if target is None:
            raise EwsError(
                "ErrorNonExistentMailbox", f"The SMTP address has no mailbox associated with it: {address}"
            )
        if target.email != caller.email and not self.state.may_impersonate(caller, target):
            raise EwsError(
                "ErrorImpersonateUserDenied",
                "The account does not have permission to impersonate the requested user.",
            )
        return target

    # --- Autodiscover ------------------------------------------------------------------------

    async def autodiscover(self, request: web.Request) -> web.StreamResponse:
        """``POST /autodiscover/autodiscover.svc``: SOAP GetUserSettings (see autodiscover.py)."""
        body = await _read_body(request)
        try:
            query = autodiscover.parse_request(body)
        except BadRequest as exc:
            return web.Response(status=400, text=str(exc))
        if autodiscover.mode_for(self.state, query) == "none":
            raise web.HTTPNotFound()
        try:
            mailbox = self.authenticator.authenticate(request, self.state.directory)
        except Unauthorized as exc:
            return _unauthorized(exc)
        self.state.stats.record("Autodiscover", mailbox.email)
        self._observe("request", "Autodiscover", body)
        ews_url = str(request.url.with_path("/EWS/Exchange.asmx").with_query(None))
        payload = autodiscover.respond(self.state, query, ews_url)
        self._observe("response", "Autodiscover", payload)
        return web.Response(body=payload, headers={"Content-Type": SOAP_CONTENT_TYPE})

    # --- control API -------------------------------------------------------------------------

    async def stats(self, request: web.Request) -> web.Response:
        """Request counters, plus per mailbox: folders, items and the meeting messages it would have sent."""
        return web.json_response({**self.state.stats.to_json(), "calendars": self.state.store.stats()})

    async def reset(self, request: web.Request) -> web.Response:
        # Authenticated NTLM connections stay authenticated (clients keep their sessions across a
        # reset); a connection whose mailbox vanished from the seed is refused (see auth.py).
        self.state.reset()
        return web.json_response({"reset": True})

    async def get_faults(self, request: web.Request) -> web.Response:
        return web.json_response(self.state.faults.to_json())

    async def set_faults(self, request: web.Request) -> web.Response:
        try:
            data = json.loads(await request.read() or b"{}")
            self.state.faults = FaultSettings.from_json(data)
        except (ValueError, TypeError, AttributeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(self.state.faults.to_json())

    def _observe(self, kind: str, op: str, body: bytes) -> None:
        if self.observer is not None:
            self.observer(kind, op, body)


async def _read_body(request: web.Request) -> bytes:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY_BYTES, actual_size=request.content_length)
    return await request.read()


def _unauthorized(exc: Unauthorized) -> web.Response:
    response = web.Response(
        status=401, text="401 - Unauthorized: Access is denied due to invalid credentials."
    )
    for value in exc.challenge:
        response.headers.add("WWW-Authenticate", value)
    return response


def _server_busy(back_off_ms: int) -> SoapFault:
    return SoapFault(
        "ErrorServerBusy",
        "The server cannot service this request right now. Try again later.",
        back_off_ms=back_off_ms,
    )


def _injected(request: web.Request, rule: FaultRule) -> web.StreamResponse:
    """The response (or lack of one) an injected fault produces."""
    if rule.kind == "server_busy":
        raise _server_busy(rule.back_off_ms)
    if rule.kind == "drop":
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=500)  # never delivered: the connection is gone
    if rule.kind == "http_503":
        return web.Response(status=503, text="Service Unavailable", headers={"Retry-After": "1"})
    return web.Response(status=500, text="Internal Server Error")


def _carried_out(answer: etree._Element) -> bool:
    """Whether an operation's answer reports any work done: a response message that is not an error."""
    return any(e.get("ResponseClass") in ("Success", "Warning") for e in answer.iter())


async def _injected_after(
    request: web.Request, rule: FaultRule, version: ServerVersion
) -> web.StreamResponse:
    """A fault after the request was carried out (see faults.py): a ``timeout`` waits ``latency_ms``, then
    drops the connection; the other kinds answer as :func:`_injected` does before a request."""
    if rule.kind == "timeout":
        await asyncio.sleep(rule.latency_ms / 1000)
        rule = FaultRule(kind="drop")
    try:
        return _injected(request, rule)
    except SoapFault as fault:  # server_busy: the SOAP fault Exchange answers when it refuses work
        return web.Response(
            status=500, body=build_fault(version, fault), headers={"Content-Type": SOAP_CONTENT_TYPE}
        )


def _request_version(envelope: Envelope) -> str:
    """``t:RequestServerVersion/@Version``; absent means Exchange2007 (EWS's default)."""
    header = envelope.headers.get("RequestServerVersion")
    return header.get("Version", "Exchange2007") if header is not None else "Exchange2007"


def _timezone_context(envelope: Envelope) -> str | None:
    header = envelope.headers.get("TimeZoneContext")
    if header is None:
        return None
    definition = header.find(f"{{{T_NS}}}TimeZoneDefinition")
    return definition.get("Id") if definition is not None else None


def create_app(
    seed: dict | None = None,
    *,
    ews_version: str = "2016",
    latency_ms: int = 0,
    message_observer: MessageObserver | None = None,
) -> web.Application:
    """The emulator as an aiohttp application (``seed`` defaults to the demo seed).

    ``message_observer(kind, operation, body)`` sees every SOAP request and response body
    (kind "request"/"response"; Autodiscover bodies under the operation "Autodiscover").
    """
    state = EmulatorState.from_seed(
        seed if seed is not None else default_seed(), ews_version=ews_version, latency_ms=latency_ms
    )
    handler = EmulatorApp(state, message_observer)
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[STATE] = state
    app.router.add_post(EWS_PATH, handler.ews)
    app.router.add_post(AUTODISCOVER_PATH, handler.autodiscover)
    app.router.add_get("/_emulator/stats", handler.stats)
    app.router.add_post("/_emulator/reset", handler.reset)
    app.router.add_get("/_emulator/faults", handler.get_faults)
    app.router.add_post("/_emulator/faults", handler.set_faults)
    return app
