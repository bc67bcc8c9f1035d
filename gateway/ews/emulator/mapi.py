"""MAPI properties Exchange maintains on folders and calendar items, read through ``ExtendedFieldURI``.

Exchange is a MAPI store: a client may ask, restrict and sort on any MAPI property by tag or name,
not only on EWS's first-class fields, and a first-class field is itself a MAPI property (``item:Subject``
is PR_SUBJECT, 0x0037). DavMail works this way: its ctag is a folder's PR_LOCAL_COMMIT_TIME_MAX, its ETag
an item's PR_LAST_MODIFICATION_TIME, its listing sorted by PR_INTERNET_ARTICLE_NUMBER and restricted on
PidLidRecurring and the CDO instance type. The tables below give those properties their values from the
store; a property not listed is an ordinary extended property, stored as a client wrote it.

Values are typed (str, int, bool, datetime or a list of str) so that restrictions compare them as
Exchange does; :func:`format_value` writes them as ``t:Value`` text. Sources: MS-OXPROPS (tags and
named properties), MS-OXCFOLD (folder properties), MS-OXOCAL (calendar properties).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from lxml import etree

from gateway.ews.emulator.model import CalendarItem, ExtendedValue, Folder, PropertyId, property_id, uri_key
from gateway.ews.emulator.soap import T

if TYPE_CHECKING:  # store.py builds on the model; this module only reads a mailbox's folders
    from gateway.ews.emulator.store import MailboxStore

Value = str | int | bool | datetime | list[str] | None

# CDO's urn:schemas:calendar:instancetype (MS-OXOCAL §2.2.10.1.1's four kinds of calendar object).
INSTANCE_TYPES = {"Single": 0, "RecurringMaster": 1, "Occurrence": 2, "Exception": 3}


@dataclass(frozen=True)
class ItemProperty:
    """A MAPI property of a calendar item that is (or derives from) one of its fields.

    ``write`` applies a client's value (SetItemField / CreateItem on the tag), ``delete`` a
    DeleteItemField; a property without them is computed, and a client's write of it is ignored,
    as Exchange ignores writes of properties it calculates.
    """

    name: str
    read: Callable[[CalendarItem], Value]
    write: Callable[[CalendarItem, ExtendedValue], None] | None = None
    delete: Callable[[CalendarItem], None] | None = None


def _set(
    attr: str, value: Callable[[ExtendedValue], object]
) -> Callable[[CalendarItem, ExtendedValue], None]:
    return lambda item, ext: setattr(item, attr, value(ext))


def _clear(attr: str, empty: object) -> Callable[[CalendarItem], None]:
    return lambda item: setattr(item, attr, empty() if callable(empty) else empty)


def _first(ext: ExtendedValue) -> str:
    return ext.values[0] if ext.values else ""


def _set_body(item: CalendarItem, ext: ExtendedValue) -> None:
    item.body, item.body_type = _first(ext), "Text"  # PR_BODY is the plain-text body


def _appointment_state(item: CalendarItem) -> int:
    # PidLidAppointmentStateFlags (MS-OXOCAL §2.2.1.10): 1 meeting, 2 received, 4 cancelled.
    state = 1 if item.is_meeting else 0
    if item.is_meeting and item.my_response_type != "Organizer":
        state |= 2
    return state | (4 if item.is_cancelled else 0)


ITEM_PROPERTIES: dict[PropertyId, ItemProperty] = {
    # A task carries its own class (tasks.Task.item_class); calendar items are all IPM.Appointment.
    ("tag", 0x001A): ItemProperty("PR_MESSAGE_CLASS", lambda i: getattr(i, "item_class", "IPM.Appointment")),
    ("tag", 0x0037): ItemProperty(
        "PR_SUBJECT", lambda i: i.subject, _set("subject", _first), _clear("subject", "")
    ),
    ("tag", 0x0E23): ItemProperty("PR_INTERNET_ARTICLE_NUMBER", lambda i: i.created_seq),
    ("tag", 0x1000): ItemProperty("PR_BODY", lambda i: i.body, _set_body, _clear("body", "")),
    ("tag", 0x3001): ItemProperty("PR_DISPLAY_NAME", lambda i: i.subject),
    ("tag", 0x3007): ItemProperty("PR_CREATION_TIME", lambda i: i.created),
    ("tag", 0x3008): ItemProperty("PR_LAST_MODIFICATION_TIME", lambda i: i.modified),
    ("id", "appointment", 0x8217): ItemProperty("PidLidAppointmentStateFlags", _appointment_state),
    ("id", "appointment", 0x8223): ItemProperty("PidLidRecurring", lambda i: i.item_type != "Single"),
    ("name", "publicstrings", "urn:schemas:calendar:instancetype"): ItemProperty(
        "CDO instance type", lambda i: INSTANCE_TYPES[i.item_type]
    ),
    ("name", "publicstrings", "Keywords"): ItemProperty(
        "Keywords (categories)", lambda i: i.categories or None, _set("categories", lambda e: list(e.values))
    ),
}


def item_property(attrs: dict[str, str]) -> ItemProperty | None:
    """The maintained property an ``ExtendedFieldURI`` names, if it is one."""
    return ITEM_PROPERTIES.get(property_id(attrs))


def item_value(item: CalendarItem, attrs: dict[str, str]) -> Value:
    """An item's value of the property ``attrs`` names: maintained, else as a client stored it."""
    maintained = item_property(attrs)
    if maintained is not None:
        return maintained.read(item)
    stored = item.extended.get(uri_key(attrs))
    if stored is None:
        return None
    return stored.values if stored.is_array else (stored.values[0] if stored.values else "")


def write_item(item: CalendarItem, value: ExtendedValue) -> None:
    """CreateItem / SetItemField of an extended property: onto its field, or stored as written."""
    maintained = item_property(dict(value.uri))
    if maintained is None:
        item.extended[uri_key(dict(value.uri))] = value
    elif maintained.write is not None:
        maintained.write(item, value)


def delete_item(item: CalendarItem, attrs: dict[str, str]) -> None:
    """DeleteItemField of an extended property (deleting PR_BODY clears the body)."""
    maintained = item_property(attrs)
    if maintained is None:
        item.extended.pop(uri_key(attrs), None)
    elif maintained.delete is not None:
        maintained.delete(item)


# --- folders ------------------------------------------------------------------------------------

FolderRead = Callable[["MailboxStore", Folder], Value]


def _last_article(box: MailboxStore, folder: Folder) -> int:
    return max((i.created_seq for i in folder.items.values()), default=0)


FOLDER_PROPERTIES: dict[PropertyId, tuple[str, FolderRead]] = {
    ("tag", 0x10F3): ("PR_URL_COMP_NAME", lambda box, f: f.name),
    ("tag", 0x3001): ("PR_DISPLAY_NAME", lambda box, f: f.name),
    ("tag", 0x3008): ("PR_LAST_MODIFICATION_TIME", lambda box, f: f.show_commit_time()),
    ("tag", 0x3602): ("PR_CONTENT_COUNT", lambda box, f: len(f.items)),
    ("tag", 0x3603): ("PR_CONTENT_UNREAD", lambda box, f: 0),
    ("tag", 0x360A): ("PR_SUBFOLDERS", lambda box, f: bool(box.children(f.folder_id))),
    ("tag", 0x3613): ("PR_CONTAINER_CLASS", lambda box, f: f.folder_class),
    ("tag", 0x670A): ("PR_LOCAL_COMMIT_TIME_MAX", lambda box, f: f.show_commit_time()),
    # Article numbers are the items' creation positions in the folder's journal (see ITEM_PROPERTIES).
    ("tag", 0x6751): ("PR_ARTICLE_NUM_NEXT", lambda box, f: f.seq + 1),
    ("tag", 0x6752): ("PR_IMAP_LAST_ARTICLE_ID", _last_article),
}


def folder_value(box: MailboxStore, folder: Folder, attrs: dict[str, str]) -> Value:
    """A folder's value of the property ``attrs`` names (None: the folder does not have it)."""
    found = FOLDER_PROPERTIES.get(property_id(attrs))
    return None if found is None else found[1](box, folder)


# --- XML ----------------------------------------------------------------------------------------


def format_value(value: Value) -> list[str]:
    """``t:Value`` texts: booleans as xs:boolean, times in UTC to the second (as Exchange shows
    SystemTime properties; DavMail reads no fractions)."""
    if isinstance(value, list):
        return value
    if isinstance(value, bool):
        return ["true" if value else "false"]
    if isinstance(value, datetime):
        return [value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")]
    return [str(value)]


def extended_property_xml(attrs: dict[str, str], value: Value) -> etree._Element:
    """``t:ExtendedProperty`` with the URI exactly as the request spelled it."""
    texts = format_value(value)
    if isinstance(value, list) or attrs.get("PropertyType", "").endswith("Array"):
        holder = T.Values(*[T.Value(v) for v in texts])
    else:
        holder = T.Value(texts[0] if texts else "")
    return T.ExtendedProperty(T.ExtendedFieldURI(**attrs), holder)
