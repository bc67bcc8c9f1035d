"""End-to-end fixtures: the demo set-up (emulator + gateway over real HTTP, SQLite file; PostgreSQL for the
tests marked ``on_both_stores``, tests/support/postgres.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.gateway import GatewayStack


@pytest.fixture
def stack(emulator, tmp_path, database_url) -> Iterator[GatewayStack]:
    """A fresh gateway with the demo users alice and bob, in front of the reset emulator."""
    with GatewayStack(emulator, tmp_path / "data", database_url=database_url) as gateway:
        yield gateway
