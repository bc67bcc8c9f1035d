"""The account CLI end to end (subprocesses): passwords from stdin, never argv."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from gateway.accounts.vault import generate_key
from tests.support.postgres import on_both_stores

REPO = Path(__file__).resolve().parents[2]


def _cli(config: Path, key: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env["GATEWAY_SECRET_KEY"] = key
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args, "--config", str(config)],
        cwd=REPO,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


@on_both_stores
def test_users_accounts_and_app_passwords_from_the_command_line(
    tmp_path: Path, emulator: Any, database_url: str
) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'[storage]\ndata_dir = "{tmp_path / "data"}"\ndatabase_url = "{database_url}"\n'
        f'[ews.autodiscover_endpoints]\n"example.com" = "{emulator.autodiscover_url}"\n'
    )
    key = generate_key()
    added = _cli(config, key, "users", "add", "ann", "--password-stdin", stdin="ann-web-pw\n")
    assert added.returncode == 0, added.stderr

    wrong = _cli(
        config, key, "accounts", "connect", "ann", "alice@example.com", "--password-stdin", stdin="nope\n"
    )
    assert wrong.returncode == 2 and "auth_failed" in wrong.stderr and "nope" not in wrong.stderr
    ok = _cli(
        config, key, "accounts", "connect", "ann", "alice@example.com", "--password-stdin", stdin="alice-pw\n"
    )
    assert ok.returncode == 0, ok.stderr
    assert "connected alice@example.com" in ok.stdout and "Exchange2016" in ok.stdout
    manual = _cli(
        config,
        key,
        "accounts",
        "connect",
        "ann",
        "bob@example.com",
        "--server",
        emulator.ews_url,
        "--auth-type",
        "basic",
        "--password-stdin",
        stdin="bob-pw\n",
    )
    assert manual.returncode == 0, manual.stderr
    listed = _cli(config, key, "accounts", "list", "ann").stdout.splitlines()
    assert [line.split("\t")[1] for line in listed] == ["alice@example.com", "bob@example.com"]

    created = _cli(config, key, "app-passwords", "create", "ann", "--label", "laptop")
    assert created.returncode == 0
    app_id = created.stdout.split()[2]
    assert _cli(config, key, "app-passwords", "revoke", "ann", app_id).returncode == 0
    assert _cli(config, key, "app-passwords", "list", "ann").stdout == ""
    token = _cli(config, key, "app-passwords", "create", "ann", "--label", "booking page", "--booking-token")
    assert token.returncode == 0 and "Bearer" in token.stdout
    listed_tokens = _cli(config, key, "app-passwords", "list", "ann").stdout.splitlines()
    assert [line.split("\t")[-1] for line in listed_tokens] == ["booking"]
    assert _cli(config, key, "app-passwords", "revoke", "ann", token.stdout.split()[2]).returncode == 0

    removed = _cli(config, key, "accounts", "remove", "ann", listed[0].split("\t")[0])
    assert removed.returncode == 0 and "stored credentials" in removed.stdout
    assert _cli(config, key, "users", "delete", "ann").returncode == 0
    missing = _cli(config, key, "accounts", "list", "ann")
    assert missing.returncode == 1 and "no gateway user named 'ann'" in missing.stderr
