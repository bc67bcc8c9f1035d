"""App passwords: what CalDAV clients send with HTTP Basic auth (RFC 7617) instead of a real password.

An app password of scope ``booking`` is an API token instead: sent as ``Authorization: Bearer`` (RFC 6750
§2.1) it opens free/busy and the booking API only, and HTTP Basic never accepts it. Tokens are made,
hashed, listed, revoked (in every process at once) and throttled as app passwords are.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, delete, insert, select, update

from gateway.accounts.passwords import (
    DUMMY_HASH,
    VerifiedCache,
    app_password_lookup,
    generate_app_password,
    hash_off_loop,
    verify_off_loop,
)
from gateway.accounts.records import (
    SCOPE_ALL,
    SCOPE_BOOKING,
    SCOPES,
    AccountsError,
    AppPasswordRecord,
    NotFoundError,
    app_password_record,
    new_id,
    now,
)
from gateway.accounts.throttle import SignInThrottle
from gateway.accounts.users import Users
from gateway.store.database import Database
from gateway.store.notify import APP_PASSWORD, SIGN_IN
from gateway.store.schema import app_passwords, users

# The verified cache's user name for API tokens: HTTP Basic user names cannot hold a colon (RFC 7617 §2),
# so no Basic pair can ever hit a token's entry.
_TOKEN_USER = "bearer:"


class AppPasswords:
    """The ``app_passwords`` table and the check of a user name + app password pair."""

    def __init__(self, db: Database, users: Users, verified: VerifiedCache, throttle: SignInThrottle) -> None:
        self.db = db
        self.users = users
        self.verified = verified
        self.throttle = throttle

    async def create_app_password(
        self, user_id: str, label: str, clear: str | None = None, scope: str = SCOPE_ALL
    ) -> tuple[AppPasswordRecord, str]:
        """A new app password (or API token, by ``scope``); the clear text is returned once and never stored.

        ``clear`` fixes the password instead of generating one (the demo's ``--password``).
        """
        if scope not in SCOPES:
            raise AccountsError(f"scope must be one of {', '.join(SCOPES)}, not {scope!r}")
        await self.users.get_user(user_id)
        clear = clear or generate_app_password()
        row = {
            "id": new_id(),
            "user_id": user_id,
            "label": (label.strip() or ("CalDAV client" if scope == SCOPE_ALL else "Booking tool"))[:200],
            "scope": scope,
            "lookup": app_password_lookup(clear),
            "password_hash": await hash_off_loop(clear),
            "created_at": now(),
            "last_used_at": None,
        }
        async with self.db.engine.begin() as conn:
            await conn.execute(insert(app_passwords).values(**row))
        return app_password_record(row), clear

    async def list_app_passwords(self, user_id: str) -> list[AppPasswordRecord]:
        query = (
            select(app_passwords)
            .where(app_passwords.c.user_id == user_id)
            .order_by(app_passwords.c.created_at)
        )
        async with self.db.engine.connect() as conn:
            return [app_password_record(r) for r in (await conn.execute(query)).mappings()]

    async def revoke_app_password(self, user_id: str, app_password_id: str) -> None:
        async with self.db.engine.begin() as conn:
            result = await conn.execute(
                delete(app_passwords).where(
                    app_passwords.c.id == app_password_id, app_passwords.c.user_id == user_id
                )
            )
            # every process stops accepting it when this commits (gateway/store/notify.py)
            await self.db.invalidations.announce(conn, APP_PASSWORD, app_password_id)
        self.db.invalidations.drop(APP_PASSWORD, app_password_id)
        if result.rowcount == 0:
            raise NotFoundError("no such app password")

    async def verify(self, username: str, password: str, client: str = "") -> str | None:
        """The id of the user whose app password this is, or None.

        Raises TooManyFailures, without checking the password, after too many failures for the user or
        from address ``client`` (``gateway.accounts.throttle``); the check comes first, so guesses cannot
        go on against the cache below. A pair verified within ``cache_seconds`` is not hashed again
        (clients send it on every request).
        """
        name = username.strip().lower()
        with self.throttle.begin("dav", name, client) as attempt:  # a failure unless it succeeds
            cached = self.verified.get(username, password)
            if cached is not None:
                attempt.succeeded()
                return cached.user_id
            # which password and user it is shows only after the check: any revocation or user deletion
            # meanwhile (rare) keeps it out of the cache
            tokens = [(kind, self.db.invalidations.token(kind)) for kind in (APP_PASSWORD, SIGN_IN)]
            found = await self._check(name, password)
            if found is not None:
                attempt.succeeded()
                user_id, ap_id = found
                if all(self.db.invalidations.still(token, kind) for kind, token in tokens):
                    self.verified.put(username, password, user_id, ap_id)
                await self._touch(ap_id)
                return user_id
        return None

    async def verify_token(self, token: str, client: str = "") -> str | None:
        """The id of the user whose API token (scope ``booking``) this is, or None; throttled per address
        and cached as :meth:`verify` is (a token is its own user name: it names no user)."""
        lookup = app_password_lookup(token)
        with self.throttle.begin("token", f"token:{lookup}", client) as attempt:
            cached = self.verified.get(_TOKEN_USER, token)
            if cached is not None:
                attempt.succeeded()
                return cached.user_id
            tokens = [(kind, self.db.invalidations.token(kind)) for kind in (APP_PASSWORD, SIGN_IN)]
            found = await self._check_rows(
                token, app_passwords.c.lookup == lookup, app_passwords.c.scope == SCOPE_BOOKING
            )
            if found is not None:
                attempt.succeeded()
                user_id, ap_id = found
                if all(self.db.invalidations.still(t, kind) for kind, t in tokens):
                    self.verified.put(_TOKEN_USER, token, user_id, ap_id)
                await self._touch(ap_id)
                return user_id
        return None

    async def _check(self, name: str, password: str) -> tuple[str, str] | None:
        """(user id, app password id) when ``password`` is one of user ``name``'s app passwords (API tokens
        are not: they are never accepted with HTTP Basic)."""
        return await self._check_rows(
            password,
            users.c.username == name,
            app_passwords.c.lookup == app_password_lookup(password),
            app_passwords.c.scope == SCOPE_ALL,
        )

    async def _check_rows(self, password: str, *where: ColumnElement[bool]) -> tuple[str, str] | None:
        """(user id, app password id) of the row chosen by ``where`` whose hash ``password`` matches."""
        async with self.db.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(app_passwords.c.id, app_passwords.c.user_id, app_passwords.c.password_hash)
                    .join(users, users.c.id == app_passwords.c.user_id)
                    .where(*where)
                )
            ).all()
        if not rows:
            await verify_off_loop(password, DUMMY_HASH)  # same cost as a known user
        for ap_id, user_id, stored in rows:
            if await verify_off_loop(password, stored):
                return user_id, ap_id
        return None

    async def _touch(self, app_password_id: str) -> None:
        async with self.db.engine.begin() as conn:
            await conn.execute(
                update(app_passwords).where(app_passwords.c.id == app_password_id).values(last_used_at=now())
            )
