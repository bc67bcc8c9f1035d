"""caldav-server-tester (python-caldav's server checker, a real client) rates the gateway's task features.

The tester runs as a process, as a server's administrator runs it, against the in-process demo with both
demo users (alice; bob for its multi-user scheduling checks). Its ``hints`` report lists every feature it
observed with its support level; every task feature must be ``full``, except
``save-load.todo.mixed-calendar``: Exchange keeps tasks in task folders apart from calendars, so a calendar
cannot hold a task (docs/CONFORMANCE.md, "caldav-server-tester"). The tester's set-up needs a task-only
calendar for its task checks; it must get one (MKCALENDAR with VTODO), and that is a task folder in Exchange.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.test_read_path import dav_client, exchange_account

TESTER = Path(sys.executable).with_name("caldav-server-tester")
# What the tester names its task-only calendar (the name of its event calendar with " - tasks").
TASK_CALENDAR = "Calendar for checking server feature support - tasks"
# Exchange has no calendar that holds both events and tasks (docs/MAPPING.md, "Tasks").
NOT_FULL = {"save-load.todo.mixed-calendar": "unsupported"}


def run_tester(stack, workdir: Path) -> dict[str, dict]:
    """Every feature the tester observed (its ``--format hints`` report, a Python dict literal)."""
    if not TESTER.exists():
        reason = "caldav-server-tester is not installed (pip install -e '.[test]')"
        if os.environ.get("CI"):
            pytest.fail(reason)  # in CI a missing tool must not pass as a skipped test
        pytest.skip(reason)
    url = stack.base_url + "/"
    config = workdir / "caldav.json"  # the second user, for --config-section
    bob = {"caldav_url": url, "caldav_username": "bob", "caldav_password": stack.password}
    config.write_text(json.dumps({"bob": bob}), encoding="utf-8")
    cmd = [str(TESTER), "--caldav-url", url, "--caldav-username", "alice"]
    cmd += ["--caldav-password", stack.password, "--config-section", "bob", "--format", "hints"]
    cmd += ["--no-cleanup"]  # the test looks at the calendars it made
    env = {**os.environ, "CALDAV_CONFIG_FILE": str(config), "HOME": str(workdir)}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    start = done.stdout.index("{")
    return ast.literal_eval(done.stdout[start:])


def test_caldav_server_tester_rates_every_task_feature_full(stack, tmp_path):
    features = run_tester(stack, tmp_path)

    task_features = {name: info for name, info in features.items() if "todo" in name.split(".")}
    assert "save-load.todo" in task_features and "search.time-range.todo" in task_features, features
    not_full = {n: i.get("support") for n, i in task_features.items() if i.get("support") != "full"}
    assert not_full == NOT_FULL, task_features

    # Its set-up made a task-only calendar, a task folder in alice's mailbox.
    calendars = {c.get_display_name(): c for c in dav_client(stack).principal().calendars()}
    assert calendars[TASK_CALENDAR].get_supported_components() == ["VTODO"]
    folders = [f.name for f in exchange_account(stack.emulator).tasks.children]
    assert TASK_CALENDAR in folders
