#!/usr/bin/env bash
# Sets everything up on a machine that has only Python and pip, then starts the demo
# (the EWS emulator with demo mailboxes, and the gateway in front of it).
# Usage: bash scripts/demo.sh [demo arguments, see: python -m gateway demo --help]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e .
exec .venv/bin/python -m gateway demo "$@"
