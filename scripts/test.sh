#!/usr/bin/env bash
# Sets everything up on a machine that has only Python and pip, then runs the whole test suite.
# Usage: bash scripts/test.sh [pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh test
# Browser tests drive Debian's Chromium; the DavMail tests run Debian's DavMail (davmail-server, the headless
# part of the davmail package) on Java. Install what is missing when we may (root with apt).
packages=()
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    packages+=(chromium chromium-driver)
fi
if ! command -v java >/dev/null 2>&1 || [ ! -f "${DAVMAIL_JAR:-/usr/share/davmail/davmail.jar}" ]; then
    packages+=(davmail-server default-jre-headless)
fi
# The store, index and some end-to-end tests also run on PostgreSQL: tests/support/postgres.py starts a
# throw-away cluster with the server binaries in /usr/lib/postgresql/*/bin (it starts none of the package's).
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
    packages+=(postgresql)
fi
if [ "${#packages[@]}" -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}") >/dev/null 2>&1 \
        || echo "warning: could not install ${packages[*]}; the browser, DavMail or PostgreSQL tests will fail" >&2
fi
exec .venv/bin/python -m pytest "$@"
