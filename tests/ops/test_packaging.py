"""Installing the project prints no packaging deprecation warnings (issue 13).

setuptools deprecated ``license = { text = ... }`` in favour of an SPDX string; with the table
every ``pip install`` (scripts/setup-venv.sh, scripts/demo.sh) printed ~45 lines of warnings.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_license_is_an_spdx_string_with_a_setuptools_that_understands_it() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["license"] == "MIT"
    # An SPDX string needs setuptools 77 or later (older ones reject it).
    assert "setuptools>=77" in project["build-system"]["requires"]


def test_preparing_the_metadata_prints_no_deprecation_warning() -> None:
    # The metadata step that every `pip install` runs, in the build environment pip makes from
    # [build-system] requires; --dry-run stops before building, so nothing is written to the tree.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--no-deps",
            "--ignore-installed",
            "--disable-pip-version-check",
            "-v",
            str(REPO),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "Would install exchange-caldav-gateway" in output
    deprecations = [line for line in output.splitlines() if "deprecat" in line.lower()]
    assert deprecations == []
