"""The LRU behind the EWS read caches (gateway.ews.backend.records.LRU): bounded by entries and by bytes."""

from __future__ import annotations

from gateway.ews.backend.records import LRU


def test_entries_beyond_the_byte_budget_evict_the_least_recently_used() -> None:
    cache: LRU[str, str] = LRU(100, max_bytes=10, weigh=len)
    cache.put("a", "xxxx")
    cache.put("b", "xxxx")
    assert cache.hit("a") == "xxxx"  # now b is the least recently used
    cache.put("c", "xxxx")
    assert list(cache) == ["a", "c"] and cache.bytes == 8
    cache.put("a", "x")  # replacing an entry replaces its weight
    assert cache.bytes == 5


def test_an_entry_heavier_than_the_budget_is_not_kept_and_evicts_nothing() -> None:
    cache: LRU[str, str] = LRU(100, max_bytes=10, weigh=len)
    cache.put("small", "xx")
    cache.put("huge", "x" * 11)
    assert list(cache) == ["small"] and cache.bytes == 2


def test_the_entry_count_still_bounds_it() -> None:
    cache: LRU[int, str] = LRU(2, max_bytes=1000, weigh=len)
    for n in range(3):
        cache.put(n, "x")
    assert list(cache) == [1, 2] and cache.bytes == 2
    unweighed: LRU[int, int] = LRU(2)
    for n in range(3):
        unweighed.put(n, n)
    assert list(unweighed) == [1, 2] and unweighed.bytes == 0
