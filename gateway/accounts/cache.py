"""A small per-user cache with expiry, for what CalDAV requests need on every call."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Generic, TypeVar

V = TypeVar("V")


class ExpiringCache(Generic[V]):
    """user id -> value for ``ttl`` seconds (0: nothing is kept), at most ``size`` users (oldest dropped)."""

    def __init__(self, ttl: float, size: int = 10_000) -> None:
        self.ttl = ttl
        self.size = size
        self._entries: OrderedDict[str, tuple[float, V]] = OrderedDict()

    def get(self, user_id: str) -> V | None:
        hit = self._entries.get(user_id)
        if hit is None:
            return None
        if hit[0] <= time.monotonic():
            self._entries.pop(user_id, None)
            return None
        return hit[1]

    def put(self, user_id: str, value: V) -> None:
        if self.ttl <= 0:
            return
        self._entries[user_id] = (time.monotonic() + self.ttl, value)
        self._entries.move_to_end(user_id)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def forget(self, user_id: str | None) -> None:
        """Drops the user's entry; None drops every user's."""
        if user_id is None:
            self._entries.clear()
        else:
            self._entries.pop(user_id, None)
