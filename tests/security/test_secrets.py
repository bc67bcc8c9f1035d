"""Secrets stay secret: nothing in the database file or logs, bound ciphertexts, key rotation,
no start without a key."""

from __future__ import annotations

import base64
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select, update

from gateway.accounts.service import ConnectRequest
from gateway.accounts.vault import KeyRing, MissingSecretKeyError, Vault, VaultError, generate_key
from gateway.app import build_services
from gateway.config import GatewayConfig, StorageConfig
from gateway.store.schema import accounts as accounts_table
from tests.web.gateway_support import admin_headers, make_config, make_services
from tests.web.test_pages import signed_in

REPO = Path(__file__).resolve().parents[2]
H = admin_headers()


def _data_bytes(data_dir: Path) -> bytes:
    # The database plus any journal/WAL files next to it.
    return b"".join(p.read_bytes() for p in sorted(data_dir.iterdir()) if p.is_file())


async def test_no_password_in_database_file_or_logs(
    gateway: TestClient, services: Any, gateway_config: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    user = await (
        await gateway.post(
            "/api/v1/admin/users", json={"username": "ann", "password": "Web-Pass-9431"}, headers=H
        )
    ).json()
    for password in ("wrong-guess-5521", "alice-pw"):
        await gateway.post(
            f"/api/v1/admin/users/{user['user_id']}/accounts",
            json={"email": "alice@example.com", "password": password},
            headers=H,
        )
    app_pw = (
        await (
            await gateway.post(
                f"/api/v1/admin/users/{user['user_id']}/app-passwords", json={"label": "x"}, headers=H
            )
        ).json()
    )["password"]
    assert await services.accounts.authenticate("ann", app_pw) is not None
    (account,) = await services.accounts.list_accounts(user["user_id"])
    assert (await services.accounts.credentials(account)).password == "alice-pw"  # stored, but sealed
    secrets = [
        b"alice-pw",
        b"wrong-guess-5521",
        b"Web-Pass-9431",
        app_pw.encode(),
        base64.b64encode(b"alice@example.com:alice-pw"),
    ]
    await services.db.close()  # flush everything to the file
    stored = _data_bytes(gateway_config.storage.data_dir)
    logs = caplog.text.encode()
    assert b"alice@example.com" in stored and logs  # we did look at the right things
    for secret in secrets:
        assert secret not in stored, secret
        assert secret not in logs, secret
    assert "alice-pw" not in repr(ConnectRequest("alice@example.com", "alice-pw"))
    assert "alice-pw" not in repr(await services.accounts.credentials(account))


async def test_swapped_ciphertexts_fail_clearly_and_pages_still_work(
    gateway: TestClient, services: Any
) -> None:
    csrf = await signed_in(gateway, services)
    for who in ("alice", "bob"):
        await gateway.post(
            "/accounts/connect",
            data={"csrf_token": csrf, "email": f"{who}@example.com", "password": f"{who}-pw"},
        )
    user = await services.accounts.find_user("ann")
    alice, bob = await services.accounts.list_accounts(user.user_id)
    async with services.db.engine.begin() as conn:
        sealed = dict((await conn.execute(select(accounts_table.c.id, accounts_table.c.secret))).all())
        await conn.execute(
            update(accounts_table)
            .where(accounts_table.c.id == alice.account_id)
            .values(secret=sealed[bob.account_id])
        )
        await conn.execute(
            update(accounts_table)
            .where(accounts_table.c.id == bob.account_id)
            .values(secret=sealed[alice.account_id])
        )
    for account in (alice, bob):
        with pytest.raises(VaultError, match=account.account_id) as info:
            await services.accounts.credentials(account)
        assert "-pw" not in str(info.value)
    home = await gateway.get("/")
    text = await home.text()
    assert home.status == 200 and "could not be listed" in text and "reconnect the account" in text


async def _seed_two_accounts(config: Any, key: str) -> list[Any]:
    services = make_services(config, key)
    await services.db.open()
    user = await services.accounts.create_user("ann")
    for who in ("alice", "bob"):
        await services.accounts.connect_account(
            user.user_id, ConnectRequest(f"{who}@example.com", f"{who}-pw")
        )
    records = await services.accounts.list_accounts(user.user_id)
    await services.ews_client.close()
    await services.db.close()
    return records


def _cli(args: list[str], env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        cwd=REPO,
        env={**base, **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_rotation_reencrypts_every_row_and_old_keys_can_be_dropped(
    tmp_path: Path, emulator: Any
) -> None:
    config = make_config(tmp_path, emulator)
    old, new = generate_key(), generate_key()
    records = await _seed_two_accounts(config, old)
    config_file = tmp_path / "gateway.toml"
    config_file.write_text(f'[storage]\ndata_dir = "{config.storage.data_dir}"\n')

    result = _cli(
        ["keys", "rotate", "--config", str(config_file)],
        {"GATEWAY_SECRET_KEY": new, "GATEWAY_OLD_SECRET_KEYS": old},
    )
    assert result.returncode == 0, result.stderr
    assert "re-encrypted 2 account(s)" in result.stdout

    only_new = build_services(config, env={"GATEWAY_SECRET_KEY": new})
    await only_new.db.open()
    try:
        for record, who in zip(records, ("alice", "bob"), strict=True):
            assert (await only_new.accounts.credentials(record)).password == f"{who}-pw"
        assert await only_new.accounts.rotate_keys() == 0  # nothing left under an old key
        only_old = Vault(KeyRing.from_env({"GATEWAY_SECRET_KEY": old}))
        async with only_new.db.engine.connect() as conn:
            sealed = (await conn.execute(select(accounts_table.c.id, accounts_table.c.secret))).all()
        for account_id, blob in sealed:
            with pytest.raises(VaultError, match="not configured"):
                only_old.open(account_id, blob)
    finally:
        await only_new.ews_client.close()
        await only_new.db.close()


def test_missing_key_refuses_to_start(tmp_path: Path) -> None:
    config_file = tmp_path / "gateway.toml"
    config_file.write_text(f'[storage]\ndata_dir = "{tmp_path / "data"}"\n[server]\nport = 1\n')
    result = _cli(["serve", "--config", str(config_file)], {})
    assert result.returncode == 2
    assert "GATEWAY_SECRET_KEY is not set" in result.stderr and "keys generate" in result.stderr
    assert not (tmp_path / "data").exists()  # refused before touching anything
    with pytest.raises(MissingSecretKeyError):
        build_services(GatewayConfig(storage=StorageConfig(data_dir=tmp_path / "data")), env={})


def test_keys_generate_prints_a_usable_key() -> None:
    result = _cli(["keys", "generate"], {})
    assert result.returncode == 0
    ring = KeyRing.from_env({"GATEWAY_SECRET_KEY": result.stdout.strip()})
    assert len(ring.current) == 32
