"""Account management and the web pages load no exchangelib: adding a user needs no EWS code.

They use the connection value types of ``gateway.ews.connection``; only connecting an account (and the
server, through ``gateway.app``) loads ``gateway.ews.client``. Checked in a fresh interpreter, since
this test process has long imported exchangelib.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MODULES = (
    "gateway.accounts.cli",
    "gateway.accounts.settings_cli",
    "gateway.accounts.service",
    "gateway.web.pages",
    "gateway.web.admin",
)
# Loaded only for talking to Exchange: exchangelib and what it brings (HTTP, NTLM, DNS for Autodiscover).
EWS_ONLY = ("exchangelib", "requests_ntlm", "dns")


def test_accounts_and_web_modules_do_not_load_exchangelib() -> None:
    script = (
        "import importlib, json, sys\n"
        f"for name in {MODULES!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    )
    loaded = json.loads(done.stdout)
    offending = sorted({m.split(".")[0] for m in loaded if m.split(".")[0] in EWS_ONLY})
    offending += [m for m in loaded if m == "gateway.ews.client"]
    assert not offending, f"importing {', '.join(MODULES)} loaded {', '.join(offending)}"
