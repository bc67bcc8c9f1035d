"""Gateway users and their web sign-in (the user's own password, never an Exchange one)."""

from __future__ import annotations

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from gateway.accounts.passwords import DUMMY_HASH, hash_off_loop, verify_off_loop
from gateway.accounts.records import AccountsError, NotFoundError, UserRecord, new_id, now, user_record
from gateway.accounts.throttle import SignInThrottle
from gateway.store.database import Database
from gateway.store.notify import ACCOUNTS, SIGN_IN
from gateway.store.schema import accounts, users

_USERNAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789._-@")


class Users:
    """The ``users`` table: create, look up, delete, and sign in with the web password."""

    def __init__(self, db: Database, throttle: SignInThrottle) -> None:
        self.db = db
        self.throttle = throttle

    async def create_user(
        self, username: str, password: str | None = None, display_name: str | None = None
    ) -> UserRecord:
        username = username.strip().lower()
        if not username or not set(username) <= _USERNAME_CHARS or len(username) > 200:
            raise AccountsError("a user name uses only letters, digits and . _ - @")
        display_name = (display_name or username).strip()
        if len(display_name) > 200:  # the column's length (schema.py), which PostgreSQL enforces
            raise AccountsError("a display name is at most 200 characters")
        pw_hash = await hash_off_loop(password) if password else None
        row = {
            "id": new_id(),
            "username": username,
            "display_name": display_name,
            "password_hash": pw_hash,
            "created_at": now(),
        }
        try:
            async with self.db.engine.begin() as conn:
                await conn.execute(insert(users).values(**row))
        except IntegrityError:
            raise AccountsError(f"the user name {username!r} is taken") from None
        return user_record(row)

    async def list_users(self) -> list[UserRecord]:
        async with self.db.engine.connect() as conn:
            rows = (await conn.execute(select(users).order_by(users.c.username))).mappings()
            return [user_record(r) for r in rows]

    async def get_user(self, user_id: str) -> UserRecord:
        async with self.db.engine.connect() as conn:
            row = (await conn.execute(select(users).where(users.c.id == user_id))).mappings().first()
        if row is None:
            raise NotFoundError("no such user")
        return user_record(row)

    async def find_user(self, username: str) -> UserRecord | None:
        async with self.db.engine.connect() as conn:
            row = (
                (await conn.execute(select(users).where(users.c.username == username.strip().lower())))
                .mappings()
                .first()
            )
        return user_record(row) if row else None

    async def set_user_password(self, user_id: str, password: str, *, stored: str | None = None) -> None:
        """The web sign-in password; ``stored``: its slow hash when the caller made one already."""
        pw_hash = stored or await hash_off_loop(password)
        async with self.db.engine.begin() as conn:
            result = await conn.execute(
                update(users).where(users.c.id == user_id).values(password_hash=pw_hash)
            )
        if result.rowcount == 0:
            raise NotFoundError("no such user")

    async def delete_user(self, user_id: str) -> None:
        """Deletes the user with every account (and so every stored credential)."""
        async with self.db.engine.begin() as conn:
            await conn.execute(delete(accounts).where(accounts.c.user_id == user_id))
            result = await conn.execute(delete(users).where(users.c.id == user_id))
            for kind in (ACCOUNTS, SIGN_IN):  # every process forgets the user's accounts and app passwords
                await self.db.invalidations.announce(conn, kind, user_id)
        for kind in (ACCOUNTS, SIGN_IN):
            self.db.invalidations.drop(kind, user_id)
        if result.rowcount == 0:
            raise NotFoundError("no such user")

    async def sign_in(self, username: str, password: str, client: str = "") -> UserRecord | None:
        """Web sign-in with the user's own password from address ``client``.

        Raises TooManyFailures, without checking the password, after too many failures
        (``gateway.accounts.throttle``).
        """
        name = username.strip().lower()
        with self.throttle.begin("web", name, client) as attempt:  # a failure unless it succeeds
            async with self.db.engine.connect() as conn:
                row = (await conn.execute(select(users).where(users.c.username == name))).mappings().first()
            # An unknown user costs the same hash as a known one: timing does not reveal names.
            stored = row["password_hash"] if row and row["password_hash"] else DUMMY_HASH
            if await verify_off_loop(password, stored) and stored is not DUMMY_HASH:
                attempt.succeeded()
                return user_record(row)
        return None
