"""App passwords: what CalDAV clients send with HTTP Basic auth (RFC 7617) instead of a real password.

An app password of scope ``booking`` is an API token instead: sent as ``Authorization: Bearer`` (RFC 6750
§2.1) it opens free/busy and the booking API only, and HTTP Basic never accepts it. Tokens are made,
hashed, listed, revoked (in every process at once) and throttled as app passwords are.
"""

from __future__ import annotations

import asyncio
import logging
import time

from sqlalchemy import ColumnElement, delete, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from gateway.accounts.passwords import (
    DUMMY_GENERATED_HASH,
    VerifiedCache,
    app_password_lookup,
    generate_app_password,
    hash_generated_secret,
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

log = logging.getLogger(__name__)

# ``last_used_at`` is written at most this often per app password and process, after the answer: it
# tells the user which passwords are in use, to the day, and must not cost a sign-in a database write
# (100 clients starting together on SQLite waited up to 30 s for those, and a few got 500).
TOUCH_EVERY_SECONDS = 300.0


class AppPasswords:
    """The ``app_passwords`` table and the check of a user name + app password pair."""

    def __init__(self, db: Database, users: Users, verified: VerifiedCache, throttle: SignInThrottle) -> None:
        self.db = db
        self.users = users
        self.verified = verified
        self.throttle = throttle
        self._touched: dict[str, float] = {}  # app password id -> monotonic time of its last recorded use
        self._touching: set[asyncio.Task[None]] = set()

    async def create_app_password(
        self,
        user_id: str,
        label: str,
        clear: str | None = None,
        scope: str = SCOPE_ALL,
        *,
        stored: str | None = None,
    ) -> tuple[AppPasswordRecord, str]:
        """A new app password (or API token, by ``scope``); the clear text is returned once and never stored.

        ``clear`` fixes the password instead of generating one (the demo's ``--password``): a chosen
        password gets the slow hash (``stored``, when the caller made it already), a generated one the
        fast (``passwords.hash_generated_secret``).
        """
        if scope not in SCOPES:
            raise AccountsError(f"scope must be one of {', '.join(SCOPES)}, not {scope!r}")
        await self.users.get_user(user_id)
        stored = (stored or await hash_off_loop(clear)) if clear else None
        clear = clear or generate_app_password()
        row = {
            "id": new_id(),
            "user_id": user_id,
            "label": (label.strip() or ("CalDAV client" if scope == SCOPE_ALL else "Booking tool"))[:200],
            "scope": scope,
            "lookup": app_password_lookup(clear),
            "password_hash": stored or hash_generated_secret(clear),
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

        The candidate rows are read before the attempt is counted: a generated app password's fast hash
        is then checked with no wait between counting the attempt and its outcome, so sign-ins of many
        clients behind one address are never "at once" for the throttle (a hundred clients starting
        together got 429 while their attempts waited for the database, docs/PERFORMANCE.md).
        """
        name = username.strip().lower()
        return await self._verified(
            ("dav", name, client),
            username,
            password,
            users.c.username == name,
            app_passwords.c.lookup == app_password_lookup(password),
            app_passwords.c.scope == SCOPE_ALL,  # API tokens are never accepted with HTTP Basic
        )

    async def verify_token(self, token: str, client: str = "") -> str | None:
        """The id of the user whose API token (scope ``booking``) this is, or None; throttled per address
        and cached as :meth:`verify` is (a token is its own user name: it names no user)."""
        lookup = app_password_lookup(token)
        return await self._verified(
            ("token", f"token:{lookup}", client),
            _TOKEN_USER,
            token,
            app_passwords.c.lookup == lookup,
            app_passwords.c.scope == SCOPE_BOOKING,
        )

    async def _verified(
        self, attempt_of: tuple[str, str, str], username: str, secret: str, *where: ColumnElement[bool]
    ) -> str | None:
        """The user id of the app password or token ``where`` chooses whose hash ``secret`` matches, or
        None: throttled as ``attempt_of`` (kind, user, client address), verified pairs cached."""
        cached = self.verified.get(username, secret)
        # which password and user it is shows only after the check: any revocation or user deletion
        # meanwhile (rare) keeps it out of the cache; taken before the rows are read
        tokens = [(kind, self.db.invalidations.token(kind)) for kind in (APP_PASSWORD, SIGN_IN)]
        rows = [] if cached is not None else await self._candidates(*where)
        with self.throttle.begin(*attempt_of) as attempt:  # a failure unless it succeeds
            if cached is not None:
                attempt.succeeded()
                return cached.user_id
            found = await self._check(rows, secret)
            if found is not None:
                attempt.succeeded()
                user_id, ap_id = found
                if all(self.db.invalidations.still(token, kind) for kind, token in tokens):
                    self.verified.put(username, secret, user_id, ap_id)
                self._touch_soon(ap_id)
                return user_id
        return None

    async def _candidates(self, *where: ColumnElement[bool]) -> list[tuple[str, str, str]]:
        """(app password id, user id, stored hash) of the app passwords chosen by ``where``."""
        async with self.db.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(app_passwords.c.id, app_passwords.c.user_id, app_passwords.c.password_hash)
                    .join(users, users.c.id == app_passwords.c.user_id)
                    .where(*where)
                )
            ).all()
        return [(ap_id, user_id, stored) for ap_id, user_id, stored in rows]

    @staticmethod
    async def _check(rows: list[tuple[str, str, str]], password: str) -> tuple[str, str] | None:
        """(user id, app password id) when ``password`` matches one of ``rows`` (a fast hash: without
        suspending; a chosen password's scrypt: on the hashing threads)."""
        if not rows:
            await verify_off_loop(password, DUMMY_GENERATED_HASH)  # same cost as a known user
        for ap_id, user_id, stored in rows:
            if await verify_off_loop(password, stored):
                return user_id, ap_id
        return None

    def _touch_soon(self, app_password_id: str) -> None:
        """Record the use in the background, unless this process did so within TOUCH_EVERY_SECONDS."""
        moment = time.monotonic()
        last = self._touched.get(app_password_id)
        if last is not None and moment - last < TOUCH_EVERY_SECONDS:
            return
        self._touched[app_password_id] = moment
        task = asyncio.create_task(self._touch(app_password_id))
        self._touching.add(task)  # kept until done (the loop holds tasks only weakly)
        task.add_done_callback(self._touching.discard)

    async def _touch(self, app_password_id: str) -> None:
        try:
            async with self.db.engine.begin() as conn:
                await conn.execute(
                    update(app_passwords)
                    .where(app_passwords.c.id == app_password_id)
                    .values(last_used_at=now())
                )
        except SQLAlchemyError as exc:  # a busy database: the sign-in stands, the date waits for the next one
            self._touched.pop(app_password_id, None)
            log.warning("could not record the use of an app password: %s", type(exc).__name__)
