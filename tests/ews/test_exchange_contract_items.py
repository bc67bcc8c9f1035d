"""Contract of the item-level exchangelib internals ``gateway/ews/exchange.py`` relies on.

Each test names one thing the gateway uses beyond exchangelib's public API; when an exchangelib
release changes it, the test fails here, with a clear message, instead of a month view or a PUT
of a recurring event failing at run time.
"""

from __future__ import annotations

import inspect

from exchangelib import CalendarItem, ExtendedProperty
from exchangelib.properties import ItemId, OccurrenceItemId
from exchangelib.services import FindItem
from exchangelib.services.common import EWSService, to_item_id
from lxml import etree

from gateway.ews.exchange import (
    CALDAV_FINGERPRINT,
    CALDAV_NAME,
    CALDAV_NO_END,
    CALDAV_RESIDUAL,
    CalDAVBodyFingerprint,
    CalDAVNoEnd,
    CalDAVResidual,
    CalDAVResourceName,
    ViewEntry,
    _CalendarViewItems,
    address_occurrence,
    occurrence_id,
    register_item_fields,
)

TYPES = "http://schemas.microsoft.com/exchange/services/2006/types"


def test_find_item_reads_each_element_through_elem_to_obj() -> None:
    """_CalendarViewItems overrides the per-element hook; the service must still call it."""
    assert list(inspect.signature(FindItem._elem_to_obj).parameters) == ["self", "elem"]
    assert "self._elem_to_obj(elem)" in inspect.getsource(EWSService._elems_to_objs)
    assert _CalendarViewItems._elem_to_obj is not FindItem._elem_to_obj


def test_find_item_call_takes_the_arguments_calendar_view_passes() -> None:
    expected = [
        "self",
        "folders",
        "additional_fields",
        "restriction",
        "order_fields",
        "shape",
        "query_string",
        "depth",
        "calendar_view",
        "max_items",
        "offset",
    ]
    assert list(inspect.signature(FindItem.call).parameters) == expected


def test_calendar_view_element_becomes_a_view_entry() -> None:
    elem = etree.fromstring(
        f'<t:CalendarItem xmlns:t="{TYPES}"><t:ItemId Id="AAA" ChangeKey="CK"/><t:UID>u-1</t:UID>'
        "<t:CalendarItemType>Occurrence</t:CalendarItemType></t:CalendarItem>"
    )
    service = _CalendarViewItems.__new__(_CalendarViewItems)  # the hook reads only the element
    assert service._elem_to_obj(elem) == ViewEntry("AAA", "CK", "u-1", "Occurrence")


def test_calendar_item_register_and_deregister_exist() -> None:
    assert list(inspect.signature(CalendarItem.register).parameters) == ["attr_name", "attr_cls"]
    assert list(inspect.signature(CalendarItem.deregister).parameters) == ["attr_name"]
    for prop in (CalDAVResourceName, CalDAVNoEnd, CalDAVBodyFingerprint):
        assert issubclass(prop, ExtendedProperty)
        prop.validate_cls()


def test_registration_is_idempotent_and_makes_a_field() -> None:
    register_item_fields()
    register_item_fields()
    names = [f.name for f in CalendarItem.FIELDS]
    assert names.count(CALDAV_NAME) == 1 and names.count(CALDAV_RESIDUAL) == 1
    assert names.count(CALDAV_NO_END) == names.count(CALDAV_FINGERPRINT) == 1
    assert CalendarItem(caldav_name="a.ics").caldav_name == "a.ics"
    assert CalendarItem(caldav_residual="BEGIN:VCALENDAR").caldav_residual == "BEGIN:VCALENDAR"
    assert CalendarItem(caldav_no_end=1).caldav_no_end == 1
    assert CalendarItem(caldav_fingerprint="f00d").caldav_fingerprint == "f00d"


def test_the_residual_is_a_named_string_property_of_the_gateways_set() -> None:
    """CalDAVResidual is written as an ExtendedProperty (CreateItem/UpdateItem) and asked for by its
    ExtendedFieldURI in GetItem: exchangelib must build both from the class attributes."""
    assert issubclass(CalDAVResidual, ExtendedProperty)
    CalDAVResidual.validate_cls()
    assert CalDAVResidual.property_set_id == CalDAVResourceName.property_set_id
    assert CalDAVResidual.property_name != CalDAVResourceName.property_name
    register_item_fields()
    field = CalendarItem.get_field_by_fieldname(CALDAV_RESIDUAL)
    uri = field.field_uri_xml()
    assert uri.get("PropertyName") == "CalDAVResidual" and uri.get("PropertyType") == "String"
    assert uri.get("DistinguishedPropertySetId") is None
    assert uri.get("PropertySetId") == CalDAVResidual.property_set_id
    written = CalDAVResidual("line one\nline two").to_xml(version=None)
    assert written.tag == f"{{{TYPES}}}Value" and written.text == "line one\nline two"


def test_id_and_changekey_are_read_from_the_id_element() -> None:
    """address_occurrence replaces ``_id``: it must be what ``.id``/``.changekey`` read and ``to_id`` sends."""
    item = CalendarItem(id="x", changekey="y")
    assert isinstance(item._id, ItemId)
    assert (item._id.id, item._id.changekey) == ("x", "y")
    item._id = ItemId("p", "q")
    assert (item.id, item.changekey) == ("p", "q")
    assert item.to_id() is item._id


def test_occurrence_item_id_fields() -> None:
    assert [f.name for f in OccurrenceItemId.FIELDS] == ["id", "changekey", "instance_index"]
    master = CalendarItem(id="master", changekey="ck")
    occurrence = CalendarItem(subject="moved")
    address_occurrence(occurrence, master, 3)
    assert occurrence.to_id() == occurrence_id(master, 3)
    assert occurrence.to_id() == OccurrenceItemId(id="master", changekey="ck", instance_index=3)
    assert (occurrence.id, occurrence.changekey) == ("master", "ck")
    # UpdateItem (bulk_update) addresses each item by what to_item_id makes of it
    assert to_item_id(occurrence, ItemId) is occurrence._id
