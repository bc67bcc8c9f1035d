"""The availability cache (gateway/booking/cache.py): reused within its time, shared while being asked,
forgotten by a booking — even an answer still being fetched when the booking came."""

from __future__ import annotations

import asyncio

import pytest

from gateway.booking.cache import AvailabilityCache
from gateway.caldav.backend import Availability


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Exchange:
    """Counts the questions; each answer is a new object (so reuse is visible)."""

    def __init__(self, delay: float = 0.0) -> None:
        self.asked = 0
        self.delay = delay
        self.fail: Exception | None = None

    async def __call__(self) -> Availability:
        self.asked += 1
        await asyncio.sleep(self.delay)
        if self.fail is not None:
            raise self.fail
        return Availability([], None)


async def test_an_identical_question_is_answered_from_the_cache_until_it_expires() -> None:
    clock, exchange = Clock(), Exchange()
    cache = AvailabilityCache(10, clock)
    first = await cache.get("u1", ("window",), exchange)
    assert await cache.get("u1", ("window",), exchange) is first
    await cache.get("u1", ("other window",), exchange)
    await cache.get("u2", ("window",), exchange)
    assert exchange.asked == 3
    clock.now = 10.5
    assert await cache.get("u1", ("window",), exchange) is not first
    assert exchange.asked == 4


async def test_concurrent_askers_share_one_question() -> None:
    exchange = Exchange(delay=0.05)
    cache = AvailabilityCache(10)
    answers = await asyncio.gather(*(cache.get("u1", "q", exchange) for _ in range(100)))
    assert exchange.asked == 1 and len({id(a) for a in answers}) == 1


async def test_a_booking_forgets_answers_even_one_being_fetched() -> None:
    exchange = Exchange(delay=0.05)
    cache = AvailabilityCache(10)
    await cache.get("u1", "q", exchange)
    cache.invalidate("u1")
    pending = asyncio.ensure_future(cache.get("u1", "q", exchange))
    await asyncio.sleep(0.01)
    cache.invalidate("u1")  # booked while the question was on its way
    await pending
    await cache.get("u1", "q", exchange)
    assert exchange.asked == 3


async def test_failures_are_not_kept_and_zero_seconds_always_asks() -> None:
    exchange = Exchange()
    exchange.fail = RuntimeError("Exchange is down")
    cache = AvailabilityCache(10)
    with pytest.raises(RuntimeError):
        await cache.get("u1", "q", exchange)
    exchange.fail = None
    await cache.get("u1", "q", exchange)
    assert exchange.asked == 2
    off = AvailabilityCache(0)
    for _ in range(3):
        await off.get("u1", "q", exchange)
    assert exchange.asked == 5
