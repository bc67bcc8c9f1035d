"""HTTP Basic authentication (RFC 7617) against the :class:`Authenticator`.

CalDAV clients send credentials with every request. Making that cheap is the
Authenticator's job (the accounts layer remembers verified app passwords and forgets
them the moment one is revoked), so nothing is cached here: a revoked password stops
working at once.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable

from aiohttp import web

from .backend import Authenticator, Principal, TooManyFailures

REALM = "CalDAV gateway"
ClientAddress = Callable[[web.Request], str]


def peer_address(request: web.Request) -> str:
    """The address of the TCP peer (a proxy's, behind one; the application may know better)."""
    return request.remote or ""


class BasicAuth:
    """Verify ``Authorization: Basic`` headers with the Authenticator."""

    def __init__(self, authenticator: Authenticator, client_address: ClientAddress = peer_address) -> None:
        self._authenticator = authenticator
        self._client_address = client_address

    async def principal(self, request: web.Request, *, tokens: bool = False) -> Principal:
        """The authenticated principal, or raise 401 with a Basic challenge (429 after too many failures).

        ``tokens``: the route is free/busy or booking, which also take an API token scoped to them as
        ``Authorization: Bearer`` (RFC 6750 §2.1); every other route (CalDAV above all) refuses one."""
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if tokens and scheme.lower() == "bearer" and token.strip():
            return await self._token_principal(request, token.strip())
        credentials = _parse(header)
        if credentials is None:
            raise unauthorized(
                "Authentication is required: use your gateway username and app password"
                + (" (or an API token for free/busy and booking, as Bearer)." if tokens else "."),
                tokens=tokens,
            )
        try:
            principal = await self._authenticator.authenticate(
                *credentials, client=self._client_address(request)
            )
        except TooManyFailures as exc:
            raise too_many_failures(exc) from None
        if principal is None:
            raise unauthorized("The username or app password is wrong.", tokens=tokens)
        return principal

    async def _token_principal(self, request: web.Request, token: str) -> Principal:
        try:
            principal = await self._authenticator.authenticate_token(
                token, client=self._client_address(request)
            )
        except TooManyFailures as exc:
            raise too_many_failures(exc) from None
        if principal is None:
            raise unauthorized("The API token is wrong or was revoked.", tokens=True)
        return principal


def _parse(header: str) -> tuple[str, str] | None:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, sep, password = decoded.partition(":")
    return (username, password) if sep else None


def unauthorized(message: str, *, tokens: bool = False) -> web.HTTPUnauthorized:
    """A 401 carrying the Basic challenge (RFC 7235 §3.1), and the Bearer one (RFC 6750 §3) where an API
    token is accepted."""
    challenge = f'Basic realm="{REALM}", charset="UTF-8"'
    if tokens:
        challenge += f', Bearer realm="{REALM}"'
    return web.HTTPUnauthorized(text=message + "\n", headers={"WWW-Authenticate": challenge})


def too_many_failures(exc: TooManyFailures) -> web.HTTPTooManyRequests:
    """A 429 with Retry-After in seconds (RFC 6585 §4, RFC 9110 §10.2.3) and the sentence."""
    return web.HTTPTooManyRequests(text=f"{exc}\n", headers={"Retry-After": str(exc.retry_after)})
