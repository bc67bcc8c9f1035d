"""Item operations on calendar items: FindItem, GetItem, CreateItem, UpdateItem, DeleteItem.

Each operation answers one response message per requested item; an error (for example
ErrorItemNotFound) fails only that message, as Exchange does.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from typing import TypeVar

from lxml import etree

from gateway.ews.emulator import mapi
from gateway.ews.emulator.fields import BY_URI, Field
from gateway.ews.emulator.folder_ops import first_child, page_window, per_id, resolve_folder, store_for
from gateway.ews.emulator.ids import new_uid, parse_occurrence_id
from gateway.ews.emulator.inbox import MeetingMessage, delete_message, discard_messages
from gateway.ews.emulator.items import Shape, apply_item, item_xml
from gateway.ews.emulator.mime_import import import_mime
from gateway.ews.emulator.model import Attendee, CalendarItem, SentMessage, StoreError, zone_for, zone_known
from gateway.ews.emulator.responses import record_answer, take_answer
from gateway.ews.emulator.restrictions import elements, item_value, restrict, sort
from gateway.ews.emulator.series import normalise_series
from gateway.ews.emulator.soap import (
    EwsError,
    M,
    OperationContext,
    T,
    operation,
    success_message,
)
from gateway.ews.emulator.store import MailboxStore
from gateway.ews.emulator.task_fields import apply_task, task_field
from gateway.ews.emulator.task_ops import create_task, update_task
from gateway.ews.emulator.tasks import Task, delete_task
from gateway.ews.emulator.xsd import child, local, parse_dt

_RESPONSES = {"AcceptItem": "Accept", "TentativelyAcceptItem": "Tentative", "DeclineItem": "Decline"}
_SENDS = ("SendOnlyToAll", "SendToAllAndSaveCopy", "SendOnlyToChanged", "SendToChangedAndSaveCopy")


def owner_of_item(ctx: OperationContext, item_id: str) -> MailboxStore:
    """The mailbox holding an item (or the master of an occurrence), after the access check."""
    occurrence = parse_occurrence_id(item_id)
    stored_id = occurrence[0] if occurrence else item_id
    for email, box in ctx.state.store.mailboxes.items():
        if stored_id in box.item_folder:
            return store_for(ctx, email)
    raise StoreError("ErrorItemNotFound", "The specified object was not found in the store.")


def resolve_item(ctx: OperationContext, elem: etree._Element) -> tuple[MailboxStore, CalendarItem]:
    """``t:ItemId``, ``t:OccurrenceItemId`` (master + 1-based index) or ``t:RecurringMasterItemId``."""
    kind = local(elem)
    if kind == "ItemId":
        box = owner_of_item(ctx, elem.get("Id", ""))
        return box, box.get(elem.get("Id", ""))
    if kind == "OccurrenceItemId":
        master_id = elem.get("RecurringMasterId", "")
        box = owner_of_item(ctx, master_id)
        master = box.get(master_id)
        return box, box.occurrence(master, int(elem.get("InstanceIndex", "0")))
    if kind == "RecurringMasterItemId":
        box = owner_of_item(ctx, elem.get("OccurrenceId", ""))
        return box, box.master_of(box.get(elem.get("OccurrenceId", "")))
    raise StoreError("ErrorInvalidIdMalformed", "Id is malformed.")


# -- FindItem / GetItem -----------------------------------------------------------------------------


@operation("FindItem")
def find_item(ctx: OperationContext, request: etree._Element) -> etree._Element:
    """FindItem: a CalendarView (expanded occurrences) or a paged, restricted list of stored items."""
    shape = Shape.parse(first_child(request, "ItemShape"))
    calendar_view = first_child(request, "CalendarView")
    restriction = first_child(request, "Restriction")
    if calendar_view is not None and restriction is not None:
        raise EwsError("ErrorInvalidRestriction", "Restrictions are not supported with a CalendarView.")

    def handle(elem: etree._Element) -> etree._Element:
        box, folder = resolve_folder(ctx, elem)
        if calendar_view is not None:
            return _calendar_view(box, folder.folder_id, calendar_view, shape)
        found = restrict(list(folder.items.values()), restriction, item_value)
        found = sort(found, first_child(request, "SortOrder"), item_value)
        offset, size = page_window(first_child(request, "IndexedPageItemView"), len(found))
        shown = found[offset : offset + size]
        return _root(
            shown, shape, len(found), offset + len(shown) >= len(found), paging_offset=offset + len(shown)
        )

    return per_id("FindItem", elements(first_child(request, "ParentFolderIds")), handle)


def _calendar_view(box: MailboxStore, folder_id: str, view: etree._Element, shape: Shape) -> etree._Element:
    start, end = parse_dt(view.get("StartDate", "")), parse_dt(view.get("EndDate", ""))
    if end < start:
        raise StoreError("ErrorCalendarEndDateIsEarlierThanStartDate", "EndDate is earlier than StartDate.")
    found = box.expand(folder_id, start, end)
    limit = int(view.get("MaxEntriesReturned") or len(found) or 1)
    return _root(found[:limit], shape, len(found), len(found) <= limit)


def _root(
    items: list[CalendarItem], shape: Shape, total: int, last: bool, paging_offset: int | None = None
) -> etree._Element:
    attrs = {"TotalItemsInView": str(total), "IncludesLastItemInRange": "true" if last else "false"}
    if paging_offset is not None:
        attrs = {"IndexedPagingOffset": str(paging_offset), **attrs}
    message = success_message("FindItem")
    message.append(M.RootFolder(T.Items(*[item_xml(i, shape) for i in items]), **attrs))
    return message


@operation("GetItem")
def get_item(ctx: OperationContext, request: etree._Element) -> etree._Element:
    """GetItem: items, occurrences (OccurrenceItemId) and masters (RecurringMasterItemId) by id."""
    shape = Shape.parse(first_child(request, "ItemShape"))

    def handle(elem: etree._Element) -> etree._Element:
        _, item = resolve_item(ctx, elem)
        return _items_message("GetItem", item, shape)

    return per_id("GetItem", elements(first_child(request, "ItemIds")), handle, items_on_error=True)


def _items_message(operation_name: str, item: CalendarItem, shape: Shape) -> etree._Element:
    message = success_message(operation_name)
    message.append(M.Items(item_xml(item, shape)))
    return message


# -- CreateItem / UpdateItem / DeleteItem ---------------------------------------------------------------


def _check_times(item: CalendarItem) -> None:
    if item.end < item.start:
        raise StoreError("ErrorCalendarEndDateIsEarlierThanStartDate", "EndDate is earlier than StartDate.")


def _send(
    ctx: OperationContext, box: MailboxStore, kind: str, item: CalendarItem, cancelled: bool = False
) -> None:
    """Send a meeting message: log it, and deliver it to attendees that are mailboxes of this emulator.

    Delivery does what Exchange's transport and calendar attendant do for internal attendees:
    their copy of the meeting is created, updated or marked cancelled.
    """
    recipients = [a.email for a in item.attendees()]
    if not recipients:
        return
    box.sent.append(SentMessage(kind, box.email, recipients, item.subject, item.uid, ctx.now))
    if item.organizer is None or item.organizer.email != box.email:
        return
    master = box.master_of(item) if item.master_id is not None else item
    ctx.state.store.deliver(master, ctx.now, cancelled=cancelled)


@operation("CreateItem")
def create_item(ctx: OperationContext, request: etree._Element) -> etree._Element:
    """CreateItem of calendar items into SavedItemFolderId (default: the mailbox's Calendar)."""
    saved = elements(first_child(request, "SavedItemFolderId"))
    if saved:
        box, folder = resolve_folder(ctx, saved[0])
    else:
        box = store_for(ctx)
        folder = box.calendar
    send = request.get("SendMeetingInvitations", "SendToNone")

    def handle(elem: etree._Element) -> etree._Element:
        if local(elem) in _RESPONSES:
            disposition = request.get("MessageDisposition")
            if disposition is None:  # AcceptItemType's remarks: a response object needs one
                raise StoreError("ErrorMessageDispositionRequired", "MessageDisposition is required.")
            _respond(ctx, elem, _RESPONSES[local(elem)], disposition)
            message = success_message("CreateItem")
            message.append(M.Items())
            return message
        if local(elem) == "Task":  # tasks have their own fields and rules (task_ops.py)
            task = create_task(box, folder if saved else None, elem, ctx.now, naive_zone(ctx, [elem]))
            return _items_message("CreateItem", task, Shape("IdOnly"))
        if local(elem) != "CalendarItem":
            raise StoreError(
                "ErrorInvalidItemForOperationCreateItem", "Only calendar items can be created here."
            )
        item = box.new_item(folder.folder_id, ctx.now)
        if ctx.timezone and zone_known(ctx.timezone):
            # Without StartTimeZone/EndTimeZone Exchange uses the request's TimeZoneContext.
            item.start_tz = item.end_tz = ctx.timezone
        mime = child(elem, "MimeContent")
        if mime is not None:  # Exchange builds the item from its MIME first, then applies the rest
            import_mime(item, mime.text or "", item.start_tz, box.email)
        apply_item(item, elem, zone=naive_zone(ctx, [elem]))
        _check_times(item)
        if not item.uid:
            item.uid = new_uid(item.item_id)
        if item.is_meeting and item.organizer is None:
            item.organizer = _organizer(ctx, box)
        box.add_item(item)
        if item.is_meeting and send in _SENDS:
            _send(ctx, box, "Invitation", item)
        return _items_message("CreateItem", item, Shape("IdOnly"))

    return per_id("CreateItem", elements(first_child(request, "Items")), handle, items_on_error=True)


def _respond(ctx: OperationContext, elem: etree._Element, response: str, disposition: str) -> None:
    """CreateItem of an AcceptItem/TentativelyAcceptItem/DeclineItem for a meeting in the caller's calendar.

    The attendee's copy takes the response (a declined meeting leaves the calendar, as in Outlook);
    unless the disposition is SaveOnly, the organizer's item records the attendee's ResponseType.
    The response's Body is its text (the attendee's comment), kept with the message sent.
    A ReferenceItemId naming an occurrence answers that occurrence only (:mod:`.responses`).
    """
    ref = child(elem, "ReferenceItemId")
    if ref is None:
        raise StoreError("ErrorInvalidRequest", "ReferenceItemId is required.")
    box = owner_of_item(ctx, ref.get("Id", ""))
    item = box.get(ref.get("Id", ""))
    meeting = box.master_of(item) if item.master_id is not None else item
    if meeting.organizer is None or meeting.organizer.email == box.email:
        raise StoreError("ErrorInvalidRequest", "Only an attendee can respond to a meeting request.")
    organizer_item = _organizer_copy(ctx, meeting)
    discard_messages(box, meeting.uid, ctx.now)  # Exchange moves the answered request to Deleted Items
    take_answer(box, item, response, organizer_item, ctx.now)
    if disposition == "SaveOnly" or organizer_item is None:
        return
    assert meeting.organizer is not None
    comment = child(elem, "Body")  # the response's text
    box.sent.append(
        SentMessage(
            response,
            box.email,
            [meeting.organizer.email],
            meeting.subject,
            meeting.uid,
            ctx.now,
            body=(comment.text or "") if comment is not None else "",
        )
    )
    organizer_box = ctx.state.store.mailboxes[meeting.organizer.email]
    record_answer(organizer_box, organizer_item, box.email, response, item.instance_index, ctx.now)


def _organizer_copy(ctx: OperationContext, meeting: CalendarItem) -> CalendarItem | None:
    """The organizer's own item of a meeting (same UID in their Calendar), if they are in this emulator."""
    assert meeting.organizer is not None
    box = ctx.state.store.mailboxes.get(meeting.organizer.email)
    if box is None:
        return None
    return next((i for i in box.calendar.items.values() if i.uid == meeting.uid), None)


def _organizer(ctx: OperationContext, box: MailboxStore) -> Attendee:
    mailbox = ctx.state.directory.get(box.email)
    return Attendee(box.email, mailbox.display_name if mailbox else "")


@operation("UpdateItem")
def update_item(ctx: OperationContext, request: etree._Element) -> etree._Element:
    """UpdateItem: Set/Append/DeleteItemField on items and occurrences, with ConflictResolution."""
    resolution = request.get("ConflictResolution", "AutoResolve")
    send = request.get("SendMeetingInvitationsOrCancellations", "SendToNone")

    def handle(change: etree._Element) -> etree._Element:
        parts = elements(change)
        box, target = resolve_item(ctx, parts[0])
        sent_key = parts[0].get("ChangeKey")
        if resolution == "NeverOverwrite" and sent_key and sent_key != target.change_key:
            raise StoreError(
                "ErrorIrresolvableConflict",
                "The send or update operation could not be performed because the change key passed "
                "in the request does not match the current change key for the item.",
            )
        updates = child(change, "Updates")
        zone = naive_zone(ctx, [elements(u)[-1] for u in elements(updates)])
        # Work on a copy so that a refused update leaves the stored item untouched.
        if isinstance(target, Task):  # tasks have their own fields and rules (task_fields.py, task_ops.py)
            task = copy.deepcopy(target)
            _apply_updates(task, updates, zone, apply_task, task_field)
            update_task(box, target, task, ctx.now)
            return _updated(task)
        item = copy.deepcopy(target)
        _apply_updates(item, updates, zone, apply_item, BY_URI.get)
        if item.master_id is None and item.recurrence != target.recurrence:
            # A different pattern invalidates the old exceptions, as in Exchange; resending the same one does not.
            item.exceptions, item.deleted = {}, {}
        _check_times(item)
        sending = item.is_meeting and send in _SENDS
        if sending:
            item.sequence += 1
        _commit(box, target, item, ctx.now)
        if sending:
            _send(ctx, box, "Update", item)
        return _updated(item)

    return per_id("UpdateItem", elements(first_child(request, "ItemChanges")), handle, items_on_error=True)


def naive_zone(ctx: OperationContext, items: list[etree._Element]) -> tzinfo:
    """The zone of a request's date-times without an offset: a StartTimeZone (or MeetingTimeZone) the
    request sets, else its TimeZoneContext, else UTC (Microsoft, "Time zones and EWS in Exchange";
    DavMail sends local times with a TimeZoneContext)."""
    for elem in items:
        for name in ("StartTimeZone", "MeetingTimeZone"):
            zone = child(elem, name)
            zone_id = "" if zone is None else zone.get("Id") or zone.get("TimeZoneName") or ""
            if zone_known(zone_id):
                return zone_for(zone_id)
    if ctx.timezone and zone_known(ctx.timezone):
        return zone_for(ctx.timezone)
    return UTC


def _updated(item: CalendarItem | Task) -> etree._Element:
    message = _items_message("UpdateItem", item, Shape("IdOnly"))
    message.append(M.ConflictResults(T.Count("0")))
    return message


Updatable = TypeVar("Updatable", CalendarItem, Task)


def _apply_updates(
    item: Updatable,
    updates: etree._Element | None,
    zone: tzinfo,
    apply: Callable[[Updatable, etree._Element, bool, tzinfo], None],
    field: Callable[[str], Field | None],
) -> None:
    """An ItemChange's updates, in order, onto ``item`` (a calendar item or a task).

    SetItemField and AppendToItemField hand their one-field ``t:CalendarItem`` / ``t:Task`` to ``apply``
    (``items.apply_item`` or ``task_fields.apply_task``); DeleteItemField resets the field ``field``
    finds by FieldURI (``fields.BY_URI`` or ``task_fields.task_field``), or an extended property.
    """
    for update in elements(updates):
        parts = elements(update)
        kind = local(update)
        if kind in ("SetItemField", "AppendToItemField"):
            apply(item, parts[1], kind == "AppendToItemField", zone)
        elif kind == "DeleteItemField":
            _delete_field(item, parts[0], field)
        else:
            raise StoreError("ErrorInvalidPropertyUpdateSentMessage", f"{kind} is not supported.")


def _delete_field(
    item: CalendarItem | Task, path: etree._Element, field: Callable[[str], Field | None]
) -> None:
    # A task has the attributes mapi and the fields read and reset (extended, subject, body, its own).
    if local(path) == "ExtendedFieldURI":
        mapi.delete_item(item, dict(path.attrib))  # type: ignore[arg-type]
        return
    declared = field(path.get("FieldURI", ""))
    # Properties the store does not model have nothing to delete (exchangelib deletes every empty field).
    if declared is not None:
        declared.delete(item)  # type: ignore[arg-type]


def _commit(box: MailboxStore, target: CalendarItem, item: CalendarItem, now: datetime) -> None:
    """Store an updated item: occurrences become exceptions of their master; masters are re-normalised."""
    if item.master_id is not None:
        box.commit_occurrence(item, now)
        return
    folder = box.folders[target.folder_id]
    normalise_series(item)
    folder.items[item.item_id] = item
    box.touch(item, now)


@operation("DeleteItem")
def delete_item(ctx: OperationContext, request: etree._Element) -> etree._Element:
    """DeleteItem of items and occurrences (an occurrence becomes a deleted occurrence of its master)."""
    send = request.get("SendMeetingCancellations", "SendToNone")

    def handle(elem: etree._Element) -> etree._Element:
        box, item = resolve_item(ctx, elem)
        if isinstance(item, Task):  # tasks have their own occurrence rules (tasks.py)
            delete_task(box, item, request.get("AffectedTaskOccurrences"), ctx.now)
            return success_message("DeleteItem")
        if isinstance(item, MeetingMessage):  # a message in the Inbox, not the meeting (inbox.py)
            return delete_message(box, item, request.get("DeleteType", "HardDelete"), ctx.now)
        box.delete(item.item_id, ctx.now)
        if item.is_meeting and send in _SENDS and item.my_response_type == "Organizer":
            # Cancelling one occurrence updates the attendees' series; cancelling the item cancels theirs.
            _send(ctx, box, "Cancellation", item, cancelled=item.master_id is None)
        return success_message("DeleteItem")

    return per_id("DeleteItem", elements(first_child(request, "ItemIds")), handle)
