"""The gateway's asynchronous facade over exchangelib (EWS): the runtime pool of accounts.

exchangelib is blocking, so every call runs in a bounded thread pool (:class:`EwsClient`). The
client owns its exchangelib protocol objects instead of using exchangelib's process-global caches:

- *Protocols* are built from per-client subclasses (``gateway.ews.exchange.protocol_classes``) whose
  HTTP adapter applies the organisation's CA bundle and meters every SOAP request
  (``gateway/ews/metrics.py``), and whose metaclass skips exchangelib's global
  ``(endpoint, credentials)`` protocol cache. The client keeps the accounts of the
  ``max_live_accounts`` most recently used mailboxes and closes the protocols it evicts.
- *Connecting* (Autodiscover and verification) is ``gateway/ews/connect.py``, run in the same pool.
- *Retries*: protocols use exchangelib's ``FailFast`` policy (its ``FaultTolerance`` shares one
  back-off across all users of a protocol and sleeps in the worker thread). :meth:`EwsClient.run`
  waits out ``ErrorServerBusy``/``BackOffMilliseconds`` itself with ``asyncio.sleep``, for that
  account only.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import weakref
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping
from threading import Lock
from typing import Any, TypeVar

from exchangelib import Account
from exchangelib import errors as exl_errors
from exchangelib.protocol import Protocol

from gateway.common.stages import STAGES, TimedPool
from gateway.ews.connect import MailboxConnector, ews_configuration
from gateway.ews.connection import (
    EWS_URL_FIELD,
    ConnectError,
    ConnectionInfo,
    ConnectionSettings,
    Credentials,
    validate,
)
from gateway.ews.errors import EwsError, EwsUnavailable, translate
from gateway.ews.exchange import (
    GatewayProtocol,
    connection_broke,
    new_account,
    protocol_classes,
    refused_by_exchange,
)
from gateway.ews.metrics import EwsMetrics

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_LIVE_ACCOUNTS = 300  # exchangelib Accounts (each with an HTTP session pool) kept per process
# EWS operations that change items: repeating one whose answer was lost could do it twice (see run()).
ITEM_WRITES = frozenset({"CreateItem", "UpdateItem", "DeleteItem"})


class _AccountGate:
    """Per-account concurrency limit and back-off, on the event loop."""

    def __init__(self, limit: int) -> None:
        self.semaphore = asyncio.Semaphore(limit)
        self.back_off_until = 0.0  # loop time

    async def wait_back_off(self) -> None:
        delay = self.back_off_until - asyncio.get_running_loop().time()
        if delay > 0:
            await asyncio.sleep(delay)


class EwsClient:
    """Runs exchangelib for many accounts without blocking the event loop (see module docstring)."""

    def __init__(
        self,
        *,
        max_workers: int = 32,
        per_account_concurrency: int = 4,
        retry_budget_s: float = 30.0,
        request_timeout_s: float = 60.0,
        autodiscover_endpoints: Mapping[str, str] | None = None,
        ca_file: str | None = None,
        metrics: EwsMetrics | None = None,
        max_live_accounts: int = DEFAULT_LIVE_ACCOUNTS,
        allow_ntlm_over_http: bool = False,
    ) -> None:
        if per_account_concurrency < 1 or max_workers < 1:
            raise ValueError("max_workers and per_account_concurrency must be at least 1")
        self.metrics = metrics if metrics is not None else EwsMetrics()
        self._pool = TimedPool("ews_worker", max_workers, thread_name_prefix="ews")
        self._per_account = per_account_concurrency
        self._retry_budget = retry_budget_s
        self._timeout = request_timeout_s
        self._classes = protocol_classes(self.metrics, ca_file, request_timeout_s)
        self._connector = MailboxConnector(
            self._classes,
            autodiscover_endpoints or {},
            max_connections=per_account_concurrency,
            allow_ntlm_over_http=allow_ntlm_over_http,
        )
        if max_live_accounts < 1:
            raise ValueError("max_live_accounts must be at least 1")
        self._max_accounts = max_live_accounts
        self._lock = Lock()  # guards the caches below (account() may run in worker threads)
        # The most recently used accounts (LRU, at most max_live_accounts); a protocol (HTTP session
        # pool) lives while a cached account uses it. Gates are kept for recent accounts and, through
        # weak references, for as long as a call holds one.
        self._accounts: OrderedDict[tuple[str, ...], Account] = OrderedDict()
        self._protocols: dict[tuple[str, ...], Protocol] = {}
        self._protocol_users: Counter[tuple[str, ...]] = Counter()
        self._gates: weakref.WeakValueDictionary[tuple[str, str], _AccountGate] = (
            weakref.WeakValueDictionary()
        )
        self._recent_gates: OrderedDict[tuple[str, str], _AccountGate] = OrderedDict()

    async def connect(self, settings: ConnectionSettings) -> ConnectionInfo:
        """Find and verify the EWS endpoint for a mailbox (Autodiscover or the given server).

        Autodiscover is the SOAP ``GetUserSettings`` operation (MS-OXWSADISC); the endpoint is then
        verified with an authenticated ``ConvertId`` (which reports ``ServerVersionInfo``) and a
        ``GetFolder`` of the calendar (``gateway/ews/connect.py``). Raises :class:`ConnectError`.
        """
        validate(settings)
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, self._connector.connect, settings)
        except ConnectError:
            raise
        except Exception as exc:
            # Only the type is logged: exchangelib's texts can carry raw HTTP exchanges.
            log.warning("Connecting %s failed unexpectedly: %s", settings.email, type(exc).__name__)
            raise ConnectError(
                "unreachable",
                f"Connecting failed unexpectedly ({type(exc).__name__}); try again, or enter {EWS_URL_FIELD} "
                "manually.",
            ) from None

    # --- accounts and calls ------------------------------------------------------------------

    def account(self, info: ConnectionInfo, credentials: Credentials) -> Account:
        """An exchangelib Account for a stored connection, without network traffic.

        Version and auth type come from ``info``, so the first real call is the only call. Cached
        per (EWS URL, username, auth type, credential fingerprint) and mailbox, for the
        ``max_live_accounts`` most recently used; accounts with the same login share one protocol
        (HTTP session pool). A changed password gives another key, hence a new Account at once.
        """
        key = (info.ews_url, info.username.lower(), info.auth_type, credentials.fingerprint())
        full = (*key, info.email.lower())
        with self._lock:
            account = self._accounts.get(full)
            if account is not None:
                self._accounts.move_to_end(full)
                return account
            protocol = self._protocols.get(key)
            if protocol is None:
                config = ews_configuration(info, credentials, max_connections=self._per_account)
                protocol = self._protocols[key] = self._classes.ews(config=config)
            account = self._accounts[full] = new_account(info.email, protocol)
            self._protocol_users[key] += 1
            retired = self._evict()
        for old in retired:
            old.close()
        return account

    def _evict(self) -> list[Protocol]:
        """Drop the least recently used accounts beyond the limit (lock held); returns the protocols
        no cached account uses any more, to be closed.

        ``Protocol.close`` closes the idle sessions of the pool only: a session a running call holds
        goes back to the retired pool when the call ends, and is closed when that protocol is garbage
        collected (``BaseProtocol.__del__``), so a call never loses its connection.
        """
        retired = []
        while len(self._accounts) > self._max_accounts:
            full, _ = self._accounts.popitem(last=False)
            key = full[:4]
            self._protocol_users[key] -= 1
            if self._protocol_users[key] <= 0:
                del self._protocol_users[key]
                retired.append(self._protocols.pop(key))
        return retired

    @property
    def retry_budget_s(self) -> float:
        """How long a call may wait for a busy Exchange, in seconds (repeats included)."""
        return self._retry_budget

    def live_accounts(self) -> int:
        """How many exchangelib Accounts are cached (at most ``max_live_accounts``)."""
        with self._lock:
            return len(self._accounts)

    def live_protocols(self) -> int:
        """How many protocols (HTTP session pools) are open."""
        with self._lock:
            return len(self._protocols)

    async def run(self, account: Account, operation: str, fn: Callable[[], T]) -> T:
        """Run blocking ``fn`` (exchangelib calls for ``account``) in the pool.

        At most ``per_account_concurrency`` calls per account run at once. ``ErrorServerBusy``
        (including its ``BackOffMilliseconds``) makes this account wait and retry while the budget
        lasts; other accounts are unaffected. A request whose connection broke is not repeated (it
        may have been carried out: repeating a CreateItem would duplicate the event), and an item
        write (:data:`ITEM_WRITES`) is never repeated here: its ``EwsUnavailable`` says whether
        Exchange refused it (``refused``), and the writer looks at the item before it writes again
        (gateway/ews/backend/writes.py). exchangelib errors become ``gateway.ews.errors``.
        """
        gate = self._gate(account)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._retry_budget
        while True:
            await gate.wait_back_off()
            try:
                return await self._call(gate, operation, fn)
            except exl_errors.ErrorServerBusy as exc:
                wait = exc.back_off or GatewayProtocol.RETRY_WAIT
                if operation in ITEM_WRITES or connection_broke(exc) or loop.time() + wait > deadline:
                    raise _unavailable(exc, operation, wait) from exc
                log.info(
                    "EWS %s for %s: server busy, retrying in %.1f s",
                    operation,
                    account.primary_smtp_address,
                    wait,
                )
                gate.back_off_until = max(gate.back_off_until, loop.time() + wait)
            except EwsError:
                raise
            except Exception as exc:
                raise translate(exc, operation) from exc

    async def _call(self, gate: _AccountGate, operation: str, fn: Callable[[], T]) -> T:
        """One attempt; the account's slot is held until the worker thread really finishes."""
        waiting = time.perf_counter()
        await gate.semaphore.acquire()
        STAGES.observe("ews_account_slot", time.perf_counter() - waiting)
        try:
            future = asyncio.get_running_loop().run_in_executor(self._pool, fn)
        except BaseException:
            gate.semaphore.release()
            raise
        future.add_done_callback(lambda f: _settle(f, gate.semaphore))
        try:
            return await asyncio.wait_for(asyncio.shield(future), self._timeout)
        except TimeoutError:
            raise EwsUnavailable(
                f"Exchange did not answer {operation} within {self._timeout:g} s; try again later.",
                retry_after=math.ceil(self._timeout),
                operation=operation,
            ) from None

    def _gate(self, account: Account) -> _AccountGate:
        """The account's concurrency limit and back-off. A gate in use is always found again (weakly
        referenced while a call holds it); an idle one is kept for the most recently used accounts."""
        key = (account.protocol.service_endpoint, account.primary_smtp_address.lower())
        gate = self._gates.get(key)
        if gate is None:
            gate = self._gates[key] = _AccountGate(self._per_account)
        self._recent_gates[key] = gate
        self._recent_gates.move_to_end(key)
        while len(self._recent_gates) > self._max_accounts:
            self._recent_gates.popitem(last=False)
        return gate

    async def close(self) -> None:
        """Close every HTTP session and stop the worker threads."""
        with self._lock:
            protocols = list(self._protocols.values())
            self._protocols.clear()
            self._protocol_users.clear()
            self._accounts.clear()
        for protocol in protocols:
            protocol.close()
        await asyncio.get_running_loop().run_in_executor(None, self._pool.shutdown)


def _unavailable(exc: exl_errors.ErrorServerBusy, operation: str, wait: float) -> EwsError:
    """The gateway's error for a busy answer, saying whether Exchange itself refused the work."""
    error = translate(exc, operation)
    if isinstance(error, EwsUnavailable):
        error.refused, error.back_off = refused_by_exchange(exc), wait
    return error


def _settle(future: asyncio.Future[Any], semaphore: asyncio.Semaphore) -> None:
    semaphore.release()
    if not future.cancelled():
        future.exception()  # mark retrieved: a timed-out call's late failure is not an "unhandled" error
