"""Table definitions (SQLAlchemy Core). Portable types only, so PostgreSQL is a URL change."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
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
    Column("display_name", String(200), nullable=True),
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
)

user_settings = Table(
    "user_settings",
    metadata,
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("conflict_calendar_ids", Text, nullable=True),  # JSON list; NULL = the default set
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
