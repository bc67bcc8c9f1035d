"""``accounts connect`` explains a failure with its own flags, not with the web form's field names.

Through the CLI's ``main()`` in this process (tests/support/cli.py); tests/accounts/test_cli.py runs the
password-taking commands as processes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.accounts.cli import CONNECT_FLAGS
from gateway.accounts.vault import generate_key
from gateway.ews.connection import FIELDS
from tests.support.cli import Cli, clear_gateway_environment
from tests.support.postgres import on_both_stores


@on_both_stores
def test_connect_errors_name_the_flags_to_use(
    tmp_path: Path,
    emulator: Any,
    database_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'[storage]\ndata_dir = "{tmp_path / "data"}"\ndatabase_url = "{database_url}"\n'
        f'[ews.autodiscover_endpoints]\n"example.com" = "{emulator.base_url}/no/autodiscover/here"\n'
    )
    clear_gateway_environment(monkeypatch)
    monkeypatch.setenv("GATEWAY_SECRET_KEY", generate_key())
    cli = Cli(config, capsys, monkeypatch)
    assert cli("users", "add", "ann", "--no-password")[0] == 0

    def connect(*extra: str) -> str:
        code, _, err = cli(
            "accounts", "connect", "ann", "alice@example.com", *extra, "--password-stdin", stdin="alice-pw\n"
        )
        assert code == 2, err
        return err

    not_found = connect()
    assert "autodiscover_failed" in not_found
    assert "--server" in not_found and "--login" in not_found
    assert "Enter the server name" not in not_found and "the username" not in not_found

    not_ews = connect("--server", f"{emulator.base_url}/owa/")
    assert "not_ews" in not_ews and "--server" in not_ews

    insecure = connect("--server", "http://exchange.invalid/EWS/Exchange.asmx", "--auth-type", "basic")
    assert "insecure_transport" in insecure and "--server" in insecure


def test_every_field_the_sentences_name_has_a_flag() -> None:
    assert set(CONNECT_FLAGS) == set(FIELDS)
