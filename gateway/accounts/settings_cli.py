"""CLI: ``calendars list`` and ``settings show|set``, the calendar choices the pages offer.

Listing a user's calendars asks Exchange (GetFolder + FindFolder per mailbox, one SyncFolderItems per
calendar: what the home page costs), so those two commands load the EWS backend, lazily: the account
commands stay free of exchangelib. The choices are checked by
:func:`gateway.accounts.settings.check_calendar_choices`, the same check as the pages and the admin API.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from gateway.accounts.cli import _common, _sync, _user, open_service
from gateway.accounts.records import AccountsError
from gateway.accounts.service import AccountService
from gateway.accounts.settings import (
    UnknownCalendarError,
    UserSettings,
    check_calendar_choices,
    effective_settings,
)
from gateway.accounts.vault import VaultError
from gateway.caldav.backend import BackendError, CalendarInfo, Principal
from gateway.config import ConfigError, GatewayConfig, load_config

ListCalendars = Callable[[Principal], Awaitable[list[CalendarInfo]]]
CalendarCommand = Callable[[argparse.Namespace, AccountService, ListCalendars], Awaitable[int]]


def register(subparsers: argparse._SubParsersAction) -> None:
    calendars = subparsers.add_parser("calendars", help="a user's calendars").add_subparsers(
        dest="action", required=True
    )
    ls = calendars.add_parser(
        "list",
        help="list a user's calendars (asks Exchange): id, owner, name, and whether conflicts are "
        "checked in it (conflicts) and new events go to it (new-events)",
    )
    _common(ls)
    ls.add_argument("username")
    ls.set_defaults(func=_with_calendars(_calendars_list))

    settings = subparsers.add_parser("settings", help="a user's calendar choices").add_subparsers(
        dest="action", required=True
    )
    show = settings.add_parser(
        "show", help="show the calendars checked for conflicts and the one new events go to"
    )
    _common(show)
    show.add_argument("username")
    show.set_defaults(func=_sync(_settings_show))
    change = settings.add_parser(
        "set", help="choose calendars by the ids `calendars list` prints (a choice not given is kept)"
    )
    _common(change)
    change.add_argument("username")
    change.add_argument(
        "--conflict-calendars",
        metavar="ID,ID",
        help="the calendars checked for conflicts, comma-separated ('' for none)",
    )
    change.add_argument("--add-events-calendar", metavar="ID", help="the calendar new events go to")
    change.add_argument(
        "--defaults",
        action="store_true",
        help="back to the defaults: every account's primary calendar for conflicts, the first one for new events",
    )
    change.set_defaults(func=_with_calendars(_settings_set))


# --- plumbing --------------------------------------------------------------------------------


def _with_calendars(command: CalendarCommand) -> Callable[[argparse.Namespace], int]:
    """Runs a command that needs the user's calendars, with the EWS backend listing them."""

    def run(args: argparse.Namespace) -> int:
        try:
            config = load_config(args.config)
            return asyncio.run(_run_with_calendars(config, args, command))
        except (ConfigError, AccountsError, VaultError, BackendError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1

    return run


async def _run_with_calendars(
    config: GatewayConfig, args: argparse.Namespace, command: CalendarCommand
) -> int:
    async with open_service(config, with_client=True) as service, _backend(config, service) as calendars:
        return await command(args, service, calendars)


@asynccontextmanager
async def _backend(config: GatewayConfig, service: AccountService) -> AsyncIterator[ListCalendars]:
    """The EWS backend's calendar listing, over the service's database and Exchange client."""
    # Imported here: only these commands talk to Exchange (exchangelib loads with the backend).
    from gateway.ews.backend import EwsBackend
    from gateway.ews.index import ItemIndex

    exchange = service.exchange
    backend = EwsBackend(
        service,
        exchange.connector,
        ItemIndex(exchange.db.engine, exchange.db.locks, exchange.db.invalidations),
        default_timezone=config.ews.default_timezone,
        live_accounts=config.ews.max_live_accounts,
    )
    try:
        yield backend.calendars
    finally:
        await backend.drain()


def _choices_text(settings: UserSettings, effective: UserSettings) -> list[str]:
    conflicts = effective.conflict_calendar_ids or ()
    conflict_source = "default" if settings.conflict_calendar_ids is None else "chosen"
    events_source = "default" if settings.add_events_calendar_id is None else "chosen"
    return [
        f"conflict calendars: {', '.join(conflicts) or 'none'} ({conflict_source})",
        f"new events go to: {effective.add_events_calendar_id or 'no calendar yet'} ({events_source})",
    ]


# --- commands --------------------------------------------------------------------------------


async def _calendars_list(args: argparse.Namespace, service: AccountService, calendars: ListCalendars) -> int:
    user = await _user(service, args.username)
    chosen = effective_settings(
        await service.settings(user.user_id), await service.list_accounts(user.user_id)
    )
    for c in await calendars(await service.principal(user.user_id)):
        uses = [
            *(["conflicts"] if c.calendar_id in (chosen.conflict_calendar_ids or ()) else []),
            *(["new-events"] if c.calendar_id == chosen.add_events_calendar_id else []),
            *([] if c.writable else ["read-only"]),
        ]
        print(f"{c.calendar_id}\t{c.owner_email}\t{c.display_name}\t{','.join(uses)}")
    return 0


async def _settings_show(args: argparse.Namespace, service: AccountService) -> int:
    user = await _user(service, args.username)
    stored = await service.settings(user.user_id)
    effective = effective_settings(stored, await service.list_accounts(user.user_id))
    print("\n".join(_choices_text(stored, effective)))
    return 0


async def _settings_set(args: argparse.Namespace, service: AccountService, calendars: ListCalendars) -> int:
    user = await _user(service, args.username)
    given = args.conflict_calendars is not None or args.add_events_calendar is not None
    if args.defaults == given:
        raise AccountsError(
            "nothing to change: give --conflict-calendars and/or --add-events-calendar, or --defaults alone"
        )
    stored = await service.settings(user.user_id)
    if args.defaults:
        new = UserSettings()
    else:
        conflicts = (
            tuple(i.strip() for i in args.conflict_calendars.split(",") if i.strip())
            if args.conflict_calendars is not None
            else None
        )
        choices = UserSettings(conflicts, args.add_events_calendar or None)
        ids = {c.calendar_id for c in await calendars(await service.principal(user.user_id))}
        try:
            check_calendar_choices(choices, ids)  # only what was given: a stale stored choice does not block
        except UnknownCalendarError as exc:
            raise AccountsError(
                f"{exc} `caldav-gateway calendars list {user.username}` shows them."
            ) from None
        new = UserSettings(
            conflicts if conflicts is not None else stored.conflict_calendar_ids,
            choices.add_events_calendar_id or stored.add_events_calendar_id,
        )
    saved = await service.save_settings(user.user_id, new)
    effective = effective_settings(saved, await service.list_accounts(user.user_id))
    print("\n".join(_choices_text(saved, effective)))
    return 0
