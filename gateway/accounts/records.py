"""What the account services hand out: errors, and records built from database rows (no secrets)."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


class AccountsError(Exception):
    """A request the service refuses; ``str()`` is a sentence for the user."""


class NotFoundError(AccountsError):
    """No such user/account/app password (or not this user's)."""


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
    working_elsewhere: str  # one of settings.WORKING_ELSEWHERE_CHOICES
    invitations: str  # one of settings.INVITATION_CHOICES


@dataclass(frozen=True)
class AppPasswordRecord:
    app_password_id: str
    user_id: str
    label: str
    created_at: datetime
    last_used_at: datetime | None
    scope: str = "all"  # SCOPE_ALL or SCOPE_BOOKING


# What an app password opens: everything (HTTP Basic, CalDAV included), or, as an API token sent as
# ``Authorization: Bearer``, only free/busy and the booking API (docs/BOOKING.md).
SCOPE_ALL = "all"
SCOPE_BOOKING = "booking"
SCOPES = (SCOPE_ALL, SCOPE_BOOKING)


# A SQLAlchemy result row read by column name (``.mappings()``).
Row = Mapping[str, Any]


def user_record(row: Row) -> UserRecord:
    return UserRecord(
        user_id=row["id"],
        username=row["username"],
        display_name=row["display_name"],
        has_password=row["password_hash"] is not None,
        created_at=row["created_at"],
    )


def account_record(row: Row) -> AccountRecord:
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


def app_password_record(row: Row) -> AppPasswordRecord:
    return AppPasswordRecord(
        app_password_id=row["id"],
        user_id=row["user_id"],
        label=row["label"],
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
        scope=row["scope"],
    )


def now() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    """A new row id: 12 random hex digits."""
    return secrets.token_hex(6)
