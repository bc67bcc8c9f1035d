"""HTTP Basic authentication (RFC 7617) against the :class:`Authenticator`.

CalDAV clients send credentials with every request. Making that cheap is the
Authenticator's job (the accounts layer remembers verified app passwords and forgets
them the moment one is revoked), so nothing is cached here: a revoked password stops
working at once.
"""

from __future__ import annotations

import base64
import binascii

from aiohttp import web

from .backend import Authenticator, Principal

REALM = "CalDAV gateway"


class BasicAuth:
    """Verify ``Authorization: Basic`` headers with the Authenticator."""

    def __init__(self, authenticator: Authenticator) -> None:
        self._authenticator = authenticator

    async def principal(self, request: web.Request) -> Principal:
        """The authenticated principal, or raise 401 with a Basic challenge."""
        credentials = _parse(request.headers.get("Authorization", ""))
        if credentials is None:
            raise unauthorized("Authentication is required: use your gateway username and app password.")
        principal = await self._authenticator.authenticate(*credentials)
        if principal is None:
            raise unauthorized("The username or app password is wrong.")
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


def unauthorized(message: str) -> web.HTTPUnauthorized:
    """A 401 carrying the Basic challenge (RFC 7235 §3.1)."""
    return web.HTTPUnauthorized(
        text=message + "\n",
        headers={"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'},
    )
