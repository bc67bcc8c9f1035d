"""Connected Exchange accounts and their credentials, sealed by the vault in the ``accounts`` table.

The stored secret is opened only here (for a request, a health check or a key rotation); records
handed to the web pages and the admin API never hold it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.accounts.cache import ExpiringCache
from gateway.accounts.records import AccountRecord, AccountsError, NotFoundError, account_record, new_id, now
from gateway.accounts.settings import SettingsStore, account_options, effective_settings
from gateway.accounts.users import Users
from gateway.accounts.vault import Vault, VaultError
from gateway.caldav.backend import Principal
from gateway.ews.connection import ConnectionInfo, ConnectionSettings, Credentials
from gateway.logsafe import register_secret
from gateway.store.database import Database
from gateway.store.notify import ACCOUNTS, EVERY_KEY
from gateway.store.schema import accounts

log = logging.getLogger(__name__)


class Connector(Protocol):
    """What connecting needs from the EWS layer (``gateway.ews.client.EwsClient``)."""

    async def connect(self, settings: ConnectionSettings) -> ConnectionInfo: ...


@dataclass(frozen=True)
class ConnectRequest:
    """Input of the connect flow. ``server``/``domain``/``username`` are the manual fields."""

    email: str
    password: str = field(repr=False)
    server: str | None = None
    domain: str | None = None
    username: str | None = None
    auth_type: str | None = None


@dataclass(frozen=True)
class ConnectedAccount:
    """An account with its decrypted credentials, as the EWS backend needs them for a request."""

    record: AccountRecord
    credentials: Credentials


class ExchangeAccounts:
    """A user's Exchange accounts, and the two things CalDAV needs about them on every request.

    user id -> Principal and user id -> accounts with decrypted credentials are cached for ``ttl`` seconds,
    dropped in every process when the user's accounts or settings change (gateway/store/notify.py).
    """

    def __init__(
        self,
        db: Database,
        vault: Vault,
        connector: Connector | None,
        users: Users,
        ttl: float,
        settings: SettingsStore,
    ) -> None:
        self.db = db
        self.vault = vault
        self.connector = connector
        self.users = users
        self.settings = settings
        self._principals: ExpiringCache[Principal] = ExpiringCache(ttl)
        self._connected: ExpiringCache[tuple[ConnectedAccount, ...]] = ExpiringCache(ttl)
        db.invalidations.subscribe(ACCOUNTS, self._drop)

    def forget(self, user_id: str | None) -> None:
        """Drop what this process caches of the user's accounts (None: every user's): see it at once."""
        self.db.invalidations.drop(ACCOUNTS, user_id or EVERY_KEY)

    def _drop(self, user_id: str | None) -> None:
        self._principals.forget(user_id)
        self._connected.forget(user_id)

    async def principal(self, user_id: str) -> Principal:
        """The user as CalDAV sees them: the addresses are those of the connected accounts, the default
        calendar the one chosen for new events (by default the first account's primary)."""
        hit = self._principals.get(user_id)
        if hit is not None:
            return hit
        token = self.db.invalidations.token(ACCOUNTS, user_id)
        user = await self.users.get_user(user_id)
        account_list = await self.list_accounts(user_id)
        chosen = effective_settings(await self.settings.settings(user_id), account_list)
        found = Principal(
            user_id=user.user_id,
            username=user.username,
            display_name=user.display_name,
            emails=tuple(a.email for a in account_list),
            default_calendar_id=chosen.add_events_calendar_id,
        )
        if self.db.invalidations.still(token, ACCOUNTS, user_id):  # not changed (anywhere) while read
            self._principals.put(user_id, found)
        return found

    async def connect_account(self, user_id: str, request: ConnectRequest) -> AccountRecord:
        """Autodiscover (or the manual server/domain/username), verify, then store.

        Raises the connector's ``ConnectError`` with a plain-language message when Exchange
        cannot be reached or refuses; nothing is stored then. Connecting an address the user
        already has updates that account (e.g. a changed password).
        """
        await self.users.get_user(user_id)
        if self.connector is None:
            raise AccountsError("this gateway has no EWS client configured")
        email = request.email.strip()
        register_secret(request.password)
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
        self.forget(user_id)  # its address set or its password changes
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
            account_id = existing or new_id()
            await announce_accounts(conn, self.db, user_id)
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
                        created_at=now(),
                        **fields,
                    )
                )
        self.forget(user_id)  # a read meanwhile is not cached
        log.info("user %s connected account %s (%s, %s)", user_id, account_id, info.email, info.version)
        return await self.get_account(user_id, account_id)

    async def list_accounts(self, user_id: str) -> list[AccountRecord]:
        query = select(accounts).where(accounts.c.user_id == user_id).order_by(accounts.c.position)
        async with self.db.engine.connect() as conn:
            return [account_record(r) for r in (await conn.execute(query)).mappings()]

    async def connected_accounts(self, user_id: str, *, fresh: bool = False) -> list[ConnectedAccount]:
        """The user's accounts in order, each with its credentials decrypted: what every CalDAV request
        needs to reach Exchange. One database query and one AES-GCM opening per account, then cached
        and forgotten as soon as the user's accounts change in this process; ``fresh`` reads the
        database in any case (changes made by another process or replica).

        Raises :class:`~gateway.accounts.vault.VaultError` when a stored secret cannot be opened.
        """
        hit = None if fresh else self._connected.get(user_id)
        if hit is not None:
            return list(hit)
        self._connected.forget(user_id)
        token = self.db.invalidations.token(ACCOUNTS, user_id)
        query = select(accounts).where(accounts.c.user_id == user_id).order_by(accounts.c.position)
        async with self.db.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        records = [(account_record(row), row["secret"]) for row in rows]
        found = tuple(ConnectedAccount(record, self._open(record, secret)) for record, secret in records)
        if self.db.invalidations.still(token, ACCOUNTS, user_id):
            self._connected.put(user_id, found)
        return list(found)

    async def get_account(self, user_id: str, account_id: str) -> AccountRecord:
        query = select(accounts).where(accounts.c.id == account_id, accounts.c.user_id == user_id)
        async with self.db.engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        if row is None:
            raise NotFoundError("no such account")
        return account_record(row)

    async def remove_account(self, user_id: str, account_id: str) -> None:
        """Deletes the account row, and with it the stored credentials."""
        async with self.db.engine.begin() as conn:
            result = await conn.execute(
                delete(accounts).where(accounts.c.id == account_id, accounts.c.user_id == user_id)
            )
            await announce_accounts(conn, self.db, user_id)
        self.forget(user_id)
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
        """Sets the options given (None: unchanged), checked by :func:`settings.account_options`."""
        values = account_options(working_elsewhere, invitations)
        await self.get_account(user_id, account_id)
        if values:
            async with self.db.engine.begin() as conn:
                await conn.execute(update(accounts).where(accounts.c.id == account_id).values(**values))
                await announce_accounts(conn, self.db, user_id)
            self.forget(user_id)  # the backend reads these options from the cached records
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

    def _open(self, account: AccountRecord, sealed: str) -> Credentials:
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
            await announce_accounts(conn, self.db, EVERY_KEY)
        self.forget(None)
        return count


async def announce_accounts(conn: AsyncConnection, db: Database, user_id: str) -> None:
    """Inside a transaction changing a user's accounts or settings (``*``: every user's): every process
    drops what it caches of them when it commits (gateway/store/notify.py)."""
    await db.invalidations.announce(conn, ACCOUNTS, user_id)


def _secret_document(auth_type: str, secret: str) -> dict[str, str]:
    """The JSON the vault seals: a password, or an OAuth2 token (refresh tokens fit beside it)."""
    if auth_type == "oauth2":
        return {"kind": "oauth2", "access_token": secret}
    return {"kind": "password", "password": secret}
