"""HTTP Basic authentication (RFC 7617) against the :class:`Authenticator`, with a short cache.

App passwords are stored as slow hashes, and CalDAV clients send credentials with every
request, so a successful verification is remembered briefly, keyed by a salted digest of
the credentials (never the password itself).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import time

from aiohttp import web

from .backend import Authenticator, Principal

REALM = "CalDAV gateway"


class BasicAuth:
    """Verify ``Authorization: Basic`` headers; cache hits for ``ttl`` seconds."""

    def __init__(self, authenticator: Authenticator, ttl: float = 60.0, max_entries: int = 1024) -> None:
        self._authenticator = authenticator
        self._ttl = ttl
        self._max_entries = max_entries
        self._salt = os.urandom(16)
        self._cache: dict[bytes, tuple[float, Principal]] = {}

    def __repr__(self) -> str:
        return f"BasicAuth(ttl={self._ttl}, cached={len(self._cache)})"

    async def principal(self, request: web.Request) -> Principal:
        """The authenticated principal, or raise 401 with a Basic challenge."""
        credentials = _parse(request.headers.get("Authorization", ""))
        if credentials is None:
            raise unauthorized("Authentication is required: use your gateway username and app password.")
        username, password = credentials
        key = hashlib.sha256(self._salt + username.encode() + b"\0" + password.encode()).digest()
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit and hit[0] > now:
            return hit[1]
        principal = await self._authenticator.authenticate(username, password)
        if principal is None:
            raise unauthorized("The username or app password is wrong.")
        self._remember(key, now + self._ttl, principal)
        return principal

    def _remember(self, key: bytes, expires: float, principal: Principal) -> None:
        if len(self._cache) >= self._max_entries:
            now = time.monotonic()
            self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
            if len(self._cache) >= self._max_entries:
                self._cache.pop(next(iter(self._cache)))
        self._cache[key] = (expires, principal)


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
