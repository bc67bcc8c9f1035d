"""Many CalDAV clients signing in at once: a generated app password is checked without the slow hash,
so the first requests of 100 clients do not queue for the two hashing threads (docs/PERFORMANCE.md)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from gateway.accounts import app_passwords as app_passwords_module
from gateway.accounts.passwords import hash_password, is_fast_hash, verify_password
from gateway.accounts.vault import generate_key
from gateway.app import build_services
from gateway.common.stages import STAGES
from gateway.config import GatewayConfig, StorageConfig


def _hash_queue_entries() -> int:
    for line in STAGES.render_prometheus().splitlines():
        if line.startswith('gateway_stage_seconds_count{stage="password_hash_queue"}'):
            return int(line.rsplit(" ", 1)[1])
    return 0


async def test_fifty_users_signing_in_at_once_are_all_admitted_without_a_slow_hash(tmp_path: Path) -> None:
    config = GatewayConfig(storage=StorageConfig(data_dir=tmp_path / "data"))
    services = build_services(config, env={"GATEWAY_SECRET_KEY": generate_key()})
    await services.db.open()
    try:
        passwords = {}
        for number in range(50):
            user = await services.accounts.create_user(f"user{number}")
            _, passwords[f"user{number}"] = await services.accounts.create_app_password(user.user_id, "phone")
        before = _hash_queue_entries()
        # 50 different users, as many first requests at the same moment, all behind one address
        principals = await asyncio.gather(
            *(
                services.accounts.authenticate(name, password, "192.0.2.1")
                for name, password in passwords.items()
            )
        )
        wrong = await services.accounts.authenticate("user0", "wrong-password", "192.0.2.9")
    finally:
        await services.db.close()
    assert all(p is not None for p in principals)
    assert wrong is None
    assert _hash_queue_entries() == before  # no sign-in waited for a hashing thread


def test_a_generated_secret_gets_a_fast_salted_hash_and_a_chosen_password_keeps_scrypt() -> None:
    from gateway.accounts.passwords import hash_generated_secret

    first, second = (
        hash_generated_secret("k7mq2-x9ahe-abcde-fghjk"),
        hash_generated_secret("k7mq2-x9ahe-abcde-fghjk"),
    )
    assert is_fast_hash(first) and first != second and "k7mq2" not in first
    assert verify_password("k7mq2-x9ahe-abcde-fghjk", first)
    assert not verify_password("k7mq2-x9ahe-abcde-fghjK", first)
    assert not verify_password("x", "sha256$garbage")
    assert not is_fast_hash(hash_password("correct horse"))


async def test_a_sign_in_stands_when_its_use_cannot_be_recorded_and_the_date_is_written_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``last_used_at`` is written after the answer: a database too busy to take the write (SQLite's
    "database is locked" after its busy timeout) no longer turns a right password into a 500."""
    config = GatewayConfig(storage=StorageConfig(data_dir=tmp_path / "data"))
    services = build_services(config, env={"GATEWAY_SECRET_KEY": generate_key()})
    await services.db.open()
    try:
        user = await services.accounts.create_user("ann")
        record, password = await services.accounts.create_app_password(user.user_id, "phone")
        app_passwords = services.accounts.app_passwords

        def locked(*_args: object) -> object:
            raise OperationalError("UPDATE app_passwords", {}, Exception("database is locked"))

        monkeypatch.setattr(app_passwords_module, "update", locked)
        assert await services.accounts.authenticate("ann", password, "192.0.2.1") is not None
        await asyncio.gather(*app_passwords._touching)
        monkeypatch.undo()
        services.accounts.verified.forget(user_id=user.user_id)
        assert await services.accounts.authenticate("ann", password, "192.0.2.1") is not None
        await asyncio.gather(*app_passwords._touching)
        (listed,) = await services.accounts.list_app_passwords(user.user_id)
    finally:
        await services.db.close()
    assert listed.app_password_id == record.app_password_id and listed.last_used_at is not None
