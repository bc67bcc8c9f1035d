"""Cache invalidation across the processes sharing one database.

A process caches what every request needs (verified app passwords, a user's accounts with their opened
credentials, calendar folder lists, stored collection properties). Another replica, or a CLI command,
may change any of it. On PostgreSQL each change is announced with ``NOTIFY`` (PostgreSQL manual,
NOTIFY) inside the transaction that writes it, so it is delivered exactly when the change commits, and
never for a change rolled back; every process ``LISTEN``\\ s on one connection of its own and drops what
the notice names. One channel, :data:`CHANNEL`, carries ``<kind>\\n<key>`` (a channel per key would need
a LISTEN per cached key).

The kinds (constants below), and who subscribes: :data:`ACCOUNTS` (a user's accounts and settings;
key: user id, ``*`` for every user: gateway/accounts/exchange_accounts.py), :data:`SIGN_IN` (a user's
verified app passwords, key: user id) and :data:`APP_PASSWORD` (key: its id; both
gateway/accounts/service.py), :data:`FOLDERS` and :data:`PROPERTIES` (a mailbox's calendar folders and
stored collection properties; key: account id; gateway/ews/backend/calendars.py, collections.py).

Besides invalidations the channel carries *messages* of a kind (:meth:`~Invalidations.send_soon`,
:meth:`~Invalidations.on_message`): facts every other process adds to its own state, sent after the fact
(no transaction to wait for), batched into as few notices as fit ``NOTIFY``'s 8000-byte payload, each
notice naming the process it came from so that the sender does not count its own twice. The one such
kind, :data:`SIGN_INS`, carries failed and successful sign-ins (gateway/accounts/throttle.py); a
message missed while a listening connection is down is lost (that process counts what it saw itself).

Missed notices: while the listening connection is down nothing is cached (:meth:`Invalidations.token`
is None), and every cache is dropped when it is lost and again once it is back, so a notice sent
meanwhile cannot leave a stale entry. A cache fills only through :meth:`~Invalidations.token` /
:meth:`~Invalidations.still`, which also refuses a value read before an invalidation (of its key, or of
its whole kind) that arrived while it was being read; other keys' invalidations (a folder list dropped for
another user's home listing) do not keep a cache from filling.

On SQLite one process serves the database: a change is dropped from this process's caches at once;
a CLI command's change reaches a running server within the caches' expiry (``cache_seconds``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger(__name__)

CHANNEL = "gateway_invalidate"
EVERY_KEY = "*"
ACCOUNTS = "accounts"
SIGN_IN = "sign_in"
APP_PASSWORD = "app_password"
FOLDERS = "folders"
PROPERTIES = "properties"
SIGN_INS = "sign_ins"  # a message kind: failed and successful sign-ins (gateway/accounts/throttle.py)
OUTBOX = 10_000  # messages waiting for the database at most; beyond, new ones are not sent (each process
# still counts its own): a database too slow to take them must not also fill this process's memory
PAYLOAD_BYTES = 7900  # of a notice's payload: PostgreSQL refuses 8000 bytes and more (manual, NOTIFY)
SLOTS = 4096  # invalidations are counted per (kind, key) in this many slots; two keys sharing one only
# make a read of one refused after the other's invalidation, which costs a cache miss, nothing more
PING_SECONDS = 10.0  # a connection lost without a FIN (a dead peer) is noticed this long after at most
RECONNECT_SECONDS = (0.2, 0.5, 1.0, 2.0, 5.0)  # waits between attempts, the last repeated

Drop = Callable[[str | None], None]  # drops the entry of a key; None: every entry
Heard = Callable[[str], None]  # takes one message another process sent
_NOTIFY = text("SELECT pg_notify(:channel, :payload)")


class Invalidations:
    """Subscriptions of caches to kinds of change, and the announcements of changes."""

    def __init__(self, engine: AsyncEngine, *, local: bool = False) -> None:
        """``local``: this process's caches only (a test's or a command's own index), nothing announced."""
        self._engine = engine
        url = engine.url
        self._dsn: str | None = None
        if url.get_backend_name() == "postgresql" and not local:
            self._dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._subscribers: dict[str, list[Drop]] = {}
        self._epoch = 0  # every cache dropped (the listening connection lost or back)
        self._whole: dict[str, int] = {}  # kind -> drops of every key of it
        self._any: dict[str, int] = {}  # kind -> drops of any key of it
        self._slots = [0] * SLOTS  # drops per (kind, key), by slot
        self._listening = self._dsn is None  # SQLite: no other process to hear from
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self.origin = secrets.token_hex(6)  # names this process in the messages it sends
        self._hearers: dict[str, list[Heard]] = {}
        self._outbox: list[tuple[str, str]] = []  # (kind, message) not sent yet
        self._sender: asyncio.Task[None] | None = None

    @property
    def shared(self) -> bool:
        """Whether changes are announced to other processes (PostgreSQL)."""
        return self._dsn is not None

    def subscribe(self, kind: str, drop: Drop) -> None:
        self._subscribers.setdefault(kind, []).append(drop)

    def token(self, kind: str, key: str | None = None) -> tuple[int, ...] | None:
        """Taken before reading what is to be cached under ``key`` of ``kind`` (None: a value that any
        invalidation of ``kind`` makes stale); None: cache nothing now (the listener is down)."""
        return self._stamp(kind, key) if self._listening else None

    def still(self, token: tuple[int, ...] | None, kind: str, key: str | None = None) -> bool:
        """Whether a value read after :meth:`token` may be cached: it was not invalidated meanwhile."""
        return token is not None and self._listening and token == self._stamp(kind, key)

    def _stamp(self, kind: str, key: str | None) -> tuple[int, ...]:
        if key is None:
            return (self._epoch, self._any.get(kind, 0))
        return (self._epoch, self._whole.get(kind, 0), self._slots[_slot(kind, key)])

    def drop(self, kind: str, key: str) -> None:
        """Drop this process's cached entries of ``key`` (``*``: all of ``kind``)."""
        self._any[kind] = self._any.get(kind, 0) + 1
        if key == EVERY_KEY:
            self._whole[kind] = self._whole.get(kind, 0) + 1
        else:
            self._slots[_slot(kind, key)] += 1
        for drop in self._subscribers.get(kind, ()):
            drop(None if key == EVERY_KEY else key)

    def drop_all(self) -> None:
        self._epoch += 1
        for drops in self._subscribers.values():
            for drop in drops:
                drop(None)

    async def announce(self, conn: AsyncConnection, kind: str, key: str) -> None:
        """Inside the transaction writing a change: every process drops ``key`` of ``kind`` when it commits.
        This process drops it now as well; the writer drops it again after the commit (:meth:`drop`),
        so a read that raced the write is not cached."""
        self.drop(kind, key)
        if self._dsn is not None:
            await conn.execute(_NOTIFY, {"channel": CHANNEL, "payload": f"{kind}\n{key}"})

    async def publish(self, kind: str, key: str) -> None:
        """Announce a change that wrote nothing to the database (a folder renamed in Exchange)."""
        async with self._engine.begin() as conn:
            await self.announce(conn, kind, key)
        self.drop(kind, key)

    # --- the listening connection (PostgreSQL) ------------------------------------------------

    async def start(self, wait: float = 10.0) -> None:
        """Listen (PostgreSQL); waits up to ``wait`` seconds for the first connection (caches stay
        off until it is up)."""
        if self._dsn is None or self._task is not None:
            return
        self._task = asyncio.create_task(self._listen(), name="gateway-invalidations")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), wait)

    # --- messages (PostgreSQL) ------------------------------------------------------------------

    def on_message(self, kind: str, heard: Heard) -> None:
        """Call ``heard`` with every message of ``kind`` another process sends."""
        self._hearers.setdefault(kind, []).append(heard)

    def send_soon(self, kind: str, message: str) -> None:
        """Send ``message`` (one line, no newline; well under :data:`PAYLOAD_BYTES`) to every other
        process, from a task of its own: the caller does not wait for the database. Nothing on SQLite,
        without a running event loop, or while :data:`OUTBOX` messages wait already."""
        if self._dsn is None or "\n" in message or len(self._outbox) >= OUTBOX:
            return
        self._outbox.append((kind, message))
        if self._sender is None or self._sender.done():
            try:
                self._sender = asyncio.get_running_loop().create_task(self._send(), name="gateway-messages")
            except RuntimeError:  # no loop (a synchronous caller): nobody to send it
                self._outbox.clear()

    async def _send(self) -> None:
        while self._outbox:
            batch, self._outbox = self._outbox, []
            try:
                async with self._engine.begin() as conn:
                    for payload in _payloads(batch, self.origin):
                        await conn.execute(_NOTIFY, {"channel": CHANNEL, "payload": payload})
            except Exception as exc:  # noqa: BLE001 - the database is unreachable: the others miss these
                log.warning("messages to other processes lost (%s)", type(exc).__name__)

    async def close(self) -> None:
        if self._sender is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._sender), 2)  # what is queued still goes out
            self._sender = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _listen(self) -> None:
        import asyncpg  # the postgres extra; only a PostgreSQL URL gets here

        attempt = 0
        while True:
            lost = asyncio.Event()
            try:
                conn = await asyncpg.connect(self._dsn)
            except Exception as exc:  # noqa: BLE001 - whatever failed, caching stays off and it tries again
                delay = RECONNECT_SECONDS[min(attempt, len(RECONNECT_SECONDS) - 1)]
                log.warning(
                    "cache invalidation: cannot listen (%s); again in %.1f s", type(exc).__name__, delay
                )
                attempt += 1
                await asyncio.sleep(delay)
                continue
            try:
                conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
                await conn.add_listener(CHANNEL, self._received)
                attempt = 0
                self._listening = True
                self.drop_all()  # anything announced before the LISTEN took effect
                self._connected.set()
                await self._watch(conn, lost)
            except Exception as exc:  # noqa: BLE001 - any loss (network, server, driver): listen anew
                log.warning("cache invalidation: listening connection lost (%s)", type(exc).__name__)
            finally:
                self._listening = False
                self._connected.clear()
                self.drop_all()  # notices sent until the next LISTEN are missed
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.close(), 2)

    @staticmethod
    async def _watch(conn: object, lost: asyncio.Event) -> None:
        """Return when the connection is lost: closed by the server, or no answer to a ping."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), PING_SECONDS)
            if lost.is_set():
                return
            await conn.fetchval("SELECT 1", timeout=PING_SECONDS)  # type: ignore[attr-defined]

    def _received(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        kind, _, key = payload.partition("\n")
        hearers = self._hearers.get(kind)
        if hearers is None:
            self.drop(kind, key)
            return
        origin, _, messages = key.partition("\n")
        if origin == self.origin:
            return  # this process's own: counted when it happened
        for message in messages.split("\n"):
            for heard in hearers:
                try:
                    heard(message)
                except Exception:  # a malformed message must not end the listening connection
                    log.warning("message of kind %s not understood", kind, exc_info=True)


def _payloads(batch: list[tuple[str, str]], origin: str) -> list[str]:
    """The messages as notices of ``<kind>\\n<origin>\\n<message>\\n<message>…``, each within
    :data:`PAYLOAD_BYTES` (a message too long for one notice alone is left out)."""
    payloads: list[str] = []
    open_: dict[str, tuple[list[str], int]] = {}
    for kind, message in batch:
        head = len(kind.encode()) + len(origin) + 2
        size = len(message.encode()) + 1
        if head + size > PAYLOAD_BYTES:
            continue
        lines, used = open_.get(kind, ([], head))
        if used + size > PAYLOAD_BYTES:
            payloads.append("\n".join([kind, origin, *lines]))
            lines, used = [], head
        lines.append(message)
        open_[kind] = (lines, used + size)
    payloads.extend("\n".join([kind, origin, *lines]) for kind, (lines, _) in open_.items())
    return payloads


def _slot(kind: str, key: str) -> int:
    return hash((kind, key)) % SLOTS
