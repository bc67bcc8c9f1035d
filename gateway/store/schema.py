"""Table definitions (SQLAlchemy Core). Portable types only, so PostgreSQL is a URL change."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

metadata = MetaData()

schema_migrations = Table(
    "schema_migrations",
    metadata,
    Column("version", Integer, primary_key=True),
    Column("applied_at", DateTime(timezone=True), nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("username", String(200), nullable=False, unique=True),
    Column("display_name", String(200), nullable=False),
    Column("password_hash", Text, nullable=True),  # None: may not sign in to the web pages
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# One connected Exchange mailbox. ``secret`` is the vault's sealed blob (key id + nonce +
# AES-GCM ciphertext of a JSON document), so OAuth2 tokens fit the same column later.
accounts = Table(
    "accounts",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("position", Integer, nullable=False),
    Column("email", String(320), nullable=False),
    Column("ews_url", Text, nullable=False),
    Column("auth_type", String(40), nullable=False),
    Column("username", String(320), nullable=False),
    Column("version", String(40), nullable=False),
    Column("build", String(40), nullable=False),
    # Exchange's name for the mailbox (Active Directory allows 256 characters): Text since schema 3.
    Column("display_name", Text, nullable=True),
    Column("working_elsewhere", String(20), nullable=False),
    Column("invitations", String(10), nullable=False),
    Column("secret", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("user_id", "email", name="uq_accounts_user_email"),
)

app_passwords = Table(
    "app_passwords",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("label", String(200), nullable=False),
    # First 16 hex digits of SHA-256 of the password: finds the one row to check with the
    # slow hash. Harmless to store: app passwords carry ~98 random bits.
    Column("lookup", String(16), nullable=False, index=True),
    Column("password_hash", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_used_at", DateTime(timezone=True), nullable=True),
    # "all": CalDAV and every API, with HTTP Basic; "booking": an API token (Bearer) for free/busy and the
    # booking API only (docs/BOOKING.md).
    Column("scope", String(16), nullable=False, server_default="all"),
)

user_settings = Table(
    "user_settings",
    metadata,
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("conflict_calendar_ids", Text, nullable=True),  # JSON list; NULL = the default set
    # Where new events go (the inbox's schedule-default-calendar-URL); NULL = the first account's primary.
    Column("add_events_calendar_id", String(200), nullable=True),
)

# Web sign-in sessions; only a SHA-256 of the cookie value is stored.
web_sessions = Table(
    "web_sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("csrf_token", String(64), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

# --- the EWS backend's item index (gateway/ews/index.py) ----------------------------------
# Text, not VARCHAR(n): resource names and calendar ids come from clients and item ids, change keys and
# folder ids from Exchange; SQLite never enforced a length, and PostgreSQL must not refuse what it stored.

calendar_state = Table(
    "ews_calendar_state",
    metadata,
    Column("calendar_key", Text, primary_key=True),
    Column("sync_state", Text, nullable=True),  # SyncFolderItems state, opaque
    Column("seq", Integer, nullable=False, default=0),  # last change number handed out
    Column("epoch", String(32), nullable=False),  # changes when the index is rebuilt from scratch
)

indexed_item = Table(
    "ews_item",
    metadata,
    Column("calendar_key", Text, primary_key=True),
    Column("item_id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("uid", Text, nullable=True),
    Column("changekey", Text, nullable=False),
    Column("seq", Integer, nullable=False),
    Column("deleted", Boolean, nullable=False, default=False),
    # Written by the gateway's own CreateItem, not yet confirmed by a SyncFolderItems answer (index.py).
    Column("provisional", Boolean, nullable=False, default=False, server_default=false()),
    # When (Unix time) the gateway last sent a DeleteItem for the item: tells a retried DELETE from a stale one.
    Column("delete_requested_at", Float, nullable=True),
    Index("ix_ews_item_name", "calendar_key", "name"),
    Index("ix_ews_item_seq", "calendar_key", "seq"),
    Index("ix_ews_item_provisional", "calendar_key", "provisional"),
)


calendar_alias = Table(
    "ews_calendar_alias",
    metadata,
    # The URL segment a client chose with MKCALENDAR, kept for the folder it created.
    Column("account_id", Text, primary_key=True),
    Column("calendar_id", Text, primary_key=True),
    Column("folder_id", Text, nullable=False),
)


calendar_property = Table(
    "ews_calendar_property",
    metadata,
    # Client-set collection properties Exchange has no field for (calendar-color, -order, -description).
    Column("account_id", Text, primary_key=True),
    Column("calendar_id", Text, primary_key=True),
    Column("name", Text, primary_key=True),
    Column("value", Text, nullable=False),
)


# Bookings made through the booking API (gateway/booking/): what a retried request with the same
# Idempotency-Key gets back, and what DELETE cancels. A row without ``handle`` is a booking in progress.
bookings = Table(
    "bookings",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("idempotency_key", Text, nullable=True),  # the client's; None for a request without one
    Column("request_digest", String(64), nullable=False),  # SHA-256 of the request: a reused key is told
    Column("calendar_id", Text, nullable=True),
    Column("name", Text, nullable=True),
    Column("handle", Text, nullable=True),  # the backend's handle (Exchange's ItemId)
    Column("answer", Text, nullable=True),  # the JSON answered when it was made
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("cancelled_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("user_id", "idempotency_key", name="uq_bookings_user_key"),
)
