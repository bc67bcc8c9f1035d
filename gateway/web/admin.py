"""The admin JSON API (``/api/v1/admin/…``), protected by ``GATEWAY_ADMIN_TOKEN``.

Requests carry ``Authorization: Bearer <token>``. Errors are
``{"error": <code>, "message": <sentence>}``; a failed Exchange connection answers
422 with the ``ConnectError`` code (``auth_failed``, ``autodiscover_failed``, …).
Every route, body and answer is described in ``openapi.json`` beside this module
(served at ``/api/v1/openapi.json``; a test keeps the two in step).
"""

from __future__ import annotations

import dataclasses
import hmac
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from aiohttp import web

from gateway.accounts.exchange_accounts import ConnectRequest
from gateway.accounts.records import SCOPE_ALL, AccountsError, NotFoundError
from gateway.accounts.settings import (
    UnknownCalendarError,
    UserSettings,
    check_calendar_choices,
    effective_settings,
)
from gateway.accounts.throttle import ADMIN
from gateway.accounts.vault import VaultError
from gateway.caldav.backend import BackendError, TooManyFailures
from gateway.ews.connection import ConnectError
from gateway.web.services import PLAIN_HTTP_REFUSAL, SERVICES_KEY, Services

PREFIX = "/api/v1/admin"


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, default=_encode))


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    raise TypeError(type(value).__name__)


@web.middleware
async def admin_auth(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Bearer-token check for the admin API; after too many failures 429 without checking
    (``gateway.accounts.throttle``: per client address, and for the token from every address)."""
    if not request.path.startswith(PREFIX + "/"):
        return await handler(request)
    services: Services = request.app[SERVICES_KEY]
    if not services.admin_token:
        return _error(
            503, "admin_disabled", "The admin API is disabled: set GATEWAY_ADMIN_TOKEN to enable it."
        )
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    try:
        attempt = services.accounts.throttle.begin("admin", ADMIN, services.client_address(request))
    except TooManyFailures as exc:
        response = _error(429, "too_many_failures", str(exc))
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    with attempt:  # a failure unless it succeeds
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), services.admin_token.encode()
        ):
            response = _error(
                401, "unauthorized", "A valid admin token is required (Authorization: Bearer …)."
            )
            response.headers["WWW-Authenticate"] = 'Bearer realm="caldav-gateway admin"'
            return response
        attempt.succeeded()
    try:
        return await handler(request)
    except NotFoundError as exc:
        return _error(404, "not_found", str(exc))
    except UnknownCalendarError as exc:
        return _error(400, "unknown_calendar", str(exc))
    except AccountsError as exc:
        return _error(400, "invalid_request", str(exc))
    except (BackendError, VaultError) as exc:
        # Listing the user's calendars (to show them, or to check a choice) needs Exchange.
        return _error(503, "calendars_unavailable", f"The calendars could not be listed: {exc}")


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise web.HTTPBadRequest(
            text='{"error":"invalid_json","message":"The body must be a JSON object."}',
            content_type="application/json",
        ) from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(
            text='{"error":"invalid_json","message":"The body must be a JSON object."}',
            content_type="application/json",
        )
    return body


def _text(body: dict[str, Any], key: str) -> str | None:
    """A string member of the JSON body; absent, null or "" is None."""
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise AccountsError(f"{key} must be a string")
    return value or None


def _svc(request: web.Request) -> Services:
    return request.app[SERVICES_KEY]


async def list_users(request: web.Request) -> web.Response:
    return _json({"users": await _svc(request).accounts.list_users()})


async def create_user(request: web.Request) -> web.Response:
    body = await _body(request)
    user = await _svc(request).accounts.create_user(
        _text(body, "username") or "", _text(body, "password"), _text(body, "display_name")
    )
    return _json(user, status=201)


async def get_user(request: web.Request) -> web.Response:
    return _json(await _svc(request).accounts.get_user(request.match_info["user_id"]))


async def delete_user(request: web.Request) -> web.Response:
    await _svc(request).accounts.delete_user(request.match_info["user_id"])
    return web.Response(status=204)


async def list_accounts(request: web.Request) -> web.Response:
    user_id = request.match_info["user_id"]
    await _svc(request).accounts.get_user(user_id)
    return _json({"accounts": await _svc(request).accounts.list_accounts(user_id)})


async def connect_account(request: web.Request) -> web.Response:
    """Connects an Exchange account for a user (autodiscover, or the manual fields if given)."""
    services = _svc(request)
    if not services.may_receive_credentials(request):
        return _error(403, "plain_http_refused", PLAIN_HTTP_REFUSAL)
    body = await _body(request)
    connect_request = ConnectRequest(
        email=_text(body, "email") or "",
        password=_text(body, "password") or "",
        server=_text(body, "server"),
        domain=_text(body, "domain"),
        username=_text(body, "username"),
        auth_type=_text(body, "auth_type"),
    )
    try:
        account = await services.accounts.connect_account(request.match_info["user_id"], connect_request)
    except ConnectError as exc:
        return _error(422, exc.code, exc.message)
    return _json(account, status=201)


async def get_account(request: web.Request) -> web.Response:
    m = request.match_info
    return _json(await _svc(request).accounts.get_account(m["user_id"], m["account_id"]))


async def update_account(request: web.Request) -> web.Response:
    body = await _body(request)
    m = request.match_info
    account = await _svc(request).accounts.set_account_options(
        m["user_id"],
        m["account_id"],
        working_elsewhere=_text(body, "working_elsewhere"),
        invitations=_text(body, "invitations"),
    )
    return _json(account)


async def delete_account(request: web.Request) -> web.Response:
    m = request.match_info
    await _svc(request).accounts.remove_account(m["user_id"], m["account_id"])
    return web.Response(status=204)


async def list_app_passwords(request: web.Request) -> web.Response:
    user_id = request.match_info["user_id"]
    await _svc(request).accounts.get_user(user_id)
    return _json({"app_passwords": await _svc(request).accounts.list_app_passwords(user_id)})


async def create_app_password(request: web.Request) -> web.Response:
    body = await _body(request)
    record, clear = await _svc(request).accounts.create_app_password(
        request.match_info["user_id"], _text(body, "label") or "", scope=_text(body, "scope") or SCOPE_ALL
    )
    # The only time the clear text leaves the gateway.
    return _json({**dataclasses.asdict(record), "password": clear}, status=201)


async def revoke_app_password(request: web.Request) -> web.Response:
    m = request.match_info
    await _svc(request).accounts.revoke_app_password(m["user_id"], m["app_password_id"])
    return web.Response(status=204)


async def list_calendars(request: web.Request) -> web.Response:
    """The user's calendars, whose ids the settings name (the CalDAV URL segments)."""
    services = _svc(request)
    principal = await services.accounts.principal(request.match_info["user_id"])
    calendars = [
        {
            "calendar_id": c.calendar_id,
            "display_name": c.display_name,
            "owner_email": c.owner_email,
            "primary": c.primary,
            "writable": c.writable,
        }
        for c in await services.calendars_of(principal)
    ]
    return _json({"calendars": calendars})


async def get_settings(request: web.Request) -> web.Response:
    accounts = _svc(request).accounts
    user_id = request.match_info["user_id"]
    stored = await accounts.settings(user_id)
    effective = effective_settings(stored, await accounts.list_accounts(user_id))
    return _json({"stored": stored, "effective": effective})


async def put_settings(request: web.Request) -> web.Response:
    services = _svc(request)
    user_id = request.match_info["user_id"]
    body = await _body(request)
    conflicts = body.get("conflict_calendar_ids")
    add_events = _text(body, "add_events_calendar_id")
    if conflicts is not None and (
        not isinstance(conflicts, list) or not all(isinstance(c, str) for c in conflicts)
    ):
        return _error(400, "invalid_request", "conflict_calendar_ids must be a list of calendar ids or null")
    choices = UserSettings(
        conflict_calendar_ids=tuple(conflicts) if conflicts is not None else None,
        add_events_calendar_id=add_events,
    )
    check_calendar_choices(choices, await services.calendar_ids_of(user_id))
    return _json(await services.accounts.save_settings(user_id, choices))


def setup_admin(app: web.Application) -> None:
    r = app.router
    u = PREFIX + "/users/{user_id}"
    r.add_get(PREFIX + "/users", list_users)
    r.add_post(PREFIX + "/users", create_user)
    r.add_get(u, get_user)
    r.add_delete(u, delete_user)
    r.add_get(u + "/accounts", list_accounts)
    r.add_post(u + "/accounts", connect_account)
    r.add_get(u + "/accounts/{account_id}", get_account)
    r.add_patch(u + "/accounts/{account_id}", update_account)
    r.add_delete(u + "/accounts/{account_id}", delete_account)
    r.add_get(u + "/app-passwords", list_app_passwords)
    r.add_post(u + "/app-passwords", create_app_password)
    r.add_delete(u + "/app-passwords/{app_password_id}", revoke_app_password)
    r.add_get(u + "/calendars", list_calendars)
    r.add_get(u + "/settings", get_settings)
    r.add_put(u + "/settings", put_settings)
