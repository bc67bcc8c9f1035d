"""Fixtures: an in-memory backend with two users, and the one-line ``dav`` request helper."""

from __future__ import annotations

import pytest

from tests.support.dav import Dav, build_app
from tests.support.memory_backend import MemoryAuthenticator, MemoryBackend, sample


@pytest.fixture
def users() -> tuple[MemoryBackend, MemoryAuthenticator]:
    return sample()


@pytest.fixture
def backend(users) -> MemoryBackend:
    return users[0]


@pytest.fixture
def authenticator(users) -> MemoryAuthenticator:
    return users[1]


@pytest.fixture
async def dav(aiohttp_client, backend, authenticator) -> Dav:
    """Requests as Alice against an app with max-resource-size 20000 and a 100-day free/busy cap."""
    client = await aiohttp_client(
        build_app(backend, authenticator, max_resource_size=20_000, freebusy_max_days=100)
    )
    return Dav(client, "alice", "alice-app-pw")
