#!/usr/bin/env bash
# Sets everything up on a machine that has only Python and pip, then runs the whole test suite.
# Usage: bash scripts/test.sh [pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh test
# Browser tests drive Debian's Chromium; install it when it is missing and we may (root with apt).
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) >/dev/null 2>&1 \
            || echo "warning: could not install chromium; browser tests will fail" >&2
    fi
fi
exec .venv/bin/python -m pytest "$@"
