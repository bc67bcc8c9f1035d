"""A short-lived cache of identical availability questions, shared by concurrent askers.

A booking page polled by many visitors asks the same question (user, window, attendees) again and
again: within ``seconds`` the answer is reused, and askers arriving while it is being fetched wait for
that one fetch rather than starting their own, so Exchange sees one GetUserAvailability per window.
A booking or cancellation invalidates the user's answers, including one still being fetched (it was
asked before the change: a per-user generation tells).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable

from gateway.caldav.backend import Availability

MAX_ENTRIES = 10_000


class AvailabilityCache:
    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._entries: OrderedDict[tuple[str, Hashable], tuple[int, float, asyncio.Future[Availability]]] = (
            OrderedDict()
        )
        self._generation: dict[str, int] = {}

    async def get(
        self, user_id: str, question: Hashable, fetch: Callable[[], Awaitable[Availability]]
    ) -> Availability:
        """The cached answer to ``question`` for ``user_id``, else ``fetch()``'s (shared while it runs).

        With ``seconds`` 0 every call fetches. A failed fetch is not kept.
        """
        if self.seconds <= 0:
            return await fetch()
        key = (user_id, question)
        generation = self._generation.get(user_id, 0)
        entry = self._entries.get(key)
        now = self._clock()
        if entry is not None and entry[0] == generation and (not entry[2].done() or entry[1] > now):
            return await asyncio.shield(entry[2])
        future: asyncio.Future[Availability] = asyncio.get_running_loop().create_future()
        self._entries[key] = (generation, now + self.seconds, future)
        self._entries.move_to_end(key)
        while len(self._entries) > MAX_ENTRIES:
            self._entries.popitem(last=False)
        try:
            answer = await fetch()
        except BaseException as exc:
            if self._entries.get(key, (0, 0, None))[2] is future:
                del self._entries[key]
            if isinstance(exc, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(exc)
                future.exception()  # marked retrieved: the waiting askers get it, nobody else must
            raise
        future.set_result(answer)
        if self._entries.get(key, (0, 0, None))[2] is future:  # the clock starts when the answer is there
            self._entries[key] = (generation, self._clock() + self.seconds, future)
        return answer

    def invalidate(self, user_id: str) -> None:
        """Forget the user's answers (a booking changed their calendar)."""
        self._generation[user_id] = self._generation.get(user_id, 0) + 1
        for key in [k for k in self._entries if k[0] == user_id]:
            del self._entries[key]
