#!/usr/bin/env bash
# Sets everything up on a machine that has only Python and pip, then starts the demo
# (the EWS emulator with demo mailboxes, and the gateway in front of it).
# Usage: bash scripts/demo.sh [demo arguments, see: python -m gateway demo --help]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh
exec .venv/bin/python -m gateway demo "$@"
