"""The environment overrides the configuration file for every key the documentation says it does."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.accounts.vault import generate_key
from gateway.config import ENV_OVERRIDES, ConfigError, load_config
from tests.ops.support import Process, clean_env, free_port

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "gateway.example.toml"

# Each overridable key: (file value, environment value, how to read it from the loaded config).
FILE_AND_ENV = {
    "GATEWAY_HOST": ('host = "127.0.0.2"', "127.0.0.3", lambda c: c.server.host),
    "GATEWAY_PORT": ("port = 1111", "2222", lambda c: str(c.server.port)),
    "GATEWAY_BASE_URL": (
        'base_url = "https://file.example"',
        "https://env.example",
        lambda c: c.server.base_url,
    ),
    "GATEWAY_DATA_DIR": ('data_dir = "/file/data"', "/env/data", lambda c: str(c.storage.data_dir)),
    "GATEWAY_DATABASE_URL": (
        'database_url = "sqlite+aiosqlite:////file.db"',
        "sqlite+aiosqlite:////env.db",
        lambda c: c.storage.database_url,
    ),
    "GATEWAY_LOG_LEVEL": ('level = "ERROR"', "DEBUG", lambda c: c.log_level),
}
TABLE = {
    "GATEWAY_HOST": "server",
    "GATEWAY_PORT": "server",
    "GATEWAY_BASE_URL": "server",
    "GATEWAY_DATA_DIR": "storage",
    "GATEWAY_DATABASE_URL": "storage",
    "GATEWAY_LOG_LEVEL": "logging",
}


def test_the_log_level_from_the_environment_beats_the_file(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "gateway.toml"
    config.write_text(f'[server]\nport = {port}\n[logging]\nlevel = "ERROR"\n')
    env = clean_env(
        GATEWAY_SECRET_KEY=generate_key(), GATEWAY_DATA_DIR=str(tmp_path / "data"), GATEWAY_LOG_LEVEL="info"
    )
    serve = Process.gateway(["serve", "--config", str(config)], env, tmp_path / "serve.log")
    try:
        assert serve.wait_http(f"http://127.0.0.1:{port}/healthz").status_code == 200
        serve.wait_for(r"INFO gateway\.serve: serving on http://127\.0\.0\.1:\d+", timeout=10)
    finally:
        serve.stop()


def test_the_example_file_documents_every_override() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    header = " ".join(line.lstrip("# ") for line in text.split("\n[server]\n")[0].splitlines())
    for variable, key in ENV_OVERRIDES.items():
        assert f"{variable} ({key})" in header
    assert set(ENV_OVERRIDES) == set(FILE_AND_ENV)


@pytest.mark.parametrize("name", sorted(FILE_AND_ENV))
def test_each_override_beats_the_file(tmp_path: Path, name: str) -> None:
    line, value, read = FILE_AND_ENV[name]
    file = tmp_path / "gw.toml"
    file.write_text(f"[{TABLE[name]}]\n{line}\n")
    assert read(load_config(file, env={})) != value  # the file's value alone
    assert read(load_config(file, env={name: value})) == value


def test_an_empty_variable_counts_as_unset(tmp_path: Path) -> None:
    file = tmp_path / "gw.toml"
    file.write_text('[server]\nbase_url = "https://file.example"\nport = 1111\n[logging]\nlevel = "ERROR"\n')
    config = load_config(file, env={"GATEWAY_BASE_URL": "", "GATEWAY_PORT": "", "GATEWAY_LOG_LEVEL": ""})
    assert (config.server.base_url, config.server.port, config.log_level) == (
        "https://file.example",
        1111,
        "ERROR",
    )


def test_a_relative_data_dir_in_the_environment_is_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "etc").mkdir()
    file = tmp_path / "etc" / "gw.toml"
    file.write_text('[storage]\ndata_dir = "data"\n')
    monkeypatch.chdir(tmp_path)
    assert load_config(file, env={}).storage.data_dir == tmp_path / "etc" / "data"  # the file's: beside it
    assert load_config(file, env={"GATEWAY_DATA_DIR": "state"}).storage.data_dir == tmp_path / "state"


def test_an_unknown_log_level_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="LOUD"):
        load_config(None, env={"GATEWAY_LOG_LEVEL": "LOUD"})


def test_every_command_reads_the_file_named_by_gateway_config(tmp_path: Path) -> None:
    # `docker exec <container> caldav-gateway users add NAME` must see the same database as `serve`.
    config = tmp_path / "gateway.toml"
    config.write_text('[storage]\ndata_dir = "state"\n')
    env = clean_env(GATEWAY_CONFIG=str(config), GATEWAY_SECRET_KEY=generate_key())
    add = Process.gateway(["users", "add", "ann", "--no-password"], env, tmp_path / "add.log")
    add.popen.wait(timeout=60)
    assert add.stop() == 0, add.output()
    assert (tmp_path / "state" / "gateway.sqlite3").is_file()
    listed = Process.gateway(["users", "list"], env, tmp_path / "list.log")
    listed.popen.wait(timeout=60)
    assert listed.stop() == 0 and "ann" in listed.output()
