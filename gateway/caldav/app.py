"""Wires the CalDAV protocol into an aiohttp application: routes, authentication, error mapping."""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace

from aiohttp import web

from . import freebusy
from .auth import BasicAuth, ClientAddress, peer_address
from .backend import Authenticator, Backend, BackendError
from .call import Call
from .context import CONFIG, DavConfig
from .errors import DavError, from_backend
from .limits import Limits
from .methods import METHODS, allowed, options_response
from .resources import BASE, WELL_KNOWN, Kind, calendar_url, resolve

log = logging.getLogger(__name__)
SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")  # it is echoed in the 500 body and logs


def setup_caldav(
    app: web.Application,
    backend: Backend,
    authenticator: Authenticator,
    *,
    max_resource_size: int | None = None,
    freebusy_max_days: int = 366,
    limits: Limits | None = None,
    client_address: ClientAddress = peer_address,
) -> None:
    """Add every CalDAV, well-known and free/busy route to ``app``; ``max_resource_size`` overrides the
    one of ``limits``; ``client_address`` names the client of a request for the Authenticator's failure
    budgets."""
    limits = limits or Limits()
    if max_resource_size is not None:
        limits = replace(limits, max_resource_size=max_resource_size)
    app[CONFIG] = DavConfig(backend, BasicAuth(authenticator, client_address), freebusy_max_days, limits)
    app.router.add_route("*", WELL_KNOWN, well_known)
    app.router.add_route("*", WELL_KNOWN + "/", well_known)
    # Clients given only the server's address PROPFIND "/" (python-caldav, vdirsyncer) for
    # current-user-principal, and python-caldav searches principals there (REPORT); "/" answers as the
    # DAV base does.
    app.router.add_route("PROPFIND", "/", dav_entry)
    app.router.add_route("REPORT", "/", dav_entry)
    app.router.add_route("*", BASE.rstrip("/"), dav_entry)
    app.router.add_route("*", BASE + "{tail:.*}", dav_entry)
    app.router.add_get("/freebusy/{email}", freebusy_url)
    app.router.add_get("/api/v1/freebusy", freebusy_api)


def request_id(request: web.Request) -> str:
    """The request id set by the application's middleware or a sane client one, else a fresh one."""
    given = str(request.get("request_id") or request.headers.get("X-Request-Id") or "")
    return given if SAFE_REQUEST_ID.match(given) else uuid.uuid4().hex[:12]


async def guarded(
    request: web.Request, handler: Callable[[], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Map protocol and backend errors to answers; anything unexpected is a bare 500 (logged)."""
    try:
        return await handler()
    except web.HTTPException:
        raise
    except DavError as exc:
        return exc.response()
    except BackendError as exc:
        resource = resolve(request.path)
        base = calendar_url(resource.user, resource.calendar_id) if resource and resource.calendar_id else ""
        return from_backend(exc, base).response()
    except Exception as exc:
        if isinstance(exc, ConnectionResetError) and _client_gone(request):
            # The client went away before its request was complete: nobody to answer, nothing wrong here.
            log.info("CalDAV request %s %s: the client closed the connection", request.method, request.path)
            return web.Response(status=400, text="The connection closed before the request was complete.\n")
        rid = request_id(request)
        log.exception("CalDAV request %s %s failed (request id %s)", request.method, request.path, rid)
        return web.Response(status=500, text=f"Internal server error (request id {rid}).\n")


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def well_known(request: web.Request) -> web.StreamResponse:
    """RFC 6764 §5: the well-known URI redirects to the DAV base.

    Apple sends PROPFIND rather than GET here, so every method redirects.
    """
    if request.method == "OPTIONS":
        return options_response(Kind.ROOT)
    raise web.HTTPMovedPermanently(BASE)


async def dav_entry(request: web.Request) -> web.StreamResponse:
    """Every request under the DAV base."""
    return await guarded(request, lambda: _dav(request))


async def _dav(request: web.Request) -> web.StreamResponse:
    """Authenticate, resolve the path, hide other users' resources and run the method."""
    resource = resolve(request.path)
    if resource is None:
        raise web.HTTPNotFound(text="Nothing is served at this address.\n")
    if request.method == "OPTIONS" and "Authorization" not in request.headers:
        return options_response(resource.kind)  # clients probe capabilities before authenticating
    config = request.app[CONFIG]
    principal = await config.auth.principal(request)
    if resource.user and resource.user != principal.username:
        raise web.HTTPNotFound(text="Nothing is served at this address.\n")
    entry = METHODS.get(request.method)
    if entry is None or resource.kind not in entry.kinds:
        raise web.HTTPMethodNotAllowed(
            request.method,
            allowed(resource.kind),
            text=f"{request.method} is not allowed on this resource.\n",
        )
    return await entry.run(Call(request, config, principal, resource))


async def freebusy_url(request: web.Request) -> web.StreamResponse:
    """``/freebusy/{email}.vfb`` / ``.ifb``: a VFREEBUSY for one calendar user (Internet Free/Busy)."""
    name = request.match_info["email"]
    if not name.endswith((".vfb", ".ifb")):
        raise web.HTTPNotFound(text="Use /freebusy/<email>.vfb or .ifb.\n")
    config = request.app[CONFIG]

    async def run() -> web.Response:
        principal = await config.auth.principal(request, tokens=True)
        start, end = freebusy.window(request, config.freebusy_max_days)
        attendee = "mailto:" + name[:-4]
        [result] = await config.backend.free_busy(principal, [attendee], start, end)
        _raise_for_status(result.status, attendee)
        body = freebusy.vfreebusy(
            start, end, result.periods, method="PUBLISH", organizer=attendee, no_data=result.no_data
        )
        return web.Response(body=body.encode("utf-8"), content_type="text/calendar", charset="utf-8")

    return await guarded(request, run)


def _raise_for_status(status: str, attendee: str) -> None:
    if status == "3.7":
        raise DavError(404, f"{attendee.removeprefix('mailto:')} is not a known calendar user.")
    if status == "3.8":
        raise DavError(403, f"You may not read the free/busy time of {attendee.removeprefix('mailto:')}.")
    if status.startswith("5"):
        raise DavError(503, "Exchange could not answer the free/busy request.", headers={"Retry-After": "30"})


async def freebusy_api(request: web.Request) -> web.StreamResponse:
    """``/api/v1/freebusy?attendee=..&start=..&end=..``: JSON free/busy of several users."""
    config = request.app[CONFIG]

    async def run() -> web.Response:
        principal = await config.auth.principal(request, tokens=True)
        attendees = [a.strip() for a in request.query.getall("attendee", []) if a.strip()]
        if not attendees:
            raise DavError(400, "Name at least one attendee (?attendee=someone@example.com).")
        start, end = freebusy.window(request, config.freebusy_max_days)
        mailtos = [a if a.lower().startswith("mailto:") else f"mailto:{a}" for a in attendees]
        results = await config.backend.free_busy(principal, mailtos, start, end)
        payload = {
            "start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "end": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "attendees": [freebusy.as_json(r) for r in results],
        }
        return web.Response(text=json.dumps(payload), content_type="application/json")

    return await guarded(request, run)
