"""What the web pages and the admin API share: the services of one gateway process."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from gateway.accounts.service import AccountService
from gateway.caldav.backend import CalendarInfo, Principal
from gateway.config import GatewayConfig
from gateway.limits import client_address
from gateway.store.database import Database
from gateway.web.sessions import SessionStore

if TYPE_CHECKING:
    # For the annotation only: the web pages hand the client on (gateway/app.py) and never call it,
    # so importing this module must not load exchangelib.
    from gateway.ews.client import EwsClient

ListCalendars = Callable[[Principal], Awaitable[list[CalendarInfo]]]


@dataclass
class Services:
    config: GatewayConfig
    db: Database
    accounts: AccountService
    sessions: SessionStore
    admin_token: str | None  # None: the admin API answers 503 (disabled)
    ews_client: EwsClient
    # The calendars offered on the settings page: the EWS backend's ``calendars`` (setup_dav).
    list_calendars: ListCalendars | None = None

    async def calendars_of(self, principal: Principal) -> list[CalendarInfo]:
        """The user's event calendars, from the calendar backend ``gateway.app.setup_dav`` attaches (task
        lists are no choice for new events or conflict checks)."""
        if self.list_calendars is None:
            raise RuntimeError("no calendar backend attached to the gateway services")
        return [c for c in await self.list_calendars(principal) if "VEVENT" in c.components]

    async def calendar_ids_of(self, user_id: str) -> set[str]:
        """The ids of the user's calendars: what a calendar choice may name (``check_calendar_choices``)."""
        return {c.calendar_id for c in await self.calendars_of(await self.accounts.principal(user_id))}

    def client_address(self, request: web.Request) -> str:
        """The client's address for the sign-in failure budgets (``[limits] trusted_proxies``)."""
        return client_address(request, self.config.limits.trusted_proxies)

    def may_receive_credentials(self, request: web.Request) -> bool:
        """Exchange passwords only over HTTPS, or on a loopback listener, or if allowed explicitly."""
        server = self.config.server
        # A configured https:// base_url means a TLS proxy terminates in front of us.
        behind_tls_proxy = (server.base_url or "").startswith("https://")
        return request.secure or behind_tls_proxy or server.loopback or server.allow_plain_http_credentials


SERVICES_KEY = web.AppKey("gateway_services", Services)

PLAIN_HTTP_REFUSAL = (
    "This gateway refuses to receive Exchange passwords over plain HTTP. Open it over HTTPS "
    "(configure [server] tls_cert and tls_key, or a TLS proxy), or set "
    "[server] allow_plain_http_credentials = true if the network is trusted."
)
