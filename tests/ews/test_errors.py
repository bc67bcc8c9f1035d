"""EWS failures → the CalDAV backend's errors: decided by exception class (the exact ResponseCode)."""

from __future__ import annotations

import pytest
from exchangelib import errors as ex

from gateway.caldav import backend as b
from gateway.ews import errors


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (ex.ErrorIrresolvableConflict("changed"), b.PreconditionFailed),
        (ex.ErrorItemNotFound("gone"), b.NotFound),
        (ex.ErrorQuotaExceeded("full"), b.InsufficientStorage),
        (ex.ErrorAccessDenied("no"), b.Forbidden),
        (ex.ErrorInvalidSyncStateData("expired"), b.InvalidSyncToken),
        (ex.ErrorInvalidPropertySet("bad"), b.InvalidCalendarData),
        (ex.ErrorServerBusy("busy", back_off=2.5), b.BackendUnavailable),
        (ex.UnauthorizedError("refused"), b.BackendUnavailable),
    ],
)
def test_each_ews_failure_has_one_backend_error(exc: Exception, kind: type) -> None:
    assert type(errors.backend_error(errors.translate(exc, "SyncFolderItems"))) is kind


def test_an_expired_sync_state_is_known_by_its_response_code() -> None:
    error = errors.translate(ex.ErrorInvalidSyncStateData("Synchronization state data is corrupt"))
    assert isinstance(error, errors.EwsSyncStateInvalid) and error.code == "ErrorInvalidSyncStateData"


def test_message_text_never_decides() -> None:
    """A request error whose text talks of a SyncState is still a refused event, not an expired token."""
    refused = errors.EwsInvalidRequest("SyncState mentioned", code="ErrorInvalidSyncStateDataLookalike")
    assert type(errors.backend_error(refused)) is b.InvalidCalendarData


def test_busy_keeps_its_retry_after() -> None:
    unavailable = errors.backend_error(errors.translate(ex.ErrorServerBusy("busy", back_off=2.5)))
    assert isinstance(unavailable, b.BackendUnavailable) and unavailable.retry_after == 3


def test_unreachable_and_busy_say_so_in_words_and_keep_the_code_for_logs() -> None:
    unreachable = errors.translate(ex.ErrorTimeoutExpired("connection refused"), "FindItem")
    assert isinstance(unreachable, errors.EwsUnavailable)
    assert str(unreachable) == "Exchange could not be reached or did not answer in time; try again later."
    assert (unreachable.code, unreachable.operation) == ("ErrorTimeoutExpired", "FindItem")
    busy = errors.translate(ex.ErrorServerBusy("busy", back_off=5), "GetItem")
    assert (
        str(busy) == "Exchange is busy or temporarily unavailable; try again later." and busy.retry_after == 5
    )


def test_a_taken_folder_name_is_no_refused_event() -> None:
    """CreateFolder/UpdateFolder with a sibling's name: 403 saying so, not "Exchange refused the event"."""
    taken = errors.backend_error(errors.translate(ex.ErrorFolderExists("exists"), "CreateFolder"))
    assert type(taken) is b.Forbidden and "name" in str(taken) and "event" not in str(taken)
