"""Onboarding pages: sign in, connect Exchange accounts, pick calendars, app passwords.

Server-rendered HTML (Jinja2, autoescaped), plain forms that work without
JavaScript, post/redirect/get, CSRF tokens on every form. Removing an account and revoking an
app password go through a confirmation page (a form of its own, so no script is needed).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import jinja2
from aiohttp import web

from gateway.accounts.exchange_accounts import ConnectRequest
from gateway.accounts.records import SCOPE_ALL, SCOPE_BOOKING, AccountsError, NotFoundError, UserRecord
from gateway.accounts.settings import (
    INVITATION_CHOICES,
    WORKING_ELSEWHERE_CHOICES,
    WORKING_ELSEWHERE_WORDS,
    UnknownCalendarError,
    UserSettings,
    check_calendar_choices,
    effective_settings,
)
from gateway.accounts.vault import VaultError
from gateway.caldav.backend import BackendError, TooManyFailures
from gateway.ews.connection import ConnectError
from gateway.web.services import PLAIN_HTTP_REFUSAL, SERVICES_KEY, Services
from gateway.web.sessions import (
    PRESESSION_COOKIE,
    WebSession,
    csrf_ok,
    presession_token,
)

log = logging.getLogger(__name__)

_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("gateway.web", "templates"),
    autoescape=True,
)


def _in_utc(moment: datetime) -> datetime:
    """The database hands back UTC times, naive from SQLite."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# Times are shown with their zone: the gateway knows no user's own zone, so UTC, said so.
_TEMPLATES.filters["shown_time"] = lambda moment: f"{_in_utc(moment):%Y-%m-%d %H:%M} UTC"
_TEMPLATES.filters["iso_time"] = lambda moment: _in_utc(moment).isoformat(timespec="seconds")

# (value, label) for the option menus, in the order of the choices the accounts layer accepts; a choice
# added there without a label here fails at import.
WORKING_ELSEWHERE_LABELS = tuple((c, WORKING_ELSEWHERE_WORDS[c]) for c in WORKING_ELSEWHERE_CHOICES)
_INVITATION_TEXT = {
    "auto": "Exchange sends them for meetings I organise",
    "never": "never sent by the gateway",
}
INVITATION_LABELS = tuple((c, _INVITATION_TEXT[c]) for c in INVITATION_CHOICES)

# Post/redirect/get: the redirect names one of these fixed notices (never user input).
NOTICES = {
    "connected": "The account is connected.",
    "removed": "The account was removed, with its stored password.",
    "saved": "Saved.",
    "revoked": "The app password was revoked.",
}

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

Handler = Callable[[web.Request, Services, WebSession, UserRecord], Awaitable[web.StreamResponse]]


def render(template: str, status: int = 200, **context: Any) -> web.Response:
    context.setdefault("user", None)
    context.setdefault("notice", None)
    context.setdefault("error", None)
    html = _TEMPLATES.get_template(template).render(**context)
    return web.Response(text=html, status=status, content_type="text/html", headers=SECURITY_HEADERS)


def see_other(location: str) -> web.Response:
    """A 303 response we can still attach cookies to."""
    return web.Response(status=303, headers={"Location": location, **SECURITY_HEADERS})


def _services(request: web.Request) -> Services:
    return request.app[SERVICES_KEY]


def signed_in(handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Requires a session; for POST also a valid CSRF token."""

    async def wrapper(request: web.Request) -> web.StreamResponse:
        services = _services(request)
        session = await services.sessions.load(request)
        if session is None:
            if request.method == "GET":
                raise web.HTTPSeeOther("/signin")
            raise web.HTTPForbidden(text="Your session has ended; sign in again.")
        if request.method == "POST":
            form = await request.post()
            if not csrf_ok(session.csrf_token, form.get("csrf_token")):
                raise web.HTTPForbidden(text="The form expired or came from another site; reload the page.")
        try:
            user = await services.accounts.get_user(session.user_id)
        except NotFoundError:
            raise web.HTTPSeeOther("/signin") from None
        return await handler(request, services, session, user)

    return wrapper


# --- sign in / out ---------------------------------------------------------------------------


async def signin_form(request: web.Request) -> web.Response:
    if await _services(request).sessions.load(request) is not None:
        return see_other("/")  # already signed in
    token = presession_token(request)
    response = render("signin.html", csrf_token=token)
    _services(request).sessions.set_presession_cookie(response, request, token)
    return response


async def signin(request: web.Request) -> web.StreamResponse:
    services = _services(request)
    form = await request.post()
    if not csrf_ok(request.cookies.get(PRESESSION_COOKIE), form.get("csrf_token")):
        raise web.HTTPForbidden(text="The form expired; reload the sign-in page.")
    username, password = str(form.get("username", "")), str(form.get("password", ""))
    try:
        user = await services.accounts.sign_in(username, password, services.client_address(request))
    except TooManyFailures as exc:
        page = render(
            "signin.html", status=429, csrf_token=presession_token(request), username=username, error=str(exc)
        )
        page.headers["Retry-After"] = str(exc.retry_after)
        return page
    if user is None:
        token = presession_token(request)
        return render(
            "signin.html",
            status=401,
            csrf_token=token,
            username=username,
            error="Wrong user name or password.",
        )
    response = see_other("/")
    await services.sessions.start(response, request, user.user_id)
    response.del_cookie(PRESESSION_COOKIE, path="/")
    return response


@signed_in
async def signout(
    request: web.Request, services: Services, session: WebSession, user: UserRecord
) -> web.StreamResponse:
    response = see_other("/signin")
    await services.sessions.end(response, session)
    return response


# --- the home page -------------------------------------------------------------------------


@signed_in
async def home(
    request: web.Request, services: Services, session: WebSession, user: UserRecord
) -> web.Response:
    return await _home(request, services, session, user)


async def _home(
    request: web.Request,
    services: Services,
    session: WebSession,
    user: UserRecord,
    *,
    error: str | None = None,
    status: int = 200,
) -> web.Response:
    accounts = services.accounts
    account_list = await accounts.list_accounts(user.user_id)
    calendars, calendar_error = [], None
    if account_list:
        try:
            calendars = await services.calendars_of(await accounts.principal(user.user_id))
        except (BackendError, VaultError) as exc:
            calendar_error = f"The calendars could not be listed: {exc}"
    return render(
        "home.html",
        status=status,
        user=user,
        csrf_token=session.csrf_token,
        notice=NOTICES.get(request.query.get("notice", "")),
        error=error,
        accounts=account_list,
        calendars=calendars,
        calendar_error=calendar_error,
        credential_problems=await accounts.credential_problems(user.user_id),
        settings=effective_settings(await accounts.settings(user.user_id), account_list),
        working_elsewhere_choices=WORKING_ELSEWHERE_LABELS,
        invitation_choices=INVITATION_LABELS,
        app_passwords=await accounts.list_app_passwords(user.user_id),
        caldav_url=caldav_url(services, request),
    )


def caldav_url(services: Services, request: web.Request) -> str:
    """The CalDAV URL to show: the configured public URL, else the one this request came in by."""
    origin = f"{request.scheme}://{request.host}"
    return f"{services.config.server.public_base_url(origin)}/dav/"


# --- connecting an account -----------------------------------------------------------------


@signed_in
async def connect_form(
    request: web.Request, services: Services, session: WebSession, user: UserRecord
) -> web.Response:
    error = None if services.may_receive_credentials(request) else PLAIN_HTTP_REFUSAL
    manual = request.query.get("manual") == "1"
    return render(
        "connect.html",
        user=user,
        csrf_token=session.csrf_token,
        manual=manual,
        autodiscover_failed=False,
        form={},
        error=error,
    )


@signed_in
async def connect(
    request: web.Request, services: Services, session: WebSession, user: UserRecord
) -> web.StreamResponse:
    form = await request.post()
    fields = {k: str(form.get(k, "")).strip() for k in ("email", "server", "domain", "username", "auth_type")}
    manual = form.get("manual") == "1"

    def again(message: str, status: int, *, autodiscover_failed: bool = False) -> web.Response:
        return render(
            "connect.html",
            status=status,
            user=user,
            csrf_token=session.csrf_token,
            manual=manual or autodiscover_failed,
            # "We could not find your server" only after a lookup did fail.
            autodiscover_failed=autodiscover_failed,
            form=fields,
            error=message,
        )

    if not services.may_receive_credentials(request):
        return again(PLAIN_HTTP_REFUSAL, 403)
    connect_request = ConnectRequest(
        email=fields["email"],
        password=str(form.get("password", "")),
        server=fields["server"] or None,
        domain=fields["domain"] or None,
        username=fields["username"] or None,
        auth_type=fields["auth_type"] or None,
    )
    try:
        await services.accounts.connect_account(user.user_id, connect_request)
    except ConnectError as exc:
        # Autodiscover failing is the cue to show the manual fields (issue 3, step 2).
        return again(exc.message, 422, autodiscover_failed=exc.code == "autodiscover_failed")
    except AccountsError as exc:
        return again(str(exc), 422)
    raise web.HTTPSeeOther("/?notice=connected")


@signed_in
async def account_options(
    request: web.Request, services: Services, session: WebSession, user: UserRecord
) -> web.StreamResponse:
    form = await request.post()
    try:
        await services.accounts.set_account_options(
            user.user_id,
            request.match_info["account_id"],
            working_elsewhere=str(form.get("working_elsewhere", "")),
            invitations=str(form.get("invitations", "")) or None,
        )
    except NotFoundError:
        raise web.HTTPNotFound(text="No such account.") from None
    except AccountsError as exc:
        return await _home(request, services, session, user, error=str(exc), status=400)
    raise web.HTTPSeeOther("/?notice=saved")


@signed_in
async def remove_account(
    request: web.Request, services: Services, session: WebSession, user: UserRecord
) -> web.StreamResponse:
    """GET: the confirmation page; POST with ``confirm=yes`` (from that page) removes the account."""
    try:
        account = await services.accounts.get_account(user.user_id, request.match_info["account_id"])
    except NotFoundError:
        raise web.HTTPNotFound(text="No such account.") from None
    if not await _confirmed(request):
        return _confirm_page(
            session,
            user,
            title=f"Remove {account.email}?",
            explanation="The gateway forgets this account and deletes the Exchange password it stored; "
            "its calendars disappear from your CalDAV clients. Nothing is deleted in Exchange, and you "
            "can connect the account again later.",
            action=f"/accounts/{account.account_id}/remove",
            button="Remove the account",
        )
    await services.accounts.remove_account(user.user_id, account.account_id)
    raise web.HTTPSeeOther("/?notice=removed")


async def _confirmed(request: web.Request) -> bool:
    """Whether this is the confirmation page's POST (any other request shows the page)."""
    return request.method == "POST" and (await request.post()).get("confirm") == "yes"


def _confirm_page(
    session: WebSession, user: UserRecord, *, title: str, explanation: str, action: str, button: str
) -> web.Response:
    return render(
        "confirm.html",
        user=user,
        csrf_token=session.csrf_token,
        title=title,
        explanation=explanation,
        action=action,
        button=button,
    )


# --- calendar choices ----------------------------------------------------------------------


@signed_in
async def save_settings(
    request: web.Request, services: Services, session: WebSession, user: UserRecord
) -> web.StreamResponse:
    form = await request.post()
    choices = UserSettings(
        conflict_calendar_ids=tuple(str(v) for v in form.getall("conflict", [])),
        add_events_calendar_id=str(form.get("add_events", "")) or None,
    )
    try:
        check_calendar_choices(choices, await services.calendar_ids_of(user.user_id))
    except UnknownCalendarError:
        return await _home(
            request, services, session, user, error="Choose among your own calendars.", status=400
        )
    await services.accounts.save_settings(user.user_id, choices)
    raise web.HTTPSeeOther("/?notice=saved")


# --- app passwords -------------------------------------------------------------------------


@signed_in
async def create_app_password(
    request: web.Request, services: Services, session: WebSession, user: UserRecord
) -> web.Response:
    form = await request.post()
    scope = SCOPE_BOOKING if form.get("scope") == SCOPE_BOOKING else SCOPE_ALL
    record, clear = await services.accounts.create_app_password(
        user.user_id, str(form.get("label", "")), scope=scope
    )
    return render(
        "app_password.html",
        user=user,
        csrf_token=session.csrf_token,
        label=record.label,
        password=clear,
        token=scope == SCOPE_BOOKING,
        caldav_url=caldav_url(services, request),
    )


@signed_in
async def revoke_app_password(
    request: web.Request, services: Services, session: WebSession, user: UserRecord
) -> web.StreamResponse:
    """GET: the confirmation page; POST with ``confirm=yes`` (from that page) revokes."""
    wanted = request.match_info["app_password_id"]
    found = [
        p for p in await services.accounts.list_app_passwords(user.user_id) if p.app_password_id == wanted
    ]
    if not found:
        raise web.HTTPNotFound(text="No such app password.")
    if not await _confirmed(request):
        return _confirm_page(
            session,
            user,
            title=f"Revoke the app password “{found[0].label}”?",
            explanation="The CalDAV clients using it stop syncing at once; give them a new app password "
            "to sync again.",
            action=f"/app-passwords/{wanted}/revoke",
            button="Revoke it",
        )
    try:
        await services.accounts.revoke_app_password(user.user_id, wanted)
    except NotFoundError:
        raise web.HTTPNotFound(text="No such app password.") from None
    raise web.HTTPSeeOther("/?notice=revoked")


async def stylesheet(request: web.Request) -> web.Response:
    css = resources.files("gateway.web").joinpath("static/style.css").read_text(encoding="utf-8")
    return web.Response(text=css, content_type="text/css", headers={"Cache-Control": "max-age=3600"})


def setup_pages(app: web.Application) -> None:
    app.router.add_get("/", home)
    app.router.add_get("/signin", signin_form)
    app.router.add_post("/signin", signin)
    app.router.add_post("/signout", signout)
    app.router.add_get("/accounts/connect", connect_form)
    app.router.add_post("/accounts/connect", connect)
    app.router.add_post("/accounts/{account_id}/options", account_options)
    app.router.add_get("/accounts/{account_id}/remove", remove_account)
    app.router.add_post("/accounts/{account_id}/remove", remove_account)
    app.router.add_post("/settings", save_settings)
    app.router.add_post("/app-passwords", create_app_password)
    app.router.add_get("/app-passwords/{app_password_id}/revoke", revoke_app_password)
    app.router.add_post("/app-passwords/{app_password_id}/revoke", revoke_app_password)
    app.router.add_get("/static/style.css", stylesheet)
