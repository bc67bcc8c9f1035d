"""The account CLI end to end: passwords from stdin, never argv.

The commands that take a password run as ``python -m gateway`` processes (a real standard input, the
environment the test gives, the exit status); the others run through the same ``main()`` in this
process (tests/support/cli.py), which proves the same parser and commands without an interpreter start
each.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gateway.accounts.vault import generate_key
from tests.support.cli import Cli, clear_gateway_environment
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
    tmp_path: Path,
    emulator: Any,
    database_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
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

    # The rest in this process, on the same configuration, key and database.
    clear_gateway_environment(monkeypatch)
    monkeypatch.setenv("GATEWAY_SECRET_KEY", key)
    cli = Cli(config, capsys, monkeypatch)
    code, _, err = cli(
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
    assert code == 0, err
    listed = cli("accounts", "list", "ann")[1].splitlines()
    assert [line.split("\t")[1] for line in listed] == ["alice@example.com", "bob@example.com"]

    code, created, _ = cli("app-passwords", "create", "ann", "--label", "laptop")
    assert code == 0
    app_id = created.split()[2]
    assert cli("app-passwords", "revoke", "ann", app_id)[0] == 0
    assert cli("app-passwords", "list", "ann")[1] == ""
    code, token, _ = cli("app-passwords", "create", "ann", "--label", "booking page", "--booking-token")
    assert code == 0 and "Bearer" in token
    listed_tokens = cli("app-passwords", "list", "ann")[1].splitlines()
    assert [line.split("\t")[-1] for line in listed_tokens] == ["booking"]
    assert cli("app-passwords", "revoke", "ann", token.split()[2])[0] == 0

    code, removed, _ = cli("accounts", "remove", "ann", listed[0].split("\t")[0])
    assert code == 0 and "stored credentials" in removed
    assert cli("users", "delete", "ann")[0] == 0
    code, _, err = cli("accounts", "list", "ann")
    assert code == 1 and "no gateway user named 'ann'" in err
