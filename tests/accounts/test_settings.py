"""The checks the web pages and the admin API share, and the settings defaults."""

from __future__ import annotations

import pytest

from gateway.accounts.records import AccountRecord, AccountsError
from gateway.accounts.settings import (
    UnknownCalendarError,
    UserSettings,
    account_options,
    check_calendar_choices,
    effective_settings,
)

OWN = {"a1-calendar", "a1-projects", "b2-calendar"}


def test_choices_among_the_users_calendars_pass() -> None:
    check_calendar_choices(UserSettings(), OWN)
    check_calendar_choices(UserSettings(conflict_calendar_ids=()), set())
    check_calendar_choices(
        UserSettings(
            conflict_calendar_ids=("a1-projects", "b2-calendar"), add_events_calendar_id="a1-projects"
        ),
        OWN,
    )


@pytest.mark.parametrize(
    "choices",
    [
        UserSettings(conflict_calendar_ids=("a1-calendar", "zz-calendar")),
        UserSettings(add_events_calendar_id="zz-calendar"),
        UserSettings(conflict_calendar_ids=(), add_events_calendar_id="zz-calendar"),
    ],
)
def test_a_calendar_not_the_users_is_refused(choices: UserSettings) -> None:
    with pytest.raises(UnknownCalendarError, match="one of the user's calendars"):
        check_calendar_choices(choices, OWN)
    assert issubclass(UnknownCalendarError, AccountsError)  # the admin API answers 400 for both


def test_account_options_checks_only_what_is_given() -> None:
    assert account_options(None, None) == {}
    assert account_options("BUSY-TENTATIVE", None) == {"working_elsewhere": "BUSY-TENTATIVE"}
    assert account_options(None, "never") == {"invitations": "never"}
    with pytest.raises(AccountsError, match="working_elsewhere must be one of FREE, BUSY-TENTATIVE, BUSY"):
        account_options("MAYBE", "never")
    with pytest.raises(AccountsError, match="invitations must be one of auto, never"):
        account_options(None, "sometimes")
    with pytest.raises(AccountsError, match="working_elsewhere"):
        account_options("", None)  # a form without the field: refused, not "unchanged"


def test_effective_settings_default_to_the_primaries() -> None:
    accounts = [_account("a1"), _account("b2")]
    assert effective_settings(UserSettings(), accounts) == UserSettings(
        conflict_calendar_ids=("a1-calendar", "b2-calendar"), add_events_calendar_id="a1-calendar"
    )
    chosen = UserSettings(conflict_calendar_ids=(), add_events_calendar_id="b2-calendar")
    assert effective_settings(chosen, accounts) == chosen
    assert effective_settings(UserSettings(), []) == UserSettings(conflict_calendar_ids=())


def _account(account_id: str) -> AccountRecord:
    return AccountRecord(
        account_id=account_id,
        user_id="u1",
        email=f"{account_id}@example.com",
        ews_url="https://mail.example.com/EWS/Exchange.asmx",
        auth_type="ntlm",
        username=f"{account_id}@example.com",
        version="Exchange2016",
        build="15.1",
        display_name=None,
        working_elsewhere="FREE",
        invitations="auto",
    )
