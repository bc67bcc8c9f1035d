"""The container image and compose file, as far as a machine without a container runtime can check.

The Dockerfile's own command line (ENTRYPOINT + CMD) runs as a process with the Dockerfile's
environment and nothing mounted; its HEALTHCHECK command is run against it; compose.yaml is parsed.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import requests
import yaml

from gateway.accounts.vault import generate_key
from gateway.config import ENV_OVERRIDES
from tests.ops.support import REPO, Process, clean_env, free_port, web_sign_in

ADMIN = "ops-admin-token-c0ffee"
WILDCARD_URL = re.compile(r"https?://(0\.0\.0\.0|\[::\])")
# The variables the gateway reads that are not overrides of a file key: secrets and the file itself.
SECRET_AND_FILE_VARIABLES = {
    "GATEWAY_SECRET_KEY",
    "GATEWAY_OLD_SECRET_KEYS",
    "GATEWAY_ADMIN_TOKEN",
    "GATEWAY_METRICS_TOKEN",
    "GATEWAY_CONFIG",
}


def _dockerfile() -> dict[str, object]:
    """ENV (a dict), ENTRYPOINT, CMD and the HEALTHCHECK command (lists) of the Dockerfile."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text(encoding="utf-8"))
    found: dict[str, object] = {"ENV": {}}
    for line in text.splitlines():
        instruction, _, rest = line.strip().partition(" ")
        if instruction == "ENV":
            found["ENV"].update(pair.split("=", 1) for pair in shlex.split(rest))
        elif instruction in ("ENTRYPOINT", "CMD"):
            found[instruction] = json.loads(rest)
        elif instruction == "HEALTHCHECK":
            found["HEALTHCHECK"] = json.loads(rest[rest.index(" CMD ") + 5 :])
    return found


def _executable(argv0: str) -> str:
    """The image's programs as installed in this virtual environment."""
    return sys.executable if argv0 == "python" else str(Path(sys.executable).parent / argv0)


def test_the_image_command_starts_from_the_environment_alone(tmp_path: Path) -> None:
    image = _dockerfile()
    assert image["ENV"]["GATEWAY_HOST"] == "0.0.0.0"  # reachable through the published port
    assert "GATEWAY_CONFIG" not in image["ENV"] and "--config" not in image["CMD"]  # nothing mounted
    port = free_port()
    # What `docker run -e GATEWAY_SECRET_KEY=... -e GATEWAY_ADMIN_TOKEN=...` adds; the data dir and
    # port are this machine's stand-ins for the volume and the container's own network.
    env = clean_env(
        **{
            **image["ENV"],
            "GATEWAY_SECRET_KEY": generate_key(),
            "GATEWAY_ADMIN_TOKEN": ADMIN,
            "GATEWAY_DATA_DIR": str(tmp_path / "data"),
            "GATEWAY_PORT": str(port),
            "GATEWAY_LOG_LEVEL": "INFO",
        }
    )
    argv = [_executable(image["ENTRYPOINT"][0]), *image["ENTRYPOINT"][1:], *image["CMD"]]
    gateway = Process(argv, env, tmp_path / "gateway.log")
    base = f"http://127.0.0.1:{port}"
    try:
        assert gateway.wait_http(f"{base}/readyz").json() == {"status": "ok", "database": "up"}
        check = image["HEALTHCHECK"]
        health = subprocess.run([_executable(check[0]), *check[1:]], env=env, timeout=30, capture_output=True)
        assert health.returncode == 0, health.stderr
        gateway.wait_for("listening on every address")
        requests.post(
            f"{base}/api/v1/admin/users",
            json={"username": "ann", "password": "ann-web-pw-3"},
            headers={"Authorization": f"Bearer {ADMIN}"},
            timeout=10,
        ).raise_for_status()
        browser = web_sign_in(base, "ann", "ann-web-pw-3")
        home = browser.get(f"{base}/", timeout=10).text
        assert f"{base}/dav/" in home  # the URL the user reached the gateway by, not the listener's
    finally:
        gateway.stop()
    for text in (gateway.output(), home):  # the listening address is never given out as a URL
        assert not WILDCARD_URL.search(text), WILDCARD_URL.search(text)
    assert (tmp_path / "data" / "gateway.sqlite3").is_file()


def test_metrics_require_the_metrics_token_when_one_is_set(tmp_path: Path) -> None:
    port = free_port()
    env = clean_env(
        GATEWAY_SECRET_KEY=generate_key(),
        GATEWAY_METRICS_TOKEN="metrics-token-77aa",
        GATEWAY_DATA_DIR=str(tmp_path / "data"),
        GATEWAY_PORT=str(port),
    )
    gateway = Process.gateway(["serve"], env, tmp_path / "gateway.log")
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        refused = gateway.wait_http(url)
        assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Bearer")
        wrong = requests.get(url, headers={"Authorization": "Bearer metrics-token-77ab"}, timeout=10)
        assert wrong.status_code == 401
        right = requests.get(url, headers={"Authorization": "Bearer metrics-token-77aa"}, timeout=10)
        assert right.status_code == 200 and "gateway_event_loop_lag_seconds" in right.text
    finally:
        gateway.stop()


def test_compose_runs_the_gateway_on_postgresql() -> None:
    compose = yaml.safe_load((REPO / "compose.yaml").read_text(encoding="utf-8"))
    gateway, postgres = compose["services"]["gateway"], compose["services"]["postgres"]
    assert gateway["build"] == "." and "8080:8080" in gateway["ports"]
    assert gateway["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert gateway["environment"]["GATEWAY_DATABASE_URL"].startswith("postgresql+asyncpg://gateway:")
    assert "@postgres:5432/gateway" in gateway["environment"]["GATEWAY_DATABASE_URL"]
    assert ":?" in gateway["environment"]["GATEWAY_SECRET_KEY"]  # compose refuses to start without it
    assert set(gateway["environment"]) <= set(ENV_OVERRIDES) | SECRET_AND_FILE_VARIABLES  # no typos
    assert any(v.endswith(":/data") for v in gateway["volumes"])
    assert postgres["image"] == "postgres:16"
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert any(v.endswith(":/var/lib/postgresql/data") for v in postgres["volumes"])
    assert {v.split(":")[0] for v in gateway["volumes"] + postgres["volumes"]} <= set(compose["volumes"])


def test_the_image_has_the_postgresql_driver_compose_needs() -> None:
    """compose.yaml's postgresql+asyncpg URL needs asyncpg in the image: the postgres extra brings it."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert any(dep.startswith("asyncpg") for dep in project["optional-dependencies"]["postgres"])
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r'pip install [^\n]*"\.\[postgres\]"', dockerfile)
    compose = (REPO / "compose.yaml").read_text(encoding="utf-8")
    assert "cannot start" not in compose and "separate issue" not in compose  # the old caveat is gone
