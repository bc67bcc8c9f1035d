"""API tokens scoped to free/busy and booking in the accounts layer: only Bearer takes them, and a
revocation on one replica is refused by another within a second (its verified cache is told)."""

from __future__ import annotations

from gateway.accounts.records import SCOPE_BOOKING
from tests.accounts.test_replica_caches import eventually, pair, store  # noqa: F401 - fixtures

TOKEN_USER = "bearer:"  # the verified cache's name for tokens (gateway/accounts/app_passwords.py)


async def test_a_token_revoked_on_one_replica_is_refused_by_the_other(pair) -> None:  # noqa: F811
    a, b = pair
    user = await a.create_user("dora")
    record, token = await a.create_app_password(user.user_id, "booking page", scope=SCOPE_BOOKING)
    assert (await b.authenticate_token(token)).user_id == user.user_id
    assert b.verified.get(TOKEN_USER, token) is not None  # B answers the next request from its cache
    assert await b.authenticate("dora", token) is None  # never with HTTP Basic

    await a.revoke_app_password(user.user_id, record.app_password_id)

    async def refused() -> bool:
        return await b.authenticate_token(token) is None

    await eventually(refused)


async def test_an_app_password_is_not_a_token(pair) -> None:  # noqa: F811
    a, _ = pair
    user = await a.create_user("eve")
    _, clear = await a.create_app_password(user.user_id, "phone")
    assert await a.authenticate_token(clear) is None
    assert (await a.authenticate("eve", clear)).user_id == user.user_id
