"""EWS failures: exchangelib's exceptions → the gateway's :class:`EwsError` → the CalDAV backend's errors.

exchangelib has several hundred exception classes (one per EWS ``ResponseCode``, see the EWS
``ResponseCodeType`` enumeration in messages.xsd: exchangelib raises the class named like the code)
plus transport errors. The rest of the gateway only needs to know what a user would notice: try
again later, fix the credentials, the item changed, it is gone, the mailbox is full, you may not,
the synchronisation state expired, or the request was wrong. :func:`translate` decides that by
exception class (hence by exact ResponseCode), never by message text; :func:`backend_error` turns
the result into the ``gateway.caldav.backend`` error a CalDAV answer is made from. ``str(error)`` is
always a sentence written here, never exchangelib's text (which can contain raw HTTP headers and
bodies), so no secret can leak through it.
"""

from __future__ import annotations

import math

import requests
from exchangelib import errors as ex

from gateway.caldav.backend import (
    BackendError,
    BackendUnavailable,
    Forbidden,
    InsufficientStorage,
    InvalidCalendarData,
    InvalidSyncToken,
    NotFound,
    PreconditionFailed,
)

# RFC 4791 §5.3.2.1: the body is a calendar object Exchange cannot store as given.
_VALID_OBJECT = "{urn:ietf:params:xml:ns:caldav}valid-calendar-object-resource"


class EwsError(Exception):
    """Base class: an EWS operation failed. ``code`` is the EWS ResponseCode when there is one."""

    def __init__(self, message: str, *, operation: str = "", code: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.operation = operation
        self.code = code


class EwsUnavailable(EwsError):
    """Exchange is busy, throttling us or unreachable; ``retry_after`` is in whole seconds.

    ``refused`` says Exchange itself answered that it did not do the work (ErrorServerBusy), so
    repeating the request cannot do it twice; otherwise a write may have been carried out.
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after: int = 30,
        operation: str = "",
        code: str = "",
        refused: bool = False,
        back_off: float | None = None,
    ) -> None:
        super().__init__(message, operation=operation, code=code)
        self.retry_after = retry_after
        self.refused = refused
        self.back_off = back_off if back_off is not None else float(retry_after)


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


class EwsFolderExists(EwsInvalidRequest):
    """A sibling folder already has this name (ErrorFolderExists: names are unique among siblings)."""


class EwsSyncStateInvalid(EwsInvalidRequest):
    """SyncFolderItems refused the SyncState: expired or corrupt (ErrorInvalidSyncStateData)."""


_NOT_FOUND = (
    ex.ErrorItemNotFound,
    ex.ErrorFolderNotFound,
    ex.ErrorCalendarOccurrenceIsDeletedFromRecurrence,
    ex.ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange,
    ex.ErrorNonExistentMailbox,
    ex.ErrorMailRecipientNotFound,
)
_ACCESS_DENIED = (ex.ErrorAccessDenied, ex.ErrorNoFreeBusyAccess, ex.ErrorCalendarIsDelegatedForRemove)
# Exchange never got to answer (exchangelib turns a connection failure into ErrorTimeoutExpired).
_UNREACHABLE = (ex.ErrorTimeoutExpired, ex.ErrorConnectionFailed)
# Failures where the same request can succeed later: Exchange says so.
_UNAVAILABLE = (
    ex.ErrorServerBusy,
    ex.ErrorInternalServerTransientError,
    ex.ErrorInternalServerError,
    ex.ErrorMailboxStoreUnavailable,
    ex.ErrorMailboxMoveInProgress,
    ex.ErrorTooManyObjectsOpened,
    ex.ErrorExceededConnectionCount,
    ex.RateLimitError,
    ex.CASError,
    ex.MalformedResponseError,
)


_UNREACHABLE_SENTENCE = "Exchange could not be reached or did not answer in time; try again later."


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
    # The sentences for "try again later" reach CalDAV clients as the 503's text: plain words, no EWS
    # operation or response code (those stay in ``operation``/``code`` for logs and metrics).
    if isinstance(exc, _UNREACHABLE):
        return EwsUnavailable(
            _UNREACHABLE_SENTENCE, retry_after=_retry_after(exc), operation=operation, code=code
        )
    if isinstance(exc, _UNAVAILABLE):
        return EwsUnavailable(
            "Exchange is busy or temporarily unavailable; try again later.",
            retry_after=_retry_after(exc),
            operation=operation,
            code=code,
        )
    if isinstance(exc, ex.ErrorInvalidSyncStateData):
        return EwsSyncStateInvalid(
            f"Exchange no longer knows the synchronisation state{where}.", operation=operation, code=code
        )
    if isinstance(exc, ex.ErrorFolderExists):
        return EwsFolderExists(
            f"Exchange already has a calendar of this name{where}.", operation=operation, code=code
        )
    if isinstance(exc, ex.ResponseMessageError):
        return EwsInvalidRequest(
            f"Exchange rejected the request{where} ({code}).", operation=operation, code=code
        )
    if isinstance(exc, ex.TransportError | requests.RequestException | OSError | TimeoutError):
        return EwsUnavailable(_UNREACHABLE_SENTENCE, operation=operation, code=code)
    return EwsError(f"The Exchange request failed{where} ({code}).", operation=operation, code=code)


def backend_error(exc: EwsError) -> BackendError:
    """The CalDAV backend's error for an EWS failure (never a bare 503 for everything)."""
    message = str(exc) or "Exchange reported an error."
    match exc:
        case EwsConflict():
            return PreconditionFailed("The item was changed in Exchange meanwhile; read it again.")
        case EwsNotFound():
            return NotFound("The item no longer exists in Exchange.")
        case EwsQuotaExceeded():
            return InsufficientStorage("The Exchange mailbox is over its size quota.")
        case EwsAccessDenied():
            return Forbidden(f"Exchange denied access: {message}")
        case EwsSyncStateInvalid():
            return InvalidSyncToken("Exchange no longer knows this synchronisation state.")
        case EwsFolderExists():
            return Forbidden(f"{message} Choose another name.")
        case EwsInvalidRequest():
            return InvalidCalendarData(f"Exchange refused the event: {message}", _VALID_OBJECT)
        case EwsUnavailable():
            return BackendUnavailable(message, retry_after=exc.retry_after or 30)
    return BackendUnavailable(f"Exchange could not be reached or failed: {message}")
