"""The sign-in failure budgets, with a fake clock: per user and address, per address, per user."""

from __future__ import annotations

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
