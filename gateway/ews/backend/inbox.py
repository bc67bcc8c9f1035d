"""The scheduling inbox (RFC 6638 §2.2, §4): the meeting requests and cancellations waiting in the Inbox
of each of the principal's mailboxes, as iTIP messages (RFC 5546 §3.2.2 REQUEST, §3.2.5 CANCEL).

Round trips: a listing is one FindItem per account (IdOnly + ItemClass, restricted to the two message
classes: a mailbox's other mail is never read), and, per account and only for messages not rendered
before, one GetItem of the messages (their AssociatedCalendarItemId) and one of the calendar items they
belong to (plus one of modified occurrences a series has): the iTIP object is the meeting as the
mailbox holds it, rendered by the same mapping as the calendar. The rendering is part of the listing
because a message can outlive its meeting (the organizer cancels, the attendee deletes the cancelled
meeting; the cancellation stays in the Inbox, its AssociatedCalendarItemId naming an item that is gone),
and exchangelib's MeetingRequest and MeetingCancellation have no UID to render such a message from: a
message with nothing to render is not listed, as a listed member must be retrievable (RFC 4918 §9.1).
A message never changes without a new ChangeKey, which is its ETag and the key its rendering (or its
having none) is kept under, so reading the members after the listing costs no further call. DELETE is
the listing and one DeleteItem (MoveToDeletedItems, as Outlook deletes mail): the meeting stays in the
calendar.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from exchangelib import Account
from exchangelib.folders import Calendar, Inbox
from exchangelib.items import MOVE_TO_DELETED_ITEMS, SEND_TO_NONE, CalendarItem
from exchangelib.properties import ItemId

from gateway.caldav.backend import CalendarObject, NotFound, PreconditionFailed, Principal
from gateway.common import ical
from gateway.ews import mapping
from gateway.ews.backend.calls import EwsCalls, raise_first_error
from gateway.ews.backend.reads import ITEM_FIELDS, fetch_items
from gateway.ews.backend.records import LRU, ConnectedMailbox
from gateway.ews.exchange import unfetched_folder

REQUEST_CLASS = "IPM.Schedule.Meeting.Request"
CANCELLATION_CLASS = "IPM.Schedule.Meeting.Canceled"
_VersionKey = tuple[str, str]  # (ItemId, ChangeKey) of a message


@dataclass(frozen=True)
class Message:
    """A meeting message found in an Inbox."""

    name: str
    item_id: str
    changekey: str
    cancellation: bool
    mailbox: ConnectedMailbox

    @property
    def listed(self) -> CalendarObject:
        return CalendarObject(self.name, self.changekey)

    @property
    def version(self) -> _VersionKey:
        """The key its rendering is kept under: ItemId and ChangeKey."""
        return (self.item_id, self.changekey)


def message_name(item_id: str) -> str:
    """The inbox resource name of a message: a digest of its ItemId (stable while it stays in the Inbox;
    ItemIds are too long and too revealing for a URL)."""
    return hashlib.sha256(item_id.encode("utf-8")).hexdigest()[:32] + ".ics"


def itip(text: str, cancellation: bool) -> str:
    """A calendar object as an iTIP message: METHOD:REQUEST, or METHOD:CANCEL with every VEVENT's STATUS
    CANCELLED (RFC 5546 §3.2.5)."""
    method = "CANCEL" if cancellation else "REQUEST"
    lines = text.split("\r\n")
    out = [lines[0], ical.line("METHOD", method).removesuffix("\r\n")]
    for line in lines[1:]:
        upper = line.upper()
        if cancellation and (upper.startswith("STATUS:") or upper.startswith("STATUS;")):
            continue
        if cancellation and upper == "END:VEVENT":
            out.append("STATUS:CANCELLED")
        out.append(line)
    return "\r\n".join(out)


class SchedulingInbox:
    """The principal's pending meeting messages (FindItem, GetItem, DeleteItem on each Inbox)."""

    def __init__(self, calls: EwsCalls, *, cache_size: int = 2000) -> None:
        self._calls = calls
        self._rendered: LRU[_VersionKey, str] = LRU(cache_size, max_bytes=8 * 1024 * 1024, weigh=len)
        # Messages whose meeting was gone when they were read: a message version cannot get it back (a
        # new delivery is a new message), so they are not read again.
        self._orphans: LRU[_VersionKey, bool] = LRU(cache_size)

    async def messages(self, principal: Principal) -> list[Message]:
        """Every meeting request and cancellation of the principal's Inboxes that has an iTIP object: one
        FindItem per account, and the reading of messages seen for the first time (:meth:`read`)."""
        found = await self._find(principal)
        unread = [
            m for m in found if self._rendered.hit(m.version) is None and not self._orphans.hit(m.version)
        ]
        if unread:
            await self.read(unread)
        return [m for m in found if not self._orphans.hit(m.version)]

    async def _find(self, principal: Principal) -> list[Message]:
        """FindItem of the meeting messages of each account's Inbox."""
        found: list[Message] = []
        for mailbox in await self._calls.connected(principal):
            account = self._calls.account(mailbox)

            def find(acc: Account = account) -> list[tuple[str, str, str]]:
                inbox = unfetched_folder(acc, Inbox)
                query = inbox.filter(item_class__in=[REQUEST_CLASS, CANCELLATION_CLASS]).only("item_class")
                return [(m.id, m.changekey, m.item_class) for m in query if not isinstance(m, Exception)]

            for item_id, changekey, item_class in await self._calls.run(account, "FindItem", find):
                cancelled = item_class == CANCELLATION_CLASS
                found.append(Message(message_name(item_id), item_id, changekey, cancelled, mailbox))
        return found

    async def read(self, messages: Sequence[Message]) -> dict[str, CalendarObject]:
        """The iTIP objects of these messages by name; a message whose meeting is gone is left out (and
        remembered, so the listing leaves it out too)."""
        result: dict[str, CalendarObject] = {}
        pending: list[Message] = []
        for message in messages:
            text = self._rendered.hit(message.version)
            if text is None:
                pending.append(message)
            else:
                result[message.name] = CalendarObject(message.name, message.changekey, text)
        by_account: dict[str, list[Message]] = {}
        for message in pending:
            by_account.setdefault(message.mailbox.record.account_id, []).append(message)
        for group in by_account.values():
            for message, text in await self._render(group):
                self._rendered.put(message.version, text)
                result[message.name] = CalendarObject(message.name, message.changekey, text)
        for message in pending:
            if message.name not in result:
                self._orphans.put(message.version, True)
        return result

    async def _render(self, messages: list[Message]) -> list[tuple[Message, str]]:
        """GetItem of one account's messages, then of their calendar items (and exceptions), rendered."""
        account = self._calls.account(messages[0].mailbox)

        def associated(acc: Account = account) -> list[str | None]:
            inbox = unfetched_folder(acc, Inbox)
            ids = [ItemId(m.item_id, m.changekey) for m in messages]
            found = acc.fetch(ids=ids, folder=inbox, only_fields=["associated_calendar_item_id"])
            return [
                None
                if isinstance(m, Exception) or m.associated_calendar_item_id is None
                else m.associated_calendar_item_id.id
                for m in found
            ]

        meeting_ids = await self._calls.run(account, "GetItem", associated)
        wanted = [(m, i) for m, i in zip(messages, meeting_ids, strict=True) if i is not None]
        if not wanted:
            return []
        calendar = unfetched_folder(account, Calendar)
        meetings = await self._calls.run(
            account, "GetItem", lambda: fetch_items(calendar, [ItemId(i) for _, i in wanted], ITEM_FIELDS)
        )
        occurrence_ids = [
            ItemId(o.id, o.changekey)
            for item in meetings
            if item is not None
            for o in item.modified_occurrences or ()
        ]
        exceptions: list[CalendarItem | None] = []
        if occurrence_ids:
            exceptions = await self._calls.run(
                account, "GetItem", lambda: fetch_items(calendar, occurrence_ids, ITEM_FIELDS)
            )
        by_id = {e.id: e for e in exceptions if e is not None}
        rendered = []
        for (message, _), meeting in zip(wanted, meetings, strict=True):
            if meeting is None:
                continue  # the meeting left the calendar (declined elsewhere): nothing to show
            own = [by_id[o.id] for o in meeting.modified_occurrences or () if o.id in by_id]
            text = mapping.to_ical(meeting, own, residual=meeting.caldav_residual)
            rendered.append((message, itip(text, message.cancellation)))
        return rendered

    async def delete(self, message: Message, if_match: str | None) -> None:
        """DeleteItem (MoveToDeletedItems) of the message; ``if_match`` is compared with its ChangeKey."""
        if if_match is not None and if_match != message.changekey:
            raise PreconditionFailed("The message was changed since you read it (ETag mismatch).")
        account = self._calls.account(message.mailbox)

        def delete(acc: Account = account) -> list[object]:
            ids = [ItemId(message.item_id, message.changekey)]
            return list(
                acc.bulk_delete(
                    ids, delete_type=MOVE_TO_DELETED_ITEMS, send_meeting_cancellations=SEND_TO_NONE
                )
            )

        raise_first_error(await self._calls.run(account, "DeleteItem", delete))
        self._rendered.discard(message.version)


def find(messages: Sequence[Message], name: str) -> Message:
    """The message named ``name``, or NotFound."""
    for message in messages:
        if message.name == name:
            return message
    raise NotFound("No such message in the scheduling inbox.")
