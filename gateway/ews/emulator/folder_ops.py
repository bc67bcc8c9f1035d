"""Folder operations: GetFolder, FindFolder, CreateFolder, UpdateFolder, DeleteFolder.

Folders are the mailbox's structural folders (``root``, ``msgfolderroot``), its primary
``calendar`` and sub-calendars (``IPF.Appointment``) under it or elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from lxml import etree

from gateway.ews.emulator.mapi import extended_property_xml, folder_value
from gateway.ews.emulator.model import CALENDAR_CLASS, Folder, StoreError
from gateway.ews.emulator.restrictions import elements, restrict, unsupported_path
from gateway.ews.emulator.soap import (
    T_NS,
    EwsError,
    M,
    OperationContext,
    T,
    error_message,
    operation,
    success_message,
    wrap_response,
)
from gateway.ews.emulator.store import MailboxStore
from gateway.ews.emulator.xsd import child, local, text

_ALL_FOLDER_FIELDS = (
    "folder:ParentFolderId",
    "folder:FolderClass",
    "folder:DisplayName",
    "folder:TotalCount",
    "folder:ChildFolderCount",
    "folder:EffectiveRights",
)


def store_for(ctx: OperationContext, email: str | None = None) -> MailboxStore:
    """The calendar store of the request's mailbox, or of an explicitly named (delegated) one."""
    mailbox = ctx.mailbox_for(email)
    return ctx.state.store.mailbox(mailbox.email, mailbox.time_zone)


def owner_of_folder(ctx: OperationContext, folder_id: str) -> MailboxStore:
    """The mailbox holding ``folder_id``, after the caller's access check (ErrorFolderNotFound if none)."""
    for email, box in ctx.state.store.mailboxes.items():
        if folder_id in box.folders:
            return store_for(ctx, email)
    raise StoreError("ErrorFolderNotFound", "The specified folder could not be found in the store.")


def resolve_folder(ctx: OperationContext, elem: etree._Element) -> tuple[MailboxStore, Folder]:
    """A ``t:FolderId`` or ``t:DistinguishedFolderId`` (with an optional ``t:Mailbox``)."""
    if local(elem) == "DistinguishedFolderId":
        mailbox = child(elem, "Mailbox")
        box = store_for(ctx, text(mailbox, "EmailAddress") or None)
        return box, box.distinguished_folder(elem.get("Id", ""))
    if local(elem) == "FolderId":
        box = owner_of_folder(ctx, elem.get("Id", ""))
        return box, box.folder(elem.get("Id", ""))
    raise StoreError("ErrorInvalidIdMalformed", "Id is malformed.")


@dataclass
class FolderShape:
    """A requested ``FolderShape``: FieldURIs and the ExtendedFieldURIs of AdditionalProperties."""

    fields: set[str] = field(default_factory=set)
    extended: list[dict[str, str]] = field(default_factory=list)

    @classmethod
    def parse(cls, shape: etree._Element | None) -> FolderShape:
        """Every field for Default/AllProperties; IdOnly gives AdditionalProperties only."""
        if shape is None:
            return cls()
        parsed = cls(set(_ALL_FOLDER_FIELDS) if text(shape, "BaseShape", "IdOnly") != "IdOnly" else set())
        for path in elements(child(shape, "AdditionalProperties")):
            if local(path) == "ExtendedFieldURI":
                parsed.extended.append(dict(path.attrib))
            else:
                parsed.fields.add(path.get("FieldURI", ""))
        return parsed


# The folder elements of ArrayOfFoldersType by folder class (types.xsd); other classes are t:Folder.
_FOLDER_ELEMENTS = {
    CALENDAR_CLASS: "CalendarFolder",
    "IPF.Contact": "ContactsFolder",
    "IPF.Task": "TasksFolder",
}


def folder_xml(box: MailboxStore, folder: Folder, shape: FolderShape) -> etree._Element:
    """``t:CalendarFolder``, ``t:ContactsFolder``, ``t:TasksFolder`` or ``t:Folder`` in BaseFolderType order."""
    fields = shape.fields
    tag = _FOLDER_ELEMENTS.get(folder.folder_class or "", "Folder")
    elem = T(tag, T.FolderId(Id=folder.folder_id, ChangeKey=folder.change_key))
    if "folder:ParentFolderId" in fields and folder.parent_id:
        parent = box.folders[folder.parent_id]
        elem.append(T.ParentFolderId(Id=parent.folder_id, ChangeKey=parent.change_key))
    if "folder:FolderClass" in fields and folder.folder_class:
        elem.append(T.FolderClass(folder.folder_class))
    if "folder:DisplayName" in fields:
        elem.append(T.DisplayName(folder.name))
    if "folder:TotalCount" in fields:
        elem.append(T.TotalCount(str(len(folder.items))))
    if "folder:ChildFolderCount" in fields:
        elem.append(T.ChildFolderCount(str(len(box.children(folder.folder_id)))))
    for uri in shape.extended:  # MAPI properties of the folder (mapi.py), in the order asked
        value = folder_value(box, folder, uri)
        if value is not None:
            elem.append(extended_property_xml(uri, value))
    if "folder:EffectiveRights" in fields:
        rights = ("CreateAssociated", "CreateContents", "CreateHierarchy", "Delete", "Modify", "Read")
        elem.append(T.EffectiveRights(*[getattr(T, r)("true") for r in rights]))
    if "folder:DistinguishedFolderId" in fields and folder.distinguished:
        elem.append(T.DistinguishedFolderId(folder.distinguished))
    if tag in ("Folder", "TasksFolder") and "folder:UnreadCount" in fields:
        elem.append(T.UnreadCount("0"))
    return elem


def _folder_path_value(box: MailboxStore) -> Callable[[Folder, etree._Element], object]:
    """What a FindFolder Restriction path names on a folder of ``box``."""

    def value_of(folder: Folder, path: etree._Element) -> object:
        if local(path) == "ExtendedFieldURI":
            return folder_value(box, folder, dict(path.attrib))
        uri = path.get("FieldURI", "")
        values = {
            "folder:DisplayName": lambda: folder.name,
            "folder:FolderClass": lambda: folder.folder_class,
            "folder:TotalCount": lambda: len(folder.items),
            "folder:ChildFolderCount": lambda: len(box.children(folder.folder_id)),
            "folder:UnreadCount": lambda: 0,
        }
        if uri not in values:
            raise unsupported_path()
        return values[uri]()

    return value_of


def _folder_ids(request: etree._Element, container: str) -> list[etree._Element]:
    found = first_child(request, container)
    return [] if found is None else [c for c in found if isinstance(c.tag, str)]


def per_id(
    operation_name: str,
    ids: list[etree._Element],
    handle: Callable[[etree._Element], etree._Element],
    *,
    items_on_error: bool = False,
) -> etree._Element:
    """One response message per requested id; an EwsError fails only that message.

    ``items_on_error``: ItemInfoResponseMessageType requires an (empty) ``m:Items`` even in errors.
    """
    messages = []
    for elem in ids:
        try:
            messages.append(handle(elem))
        except EwsError as exc:
            message = error_message(operation_name, exc.code, exc.message)
            if items_on_error:
                message.append(M.Items())
            messages.append(message)
    return wrap_response(operation_name, messages)


@operation("GetFolder")
def get_folder(ctx: OperationContext, request: etree._Element) -> etree._Element:
    """GetFolder: folders by FolderId or DistinguishedFolderId (EWS GetFolder operation)."""
    shape = FolderShape.parse(first_child(request, "FolderShape"))

    def handle(elem: etree._Element) -> etree._Element:
        box, folder = resolve_folder(ctx, elem)
        message = success_message("GetFolder")
        message.append(M.Folders(folder_xml(box, folder, shape)))
        return message

    return per_id("GetFolder", _folder_ids(request, "FolderIds"), handle)


def first_child(request: etree._Element, name: str) -> etree._Element | None:
    return next((c for c in request if isinstance(c.tag, str) and local(c) == name), None)


@operation("FindFolder")
def find_folder(ctx: OperationContext, request: etree._Element) -> etree._Element:
    """FindFolder: child folders (Shallow) or all descendants (Deep) that pass the Restriction, with
    IndexedPageFolderView paging."""
    shape = FolderShape.parse(first_child(request, "FolderShape"))
    deep = request.get("Traversal", "Shallow") == "Deep"
    view = first_child(request, "IndexedPageFolderView")
    restriction = first_child(request, "Restriction")

    def handle(elem: etree._Element) -> etree._Element:
        box, parent = resolve_folder(ctx, elem)
        found = restrict(box.children(parent.folder_id, deep=deep), restriction, _folder_path_value(box))
        offset, page = page_window(view, len(found))
        shown = found[offset : offset + page]
        message = success_message("FindFolder")
        message.append(
            M.RootFolder(
                T.Folders(*[folder_xml(box, f, shape) for f in shown]),
                IndexedPagingOffset=str(offset + len(shown)),
                TotalItemsInView=str(len(found)),
                IncludesLastItemInRange="true" if offset + len(shown) >= len(found) else "false",
            )
        )
        return message

    return per_id("FindFolder", _folder_ids(request, "ParentFolderIds"), handle)


def page_window(view: etree._Element | None, total: int) -> tuple[int, int]:
    """(offset, size) of an ``IndexedPage*View`` (BasePoint Beginning or End)."""
    if view is None:
        return 0, total
    size = int(view.get("MaxEntriesReturned", total) or total)
    offset = int(view.get("Offset", "0"))
    if view.get("BasePoint", "Beginning") == "End":
        offset = max(0, total - offset - size)
    return offset, size


@operation("CreateFolder")
def create_folder(ctx: OperationContext, request: etree._Element) -> etree._Element:
    """CreateFolder: new folders (calendars: ``t:CalendarFolder`` or FolderClass IPF.Appointment)."""
    parent_elem = first_child(request, "ParentFolderId")
    parent_ids = [] if parent_elem is None else [c for c in parent_elem if isinstance(c.tag, str)]
    if not parent_ids:
        raise EwsError("ErrorInvalidRequest", "ParentFolderId is required.")
    box, parent = resolve_folder(ctx, parent_ids[0])
    folders = first_child(request, "Folders")
    messages = []
    for spec in [] if folders is None else [c for c in folders if isinstance(c.tag, str)]:
        # Without a FolderClass, the element says what the folder holds (t:CalendarFolder, t:TasksFolder…).
        by_element = {tag: cls for cls, tag in _FOLDER_ELEMENTS.items()}
        folder_class = text(spec, "FolderClass") or by_element.get(local(spec), "IPF.Note")
        try:
            folder = box.create_folder(parent.folder_id, text(spec, "DisplayName"), folder_class)
        except StoreError as exc:
            messages.append(error_message("CreateFolder", exc.code, exc.message))
            continue
        message = success_message("CreateFolder")
        message.append(M.Folders(folder_xml(box, folder, FolderShape())))
        messages.append(message)
    return wrap_response("CreateFolder", messages)


@operation("UpdateFolder")
def update_folder(ctx: OperationContext, request: etree._Element) -> etree._Element:
    """UpdateFolder: SetFolderField folder:DisplayName (the only change the emulator models)."""
    changes = first_child(request, "FolderChanges")

    def handle(change: etree._Element) -> etree._Element:
        target = next(
            c for c in change if isinstance(c.tag, str) and local(c) in ("FolderId", "DistinguishedFolderId")
        )
        box, folder = resolve_folder(ctx, target)
        updates = child(change, "Updates")
        for update in [] if updates is None else updates:
            name = next(iter(update.iter(f"{{{T_NS}}}DisplayName")), None)
            if local(update) == "SetFolderField" and name is not None:
                box.rename_folder(folder.folder_id, name.text or "")
            else:
                raise StoreError("ErrorInvalidPropertySet", "Only folder:DisplayName can be changed.")
        message = success_message("UpdateFolder")
        message.append(M.Folders(folder_xml(box, folder, FolderShape())))
        return message

    return per_id(
        "UpdateFolder", [] if changes is None else [c for c in changes if isinstance(c.tag, str)], handle
    )


@operation("DeleteFolder")
def delete_folder(ctx: OperationContext, request: etree._Element) -> etree._Element:
    """DeleteFolder: removes a folder and its items; distinguished folders are refused."""

    def handle(elem: etree._Element) -> etree._Element:
        box, folder = resolve_folder(ctx, elem)
        box.delete_folder(folder.folder_id)
        return success_message("DeleteFolder")

    return per_id("DeleteFolder", _folder_ids(request, "FolderIds"), handle)
