#!/usr/bin/env bash
# Creates .venv (if missing) and installs the project into it: `bash scripts/setup-venv.sh [EXTRA]`,
# e.g. `test` for the test extra. Used by demo.sh and test.sh; needs only Python >= 3.11 and pip.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
target=.
if [ -n "${1:-}" ]; then
    target=".[$1]"
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$target"
