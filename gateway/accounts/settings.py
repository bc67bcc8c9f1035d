"""Per-user calendar choices and per-account options: their defaults, and the one check of each
that the web pages and the admin API share."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy import insert, select, update

from gateway.accounts.records import AccountRecord, AccountsError
from gateway.accounts.users import Users
from gateway.ews.calendar_ids import primary_calendar_id
from gateway.store.database import Database
from gateway.store.notify import ACCOUNTS
from gateway.store.schema import user_settings

# The free/busy type (RFC 5545 FBTYPE) an account's WorkingElsewhere time is reported as.
WORKING_ELSEWHERE_CHOICES = ("FREE", "BUSY-TENTATIVE", "BUSY")
# The word people use for each (the pages' menu, the CLI's --working-elsewhere).
WORKING_ELSEWHERE_WORDS = {"FREE": "free", "BUSY-TENTATIVE": "tentative", "BUSY": "busy"}
# Meeting invitations: Exchange sends them for meetings the account's owner organises (RFC 6638
# implicit scheduling), or the gateway never asks it to.
INVITATION_CHOICES = ("auto", "never")


@dataclass(frozen=True)
class UserSettings:
    conflict_calendar_ids: tuple[str, ...] | None = None  # None = each account's primary calendar
    # The calendar new events go to; None = the first account's primary calendar. CalDAV clients learn
    # it from the inbox's schedule-default-calendar-URL (RFC 6638 §9.2; Principal.default_calendar_id).
    add_events_calendar_id: str | None = None


class UnknownCalendarError(AccountsError):
    """A calendar choice names no calendar of the user's."""


def effective_settings(settings: UserSettings, account_list: Sequence[AccountRecord]) -> UserSettings:
    """The settings with defaults filled in: every primary for conflicts, the first primary for new events."""
    primaries = tuple(primary_calendar_id(a.account_id) for a in account_list)
    return UserSettings(
        conflict_calendar_ids=settings.conflict_calendar_ids
        if settings.conflict_calendar_ids is not None
        else primaries,
        add_events_calendar_id=settings.add_events_calendar_id or (primaries[0] if primaries else None),
    )


def check_calendar_choices(choices: UserSettings, calendar_ids: Collection[str]) -> None:
    """Refuses choices naming a calendar not in ``calendar_ids``, the user's own calendars as the
    CalDAV backend lists them (this layer cannot list them itself), so no one picks another's."""
    chosen = set(choices.conflict_calendar_ids or ())
    if choices.add_events_calendar_id is not None:
        chosen.add(choices.add_events_calendar_id)
    if not chosen <= set(calendar_ids):
        raise UnknownCalendarError("Every calendar id must name one of the user's calendars.")


def account_options(working_elsewhere: str | None, invitations: str | None) -> dict[str, str]:
    """The ``accounts`` columns to update for the given options (None: leave as is), checked."""
    values = {}
    if working_elsewhere is not None:
        if working_elsewhere not in WORKING_ELSEWHERE_CHOICES:
            raise AccountsError(f"working_elsewhere must be one of {', '.join(WORKING_ELSEWHERE_CHOICES)}")
        values["working_elsewhere"] = working_elsewhere
    if invitations is not None:
        if invitations not in INVITATION_CHOICES:
            raise AccountsError(f"invitations must be one of {', '.join(INVITATION_CHOICES)}")
        values["invitations"] = invitations
    return values


class SettingsStore:
    """The ``user_settings`` table: one row per user who changed a default."""

    def __init__(self, db: Database, users: Users) -> None:
        self.db = db
        self.users = users

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
        """Stores the user's calendar choices. Callers that take them from a request check them with
        :func:`check_calendar_choices` first."""
        await self.users.get_user(user_id)
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
            # the cached principal carries the add-events calendar: every process drops it on commit
            await self.db.invalidations.announce(conn, ACCOUNTS, user_id)
        self.db.invalidations.drop(ACCOUNTS, user_id)
        return await self.settings(user_id)
