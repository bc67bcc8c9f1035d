"""The sign-in failure budgets, with a fake clock: per user and address, per address, per user."""

from __future__ import annotations

import hashlib

import pytest

from gateway.accounts.throttle import SignInThrottle, address_group
from gateway.caldav.backend import TooManyFailures


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _throttle(clock: Clock, **budgets: int) -> SignInThrottle:
    defaults = {"per_user_per_address": 3, "per_address": 5, "per_user": 8}
    return SignInThrottle(window=60, clock=clock, **(defaults | budgets))


def _fail(throttle: SignInThrottle, user: str, address: str, kind: str = "dav") -> None:
    with throttle.begin(kind, user, address):
        pass  # the password was wrong


def _succeed(throttle: SignInThrottle, user: str, address: str, kind: str = "dav") -> None:
    with throttle.begin(kind, user, address) as attempt:
        attempt.succeeded()


def test_a_guesser_is_stopped_per_user_and_address_until_the_window_moves_on() -> None:
    clock = Clock()
    throttle = _throttle(clock)
    for second in range(3):
        clock.now = 1000.0 + second * 10
        _fail(throttle, "ann", "192.0.2.1")
    with pytest.raises(TooManyFailures) as refused:
        throttle.begin("dav", "ann", "192.0.2.1")
    # The first failure (at 1000) leaves the 60-second window at 1060; it is now 1020.
    assert refused.value.retry_after == 40
    assert "try again in 40 seconds" in str(refused.value)
    _succeed(throttle, "bob", "192.0.2.1")  # another user from there: fine
    _succeed(throttle, "ann", "192.0.2.1", kind="web")  # the web password counts apart
    clock.now = 1060.5
    _fail(throttle, "ann", "192.0.2.1")  # one failure left the window: one more attempt


def test_parallel_attempts_count_before_they_finish_and_a_success_gives_its_reservation_back() -> None:
    throttle = _throttle(Clock())
    pending = [throttle.begin("dav", "ann", "192.0.2.1") for _ in range(3)]
    with pytest.raises(TooManyFailures) as busy:
        throttle.begin("dav", "ann", "192.0.2.1")  # three still being checked: the fourth waits a moment
    assert busy.value.retry_after == 1 and "at once" in str(busy.value)
    with pending[0] as attempt:
        attempt.succeeded()  # that one was right: its reservation and earlier typos there are forgiven
    for attempt in pending[1:]:
        with attempt:
            pass  # wrong
    for _ in range(3):
        _fail(throttle, "ann", "192.0.2.1")
    with pytest.raises(TooManyFailures) as spent:
        throttle.begin("dav", "ann", "192.0.2.1")
    assert spent.value.retry_after == 60  # now failures, not attempts in flight: the window must pass


def test_an_attempt_ended_by_an_error_is_withdrawn_not_counted() -> None:
    throttle = _throttle(Clock())
    for _ in range(5):
        with pytest.raises(RuntimeError), throttle.begin("dav", "ann", "192.0.2.1"):
            raise RuntimeError("the database is down")
    _succeed(throttle, "ann", "192.0.2.1")


def test_many_names_from_one_address_are_stopped_and_signing_in_elsewhere_does_not_reset_it() -> None:
    throttle = _throttle(Clock())
    for n in range(5):
        _fail(throttle, f"user{n}", "192.0.2.1")
    with pytest.raises(TooManyFailures) as refused:
        throttle.begin("dav", "mallory", "192.0.2.1")  # even the attacker's own account
    assert "from your address" in str(refused.value)
    _succeed(throttle, "mallory", "192.0.2.9")
    with pytest.raises(TooManyFailures):
        throttle.begin("dav", "user9", "192.0.2.1")


def test_many_addresses_cannot_lock_the_real_user_out_of_the_addresses_they_use() -> None:
    throttle = _throttle(Clock())
    _succeed(throttle, "ann", "198.51.100.7")  # ann's phone, earlier
    for n in range(8):  # a botnet: one guess per address
        _fail(throttle, "ann", f"203.0.113.{n}")
    with pytest.raises(TooManyFailures) as refused:
        throttle.begin("dav", "ann", "203.0.113.200")  # a new address: the user's ceiling is reached
    assert "for this user" in str(refused.value)
    _succeed(throttle, "ann", "198.51.100.7")  # the known address still gets in
    _succeed(throttle, "ann", "198.51.100.7", kind="web")


def test_ipv6_clients_count_per_64_and_mapped_ipv4_as_ipv4() -> None:
    assert (
        address_group("2001:db8:1:2:aaaa::1") == address_group("2001:db8:1:2:bbbb::2") == "2001:db8:1:2::/64"
    )
    assert address_group("2001:db8:1:3::1") != address_group("2001:db8:1:2::1")
    assert address_group("::ffff:192.0.2.1") == "192.0.2.1"
    throttle = _throttle(Clock())
    for n in range(3):
        _fail(throttle, "ann", f"2001:db8:1:2::{n + 1}")
    with pytest.raises(TooManyFailures):
        throttle.begin("dav", "ann", "2001:db8:1:2:ffff::9")


def test_memory_stays_bounded_under_a_spray_of_names() -> None:
    throttle = SignInThrottle(per_address=10**9, per_user_per_address=10**9, max_keys=100, clock=Clock())
    for n in range(1000):
        _fail(throttle, f"user{n}", f"10.0.{n // 250}.{n % 250}")
    assert len(throttle._failures) <= 100


class Processes:
    """Throttles of several processes, each telling the others what it says (as the invalidation channel
    does on PostgreSQL), with the messages kept for inspection."""

    def __init__(self, clock: Clock, count: int = 2) -> None:
        self.said: list[str] = []
        self.throttles = [_throttle(clock) for _ in range(count)]
        for number, throttle in enumerate(self.throttles):
            throttle.share(lambda message, number=number: self._tell(number, message))

    def _tell(self, sender: int, message: str) -> None:
        self.said.append(message)
        for number, throttle in enumerate(self.throttles):
            if number != sender:
                throttle.heard(message)


def test_failures_in_other_processes_count_here_and_a_spent_budget_refuses_everywhere() -> None:
    clock = Clock()
    a, b = Processes(clock).throttles
    _fail(a, "ann", "192.0.2.1")
    clock.now += 10
    _fail(b, "ann", "192.0.2.1")
    _fail(a, "ann", "192.0.2.1")
    assert a.failures("dav", "ann", "192.0.2.1") == b.failures("dav", "ann", "192.0.2.1") == 3
    for throttle in (a, b):  # 3 per user and address, spent in total: refused in both processes
        with pytest.raises(TooManyFailures) as refused:
            throttle.begin("dav", "ann", "192.0.2.1")
        assert refused.value.retry_after == 50  # the first left the window 60 s after it was heard
    _succeed(b, "bob", "192.0.2.1")  # other users from there are fine (5 per address: 3 spent)
    clock.now += 50.5
    _fail(b, "ann", "192.0.2.1")  # the first failure left the window in both
    with pytest.raises(TooManyFailures):
        a.begin("dav", "ann", "192.0.2.1")


def test_a_success_elsewhere_forgives_typos_and_makes_the_address_known_here() -> None:
    clock = Clock()
    a, b = Processes(clock).throttles
    _fail(a, "ann", "192.0.2.1")
    _fail(a, "ann", "192.0.2.1")
    _succeed(b, "ann", "192.0.2.1")  # the right password, through the other process
    assert a.failures("dav", "ann", "192.0.2.1") == 0
    for n in range(6):  # guesses from many addresses, through both, spend ann's ceiling (the typos count)
        _fail((a, b)[n % 2], "ann", f"203.0.113.{n}")
    for throttle in (a, b):
        with pytest.raises(TooManyFailures):
            throttle.begin("dav", "ann", "203.0.113.99")
        _succeed(throttle, "ann", "192.0.2.1")  # known in both, though it signed in through b only


def test_a_success_at_a_known_address_tells_nobody_again_within_the_hour() -> None:
    clock = Clock()
    processes = Processes(clock)
    a = processes.throttles[0]
    _succeed(a, "ann", "192.0.2.1")
    assert len(processes.said) == 1  # new address: told
    for _ in range(100):  # a CalDAV client's every request (from the cache: no database round trip)
        clock.now += 30
        _succeed(a, "ann", "192.0.2.1")
    assert len(processes.said) == 1
    clock.now += 600
    _succeed(a, "ann", "192.0.2.1")
    assert len(processes.said) == 2  # an hour on: told again, for processes started since
    _fail(a, "ann", "192.0.2.1")
    _succeed(a, "ann", "192.0.2.1")  # a typo to forgive: told at once
    assert len(processes.said) == 4


def test_attempts_in_flight_stay_in_their_process_and_count_everywhere_once_they_fail() -> None:
    clock = Clock()
    processes = Processes(clock)
    a, b = processes.throttles
    in_a = [a.begin("dav", "ann", "192.0.2.1") for _ in range(3)]
    in_b = [b.begin("dav", "ann", "192.0.2.1") for _ in range(3)]  # the bound: N x budget in flight
    assert processes.said == []
    for attempt in in_a + in_b:
        with attempt:
            pass  # all wrong
    for throttle in (a, b):
        assert throttle.failures("dav", "ann", "192.0.2.1") == 6
        with pytest.raises(TooManyFailures):
            throttle.begin("dav", "ann", "192.0.2.1")


def test_messages_name_no_password_and_long_names_only_by_their_digest() -> None:
    clock = Clock()
    processes = Processes(clock)
    a, b = processes.throttles
    long_name = "x" * 5000  # a Basic header can carry a user name of any length
    with a.begin("dav", long_name, "2001:db8::1"):
        pass
    assert processes.said == [
        '["failed", "dav", "#' + hashlib.sha256(long_name.encode()).hexdigest() + '", "2001:db8::/64"]'
    ]
    assert b.failures("dav", long_name, "2001:db8::2") == 1
    for garbage in ("[1, 2]", '["failed", "dav", "ann"]', '["reset", "dav", "ann", "x"]', "{"):
        with pytest.raises(ValueError):
            b.heard(garbage)


def test_a_success_heard_from_elsewhere_keeps_the_attempts_in_flight_here() -> None:
    clock = Clock()
    a, b = Processes(clock).throttles
    _fail(a, "ann", "192.0.2.1")
    in_flight = [b.begin("dav", "ann", "192.0.2.1") for _ in range(2)]  # 1 heard + 2 here: full
    _succeed(a, "ann", "192.0.2.1")  # forgives the failure in b, not b's attempts still being checked
    in_flight.append(b.begin("dav", "ann", "192.0.2.1"))  # room for one
    with pytest.raises(TooManyFailures) as busy:
        b.begin("dav", "ann", "192.0.2.1")
    assert "at once" in str(busy.value)
    for attempt in in_flight:
        with attempt:
            pass  # wrong
    assert a.failures("dav", "ann", "192.0.2.1") == b.failures("dav", "ann", "192.0.2.1") == 3
