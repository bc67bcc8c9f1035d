#!/usr/bin/env bash
# Runs python-caldav's own functional tests (from its source distribution, downloaded from PyPI) against
# the gateway's demo with two users, and prints the summary; docs/CONFORMANCE.md has the last results.
# Usage: bash scripts/python-caldav-suite.sh [--keep] [--workdir DIR] [-- PYTEST ARGS]
# Not part of the default test suite (it downloads). Exit status 0 when every failure is a documented one.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh test
exec .venv/bin/python scripts/python_caldav_suite.py "$@"
