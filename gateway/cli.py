"""Command line: ``python -m gateway <command>`` (also installed as ``caldav-gateway``).

Each command lives in its own module, which exposes ``register(subparsers)``; the
sub-parser it adds sets ``func`` to a callable taking the parsed arguments and
returning an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Modules that contribute sub-commands, in the order ``--help`` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "gateway.demo",
    "gateway.serve_cli",
    "gateway.accounts.cli",
    "gateway.accounts.settings_cli",
    "gateway.ews.emulator.cli",
    "gateway.bench",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="caldav-gateway",
        description="Exchange-to-CalDAV gateway: serve Exchange calendars to CalDAV clients.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
