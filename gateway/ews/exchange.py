"""Every exchangelib extension and reach into its internals, in one place.

exchangelib is used beyond its public API where its object model costs too much or lacks a
feature; each such use is here, and ``tests/ews/test_exchange_contract_*.py`` fail loudly when
an exchangelib release changes what it relies on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from exchangelib import Account, CalendarItem, ExtendedProperty
from exchangelib.ewsdatetime import EWSDateTime, EWSTimeZone
from exchangelib.fields import FieldPath
from exchangelib.folders import Folder
from exchangelib.items import ID_ONLY, SHALLOW
from exchangelib.properties import CalendarView, OccurrenceItemId
from exchangelib.services import FindItem
from exchangelib.util import TNS
from lxml import etree

# ---- items (backend)

CALDAV_NAME = "caldav_name"  # the CalendarItem field registered for CalDAVResourceName
_TYPES = f"{{{TNS}}}"  # Clark prefix of the EWS types namespace, for lxml look-ups


class CalDAVResourceName(ExtendedProperty):
    """The CalDAV resource name a client chose, stored with the item itself.

    A named MAPI property in the gateway's own property set, so every replica and
    every restart sees the same href (DavMail keeps it in PR_URL_COMP_NAME).
    """

    property_set_id = "8d6a0b4e-4b0e-4d35-9a3b-5c1f0e2b7c11"
    property_name = "CalDAVResourceName"
    property_type = "String"


def register_item_fields() -> None:
    """Make ``CalendarItem.caldav_name`` a field (an ExtendedFieldURI in GetItem, SyncFolderItems and
    CreateItem). ``CalendarItem.register`` changes the class for the whole process and refuses a
    second registration, so this registers once however often it is called."""
    if CALDAV_NAME not in {f.name for f in CalendarItem.FIELDS}:
        CalendarItem.register(CALDAV_NAME, CalDAVResourceName)


@dataclass(frozen=True)
class ViewEntry:
    """One item of a CalendarView: what a month view needs before its GetItem."""

    id: str
    changekey: str
    uid: str | None
    type: str | None  # CalendarItemType: Single, Occurrence, Exception, RecurringMaster


class _CalendarViewItems(FindItem):
    """FindItem whose answer is read with lxml into :class:`ViewEntry` values.

    A month's CalendarView holds hundreds of occurrences; exchangelib builds a full CalendarItem
    for each, which was a third of a month view's CPU, for four values per item. ``_elem_to_obj``
    is the per-element hook of exchangelib's ``EWSService._elems_to_objs``.
    """

    def _elem_to_obj(self, elem: etree._Element) -> ViewEntry:
        item_id = elem.find(_TYPES + "ItemId")
        return ViewEntry(
            item_id.get("Id") if item_id is not None else "",
            item_id.get("ChangeKey") if item_id is not None else "",
            elem.findtext(_TYPES + "UID"),
            elem.findtext(_TYPES + "CalendarItemType"),
        )


def calendar_view(account: Account, folder: Folder, start: datetime, end: datetime) -> list[ViewEntry]:
    """FindItem with a CalendarView asking for UID and CalendarItemType (no GetItem follows).

    exchangelib's query sets refuse text fields such as UID in FindItem and would add a
    GetItem per page; Exchange returns calendar:UID in FindItem, so the service is called directly.
    """
    additional = {FieldPath(field=CalendarItem.get_field_by_fieldname(n)) for n in ("uid", "type")}
    items = _CalendarViewItems(account=account).call(
        folders=[folder],
        additional_fields=additional,
        restriction=None,
        order_fields=None,
        shape=ID_ONLY,
        query_string=None,
        depth=SHALLOW,
        calendar_view=CalendarView(start=ews_datetime(start), end=ews_datetime(end)),
        max_items=None,
        offset=0,
    )
    return [i for i in items if not isinstance(i, Exception)]


def occurrence_id(master: CalendarItem, index: int) -> OccurrenceItemId:
    """The OccurrenceItemId of the ``index``-th (1-based) occurrence of a series, as of ``master``'s version."""
    return OccurrenceItemId(id=master.id, changekey=master.changekey, instance_index=index)


def address_occurrence(item: CalendarItem, master: CalendarItem, index: int) -> None:
    """Make ``item`` stand for an occurrence of ``master``, so UpdateItem writes that occurrence.

    exchangelib has no public way to give an item an OccurrenceItemId: ``.id`` can only set the
    ItemId's Id, so the id element behind it (``_id``) is replaced.
    """
    item._id = occurrence_id(master, index)


def ews_datetime(value: datetime) -> EWSDateTime:
    """An aware datetime as the UTC EWSDateTime exchangelib serialises."""
    return EWSDateTime.from_datetime(value.astimezone(UTC)).astimezone(EWSTimeZone("UTC"))
