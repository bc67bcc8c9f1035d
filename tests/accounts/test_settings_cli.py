"""Calendar choices and per-account options from the command line (``settings``, ``calendars``,
``accounts options``): everything the pages set, through the CLI's ``main()`` in this process."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from gateway.accounts.vault import generate_key
from gateway.cli import main
from tests.support.cli import Cli
from tests.support.postgres import STORES


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest) -> str:
    """Every settings test runs on SQLite and on PostgreSQL."""
    return request.param


@pytest.fixture
def cli(
    tmp_path: Path, emulator: Any, capsys: pytest.CaptureFixture[str], monkeypatch: Any, database_url: str
) -> Cli:
    for name in ("GATEWAY_CONFIG", "GATEWAY_DATA_DIR", "GATEWAY_DATABASE_URL", "GATEWAY_OLD_SECRET_KEYS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GATEWAY_SECRET_KEY", generate_key())
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'[storage]\ndata_dir = "{tmp_path / "data"}"\ndatabase_url = "{database_url}"\n'
        f'[ews.autodiscover_endpoints]\n"example.com" = "{emulator.autodiscover_url}"\n'
    )
    run = Cli(config, capsys, monkeypatch)
    assert run("users", "add", "ann", "--no-password")[0] == 0
    code, _, err = run(
        "accounts", "connect", "ann", "alice@example.com", "--password-stdin", stdin="alice-pw\n"
    )
    assert code == 0, err
    return run


def _calendars(cli: Cli) -> dict[str, list[str]]:
    """``calendars list``: calendar id -> the other columns (owner, name, what it is used for)."""
    code, out, err = cli("calendars", "list", "ann")
    assert code == 0, err
    return {line.split("\t")[0]: line.split("\t")[1:] for line in out.splitlines()}


def test_calendars_are_listed_with_their_ids_and_uses(cli: Cli) -> None:
    calendars = _calendars(cli)
    assert len(calendars) == 2
    primary = next(c for c in calendars if c.endswith("-calendar"))
    (projects,) = set(calendars) - {primary}
    assert calendars[primary] == ["alice@example.com", "Calendar", "conflicts,new-events"]
    assert calendars[projects] == ["alice@example.com", "Projects", ""]


def test_settings_set_and_show_the_calendar_choices(cli: Cli) -> None:
    calendars = _calendars(cli)
    primary = next(c for c in calendars if c.endswith("-calendar"))
    (projects,) = set(calendars) - {primary}
    code, out, _ = cli("settings", "show", "ann")
    assert code == 0
    assert f"conflict calendars: {primary} (default)" in out
    assert f"new events go to: {primary} (default)" in out

    code, out, err = cli(
        "settings",
        "set",
        "ann",
        "--conflict-calendars",
        f"{primary},{projects}",
        "--add-events-calendar",
        projects,
    )
    assert code == 0, err
    code, out, _ = cli("settings", "show", "ann")
    assert f"conflict calendars: {primary}, {projects} (chosen)" in out
    assert f"new events go to: {projects} (chosen)" in out
    assert _calendars(cli)[projects][2] == "conflicts,new-events"

    # One choice alone leaves the other as it was; an empty list checks no calendar.
    assert cli("settings", "set", "ann", "--conflict-calendars", "")[0] == 0
    code, out, _ = cli("settings", "show", "ann")
    assert "conflict calendars: none (chosen)" in out and f"new events go to: {projects} (chosen)" in out

    assert cli("settings", "set", "ann", "--defaults")[0] == 0
    code, out, _ = cli("settings", "show", "ann")
    assert (
        f"conflict calendars: {primary} (default)" in out and f"new events go to: {primary} (default)" in out
    )


def test_settings_set_refuses_a_calendar_that_is_not_the_users(cli: Cli) -> None:
    code, out, err = cli("settings", "set", "ann", "--add-events-calendar", "someone-elses-calendar")
    assert code == 1 and "must name one of the user's calendars" in err
    assert "calendars list" in err  # where to find the right ids
    code, out, _ = cli("settings", "show", "ann")
    assert "(default)" in out and "someone-elses" not in out
    code, _, err = cli("settings", "set", "ann")
    assert code == 1 and "nothing to change" in err


def test_account_options_are_shown_and_set(cli: Cli) -> None:
    code, out, _ = cli("accounts", "list", "ann")
    account_id = out.split("\t")[0]
    code, out, _ = cli("accounts", "options", "ann", account_id)
    assert code == 0
    assert "working elsewhere shows as: free" in out and "invitations: auto" in out

    code, out, err = cli(
        "accounts", "options", "ann", account_id, "--working-elsewhere", "tentative", "--invitations", "never"
    )
    assert code == 0, err
    assert "working elsewhere shows as: tentative" in out and "invitations: never" in out
    code, out, _ = cli("accounts", "options", "ann", account_id, "--working-elsewhere", "busy")
    assert "working elsewhere shows as: busy" in out and "invitations: never" in out

    code, _, err = cli("accounts", "options", "ann", "no-such-account")
    assert code == 1 and "no-such-account" in err
    with pytest.raises(SystemExit) as refused:
        cli("accounts", "options", "ann", account_id, "--working-elsewhere", "sometimes")
    assert refused.value.code == 2


def test_every_command_the_docs_name_exists(capsys: pytest.CaptureFixture[str]) -> None:
    """README and OPERATIONS.md name CLI commands in backticks (`settings show|set USER …`): each
    (sub-)command and option they spell out parses."""
    repo = Path(__file__).resolve().parents[2]
    named = re.compile(r"`((?:users|accounts|calendars|settings|app-passwords|keys)\b[^`]*)`")
    checked = 0
    for doc in (repo / "README.md", repo / "docs" / "OPERATIONS.md"):
        for snippet in named.findall(doc.read_text(encoding="utf-8")):
            words = snippet.split()
            for action in words[1].split("|") if len(words) > 1 and words[1].islower() else [None]:
                argv = [words[0], *([action] if action else []), "--help"]
                with pytest.raises(SystemExit) as done:
                    main(argv)
                assert done.value.code == 0, f"{doc.name}: `{snippet}`"
                shown = capsys.readouterr().out
                for option in (w for w in words if w.startswith("--")):
                    assert option in shown, f"{doc.name}: `{snippet}` names {option}"
                checked += 1
    assert checked >= 10
