"""Web sign-in sessions and CSRF tokens.

The cookie carries a random token; the database keeps only its SHA-256, the user
and a per-session CSRF token that every form must echo (synchronizer-token
pattern, OWASP). Before sign-in, the sign-in form uses a double-submit cookie.
Cookies are HttpOnly, SameSite=Lax, and Secure whenever the page is served over HTTPS.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aiohttp import web
from sqlalchemy import delete, insert, select

from gateway.store.database import Database
from gateway.store.schema import web_sessions

SESSION_COOKIE = "gateway_session"
PRESESSION_COOKIE = "gateway_csrf"


@dataclass(frozen=True)
class WebSession:
    user_id: str
    csrf_token: str
    token_hash: str


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SessionStore:
    def __init__(self, db: Database, max_age: int, *, always_secure: bool = False) -> None:
        self.db = db
        self.max_age = max_age
        # Behind a TLS-terminating proxy requests look like plain HTTP; an https://
        # base_url says the browser is on HTTPS, so cookies must still be Secure.
        self.always_secure = always_secure

    def _secure(self, request: web.Request) -> bool:
        return request.secure or self.always_secure

    async def start(self, response: web.StreamResponse, request: web.Request, user_id: str) -> None:
        token = secrets.token_urlsafe(32)
        async with self.db.engine.begin() as conn:
            await conn.execute(delete(web_sessions).where(web_sessions.c.expires_at < datetime.now(UTC)))
            await conn.execute(
                insert(web_sessions).values(
                    token_hash=_hash(token),
                    user_id=user_id,
                    csrf_token=secrets.token_urlsafe(32),
                    expires_at=datetime.now(UTC) + timedelta(seconds=self.max_age),
                )
            )
        response.set_cookie(
            SESSION_COOKIE,
            token,
            max_age=self.max_age,
            httponly=True,
            secure=self._secure(request),
            samesite="Lax",
            path="/",
        )

    async def load(self, request: web.Request) -> WebSession | None:
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            return None
        async with self.db.engine.connect() as conn:
            row = (
                (await conn.execute(select(web_sessions).where(web_sessions.c.token_hash == _hash(token))))
                .mappings()
                .first()
            )
        if row is None or _aware(row["expires_at"]) < datetime.now(UTC):
            return None
        return WebSession(user_id=row["user_id"], csrf_token=row["csrf_token"], token_hash=row["token_hash"])

    async def end(self, response: web.StreamResponse, session: WebSession) -> None:
        async with self.db.engine.begin() as conn:
            await conn.execute(delete(web_sessions).where(web_sessions.c.token_hash == session.token_hash))
        response.del_cookie(SESSION_COOKIE, path="/")

    def set_presession_cookie(self, response: web.StreamResponse, request: web.Request, token: str) -> None:
        """The double-submit cookie of the sign-in form."""
        response.set_cookie(
            PRESESSION_COOKIE, token, httponly=True, secure=self._secure(request), samesite="Strict", path="/"
        )


def _aware(value: datetime) -> datetime:
    # SQLite hands back naive datetimes for what was stored as UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def csrf_ok(expected: str | None, submitted: object) -> bool:
    return bool(expected) and isinstance(submitted, str) and hmac.compare_digest(expected, submitted)


def presession_token(request: web.Request) -> str:
    """The double-submit token for the sign-in form (reuses the cookie if present)."""
    return request.cookies.get(PRESESSION_COOKIE) or secrets.token_urlsafe(32)
