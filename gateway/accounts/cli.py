"""CLI: ``users``, ``accounts``, ``app-passwords`` and ``keys`` sub-commands (calendar choices:
:mod:`gateway.accounts.settings_cli`).

Passwords are read from a prompt, or from stdin with ``--password-stdin``; never
from the command line, where other users could read them in the process list.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from gateway.accounts.exchange_accounts import ConnectRequest
from gateway.accounts.records import SCOPE_ALL, SCOPE_BOOKING, AccountsError, NotFoundError, UserRecord
from gateway.accounts.service import AccountService
from gateway.accounts.settings import INVITATION_CHOICES, WORKING_ELSEWHERE_WORDS
from gateway.accounts.vault import KeyRing, Vault, VaultError, generate_key
from gateway.config import ConfigError, GatewayConfig, load_config
from gateway.ews.connection import ConnectError
from gateway.store.database import Database

Command = Callable[[argparse.Namespace, AccountService], Awaitable[int]]
# The connect sentences name the web form's fields; here the user gives flags (ConnectError.worded).
CONNECT_FLAGS = {
    "server": "--server (a host name or EWS URL)",
    "ews_url": "the EWS URL with --server",
    "login": "--login",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    _register_users(subparsers)
    _register_accounts(subparsers)
    _register_app_passwords(subparsers)
    _register_keys(subparsers)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", type=Path, help="configuration file (TOML); default: built-in defaults + env"
    )


def _password_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--password-stdin", action="store_true", help="read the password from standard input")


def _register_users(subparsers: argparse._SubParsersAction) -> None:
    users = subparsers.add_parser("users", help="gateway users").add_subparsers(dest="action", required=True)
    add = users.add_parser("add", help="create a gateway user (asks for a web sign-in password)")
    _common(add)
    _password_option(add)
    add.add_argument("username")
    add.add_argument("--display-name")
    add.add_argument("--no-password", action="store_true", help="no web sign-in (CalDAV app passwords only)")
    add.set_defaults(func=_sync(_users_add))
    ls = users.add_parser("list", help="list gateway users")
    _common(ls)
    ls.set_defaults(func=_sync(_users_list))
    rm = users.add_parser("delete", help="delete a user with all their accounts and stored credentials")
    _common(rm)
    rm.add_argument("username")
    rm.set_defaults(func=_sync(_users_delete))


def _register_accounts(subparsers: argparse._SubParsersAction) -> None:
    accounts = subparsers.add_parser("accounts", help="connected Exchange accounts").add_subparsers(
        dest="action", required=True
    )
    connect = accounts.add_parser(
        "connect", help="connect an Exchange account (Autodiscover unless --server)"
    )
    _common(connect)
    _password_option(connect)
    connect.add_argument("username", help="the gateway user")
    connect.add_argument("email")
    connect.add_argument("--server", help="host name or full EWS URL (skips Autodiscover)")
    connect.add_argument("--domain", help="Windows domain (DOMAIN\\user sign-in)")
    connect.add_argument("--login", help="Exchange user name if not the email (DOMAIN\\user or user@domain)")
    connect.add_argument("--auth-type", choices=["ntlm", "basic"], help="default: detect")
    connect.set_defaults(func=_sync(_accounts_connect))
    ls = accounts.add_parser("list", help="list a user's accounts")
    _common(ls)
    ls.add_argument("username")
    ls.set_defaults(func=_sync(_accounts_list))
    rm = accounts.add_parser("remove", help="remove an account and its stored credentials")
    _common(rm)
    rm.add_argument("username")
    rm.add_argument("account_id")
    rm.set_defaults(func=_sync(_accounts_remove))
    options = accounts.add_parser("options", help="show or set an account's options (the pages' menus)")
    _common(options)
    options.add_argument("username")
    options.add_argument("account_id")
    options.add_argument(
        "--working-elsewhere",
        choices=tuple(WORKING_ELSEWHERE_WORDS.values()),
        help="how Exchange's 'working elsewhere' time shows in free/busy (default: free)",
    )
    options.add_argument(
        "--invitations",
        choices=INVITATION_CHOICES,
        help="auto: Exchange sends invitations for meetings the account organises; never: the gateway "
        "never asks it to (default: auto)",
    )
    options.set_defaults(func=_sync(_accounts_options))


def _register_app_passwords(subparsers: argparse._SubParsersAction) -> None:
    aps = subparsers.add_parser(
        "app-passwords", help="CalDAV app passwords and booking API tokens"
    ).add_subparsers(dest="action", required=True)
    create = aps.add_parser("create", help="create an app password (printed once)")
    _common(create)
    create.add_argument("username")
    create.add_argument("--label", default="")
    create.add_argument(
        "--booking-token",
        action="store_true",
        help="an API token for free/busy and the booking API only (Authorization: Bearer), not for CalDAV",
    )
    create.set_defaults(func=_sync(_app_passwords_create))
    ls = aps.add_parser("list", help="list a user's app passwords")
    _common(ls)
    ls.add_argument("username")
    ls.set_defaults(func=_sync(_app_passwords_list))
    revoke = aps.add_parser("revoke", help="revoke an app password")
    _common(revoke)
    revoke.add_argument("username")
    revoke.add_argument("app_password_id")
    revoke.set_defaults(func=_sync(_app_passwords_revoke))


def _register_keys(subparsers: argparse._SubParsersAction) -> None:
    keys = subparsers.add_parser("keys", help="the credential vault's keys").add_subparsers(
        dest="action", required=True
    )
    gen = keys.add_parser("generate", help="print a new key for GATEWAY_SECRET_KEY")
    gen.set_defaults(func=lambda _args: print(generate_key()) or 0)
    rotate = keys.add_parser(
        "rotate",
        help="re-encrypt every stored credential under GATEWAY_SECRET_KEY "
        "(old keys in GATEWAY_OLD_SECRET_KEYS; drop them afterwards)",
    )
    _common(rotate)
    rotate.set_defaults(func=_sync(_keys_rotate))


# --- plumbing --------------------------------------------------------------------------------


def _sync(command: Command) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            config = load_config(args.config)
            return asyncio.run(_with_service(config, args, command))
        except (ConfigError, AccountsError, VaultError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1

    return run


async def _with_service(config: GatewayConfig, args: argparse.Namespace, command: Command) -> int:
    connecting = args.command == "accounts" and args.action == "connect"
    async with open_service(config, with_client=connecting) as service:
        return await command(args, service)


@asynccontextmanager
async def open_service(config: GatewayConfig, *, with_client: bool = False) -> AsyncIterator[AccountService]:
    """An AccountService over the configured database (and an EwsClient when connecting)."""
    db = Database(config.storage.url())
    await db.open()
    client = None
    if with_client:
        # Imported here: only connecting needs exchangelib, which the other commands should not load.
        from gateway.ews.client import EwsClient

        client = EwsClient(
            autodiscover_endpoints=dict(config.ews.autodiscover_endpoints),
            ca_file=str(config.ews.ca_file) if config.ews.ca_file else None,
            allow_ntlm_over_http=config.ews.allow_ntlm_over_http,
        )
    try:
        yield AccountService(db, Vault(KeyRing.from_env()), client)
    finally:
        if client is not None:
            await client.close()
        await db.close()


def _read_password(args: argparse.Namespace, prompt: str) -> str:
    password = sys.stdin.readline().rstrip("\r\n") if args.password_stdin else getpass.getpass(prompt)
    if not password:
        raise AccountsError("an empty password was given")
    return password


async def _user(service: AccountService, username: str) -> UserRecord:
    user = await service.find_user(username)
    if user is None:
        raise AccountsError(f"no gateway user named {username!r}")
    return user


# --- commands --------------------------------------------------------------------------------


async def _users_add(args: argparse.Namespace, service: AccountService) -> int:
    password = None if args.no_password else _read_password(args, "Web sign-in password: ")
    user = await service.create_user(args.username, password, args.display_name)
    print(f"created user {user.username} ({user.user_id})")
    return 0


async def _users_list(args: argparse.Namespace, service: AccountService) -> int:
    for user in await service.list_users():
        print(f"{user.user_id}\t{user.username}\t{user.display_name}")
    return 0


async def _users_delete(args: argparse.Namespace, service: AccountService) -> int:
    user = await _user(service, args.username)
    await service.delete_user(user.user_id)
    print(f"deleted user {user.username} and their accounts")
    return 0


async def _accounts_connect(args: argparse.Namespace, service: AccountService) -> int:
    user = await _user(service, args.username)
    request = ConnectRequest(
        email=args.email,
        password=_read_password(args, f"Exchange password for {args.email}: "),
        server=args.server,
        domain=args.domain,
        username=args.login,
        auth_type=args.auth_type,
    )
    try:
        account = await service.connect_account(user.user_id, request)
    except ConnectError as exc:
        print(f"error ({exc.code}): {exc.worded(CONNECT_FLAGS)}", file=sys.stderr)
        return 2
    print(
        f"connected {account.email} as account {account.account_id} ({account.version}, {account.auth_type})"
    )
    return 0


async def _accounts_list(args: argparse.Namespace, service: AccountService) -> int:
    user = await _user(service, args.username)
    for a in await service.list_accounts(user.user_id):
        print(f"{a.account_id}\t{a.email}\t{a.version}\t{a.auth_type}\t{a.ews_url}")
    return 0


async def _accounts_remove(args: argparse.Namespace, service: AccountService) -> int:
    user = await _user(service, args.username)
    await service.remove_account(user.user_id, args.account_id)
    print(f"removed account {args.account_id} and its stored credentials")
    return 0


async def _accounts_options(args: argparse.Namespace, service: AccountService) -> int:
    user = await _user(service, args.username)
    fbtypes = {word: fbtype for fbtype, word in WORKING_ELSEWHERE_WORDS.items()}
    try:
        account = await service.set_account_options(
            user.user_id,
            args.account_id,
            working_elsewhere=fbtypes[args.working_elsewhere] if args.working_elsewhere else None,
            invitations=args.invitations,
        )
    except NotFoundError:
        raise AccountsError(
            f"{user.username} has no account {args.account_id!r} (`accounts list {user.username}` shows them)"
        ) from None
    print(f"account {account.account_id} ({account.email})")
    print(f"working elsewhere shows as: {WORKING_ELSEWHERE_WORDS[account.working_elsewhere]}")
    print(f"invitations: {account.invitations}")
    return 0


async def _app_passwords_create(args: argparse.Namespace, service: AccountService) -> int:
    user = await _user(service, args.username)
    scope = SCOPE_BOOKING if args.booking_token else SCOPE_ALL
    record, clear = await service.create_app_password(user.user_id, args.label, scope=scope)
    if args.booking_token:
        print(
            f"API token {record.app_password_id} ({record.label}) for {user.username}, for free/busy and"
            " booking only (Authorization: Bearer TOKEN); shown only now:"
        )
    else:
        print(f"app password {record.app_password_id} ({record.label}) for {user.username}; shown only now:")
    print(clear)
    return 0


async def _app_passwords_list(args: argparse.Namespace, service: AccountService) -> int:
    user = await _user(service, args.username)
    for p in await service.list_app_passwords(user.user_id):
        print(f"{p.app_password_id}\t{p.label}\t{p.created_at:%Y-%m-%d %H:%M}\t{p.scope}")
    return 0


async def _app_passwords_revoke(args: argparse.Namespace, service: AccountService) -> int:
    user = await _user(service, args.username)
    await service.revoke_app_password(user.user_id, args.app_password_id)
    print(f"revoked app password {args.app_password_id}")
    return 0


async def _keys_rotate(args: argparse.Namespace, service: AccountService) -> int:
    count = await service.rotate_keys()
    print(
        f"re-encrypted {count} account(s) under key {service.vault.keyring.current_id}; "
        "the old keys can now be removed from GATEWAY_OLD_SECRET_KEYS"
    )
    return 0
