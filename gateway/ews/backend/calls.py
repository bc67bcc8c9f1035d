"""The backend's way to Exchange: a principal's mailboxes, and every EWS call made as one of them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextvars import ContextVar
from typing import TypeVar

from exchangelib import Account

from gateway.caldav.backend import BackendUnavailable, Principal
from gateway.ews.backend.records import AccountDirectory, ConnectedMailbox, connection_info
from gateway.ews.client import EwsClient
from gateway.ews.errors import EwsAuthError, EwsError, EwsUnavailable, backend_error, translate

T = TypeVar("T")
# The user a request works for, so an EWS authentication failure can drop their cached credentials.
_requester: ContextVar[str | None] = ContextVar("ews_backend_requester", default=None)


class EwsCalls:
    """Runs exchangelib calls in the client's pool; an EWS failure leaves as a ``gateway.caldav.backend`` error."""

    def __init__(self, accounts: AccountDirectory, client: EwsClient) -> None:
        self.accounts = accounts
        self.client = client

    async def connected(self, principal: Principal, *, fresh: bool = False) -> Sequence[ConnectedMailbox]:
        """The principal's connected accounts (records + credentials; cached by the AccountService)."""
        _requester.set(principal.user_id)
        return await self.accounts.connected_accounts(principal.user_id, fresh=fresh)

    def account(self, entry: ConnectedMailbox) -> Account:
        """The exchangelib Account of a connected account (the client's LRU; no network traffic)."""
        return self.client.account(connection_info(entry.record), entry.credentials)

    async def run(self, account: Account, operation: str, fn: Callable[[], T]) -> T:
        """Run one blocking exchangelib call (EWS ``operation``) in the client's pool, translating errors."""
        try:
            return await self.client.run(account, operation, fn)
        except EwsAuthError as exc:
            user_id = _requester.get()
            if user_id is not None:  # perhaps a password changed elsewhere: read it afresh next time
                self.accounts.forget_credentials(user_id)
            raise backend_error(exc) from exc
        except EwsUnavailable as exc:
            if exc.refused:
                raise ExchangeRefused(str(exc), retry_after=exc.retry_after, back_off=exc.back_off) from exc
            raise backend_error(exc) from exc
        except EwsError as exc:
            raise backend_error(exc) from exc

    @property
    def retry_budget_s(self) -> float:
        """How long one request may keep waiting for a busy Exchange (the client's budget)."""
        return self.client.retry_budget_s


class ExchangeRefused(BackendUnavailable):
    """Exchange answered that it is too busy to do this now (ErrorServerBusy): it did not do it, so the
    write may be tried again after ``back_off`` seconds (gateway/ews/backend/writes.py looks first anyway).
    Answered as any BackendUnavailable (503 with Retry-After) when no one tries again."""

    def __init__(self, message: str, *, retry_after: int, back_off: float) -> None:
        super().__init__(message, retry_after=retry_after)
        self.back_off = back_off


def raise_first_error(results: Sequence[object]) -> None:
    """A bulk call answers each item on its own: the first failed item fails the request."""
    for result in results:
        if isinstance(result, Exception):
            raise backend_error(translate(result)) from result
