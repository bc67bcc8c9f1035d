"""Gateway users, their connected Exchange accounts, app passwords and settings.

This is the one flow behind the three surfaces (web pages, admin JSON API, CLI), and the
CalDAV ``Authenticator`` and the EWS backend's ``AccountDirectory``. :class:`AccountService`
only composes the parts, each over its own tables:

- :mod:`~gateway.accounts.users`: users and web sign-in;
- :mod:`~gateway.accounts.exchange_accounts`: connected Exchange accounts, whose secrets the
  :class:`~gateway.accounts.vault.Vault` seals before they reach the database;
- :mod:`~gateway.accounts.app_passwords`: the CalDAV clients' app passwords;
- :mod:`~gateway.accounts.settings`: calendar choices and per-account options, and their checks.
"""

from __future__ import annotations

from gateway.accounts.app_passwords import AppPasswords
from gateway.accounts.exchange_accounts import ConnectedAccount, Connector, ConnectRequest, ExchangeAccounts
from gateway.accounts.passwords import VerifiedCache
from gateway.accounts.records import SCOPE_ALL, AccountRecord, AppPasswordRecord, UserRecord
from gateway.accounts.settings import SettingsStore, UserSettings
from gateway.accounts.throttle import SignInThrottle
from gateway.accounts.users import Users
from gateway.accounts.vault import Vault
from gateway.caldav.backend import Principal
from gateway.ews.connection import Credentials
from gateway.store.database import Database
from gateway.store.notify import APP_PASSWORD, SIGN_IN, SIGN_INS


class AccountService:
    """Users, accounts, app passwords, settings. Also the CalDAV ``Authenticator``."""

    def __init__(
        self,
        db: Database,
        vault: Vault,
        connector: Connector | None,
        *,
        cache_seconds: float = 60.0,
        throttle: SignInThrottle | None = None,
    ) -> None:
        self.vault = vault  # the CLI reports the current key after a rotation
        self.throttle = throttle or SignInThrottle()  # web sign-in, CalDAV and the admin API's token
        self.verified = VerifiedCache(cache_seconds)
        self.users = Users(db, self.throttle)
        self.user_settings = SettingsStore(db, self.users)
        self.exchange = ExchangeAccounts(db, vault, connector, self.users, cache_seconds, self.user_settings)
        self.app_passwords = AppPasswords(db, self.users, self.verified, self.throttle)
        # Changes committed by any process (this one included) drop what is cached here: gateway/store/notify.py.
        db.invalidations.subscribe(SIGN_IN, lambda user_id: self.verified.forget(user_id=user_id))
        db.invalidations.subscribe(APP_PASSWORD, lambda ap_id: self.verified.forget(app_password_id=ap_id))
        if db.invalidations.shared:  # several processes: one set of failure budgets (throttle.py)
            self.throttle.share(lambda message: db.invalidations.send_soon(SIGN_INS, message))
            db.invalidations.on_message(SIGN_INS, self.throttle.heard)

    # --- users -------------------------------------------------------------------------

    async def create_user(
        self, username: str, password: str | None = None, display_name: str | None = None
    ) -> UserRecord:
        return await self.users.create_user(username, password, display_name)

    async def list_users(self) -> list[UserRecord]:
        return await self.users.list_users()

    async def get_user(self, user_id: str) -> UserRecord:
        return await self.users.get_user(user_id)

    async def find_user(self, username: str) -> UserRecord | None:
        return await self.users.find_user(username)

    async def set_user_password(self, user_id: str, password: str, *, stored: str | None = None) -> None:
        await self.users.set_user_password(user_id, password, stored=stored)

    async def delete_user(self, user_id: str) -> None:
        """Deletes the user with every account (and so every stored credential)."""
        await self.users.delete_user(user_id)

    async def sign_in(self, username: str, password: str, client: str = "") -> UserRecord | None:
        """Web sign-in from address ``client``; raises TooManyFailures after too many failures."""
        return await self.users.sign_in(username, password, client)

    # --- app passwords and the CalDAV Authenticator --------------------------------------

    async def create_app_password(
        self,
        user_id: str,
        label: str,
        clear: str | None = None,
        scope: str = SCOPE_ALL,
        *,
        stored: str | None = None,
    ) -> tuple[AppPasswordRecord, str]:
        return await self.app_passwords.create_app_password(user_id, label, clear, scope, stored=stored)

    async def list_app_passwords(self, user_id: str) -> list[AppPasswordRecord]:
        return await self.app_passwords.list_app_passwords(user_id)

    async def revoke_app_password(self, user_id: str, app_password_id: str) -> None:
        await self.app_passwords.revoke_app_password(user_id, app_password_id)

    async def authenticate(self, username: str, password: str, client: str = "") -> Principal | None:
        """CalDAV Basic auth (RFC 7617): gateway user name + one of the user's app passwords.

        Raises TooManyFailures after too many failures for the user or from ``client`` (an address).
        """
        user_id = await self.app_passwords.verify(username, password, client)
        return None if user_id is None else await self.principal(user_id)

    async def authenticate_token(self, token: str, client: str = "") -> Principal | None:
        """An API token scoped to free/busy and booking (``Authorization: Bearer``, RFC 6750 §2.1)."""
        user_id = await self.app_passwords.verify_token(token, client)
        return None if user_id is None else await self.principal(user_id)

    async def principal(self, user_id: str) -> Principal:
        return await self.exchange.principal(user_id)

    def forget_credentials(self, user_id: str) -> None:
        """Exchange refused the cached credentials: the next request reads them from the database again
        (another replica or the CLI may have stored a new password)."""
        self.exchange.forget(user_id)

    # --- Exchange accounts -----------------------------------------------------------------

    async def connect_account(self, user_id: str, request: ConnectRequest) -> AccountRecord:
        return await self.exchange.connect_account(user_id, request)

    async def list_accounts(self, user_id: str) -> list[AccountRecord]:
        return await self.exchange.list_accounts(user_id)

    async def connected_accounts(self, user_id: str, *, fresh: bool = False) -> list[ConnectedAccount]:
        return await self.exchange.connected_accounts(user_id, fresh=fresh)

    async def get_account(self, user_id: str, account_id: str) -> AccountRecord:
        return await self.exchange.get_account(user_id, account_id)

    async def remove_account(self, user_id: str, account_id: str) -> None:
        await self.exchange.remove_account(user_id, account_id)

    async def set_account_options(
        self,
        user_id: str,
        account_id: str,
        *,
        working_elsewhere: str | None = None,
        invitations: str | None = None,
    ) -> AccountRecord:
        return await self.exchange.set_account_options(
            user_id, account_id, working_elsewhere=working_elsewhere, invitations=invitations
        )

    async def credentials(self, account: AccountRecord) -> Credentials:
        return await self.exchange.credentials(account)

    async def credential_problems(self, user_id: str) -> dict[str, str]:
        return await self.exchange.credential_problems(user_id)

    async def rotate_keys(self) -> int:
        return await self.exchange.rotate_keys()

    # --- per-user settings -----------------------------------------------------------------

    async def settings(self, user_id: str) -> UserSettings:
        return await self.user_settings.settings(user_id)

    async def save_settings(self, user_id: str, new: UserSettings) -> UserSettings:
        """Stores the choices; every process's CalDAV requests see them once they commit (the cached
        principal carries the default calendar; on SQLite a CLI command's within the cache time)."""
        return await self.user_settings.save_settings(user_id, new)
