"""Exceptions the gateway's EWS client raises, translated from exchangelib's.

exchangelib has several hundred exception classes (one per EWS ``ResponseCode``, see the EWS
``ResponseCodeType`` enumeration in messages.xsd) plus transport errors. The rest of the gateway
only needs to know what a user would notice: try again later, fix the credentials, the item changed,
it is gone, the mailbox is full, you may not, or the request was wrong. ``str(error)`` is always a
sentence written here, never exchangelib's text (which can contain raw HTTP headers and bodies),
so no secret can leak through it.
"""

from __future__ import annotations

import math

import requests
from exchangelib import errors as ex


class EwsError(Exception):
    """Base class: an EWS operation failed. ``code`` is the EWS ResponseCode when there is one."""

    def __init__(self, message: str, *, operation: str = "", code: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.operation = operation
        self.code = code


class EwsUnavailable(EwsError):
    """Exchange is busy, throttling us or unreachable; ``retry_after`` is in whole seconds."""

    def __init__(self, message: str, *, retry_after: int = 30, operation: str = "", code: str = "") -> None:
        super().__init__(message, operation=operation, code=code)
        self.retry_after = retry_after


class EwsAuthError(EwsError):
    """The stored credentials were refused (password changed, account locked)."""


class EwsConflict(EwsError):
    """The item changed on the server since it was read (ErrorIrresolvableConflict)."""


class EwsNotFound(EwsError):
    """The item, occurrence, folder or mailbox does not exist (ErrorItemNotFound etc.)."""


class EwsQuotaExceeded(EwsError):
    """The mailbox is over its storage quota (ErrorQuotaExceeded)."""


class EwsAccessDenied(EwsError):
    """The account may not perform this operation (ErrorAccessDenied etc.)."""


class EwsInvalidRequest(EwsError):
    """Exchange rejected the request as invalid; ``code`` names the EWS ResponseCode."""


_NOT_FOUND = (
    ex.ErrorItemNotFound,
    ex.ErrorFolderNotFound,
    ex.ErrorCalendarOccurrenceIsDeletedFromRecurrence,
    ex.ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange,
    ex.ErrorNonExistentMailbox,
    ex.ErrorMailRecipientNotFound,
)
_ACCESS_DENIED = (ex.ErrorAccessDenied, ex.ErrorNoFreeBusyAccess, ex.ErrorCalendarIsDelegatedForRemove)
# Failures where the same request can succeed later: Exchange says so, or never got to answer.
_UNAVAILABLE = (
    ex.ErrorServerBusy,
    ex.ErrorTimeoutExpired,
    ex.ErrorInternalServerTransientError,
    ex.ErrorInternalServerError,
    ex.ErrorMailboxStoreUnavailable,
    ex.ErrorMailboxMoveInProgress,
    ex.ErrorTooManyObjectsOpened,
    ex.ErrorExceededConnectionCount,
    ex.ErrorConnectionFailed,
    ex.RateLimitError,
    ex.CASError,
    ex.MalformedResponseError,
)


def _retry_after(exc: BaseException, default: int = 30) -> int:
    back_off = getattr(exc, "back_off", None) or getattr(exc, "wait", None)
    return max(1, math.ceil(back_off)) if back_off else default


def translate(exc: BaseException, operation: str = "") -> EwsError:
    """Map an exchangelib (or requests) exception to the gateway's error for ``operation``.

    The original exception should be chained by the caller (``raise translate(e) from e``) for logs;
    the message is composed here from the exception's class name only.
    """
    if isinstance(exc, EwsError):
        return exc
    code = type(exc).__name__
    where = f" during {operation}" if operation else ""
    if isinstance(exc, ex.UnauthorizedError):
        return EwsAuthError(
            f"Exchange refused the stored credentials{where}; reconnect the account with the current password.",
            operation=operation,
            code=code,
        )
    if isinstance(exc, ex.ErrorIrresolvableConflict):
        return EwsConflict(
            f"The item was changed in Exchange meanwhile{where}; fetch it again and retry.",
            operation=operation,
            code=code,
        )
    if isinstance(exc, _NOT_FOUND):
        return EwsNotFound(
            f"Exchange did not find the requested object{where} ({code}).", operation=operation, code=code
        )
    if isinstance(exc, ex.ErrorQuotaExceeded):
        return EwsQuotaExceeded(
            f"The mailbox is over its storage quota{where}; free some space in Exchange.",
            operation=operation,
            code=code,
        )
    if isinstance(exc, _ACCESS_DENIED):
        return EwsAccessDenied(f"Exchange denied access{where} ({code}).", operation=operation, code=code)
    if isinstance(exc, _UNAVAILABLE):
        return EwsUnavailable(
            f"Exchange is busy or temporarily unavailable{where} ({code}); try again later.",
            retry_after=_retry_after(exc),
            operation=operation,
            code=code,
        )
    if isinstance(exc, ex.ResponseMessageError):
        return EwsInvalidRequest(
            f"Exchange rejected the request{where} ({code}).", operation=operation, code=code
        )
    if isinstance(exc, ex.TransportError | requests.RequestException | OSError | TimeoutError):
        return EwsUnavailable(
            f"Exchange could not be reached{where} ({code}); try again later.", operation=operation, code=code
        )
    return EwsError(f"The Exchange request failed{where} ({code}).", operation=operation, code=code)
