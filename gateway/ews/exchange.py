"""Every place the gateway extends exchangelib or relies on its internals.

exchangelib's public API builds one process-global protocol per login, reads answers byte by byte and
asks extra questions (GetServerTimeZones, a root GetFolder) the gateway does not need; the gateway
avoids those costs through exchangelib's private parts. Each reach is a named function or class whose
docstring says what it relies on and why; ``tests/ews/test_exchange_contract.py`` checks every one
against the installed exchangelib, and ``pyproject.toml`` pins exchangelib to the minor versions those
tests passed on.

Size: one home for every private reach, so an exchangelib upgrade is checked in one file against one
contract test; split by topic when a second backend library arrives.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import requests
import requests.adapters
import urllib3
from exchangelib import DELEGATE, Account, CalendarItem, Configuration, ExtendedProperty, Task
from exchangelib import errors as exl_errors
from exchangelib.autodiscover.protocol import AutodiscoverProtocol
from exchangelib.ewsdatetime import UTC as EWS_UTC
from exchangelib.ewsdatetime import EWSDateTime, EWSTimeZone
from exchangelib.fields import FieldPath
from exchangelib.folders import Calendar, Drafts, Folder, Root, SentItems, Tasks
from exchangelib.folders.collections import FolderCollection
from exchangelib.items import ID_ONLY, SAVE_ONLY, SEND_AND_SAVE_COPY, SEND_TO_NONE, SHALLOW
from exchangelib.items.calendar_item import BaseMeetingReplyItem
from exchangelib.properties import (
    CalendarView,
    DistinguishedFolderId,
    FreeBusyViewOptions,
    Mailbox,
    MailboxData,
    OccurrenceItemId,
    TimeZone,
)
from exchangelib.protocol import BaseProtocol, CachingProtocol, Protocol
from exchangelib.services import CreateItem, FindItem, GetUserAvailability
from lxml import etree

from gateway.ews.metrics import EwsMetrics, soap_operation

F = TypeVar("F", bound=Folder)

# ---- transport and protocol (client)

EWS_TYPES = "{http://schemas.microsoft.com/exchange/services/2006/types}"  # Clark prefix for lxml lookups
READ_CHUNK_BYTES = 64 * 1024
PROBE_API_VERSION = "Exchange2013"  # the oldest version the gateway accepts: every server answers it
_POOL_HAS_WATCHER = (
    "background_watch_delay" in inspect.signature(urllib3.HTTPConnectionPool.__init__).parameters
)
View = TypeVar("View")


class ChunkedReadAdapter(requests.adapters.HTTPAdapter):
    """Makes ``Response.iter_content()`` without a size read 64 KiB at a time.

    Relies on exchangelib parsing every EWS answer from ``response.iter_content()`` called without
    arguments (``EWSService._get_soap_parts``), whose default chunk size in ``requests`` is one byte:
    a 200 KB GetItem answer became 200,000 generator steps, a third of the gateway's CPU in a month
    view. The method is replaced on each response the adapter builds; callers that pass a size keep it.
    """

    def build_response(self, req: requests.PreparedRequest, resp: Any) -> requests.Response:
        response = super().build_response(req, resp)
        by_byte = response.iter_content

        def iter_content(chunk_size: int | None = READ_CHUNK_BYTES, decode_unicode: bool = False) -> Any:
            return by_byte(chunk_size, decode_unicode)

        response.iter_content = iter_content  # type: ignore[method-assign]
        return response


class _MeteredAdapter(ChunkedReadAdapter):
    """HTTP adapter for the gateway's protocols: organisation CA bundle and request metering.

    Relies on exchangelib instantiating the adapter itself from the protocol class attribute
    ``HTTP_ADAPTER_CLS`` (``BaseProtocol.get_adapter``, with keyword arguments only), so per-client
    subclasses carry ``metrics`` and ``ca_file`` as class attributes; and on every SOAP request going
    through the adapter's ``send`` (exchangelib's hidden version probes and GetServerTimeZones too).
    """

    metrics: EwsMetrics | None = None
    ca_file: str | None = None

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        """urllib3-future (a drop-in urllib3 some installations carry) starts a thread per connection pool
        to watch idle connections; every exchangelib session has its own pool, so that is a thread per
        account. EWS speaks HTTP/1.1, where a dropped keep-alive connection is noticed when it is reused,
        so the watcher is switched off where the pool supports the switch."""
        if _POOL_HAS_WATCHER:
            pool_kwargs.setdefault("background_watch_delay", None)
        super().init_poolmanager(connections, maxsize, block=block, **pool_kwargs)

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: bool | str = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> requests.Response:
        if self.ca_file and verify is not False:
            verify = self.ca_file  # trust the organisation's CA (verification is never switched off)
        operation = soap_operation(request.body) if request.method == "POST" else None
        started = time.perf_counter()
        try:
            response = super().send(
                request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies
            )
        except Exception:
            self._observe(operation, started, failed=True)
            raise
        if response.status_code != 401:  # a 401 is an authentication leg, not an EWS request
            self._observe(operation, started, failed=response.status_code >= 400)
        return response

    def _observe(self, operation: str | None, started: float, *, failed: bool) -> None:
        if self.metrics is not None and operation is not None:
            self.metrics.observe(operation, time.perf_counter() - started, failed=failed)


class UncachedProtocolMeta(CachingProtocol):
    """Builds protocols without exchangelib's process-global protocol cache: the client owns them.

    Relies on ``CachingProtocol.__call__`` (the metaclass of ``Protocol``) being where exchangelib
    looks up and stores protocols by (endpoint, credentials); the gateway keeps its own, bounded cache
    (``EwsClient.account``) and closes what it evicts, which a global cache would keep alive forever.
    """

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        return type.__call__(cls, *args, **kwargs)


class GatewayProtocol(Protocol, metaclass=UncachedProtocolMeta):
    """exchangelib's EWS protocol with the client's adapter and timeouts (set per client).

    ``RETRY_WAIT`` relies on ``EWSService._get_elements`` giving an ``ErrorServerBusy`` without
    BackOffMilliseconds this protocol attribute as its ``back_off``; one second, not exchangelib's ten.
    """

    RETRY_WAIT = 1  # default back-off (s) exchangelib attaches to a busy answer without BackOffMilliseconds


@dataclass(frozen=True)
class ProtocolClasses:
    ews: type[Protocol]
    autodiscover: type[AutodiscoverProtocol]


def protocol_classes(metrics: EwsMetrics | None, ca_file: str | None, timeout: float) -> ProtocolClasses:
    """Per-client protocol classes.

    Relies on exchangelib reading the HTTP adapter (``HTTP_ADAPTER_CLS``) and the request timeout
    (``TIMEOUT``, in ``post_ratelimited`` and the services) from protocol class attributes: there is
    no per-instance setting for either.
    """
    adapter = type("GatewayHTTPAdapter", (_MeteredAdapter,), {"metrics": metrics, "ca_file": ca_file})
    ews = type("GatewayEwsProtocol", (GatewayProtocol,), {"HTTP_ADAPTER_CLS": adapter, "TIMEOUT": timeout})
    autodiscover = type(
        "GatewayAutodiscoverProtocol",
        (AutodiscoverProtocol,),
        {"HTTP_ADAPTER_CLS": adapter, "TIMEOUT": min(timeout, AutodiscoverProtocol.TIMEOUT)},
    )
    return ProtocolClasses(ews=ews, autodiscover=autodiscover)


def post_probe(protocol: Protocol, *, authenticated: bool) -> requests.Response:
    """POST exchangelib's minimal EWS request (a ``ConvertId``) once and return the raw HTTP answer.

    Connecting reads the status, ``WWW-Authenticate`` challenges and ``ServerVersionInfo`` of this
    answer itself, without exchangelib's retries, redirects and version guessing. Relies on
    ``Protocol.dummy_xml()`` (built for ``api_version_hint``), ``raw_session(url)`` (a session with
    the protocol's adapter and no authentication) and ``create_session()`` (with the configured
    credentials and auth type).
    """
    protocol.api_version_hint = PROBE_API_VERSION
    url = protocol.service_endpoint
    session = protocol.create_session() if authenticated else protocol.raw_session(url)
    with session:
        return session.post(url, data=protocol.dummy_xml(), allow_redirects=False, timeout=protocol.TIMEOUT)


def get_unauthenticated(protocol_class: type[BaseProtocol], url: str, timeout: float) -> requests.Response:
    """One GET of ``url`` through the protocol class's adapter, redirects not followed.

    Relies on the class method ``BaseProtocol.raw_session(prefix)``: the probe then uses the same
    CA bundle and metering as the protocol's own requests.
    """
    with protocol_class.raw_session(url) as session:
        return session.get(url, allow_redirects=False, timeout=timeout)


def forget_cached_protocol(config: Configuration) -> None:
    """Remove the protocol exchangelib cached process-wide for ``config``'s endpoint and credentials.

    Relies on ``Protocol[config]`` being ``CachingProtocol``'s mapping of its global cache, keyed by
    ``(config.service_endpoint, config.credentials)``, with ``del`` removing an entry.
    """
    with suppress(KeyError):
        del Protocol[config]


def new_account(email: str, protocol: Protocol) -> Account:
    """An exchangelib Account on ``protocol``; no network traffic (version and auth type are in its config).

    Relies on ``Account(config=..., autodiscover=False)`` building a stock ``Protocol(config=config)``
    (which registers it in the global cache, see :func:`forget_cached_protocol`) and on
    ``account.protocol`` being the attribute every later call of the account uses, so it can be
    replaced by the client's own protocol.
    """
    account = Account(
        primary_smtp_address=email,
        config=protocol.config,
        autodiscover=False,
        access_type=DELEGATE,
        default_timezone=EWS_UTC,
    )
    forget_cached_protocol(protocol.config)
    account.protocol = protocol
    return account


def distinguished_calendar(account: Account) -> Calendar:
    """The mailbox's default calendar in one ``GetFolder``.

    exchangelib's ``account.calendar`` first fetches the root folder (a second GetFolder). Relies on
    ``Root`` accepting the private field ``_distinguished_id``: a root known only by its distinguished
    id is enough for ``Calendar.get_distinguished`` to address the calendar.
    """
    mailbox = Mailbox(email_address=account.primary_smtp_address)
    root = Root(
        account=account,
        _distinguished_id=DistinguishedFolderId(id=Root.DISTINGUISHED_FOLDER_ID, mailbox=mailbox),
    )
    return Calendar.get_distinguished(root=root)


def unfetched_folder(account: Account, folder_class: type[F], root: Root | None = None) -> F:
    """A distinguished folder (``Inbox``, ``Calendar``) of the mailbox without a GetFolder.

    Built as ``Folder.get_distinguished`` builds the folder it then fetches: with the private field
    ``_distinguished_id`` (the class's ``DISTINGUISHED_FOLDER_ID`` and the account's mailbox), so FindItem
    names it as ``t:DistinguishedFolderId`` and GetItem validates its fields against the folder's item
    types. The id must be set here, not left to ``Folder.to_id``: that sets it on first use, which changes
    the folder's hash while FindItem's paging keys on it.
    """
    mailbox = Mailbox(email_address=account.primary_smtp_address)
    return folder_class(
        root=root or Root(account=account),
        _distinguished_id=DistinguishedFolderId(id=folder_class.DISTINGUISHED_FOLDER_ID, mailbox=mailbox),
    )


def calendar_and_tasks(account: Account) -> list[Folder]:
    """The mailbox's Calendar and Tasks folders (as ``Calendar``, ``Tasks``) in one ``GetFolder``; without a
    Tasks folder, the Calendar alone. Relies on ``Root``'s ``_distinguished_id`` as :func:`distinguished_calendar`."""
    mailbox = Mailbox(email_address=account.primary_smtp_address)
    root = Root(
        account=account,
        _distinguished_id=DistinguishedFolderId(id=Root.DISTINGUISHED_FOLDER_ID, mailbox=mailbox),
    )
    wanted = [unfetched_folder(account, cls, root) for cls in (Calendar, Tasks)]
    return [f for f in FolderCollection(account=account, folders=wanted).resolve() if isinstance(f, Folder)]


def refused_by_exchange(exc: exl_errors.ErrorServerBusy) -> bool:
    """Whether a "server busy" error is Exchange's own refusal (the SOAP fault ErrorServerBusy, sent
    before the work is done), not a transport failure exchangelib reports as busy (HTTP 503, a closed
    connection, a timeout: the request may have been carried out, or still be).

    Relies on ``EWSService._get_elements`` re-raising a transport failure as ErrorServerBusy inside the
    ``except`` block that caught it (so its ``__context__`` is ErrorInternalServerTransientError or
    ErrorTimeoutExpired), and on ``RetryPolicy.raise_response_errors`` reporting an HTTP error answer
    that closes the connection as ErrorServerBusy("Caused by closed connection"). The SOAP fault's
    ErrorServerBusy has no such context (only whatever the caller happened to be handling).
    """
    transport = (exl_errors.ErrorInternalServerTransientError, exl_errors.ErrorTimeoutExpired)
    return not isinstance(exc.__context__, transport) and "closed connection" not in str(exc)


def connection_broke(exc: exl_errors.ErrorServerBusy) -> bool:
    """Whether a "server busy" error really is a broken connection (the request may have been carried out).

    Relies on exchangelib turning a connection error into ``ErrorTimeoutExpired`` (``post_ratelimited``)
    and, once the protocol holds several sessions, re-raising that as ``ErrorServerBusy`` inside its
    ``except`` block (``EWSService._get_elements``), so the busy error's ``__context__`` is the timeout.
    """
    return isinstance(exc.__context__, exl_errors.ErrorTimeoutExpired)


class _RawAvailability(GetUserAvailability):
    """GetUserAvailability whose ``FreeBusyView`` elements go to ``read_view`` (lxml), not exchangelib's model.

    An answer for 20 people over a month holds thousands of ``CalendarEvent`` elements; building
    exchangelib objects for each was most of the CPU a free/busy request cost. Relies on
    ``EWSService._elems_to_objs`` converting each element with the private ``_elem_to_obj``;
    per-mailbox errors are still raised by exchangelib and passed through as exception objects.
    """

    def __init__(self, protocol: Protocol, read_view: Callable[[Any], Any], chunk_size: int) -> None:
        super().__init__(protocol=protocol, chunk_size=chunk_size)
        self._read_view = read_view

    def _elem_to_obj(self, elem: etree._Element | None) -> Any:
        return self._read_view(elem)


def user_availability(
    protocol: Protocol,
    read_view: Callable[[etree._Element | None], View],
    *,
    chunk_size: int,
    tzinfo: EWSTimeZone,
    mailbox_data: list[MailboxData],
    timezone: TimeZone,
    free_busy_view_options: FreeBusyViewOptions,
) -> list[View | BaseException | None]:
    """One EWS ``GetUserAvailability`` call (blocking): a view read by ``read_view`` or an exception per mailbox.

    exchangelib's ``Protocol.get_free_busy_info`` first asks ``GetServerTimeZones`` on every call, so
    the service is called directly. Relies on ``GetUserAvailability(protocol, chunk_size).call(tzinfo,
    mailbox_data, timezone, free_busy_view_options)`` and on :class:`_RawAvailability`'s hook.
    """
    service = _RawAvailability(protocol, read_view, chunk_size)
    views: Iterator[Any] = service.call(
        tzinfo=tzinfo,
        mailbox_data=mailbox_data,
        timezone=timezone,
        free_busy_view_options=free_busy_view_options,
    )
    return list(views)


# ---- items (backend)

CALDAV_NAME = "caldav_name"  # the CalendarItem field registered for CalDAVResourceName


class CalDAVResourceName(ExtendedProperty):
    """The CalDAV resource name a client chose, stored with the item itself.

    A named MAPI property in the gateway's own property set, so every replica and
    every restart sees the same href (DavMail keeps it in PR_URL_COMP_NAME).
    """

    property_set_id = "8d6a0b4e-4b0e-4d35-9a3b-5c1f0e2b7c11"
    property_name = "CalDAVResourceName"
    property_type = "String"


CALDAV_RESIDUAL = "caldav_residual"  # the CalendarItem field registered for CalDAVResidual


class CalDAVResidual(ExtendedProperty):
    """What a client's iCalendar holds that Exchange has no field for (gateway.ews.mapping.residual).

    A named string property in the gateway's property set, on the single item or series master:
    read in the GetItem every rendering makes, written by the CreateItem/UpdateItem of a PUT.
    """

    property_set_id = CalDAVResourceName.property_set_id
    property_name = "CalDAVResidual"
    property_type = "String"


CALDAV_NO_END = "caldav_no_end"  # the CalendarItem field registered for CalDAVNoEnd


class CalDAVNoEnd(ExtendedProperty):
    """1 when the client's VEVENT had neither DTEND nor DURATION (RFC 5545 §3.6.1), else 0.

    Exchange has no appointment without an end, so such an event is stored ending at its start (a day
    after it for a date); this marks the end as invented, so that the event is served back as written.
    Kept apart from every other gateway property, in the same property set as :class:`CalDAVResourceName`.
    An Integer, not a Boolean: exchangelib writes booleans as ``1``/``0`` but reads only ``true``/``false``.
    """

    property_set_id = CalDAVResourceName.property_set_id
    property_name = "CalDAVNoEnd"
    property_type = "Integer"


CALDAV_FINGERPRINT = "caldav_fingerprint"  # the CalendarItem field registered for CalDAVBodyFingerprint


class CalDAVBodyFingerprint(ExtendedProperty):
    """The SHA-256 of the PUT body the gateway last wrote the item from (gateway/ews/backend/replay.py):
    lets a retried PUT whose first answer was lost be recognised. Same property set as the name."""

    property_set_id = CalDAVResourceName.property_set_id
    property_name = "CalDAVBodyFingerprint"
    property_type = "String"


CALDAV_UID = "caldav_uid"  # the Task field registered for CalDAVUid


class CalDAVUid(ExtendedProperty):
    """The iCalendar UID of a VTODO: an EWS Task has no UID field (a CalendarItem has), so the UID a
    client gave is kept in this named property of the gateway's property set."""

    property_set_id = CalDAVResourceName.property_set_id
    property_name = "CalDAVUid"
    property_type = "String"


_ITEM_FIELDS = (
    (CALDAV_NAME, CalDAVResourceName),
    (CALDAV_RESIDUAL, CalDAVResidual),
    (CALDAV_NO_END, CalDAVNoEnd),
    (CALDAV_FINGERPRINT, CalDAVBodyFingerprint),
)
_TASK_FIELDS = (
    (CALDAV_NAME, CalDAVResourceName),
    (CALDAV_RESIDUAL, CalDAVResidual),
    (CALDAV_FINGERPRINT, CalDAVBodyFingerprint),
    (CALDAV_UID, CalDAVUid),
)


def register_item_fields() -> None:
    """Make ``CalendarItem.caldav_name``, ``caldav_residual``, ``caldav_no_end`` and ``caldav_fingerprint``
    fields (ExtendedFieldURIs in GetItem, SyncFolderItems, CreateItem and UpdateItem), and ``Task``'s
    ``caldav_name``, ``caldav_residual``, ``caldav_fingerprint`` and ``caldav_uid``. ``register`` changes
    the class for the whole process and refuses a second registration, so this registers once however
    often it is called."""
    for item_class, fields in ((CalendarItem, _ITEM_FIELDS), (Task, _TASK_FIELDS)):
        registered = {f.name for f in item_class.FIELDS}
        for name, cls in fields:
            if name not in registered:
                item_class.register(name, cls)


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
        item_id = elem.find(EWS_TYPES + "ItemId")
        return ViewEntry(
            item_id.get("Id") if item_id is not None else "",
            item_id.get("ChangeKey") if item_id is not None else "",
            elem.findtext(EWS_TYPES + "UID"),
            elem.findtext(EWS_TYPES + "CalendarItemType"),
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


def send_meeting_response(
    account: Account, responses: list[BaseMeetingReplyItem], send: bool
) -> list[object]:
    """CreateItem of meeting response objects, in order, in one call; the result of each. Sent with the copy
    in Sent Items (as Outlook does), or ``SaveOnly``: recorded in the calendar, the response left unsent in
    Drafts. exchangelib's ``send()`` would look the folder up first (two GetFolders); relies on the private
    field ``_distinguished_id`` (the folder's id then) and on ``CreateItem.call``'s arguments."""
    kind = SentItems if send else Drafts
    mailbox = Mailbox(email_address=account.primary_smtp_address)
    folder = kind(
        root=Root(account=account),
        _distinguished_id=DistinguishedFolderId(id=kind.DISTINGUISHED_FOLDER_ID, mailbox=mailbox),
    )
    disposition = SEND_AND_SAVE_COPY if send else SAVE_ONLY
    return list(CreateItem(account=account).call(responses, folder, disposition, SEND_TO_NONE))
