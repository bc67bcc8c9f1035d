"""Restrictions and sort orders (types.xsd ``RestrictionType``, ``FieldOrderType``) over items and folders.

FindItem and FindFolder both filter with a Restriction: ``And``/``Or``/``Not``/``Exists``/``Contains`` and
the six comparisons with a ``Constant``. What a path (``t:FieldURI`` or ``t:ExtendedFieldURI``) means is
the caller's ``value_of``: :func:`item_value` for calendar items, folder_ops' for folders. Constants are
read as the type of the value they are compared with; strings compare without regard to case.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from lxml import etree

from gateway.ews.emulator.fields import BY_URI
from gateway.ews.emulator.mapi import item_value as mapi_item_value
from gateway.ews.emulator.model import CalendarItem, StoreError
from gateway.ews.emulator.task_fields import task_field
from gateway.ews.emulator.tasks import Task
from gateway.ews.emulator.xsd import local, parse_dt

Obj = TypeVar("Obj")
ValueOf = Callable[[Any, etree._Element], Any]

_COMPARE = {
    "IsEqualTo": lambda a, b: a == b,
    "IsNotEqualTo": lambda a, b: a != b,
    "IsGreaterThan": lambda a, b: a > b,
    "IsGreaterThanOrEqualTo": lambda a, b: a >= b,
    "IsLessThan": lambda a, b: a < b,
    "IsLessThanOrEqualTo": lambda a, b: a <= b,
}


def elements(parent: etree._Element | None) -> list[etree._Element]:
    """The element children of ``parent`` (none for None)."""
    return [] if parent is None else [c for c in parent if isinstance(c.tag, str)]


def unsupported_path() -> StoreError:
    return StoreError("ErrorUnsupportedPathForQuery", "The property cannot be used in a restriction.")


def item_value(item: CalendarItem | Task, path: etree._Element) -> Any:
    """The value a Restriction or SortOrder path names on a calendar item or a task."""
    if local(path) == "ExtendedFieldURI":
        return mapi_item_value(item, dict(path.attrib))
    if isinstance(item, Task):
        return _task_value(item, path.get("FieldURI", ""))
    declared = BY_URI.get(path.get("FieldURI", ""))
    if declared is None or not declared.queryable:
        raise unsupported_path()
    return declared.value(item)


def _task_value(task: Task, uri: str) -> Any:
    """A task's value of a FieldURI; a calendar property, which a task does not have, is absent."""
    declared = task_field(uri)
    if declared is None and uri in BY_URI:
        return None
    if declared is None or not declared.queryable:
        raise unsupported_path()
    return declared.value(task)  # type: ignore[arg-type]


def _typed(constant: str, like: Any) -> Any:
    """Read a restriction constant as the type of the field it is compared with."""
    if isinstance(like, datetime):
        return parse_dt(constant)
    if isinstance(like, bool):
        return constant.strip().lower() in ("true", "1")
    if isinstance(like, int):
        try:
            return int(constant)
        except ValueError:
            raise StoreError("ErrorInvalidValueForProperty", f"{constant!r} is not an integer.") from None
    return constant.casefold()


def _norm(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


def matches(obj: Any, expr: etree._Element, value_of: ValueOf) -> bool:
    """Evaluate one search expression (And/Or/Not/Exists/Contains/comparisons) on an item or folder."""
    kind = local(expr)
    parts = elements(expr)
    if kind == "And":
        return all(matches(obj, p, value_of) for p in parts)
    if kind == "Or":
        return any(matches(obj, p, value_of) for p in parts)
    if kind == "Not":
        return not matches(obj, parts[0], value_of)
    value = value_of(obj, parts[0])
    if kind == "Exists":
        return value not in (None, "", [])
    if kind == "Contains":
        return _contains(value, expr, parts)
    if kind in _COMPARE:
        if value is None:
            return False
        constant = parts[1][0]
        if local(constant) != "Constant":
            raise StoreError("ErrorUnsupportedQueryFilter", "Only constants can be compared.")
        values = value if isinstance(value, list) else [value]
        return any(_COMPARE[kind](_norm(v), _typed(constant.get("Value", ""), v)) for v in values)
    raise StoreError("ErrorUnsupportedQueryFilter", f"Restriction {kind} is not supported.")


def _contains(value: Any, expr: etree._Element, parts: list[etree._Element]) -> bool:
    needle = parts[1].get("Value", "")
    ignore_case = expr.get("ContainmentComparison", "Exact") != "Exact"
    mode = expr.get("ContainmentMode", "Substring")
    for hay in value if isinstance(value, list) else [value or ""]:
        hay = str(hay)
        a, b = (hay.casefold(), needle.casefold()) if ignore_case else (hay, needle)
        if (
            (mode == "FullString" and a == b)
            or (mode == "Prefixed" and a.startswith(b))
            or (mode not in ("FullString", "Prefixed") and b in a)
        ):
            return True
    return False


def restrict(objs: list[Obj], restriction: etree._Element | None, value_of: ValueOf) -> list[Obj]:
    """The objects an ``m:Restriction`` (absent: all) admits."""
    if restriction is None:
        return objs
    return [o for o in objs if all(matches(o, e, value_of) for e in elements(restriction))]


def sort(objs: list[Obj], order: etree._Element | None, value_of: ValueOf) -> list[Obj]:
    """Sort by an ``m:SortOrder`` (its first FieldOrder is the primary key)."""
    for field_order in reversed(elements(order)):
        path = elements(field_order)[0]
        objs.sort(
            key=lambda o, p=path: _sort_key(value_of(o, p)),
            reverse=field_order.get("Order", "Ascending") == "Descending",
        )
    return objs


def _sort_key(value: Any) -> tuple:
    return (value is None, _norm(value) if not isinstance(value, list) else tuple(value))
