"""The gateway's names for Exchange calendars and their items: one scheme, kept here only.

A CalDAV URL names a calendar by one path segment and an object by its last segment
(``gateway.caldav.backend``); Exchange names both by opaque ids. These pure functions (no
exchangelib, so ``gateway.accounts`` may use them) derive the CalDAV names:

- an account's own Calendar folder is ``<account id>-calendar``;
- a sub-calendar made in Outlook is ``<account id>-<12 hex digits of its folder id's SHA-1>``
  (one made with MKCALENDAR keeps the segment its client chose: an alias in the index);
- an account's own Tasks folder is ``<account id>-tasks``; a task folder made in Outlook is
  ``<account id>-tasks-<12 hex digits>`` (one made with MKCALENDAR keeps its client's segment);
- a task made in Outlook has no UID: its UID is ``<40 hex digits>@exchange-task``, from its ItemId;
- the item index and the locks key a calendar as ``<account id>/<calendar id>``;
- an item no client named (made in Outlook) is ``<UID>.ics`` when the UID is URL-safe, else the
  SHA-1 of the UID; two items whose names collide get the short hash of their ItemId appended.
"""

from __future__ import annotations

import hashlib
import re

PRIMARY_SUFFIX = "calendar"
TASKS_SUFFIX = "tasks"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9._@+=-]{1,200}$")


def primary_calendar_id(account_id: str) -> str:
    """The calendar id of an account's own Calendar folder."""
    return f"{account_id}-{PRIMARY_SUFFIX}"


def task_list_id(account_id: str) -> str:
    """The calendar id of an account's own Tasks folder (a VTODO collection)."""
    return f"{account_id}-{TASKS_SUFFIX}"


def sub_task_list_id(account_id: str, folder_id: str) -> str:
    """The calendar id of a task folder no client named (made in Outlook)."""
    return f"{account_id}-{TASKS_SUFFIX}-{_short_hash(folder_id)}"


def task_uid(item_id: str) -> str:
    """The UID of a task no client named: Exchange tasks have none, their ItemId stands for it."""
    return hashlib.sha1(item_id.encode("ascii")).hexdigest() + "@exchange-task"


def sub_calendar_id(account_id: str, folder_id: str) -> str:
    """The calendar id of a calendar folder no client named (made in Outlook)."""
    return f"{account_id}-{_short_hash(folder_id)}"


def calendar_key(account_id: str, calendar_id: str) -> str:
    """The key of a calendar in the item index: unique across every user's accounts."""
    return f"{account_id}/{calendar_id}"


def derived_name(uid: str) -> str:
    """The deterministic resource name of an item no client named (created in Outlook)."""
    if _SAFE_NAME.match(uid) and not uid.startswith("."):
        return f"{uid}.ics"
    return hashlib.sha1(uid.encode("utf-8")).hexdigest() + ".ics"


def distinct_name(name: str, item_id: str) -> str:
    """The name of an item whose ``name`` another item holds already (two items with one UID in Outlook).

    The last four characters are cut whatever they are: names already handed out must not change.
    """
    return f"{name[:-4]}-{_short_hash(item_id)}.ics"


def _short_hash(exchange_id: str) -> str:
    return hashlib.sha1(exchange_id.encode("ascii")).hexdigest()[:12]
