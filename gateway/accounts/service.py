"""Gateway users, their connected Exchange accounts, app passwords and settings.

This is the one flow behind the three surfaces (web pages, admin JSON API, CLI).
Secrets are sealed by :class:`~gateway.accounts.vault.Vault` before they reach the
database and are opened only in :meth:`AccountService.credentials`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from gateway.accounts.passwords import (
    DUMMY_HASH,
    LoginThrottle,
    VerifiedCache,
    app_password_lookup,
    generate_app_password,
    hash_password,
    verify_password,
)
from gateway.accounts.vault import Vault, VaultError
from gateway.caldav.backend import Principal
from gateway.ews.calendar_ids import primary_calendar_id
from gateway.ews.client import ConnectionInfo, ConnectionSettings, Credentials
from gateway.store.database import Database
from gateway.store.schema import accounts, app_passwords, user_settings, users

log = logging.getLogger(__name__)
V = TypeVar("V")

WORKING_ELSEWHERE_CHOICES = ("FREE", "BUSY-TENTATIVE", "BUSY")
INVITATION_CHOICES = ("auto", "never")
_USERNAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789._-@")


class AccountsError(Exception):
    """A request the service refuses; ``str()`` is a sentence for the user."""


class NotFoundError(AccountsError):
    """No such user/account/app password (or not this user's)."""


class Connector(Protocol):
    """What connecting needs from the EWS layer (``gateway.ews.client.EwsClient``)."""

    async def connect(self, settings: ConnectionSettings) -> ConnectionInfo: ...


@dataclass(frozen=True)
class UserRecord:
    user_id: str
    username: str
    display_name: str
    has_password: bool
    created_at: datetime


@dataclass(frozen=True)
class AccountRecord:
    """A connected Exchange mailbox. Holds no secret."""

    account_id: str
    user_id: str
    email: str
    ews_url: str
    auth_type: str
    username: str
    version: str
    build: str
    display_name: str | None
    working_elsewhere: str  # "FREE" | "BUSY-TENTATIVE" | "BUSY"
    invitations: str  # "auto" | "never"


@dataclass(frozen=True)
class AppPasswordRecord:
    app_password_id: str
    user_id: str
    label: str
    created_at: datetime
    last_used_at: datetime | None


@dataclass(frozen=True)
class ConnectedAccount:
    """An account with its decrypted credentials, as the EWS backend needs them for a request."""

    record: AccountRecord
    credentials: Credentials


@dataclass(frozen=True)
class UserSettings:
    conflict_calendar_ids: tuple[str, ...] | None = None  # None = each account's primary calendar
    add_events_calendar_id: str | None = None  # None = the first account's primary calendar


@dataclass(frozen=True)
class ConnectRequest:
    """Input of the connect flow. ``server``/``domain``/``username`` are the manual fields."""

    email: str
    password: str = field(repr=False)
    server: str | None = None
    domain: str | None = None
    username: str | None = None
    auth_type: str | None = None


def _now() -> datetime:
    return datetime.now(UTC)


def _new_id() -> str:
    return secrets.token_hex(6)


class AccountService:
    """Users, accounts, app passwords, settings. Also the CalDAV ``Authenticator``."""

    def __init__(
        self,
        db: Database,
        vault: Vault,
        connector: Connector | None,
        *,
        cache_seconds: float = 60.0,
        throttle: LoginThrottle | None = None,
    ) -> None:
        self.db = db
        self.vault = vault
        self.connector = connector
        self.verified = VerifiedCache(cache_seconds)
        self.throttle = throttle or LoginThrottle()
        # user id -> (expiry, Principal) and (expiry, accounts with decrypted credentials): CalDAV needs
        # both on every request. Forgotten when the user's accounts change in this process (_forget);
        # other replicas see a change within cache_seconds, as for the verified app passwords.
        self._principals: _ExpiringCache[Principal] = _ExpiringCache(self.verified.ttl)
        self._connected: _ExpiringCache[tuple[ConnectedAccount, ...]] = _ExpiringCache(self.verified.ttl)

    # --- users -------------------------------------------------------------------------

    async def create_user(
        self, username: str, password: str | None = None, display_name: str | None = None
    ) -> UserRecord:
        username = username.strip().lower()
        if not username or not set(username) <= _USERNAME_CHARS or len(username) > 200:
            raise AccountsError("a user name uses only letters, digits and . _ - @")
        pw_hash = await _hash(password) if password else None
        row = {
            "id": _new_id(),
            "username": username,
            "display_name": (display_name or username).strip(),
            "password_hash": pw_hash,
            "created_at": _now(),
        }
        try:
            async with self.db.engine.begin() as conn:
                await conn.execute(insert(users).values(**row))
        except IntegrityError:
            raise AccountsError(f"the user name {username!r} is taken") from None
        return _user(row)

    async def list_users(self) -> list[UserRecord]:
        async with self.db.engine.connect() as conn:
            rows = (await conn.execute(select(users).order_by(users.c.username))).mappings()
            return [_user(r) for r in rows]

    async def get_user(self, user_id: str) -> UserRecord:
        async with self.db.engine.connect() as conn:
            row = (await conn.execute(select(users).where(users.c.id == user_id))).mappings().first()
        if row is None:
            raise NotFoundError("no such user")
        return _user(row)

    async def find_user(self, username: str) -> UserRecord | None:
        async with self.db.engine.connect() as conn:
            row = (
                (await conn.execute(select(users).where(users.c.username == username.strip().lower())))
                .mappings()
                .first()
            )
        return _user(row) if row else None

    async def set_user_password(self, user_id: str, password: str) -> None:
        pw_hash = await _hash(password)
        async with self.db.engine.begin() as conn:
            result = await conn.execute(
                update(users).where(users.c.id == user_id).values(password_hash=pw_hash)
            )
        if result.rowcount == 0:
            raise NotFoundError("no such user")

    async def delete_user(self, user_id: str) -> None:
        """Deletes the user with every account (and so every stored credential)."""
        self._forget(user_id)
        async with self.db.engine.begin() as conn:
            await conn.execute(delete(accounts).where(accounts.c.user_id == user_id))
            result = await conn.execute(delete(users).where(users.c.id == user_id))
        if result.rowcount == 0:
            raise NotFoundError("no such user")
        self.verified.forget(user_id=user_id)

    async def sign_in(self, username: str, password: str) -> UserRecord | None:
        """Web sign-in with the user's own password; failures are slowed down."""
        name = username.strip().lower()
        async with self.db.engine.connect() as conn:
            row = (await conn.execute(select(users).where(users.c.username == name))).mappings().first()
        # An unknown user costs the same hash as a known one: timing does not reveal names.
        stored = row["password_hash"] if row and row["password_hash"] else DUMMY_HASH
        if await _verify(password, stored) and stored is not DUMMY_HASH:
            self.throttle.succeeded(f"web:{name}")
            return _user(row)
        await self.throttle.failed(f"web:{name}")
        return None

    # --- app passwords and the CalDAV Authenticator --------------------------------------

    async def create_app_password(
        self, user_id: str, label: str, clear: str | None = None
    ) -> tuple[AppPasswordRecord, str]:
        """A new app password; the clear text is returned once and never stored.

        ``clear`` fixes the password instead of generating one (the demo's ``--password``).
        """
        await self.get_user(user_id)
        clear = clear or generate_app_password()
        row = {
            "id": _new_id(),
            "user_id": user_id,
            "label": (label.strip() or "CalDAV client")[:200],
            "lookup": app_password_lookup(clear),
            "password_hash": await _hash(clear),
            "created_at": _now(),
            "last_used_at": None,
        }
        async with self.db.engine.begin() as conn:
            await conn.execute(insert(app_passwords).values(**row))
        return _app_password(row), clear

    async def list_app_passwords(self, user_id: str) -> list[AppPasswordRecord]:
        query = (
            select(app_passwords)
            .where(app_passwords.c.user_id == user_id)
            .order_by(app_passwords.c.created_at)
        )
        async with self.db.engine.connect() as conn:
            return [_app_password(r) for r in (await conn.execute(query)).mappings()]

    async def revoke_app_password(self, user_id: str, app_password_id: str) -> None:
        async with self.db.engine.begin() as conn:
            result = await conn.execute(
                delete(app_passwords).where(
                    app_passwords.c.id == app_password_id, app_passwords.c.user_id == user_id
                )
            )
        if result.rowcount == 0:
            raise NotFoundError("no such app password")
        self.verified.forget(app_password_id=app_password_id)

    async def authenticate(self, username: str, password: str) -> Principal | None:
        """CalDAV Basic auth: gateway user name + one of the user's app passwords."""
        cached = self.verified.get(username, password)
        if cached is not None:
            return await self.principal(cached.user_id)
        name = username.strip().lower()
        async with self.db.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(app_passwords.c.id, app_passwords.c.user_id, app_passwords.c.password_hash)
                    .join(users, users.c.id == app_passwords.c.user_id)
                    .where(users.c.username == name, app_passwords.c.lookup == app_password_lookup(password))
                )
            ).all()
        if not rows:
            await _verify(password, DUMMY_HASH)  # same cost as a known user
        for ap_id, user_id, stored in rows:
            if await _verify(password, stored):
                self.throttle.succeeded(f"dav:{name}")
                self.verified.put(username, password, user_id, ap_id)
                await self._touch_app_password(ap_id)
                return await self.principal(user_id)
        await self.throttle.failed(f"dav:{name}")
        return None

    async def _touch_app_password(self, app_password_id: str) -> None:
        async with self.db.engine.begin() as conn:
            await conn.execute(
                update(app_passwords).where(app_passwords.c.id == app_password_id).values(last_used_at=_now())
            )

    async def principal(self, user_id: str) -> Principal:
        hit = self._principals.get(user_id)
        if hit is not None:
            return hit
        user = await self.get_user(user_id)
        emails = tuple(a.email for a in await self.list_accounts(user_id))
        found = Principal(
            user_id=user.user_id, username=user.username, display_name=user.display_name, emails=emails
        )
        self._principals.put(user_id, found)
        return found

    def _forget(self, user_id: str | None) -> None:
        """Drop what is cached about the user's accounts (None: every user's), so a change is seen at once."""
        self._principals.forget(user_id)
        self._connected.forget(user_id)

    def forget_credentials(self, user_id: str) -> None:
        """Exchange refused the cached credentials: the next request reads them from the database again
        (another replica or the CLI may have stored a new password)."""
        self._forget(user_id)

    # --- Exchange accounts -----------------------------------------------------------------

    async def connect_account(self, user_id: str, request: ConnectRequest) -> AccountRecord:
        """Autodiscover (or the manual server/domain/username), verify, then store.

        Raises ``gateway.ews.client.ConnectError`` with a plain-language message when
        Exchange cannot be reached or refuses; nothing is stored then. Connecting an
        address the user already has updates that account (e.g. a changed password).
        """
        await self.get_user(user_id)
        if self.connector is None:
            raise AccountsError("this gateway has no EWS client configured")
        email = request.email.strip()
        credentials = Credentials(
            username=(request.username or "").strip() or email,
            password=request.password,
            auth_type=request.auth_type,
        )
        settings = ConnectionSettings(
            email=email,
            credentials=credentials,
            server=(request.server or "").strip() or None,
            domain=(request.domain or "").strip() or None,
        )
        info = await self.connector.connect(settings)
        return await self._store_account(user_id, info, request.password)

    async def _store_account(self, user_id: str, info: ConnectionInfo, password: str) -> AccountRecord:
        self._forget(user_id)  # its address set or its password changes
        fields = {
            "email": info.email,
            "ews_url": info.ews_url,
            "auth_type": info.auth_type,
            "username": info.username,
            "version": info.version,
            "build": info.build,
            "display_name": info.display_name,
        }
        async with self.db.engine.begin() as conn:
            existing = (
                await conn.execute(
                    select(accounts.c.id).where(
                        accounts.c.user_id == user_id, func.lower(accounts.c.email) == info.email.lower()
                    )
                )
            ).scalar()
            account_id = existing or _new_id()
            secret = self.vault.seal(account_id, _secret_document(info.auth_type, password))
            if existing:
                await conn.execute(
                    update(accounts).where(accounts.c.id == account_id).values(secret=secret, **fields)
                )
            else:
                position = (
                    await conn.execute(
                        select(func.coalesce(func.max(accounts.c.position), 0)).where(
                            accounts.c.user_id == user_id
                        )
                    )
                ).scalar_one() + 1
                await conn.execute(
                    insert(accounts).values(
                        id=account_id,
                        user_id=user_id,
                        position=position,
                        working_elsewhere="FREE",
                        invitations="auto",
                        secret=secret,
                        created_at=_now(),
                        **fields,
                    )
                )
        log.info("user %s connected account %s (%s, %s)", user_id, account_id, info.email, info.version)
        return await self.get_account(user_id, account_id)

    async def list_accounts(self, user_id: str) -> list[AccountRecord]:
        query = select(accounts).where(accounts.c.user_id == user_id).order_by(accounts.c.position)
        async with self.db.engine.connect() as conn:
            return [_account(r) for r in (await conn.execute(query)).mappings()]

    async def connected_accounts(self, user_id: str, *, fresh: bool = False) -> list[ConnectedAccount]:
        """The user's accounts in order, each with its credentials decrypted: what every CalDAV request
        needs to reach Exchange. One database query and one AES-GCM opening per account, then cached for
        ``cache_seconds`` and forgotten as soon as the user's accounts change in this process; ``fresh``
        reads the database in any case (changes made by another process or replica).

        Raises :class:`~gateway.accounts.vault.VaultError` when a stored secret cannot be opened.
        """
        hit = None if fresh else self._connected.get(user_id)
        if hit is not None:
            return list(hit)
        self._connected.forget(user_id)
        query = select(accounts).where(accounts.c.user_id == user_id).order_by(accounts.c.position)
        async with self.db.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        found = tuple(
            ConnectedAccount(record, self._open(record, row["secret"]))
            for row in rows
            for record in (_account(row),)
        )
        self._connected.put(user_id, found)
        return list(found)

    async def get_account(self, user_id: str, account_id: str) -> AccountRecord:
        query = select(accounts).where(accounts.c.id == account_id, accounts.c.user_id == user_id)
        async with self.db.engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        if row is None:
            raise NotFoundError("no such account")
        return _account(row)

    async def remove_account(self, user_id: str, account_id: str) -> None:
        """Deletes the account row, and with it the stored credentials."""
        async with self.db.engine.begin() as conn:
            result = await conn.execute(
                delete(accounts).where(accounts.c.id == account_id, accounts.c.user_id == user_id)
            )
        self._forget(user_id)
        if result.rowcount == 0:
            raise NotFoundError("no such account")

    async def set_account_options(
        self,
        user_id: str,
        account_id: str,
        *,
        working_elsewhere: str | None = None,
        invitations: str | None = None,
    ) -> AccountRecord:
        values: dict[str, Any] = {}
        if working_elsewhere is not None:
            if working_elsewhere not in WORKING_ELSEWHERE_CHOICES:
                raise AccountsError(
                    f"working_elsewhere must be one of {', '.join(WORKING_ELSEWHERE_CHOICES)}"
                )
            values["working_elsewhere"] = working_elsewhere
        if invitations is not None:
            if invitations not in INVITATION_CHOICES:
                raise AccountsError(f"invitations must be one of {', '.join(INVITATION_CHOICES)}")
            values["invitations"] = invitations
        await self.get_account(user_id, account_id)
        if values:
            async with self.db.engine.begin() as conn:
                await conn.execute(update(accounts).where(accounts.c.id == account_id).values(**values))
            self._forget(user_id)  # the backend reads these options from the cached records
        return await self.get_account(user_id, account_id)

    async def credentials(self, account: AccountRecord) -> Credentials:
        """The account's credentials, decrypted in memory for an EWS call.

        Raises :class:`~gateway.accounts.vault.VaultError` (naming the account, not the
        secret) when the key is wrong or the row was tampered with.
        """
        async with self.db.engine.connect() as conn:
            sealed = (
                await conn.execute(select(accounts.c.secret).where(accounts.c.id == account.account_id))
            ).scalar()
        if sealed is None:
            raise NotFoundError("no such account")
        return self._open(account, sealed)

    def _open(self, account: AccountRecord, sealed: Any) -> Credentials:
        secret = self.vault.open(account.account_id, sealed)
        value = secret["access_token"] if secret.get("kind") == "oauth2" else secret["password"]
        return Credentials(username=account.username, password=value, auth_type=account.auth_type)

    async def credential_problems(self, user_id: str) -> dict[str, str]:
        """account_id -> why its stored credentials cannot be used (wrong key, tampering)."""
        problems = {}
        async with self.db.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(accounts.c.id, accounts.c.secret).where(accounts.c.user_id == user_id)
                )
            ).all()
        for account_id, sealed in rows:
            try:
                self.vault.open(account_id, sealed)
            except VaultError as exc:
                problems[account_id] = str(exc)
        return problems

    async def rotate_keys(self) -> int:
        """Re-encrypts every row not sealed under the current key; returns how many.

        Runs in one transaction: either every row moves to the new key or none does.
        """
        count = 0
        async with self.db.engine.begin() as conn:
            rows = (await conn.execute(select(accounts.c.id, accounts.c.secret))).all()
            for account_id, sealed in rows:
                if not self.vault.needs_rotation(sealed):
                    continue
                resealed = self.vault.seal(account_id, self.vault.open(account_id, sealed))
                await conn.execute(
                    update(accounts).where(accounts.c.id == account_id).values(secret=resealed)
                )
                count += 1
        self._forget(None)
        return count

    # --- per-user settings -----------------------------------------------------------------

    async def settings(self, user_id: str) -> UserSettings:
        async with self.db.engine.connect() as conn:
            row = (
                (await conn.execute(select(user_settings).where(user_settings.c.user_id == user_id)))
                .mappings()
                .first()
            )
        if row is None:
            return UserSettings()
        ids = row["conflict_calendar_ids"]
        return UserSettings(
            conflict_calendar_ids=tuple(json.loads(ids)) if ids is not None else None,
            add_events_calendar_id=row["add_events_calendar_id"],
        )

    async def save_settings(self, user_id: str, new: UserSettings) -> UserSettings:
        """Stores the user's calendar choices. Ids must name the user's own calendars
        (callers that know the calendar list check that; see ``web.pages``)."""
        await self.get_user(user_id)
        values = {
            "conflict_calendar_ids": json.dumps(list(new.conflict_calendar_ids))
            if new.conflict_calendar_ids is not None
            else None,
            "add_events_calendar_id": new.add_events_calendar_id,
        }
        async with self.db.engine.begin() as conn:
            result = await conn.execute(
                update(user_settings).where(user_settings.c.user_id == user_id).values(**values)
            )
            if result.rowcount == 0:
                await conn.execute(insert(user_settings).values(user_id=user_id, **values))
        return await self.settings(user_id)


class _ExpiringCache(Generic[V]):
    """user id -> value for ``ttl`` seconds (0: nothing is kept), at most ``size`` users (oldest dropped)."""

    def __init__(self, ttl: float, size: int = 10_000) -> None:
        self.ttl = ttl
        self.size = size
        self._entries: OrderedDict[str, tuple[float, V]] = OrderedDict()

    def get(self, user_id: str) -> V | None:
        hit = self._entries.get(user_id)
        if hit is None:
            return None
        if hit[0] <= time.monotonic():
            self._entries.pop(user_id, None)
            return None
        return hit[1]

    def put(self, user_id: str, value: V) -> None:
        if self.ttl <= 0:
            return
        self._entries[user_id] = (time.monotonic() + self.ttl, value)
        self._entries.move_to_end(user_id)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def forget(self, user_id: str | None) -> None:
        if user_id is None:
            self._entries.clear()
        else:
            self._entries.pop(user_id, None)


# scrypt (N=2^14, r=8) needs a 16 MB buffer per hash. Run on asyncio's default executor, every one of its
# threads would keep such a buffer in its own malloc arena after the first sign-ins (about 100 MB on a
# 2-core machine); two dedicated threads bound that, and more would not hash faster on a few cores.
_HASHING = ThreadPoolExecutor(max_workers=2, thread_name_prefix="password-hash")


async def _hash(password: str) -> str:
    """``hash_password`` off the event loop, on the password-hashing threads."""
    return await asyncio.get_running_loop().run_in_executor(_HASHING, hash_password, password)


async def _verify(password: str, stored: str) -> bool:
    """``verify_password`` off the event loop, on the password-hashing threads."""
    return await asyncio.get_running_loop().run_in_executor(_HASHING, verify_password, password, stored)


def effective_settings(settings: UserSettings, account_list: Sequence[AccountRecord]) -> UserSettings:
    """The settings with defaults filled in: every primary for conflicts, the first primary for new events."""
    primaries = tuple(primary_calendar_id(a.account_id) for a in account_list)
    return UserSettings(
        conflict_calendar_ids=settings.conflict_calendar_ids
        if settings.conflict_calendar_ids is not None
        else primaries,
        add_events_calendar_id=settings.add_events_calendar_id or (primaries[0] if primaries else None),
    )


def _secret_document(auth_type: str, secret: str) -> dict[str, str]:
    """The JSON the vault seals: a password, or an OAuth2 token (refresh tokens fit beside it)."""
    if auth_type == "oauth2":
        return {"kind": "oauth2", "access_token": secret}
    return {"kind": "password", "password": secret}


def _user(row: Any) -> UserRecord:
    return UserRecord(
        user_id=row["id"],
        username=row["username"],
        display_name=row["display_name"],
        has_password=row["password_hash"] is not None,
        created_at=row["created_at"],
    )


def _account(row: Any) -> AccountRecord:
    return AccountRecord(
        account_id=row["id"],
        user_id=row["user_id"],
        email=row["email"],
        ews_url=row["ews_url"],
        auth_type=row["auth_type"],
        username=row["username"],
        version=row["version"],
        build=row["build"],
        display_name=row["display_name"],
        working_elsewhere=row["working_elsewhere"],
        invitations=row["invitations"],
    )


def _app_password(row: Any) -> AppPasswordRecord:
    return AppPasswordRecord(
        app_password_id=row["id"],
        user_id=row["user_id"],
        label=row["label"],
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
    )
