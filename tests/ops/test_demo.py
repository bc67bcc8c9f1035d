"""The demo as a person runs it: restarts on one data directory, temporary folders, all addresses."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import requests

from tests.ops.support import CALDAV_LINE, CSRF, Process, clean_env, propfind, web_sign_in

ADMIN = "ops-admin-token-5b1f"


def _demo(tmp_path: Path, name: str, *args: str, **env: str) -> Process:
    process = Process.gateway(
        ["demo", "--port", "0", "--emulator-port", "0", *args],
        clean_env(GATEWAY_ADMIN_TOKEN=ADMIN, **env),
        tmp_path / f"{name}.log",
    )
    process.wait_for("Ready")
    return process


def _caldav(process: Process) -> dict[str, tuple[str, str]]:
    """user -> (CalDAV URL, password) as printed."""
    return {m[2]: (m[1], m[3]) for m in CALDAV_LINE.finditer(process.output())}


def _app_password_labels(base_url: str, username: str) -> list[str]:
    headers = {"Authorization": f"Bearer {ADMIN}"}
    users = requests.get(f"{base_url}/api/v1/admin/users", headers=headers, timeout=10).json()
    (user,) = [u for u in users["users"] if u["username"] == username]
    listed = requests.get(
        f"{base_url}/api/v1/admin/users/{user['user_id']}/app-passwords", headers=headers, timeout=10
    ).json()
    return [p["label"] for p in listed["app_passwords"]]


def test_restart_with_a_new_password_replaces_it_for_caldav_and_web(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = _demo(tmp_path, "first", "--data-dir", str(data), "--password", "first-demo-pw-1")
    assert first.stop() in (0, 130)  # Ctrl-C
    second = _demo(tmp_path, "second", "--data-dir", str(data), "--password", "second-demo-pw-2")
    try:
        url, password = _caldav(second)["alice"]
        assert password == "second-demo-pw-2"
        base = url.removesuffix("/dav/")
        assert propfind(url, ("alice", "second-demo-pw-2")).status_code == 207
        assert web_sign_in(base, "alice", "second-demo-pw-2") is not None  # the printed one signs in
        assert web_sign_in(base, "alice", "first-demo-pw-1") is None
        assert propfind(url, ("alice", "first-demo-pw-1")).status_code == 401  # replaced, not kept
        assert _app_password_labels(base, "alice") == ["demo"]  # not one more per restart
    finally:
        second.stop()
    assert data.is_dir()  # the user's --data-dir is kept


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_temporary_data_dir_is_removed_on_exit(tmp_path: Path, sig: int) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    demo = _demo(tmp_path, "demo", TMPDIR=str(temp))
    made = demo.wait_for(r"Data dir: +(\S+)")[1]
    assert Path(made).parent == temp and Path(made).name.startswith("caldav-gateway-demo-")
    assert Path(made).is_dir()
    assert demo.stop(sig) in (0, 130)
    assert list(temp.iterdir()) == []


def test_on_every_address_the_urls_are_usable_and_the_connect_page_takes_demo_passwords(
    tmp_path: Path,
) -> None:
    demo = _demo(tmp_path, "demo", "--host", "0.0.0.0")
    try:
        output = demo.output()
        assert "//0.0.0.0" not in output  # an address to bind, never a URL to give out
        url, password = _caldav(demo)["alice"]
        assert url.startswith("http://127.0.0.1:") and "from another machine" in output
        assert propfind(url, ("alice", password)).status_code == 207
        browser = web_sign_in(url.removesuffix("/dav/"), "alice", password)
        assert browser is not None
        page = browser.get(url.replace("/dav/", "/accounts/connect"), timeout=10)
        assert page.status_code == 200 and "refuses to receive Exchange passwords" not in page.text
        connected = browser.post(
            url.replace("/dav/", "/accounts/connect"),
            data={
                "csrf_token": CSRF.search(page.text)[1],
                "email": "alice@example.com",
                "password": "alice-pw",
            },
            allow_redirects=False,
            timeout=60,
        )
        assert connected.status_code == 303, connected.text
    finally:
        demo.stop()


def test_gateway_base_url_is_what_the_demo_advertises(tmp_path: Path) -> None:
    demo = _demo(tmp_path, "demo", "--host", "0.0.0.0", GATEWAY_BASE_URL="https://calendar.example.net")
    try:
        assert _caldav(demo)["bob"][0] == "https://calendar.example.net/dav/"
        assert "Web pages:    https://calendar.example.net/" in demo.output()
    finally:
        demo.stop()
