"""What keeps a value out of a cache (gateway/store/notify.py): an invalidation of its key or of its whole
kind while it was read, or a listening connection that is down; other keys' invalidations do not."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import create_async_engine

from gateway.store.notify import EVERY_KEY, FOLDERS, PROPERTIES, Invalidations


def local() -> Invalidations:
    return Invalidations(create_async_engine("sqlite+aiosqlite:///:memory:"))


def test_a_value_read_while_its_key_was_invalidated_is_not_cached() -> None:
    hub = local()
    token = hub.token(FOLDERS, "account-1")
    hub.drop(FOLDERS, "account-2")  # another mailbox's list (a home listing of another user)
    hub.drop(PROPERTIES, "account-1")  # another kind
    assert hub.still(token, FOLDERS, "account-1")
    hub.drop(FOLDERS, "account-1")
    assert not hub.still(token, FOLDERS, "account-1")


def test_every_key_and_every_cache_invalidations_refuse_each_value() -> None:
    hub = local()
    token = hub.token(FOLDERS, "account-1")
    hub.drop(FOLDERS, EVERY_KEY)
    assert not hub.still(token, FOLDERS, "account-1")
    token = hub.token(FOLDERS, "account-1")
    hub.drop_all()
    assert not hub.still(token, FOLDERS, "account-1")


def test_a_kind_wide_token_is_refused_by_any_key_of_its_kind() -> None:
    hub = local()
    token = hub.token(PROPERTIES)
    hub.drop(FOLDERS, "account-1")
    assert hub.still(token, PROPERTIES)
    hub.drop(PROPERTIES, "account-9")
    assert not hub.still(token, PROPERTIES)


def test_subscribers_hear_their_kind_only_and_none_for_every_key() -> None:
    hub = local()
    heard: list[str | None] = []
    hub.subscribe(FOLDERS, heard.append)
    hub.drop(FOLDERS, "account-1")
    hub.drop(PROPERTIES, "account-1")
    hub.drop(FOLDERS, EVERY_KEY)
    hub.drop_all()
    assert heard == ["account-1", None, None]


def test_nothing_is_cached_on_postgresql_until_it_listens() -> None:
    hub = Invalidations(create_async_engine("postgresql+asyncpg://gateway@127.0.0.1:1/gateway"))
    assert hub.shared and hub.token(FOLDERS, "account-1") is None
    assert not hub.still(None, FOLDERS, "account-1")
    assert not Invalidations(create_async_engine("sqlite+aiosqlite:///:memory:")).shared
