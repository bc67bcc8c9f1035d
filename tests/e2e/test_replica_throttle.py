"""Password guessing spread over two gateway replicas on one PostgreSQL database is stopped after the
budget is spent *in total*, not once per replica: each replica hears the other's failed sign-ins
(gateway/accounts/throttle.py, sent over gateway/store/notify.py). Real HTTP, wrong app passwords sent
round-robin as a load balancer without affinity would; every 127/8 address is this machine, so each
"client" leaves from an address of its own."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests
from requests.adapters import HTTPAdapter
from urllib3 import PoolManager

from gateway.config import LimitsConfig
from tests.support.gateway import GatewayStack

LIMITS = LimitsConfig(failures_per_user_per_address=4, failures_per_address=20, failures_per_user=6)


class _From(HTTPAdapter):
    """Connections leaving from one local address."""

    def __init__(self, address: str) -> None:
        self._address = address
        super().__init__()

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **kwargs: object) -> None:
        self.poolmanager = PoolManager(
            num_pools=connections, maxsize=maxsize, block=block, source_address=(self._address, 0)
        )


def client_at(address: str) -> requests.Session:
    session = requests.Session()
    session.mount("http://", _From(address))
    return session


@pytest.fixture
def store() -> str:
    return "postgresql"


@pytest.fixture
def replicas(emulator, tmp_path, database_url) -> Iterator[tuple[GatewayStack, GatewayStack]]:
    first = GatewayStack(emulator, tmp_path / "a", limits=LIMITS, database_url=database_url)
    with (
        first,
        GatewayStack(emulator, tmp_path / "b", first.keyring, LIMITS, database_url=database_url) as second,
    ):
        yield first, second


def propfind(stack: GatewayStack, address: str, password: str) -> requests.Response:
    with client_at(address) as session:
        return session.request(
            "PROPFIND",
            f"{stack.base_url}/dav/calendars/alice/",
            headers={"Depth": "0"},
            auth=("alice", password),
            timeout=30,
        )


def heard(stacks: tuple[GatewayStack, ...], address: str, count: int) -> None:
    """Wait (briefly) until every replica counts ``count`` failures of alice's app passwords from
    ``address``: the notices travel through PostgreSQL, within milliseconds."""
    deadline = time.monotonic() + 5
    while True:
        counts = [s.stack.services.accounts.throttle.failures("dav", "alice", address) for s in stacks]
        if counts == [count] * len(stacks) or time.monotonic() > deadline:
            assert counts == [count] * len(stacks), counts
            return
        time.sleep(0.02)


def assert_refused(answer: requests.Response) -> None:
    assert answer.status_code == 429, answer.text
    assert int(answer.headers["Retry-After"]) >= 1
    assert "try again in" in answer.text


def test_guesses_sent_round_robin_to_two_replicas_share_one_budget(replicas) -> None:
    stacks = replicas
    attacker = "127.0.0.3"
    for n in range(LIMITS.failures_per_user_per_address):
        assert propfind(stacks[n % 2], attacker, "wrong guess").status_code == 401
        heard(stacks, attacker, n + 1)
    # The budget is spent in total (two guesses through each): the next attempt is refused on EITHER
    # replica, without its password being checked (the right one is refused from there too).
    assert_refused(propfind(stacks[0], attacker, "another guess"))
    assert_refused(propfind(stacks[1], attacker, "another guess"))
    assert_refused(propfind(stacks[1], attacker, stacks[0].password))
    # The real user, elsewhere, is not held up by it.
    assert propfind(stacks[1], "127.0.0.4", stacks[0].password).status_code == 207


def test_a_known_address_still_gets_in_when_guesses_through_both_replicas_spend_the_user_budget(
    replicas,
) -> None:
    stacks = replicas
    phone = "127.0.0.5"
    assert propfind(stacks[0], phone, stacks[0].password).status_code == 207  # known through replica 0
    botnet = [f"127.0.1.{n}" for n in range(LIMITS.failures_per_user)]
    for n, address in enumerate(botnet):  # one guess per address, replicas in turn
        assert propfind(stacks[n % 2], address, "wrong guess").status_code == 401
        heard(stacks, address, 1)
    # The user's ceiling is reached in total: a new address is refused on either replica...
    assert_refused(propfind(stacks[0], "127.0.2.1", stacks[0].password))
    assert_refused(propfind(stacks[1], "127.0.2.1", stacks[0].password))
    # ...while the phone, which signed in through replica 0 only, gets in through replica 1 as well.
    assert propfind(stacks[1], phone, stacks[0].password).status_code == 207
    assert propfind(stacks[0], phone, stacks[0].password).status_code == 207


def test_a_right_password_forgives_the_typos_on_every_replica(replicas) -> None:
    stacks = replicas
    laptop = "127.0.0.6"
    budget = LIMITS.failures_per_user_per_address
    for n in range(budget - 1):  # typos, one short of the budget, through both replicas
        assert propfind(stacks[n % 2], laptop, "typo").status_code == 401
        heard(stacks, laptop, n + 1)
    assert propfind(stacks[0], laptop, stacks[0].password).status_code == 207
    heard(stacks, laptop, 0)  # forgiven on replica 1 too
    for n in range(budget - 1):  # so as many typos again are no problem, on either replica
        assert propfind(stacks[1 - n % 2], laptop, "typo").status_code == 401
        heard(stacks, laptop, n + 1)
    assert propfind(stacks[1], laptop, stacks[0].password).status_code == 207
