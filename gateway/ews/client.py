"""The gateway's asynchronous facade over exchangelib (EWS).

exchangelib is blocking, so every call runs in a bounded thread pool (:class:`EwsClient`). The
client owns its exchangelib protocol objects instead of using exchangelib's process-global caches:

- *Protocols* are built from per-client subclasses (:func:`_protocol_classes`) whose HTTP adapter
  applies the organisation's CA bundle and meters every SOAP request (``gateway/ews/metrics.py``),
  and whose metaclass skips exchangelib's global ``(endpoint, credentials)`` protocol cache.
- *Autodiscover* (MS-OXWSADISC ``GetUserSettings``) is driven here with exchangelib's
  ``AutodiscoverProtocol``/``GetUserSettings`` against a candidate list: the endpoint configured for
  the domain (``autodiscover_endpoints``, config key ``[ews] autodiscover_endpoints``) or the
  standard ``https://{domain}/…`` and ``https://autodiscover.{domain}/…`` URLs. exchangelib's own
  ``Autodiscovery`` keeps a process-global cache persisted to a shared temp file; it is not used.
- *Retries*: protocols use exchangelib's ``FailFast`` policy (its ``FaultTolerance`` shares one
  back-off across all users of a protocol and sleeps in the worker thread). :meth:`EwsClient.run`
  waits out ``ErrorServerBusy``/``BackOffMilliseconds`` itself with ``asyncio.sleep``, for that
  account only.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import inspect
import logging
import math
import os
import re
import socket
import time
import weakref
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from threading import Lock
from typing import Any, TypeVar
from urllib.parse import urlsplit

import dns.exception
import dns.resolver
import requests
import requests.adapters
import urllib3
from exchangelib import DELEGATE, Account, Configuration, FailFast
from exchangelib import Credentials as ExlCredentials
from exchangelib import errors as exl_errors
from exchangelib.autodiscover.protocol import AutodiscoverProtocol
from exchangelib.credentials import BaseCredentials, OAuth2AuthorizationCodeCredentials
from exchangelib.ewsdatetime import UTC as EWS_UTC
from exchangelib.folders import Calendar, Root
from exchangelib.properties import DistinguishedFolderId, Mailbox
from exchangelib.protocol import CachingProtocol, Protocol
from exchangelib.transport import BASIC, NTLM, OAUTH2
from exchangelib.version import Build, Version
from lxml import etree
from oauthlib.oauth2 import InsecureTransportError, OAuth2Token

from gateway.ews.errors import EwsError, EwsUnavailable, translate
from gateway.ews.metrics import EwsMetrics, soap_operation

log = logging.getLogger(__name__)

T = TypeVar("T")

# Our names for authentication schemes ⇄ exchangelib's.
_EXL_AUTH = {"basic": BASIC, "ntlm": NTLM, "oauth2": OAUTH2}
CONNECT_ERROR_CODES = frozenset(
    {
        "autodiscover_failed",
        "auth_failed",
        "server_not_found",
        "not_ews",
        "tls_untrusted",
        "modern_auth_only",
        "too_old",
        "unreachable",
        "invalid_input",
    }
)
DEFAULT_LIVE_ACCOUNTS = 300  # exchangelib Accounts (each with an HTTP session pool) kept per process
MINIMUM_MAJOR_VERSION = 15  # Exchange 2013 is 15.0
MAX_AUTODISCOVER_HOPS = 10  # redirects (address or URL) before giving up, as exchangelib does
AUTODISCOVER_PATH = "/autodiscover/autodiscover.svc"
_SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
EWS_TYPES = "{http://schemas.microsoft.com/exchange/services/2006/types}"  # Clark prefix for lxml lookups
_SAFE_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
_HOST = re.compile(r"^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")
_POOL_HAS_WATCHER = (
    "background_watch_delay" in inspect.signature(urllib3.HTTPConnectionPool.__init__).parameters
)
# A per-process key, so credential fingerprints (cache keys) can't be brute-forced offline.
_FINGERPRINT_KEY = os.urandom(32)


# --- public data -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    """Sign-in data, in memory only; ``repr``/``str`` never show the secret.

    ``username`` is as the user typed it: ``user@domain``, ``DOMAIN\\user`` or ``user``.
    ``auth_type`` is ``"basic"``, ``"ntlm"``, ``"oauth2"`` (password is then an access token) or
    None to detect it from the server's ``WWW-Authenticate`` challenge.
    """

    username: str
    password: str = field(repr=False)
    auth_type: str | None = None

    def fingerprint(self) -> str:
        """A keyed hash of username and secret, to tell credentials apart without keeping them as keys."""
        message = f"{self.username}\0{self.password}".encode()
        return hmac.new(_FINGERPRINT_KEY, message, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class ConnectionSettings:
    """What the user entered to connect a mailbox."""

    email: str
    credentials: Credentials
    server: str | None = None  # host name, or full EWS URL (https://mail.example.com/ews/exchange.asmx)
    domain: str | None = None  # Windows domain, combined with a bare username as DOMAIN\user


@dataclass(frozen=True)
class ConnectionInfo:
    """What :meth:`EwsClient.connect` established and the gateway stores (no secret in it)."""

    email: str
    ews_url: str
    auth_type: str  # "basic" | "ntlm" | "oauth2"
    username: str  # the login name to send (DOMAIN\user when a domain was given)
    version: str  # EWS schema version, e.g. "Exchange2016"
    build: str  # "15.1.2507.6"
    display_name: str | None
    via: str  # "autodiscover" | "manual"


class ConnectError(Exception):
    """Connecting failed; ``code`` says why (see CONNECT_ERROR_CODES), ``message`` what to do next."""

    def __init__(self, code: str, message: str) -> None:
        if code not in CONNECT_ERROR_CODES:
            raise ValueError(f"unknown connect error code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"ConnectError({self.code!r}, {self.message!r})"


# --- exchangelib plumbing ----------------------------------------------------------------------


READ_CHUNK_BYTES = 64 * 1024


class ChunkedReadAdapter(requests.adapters.HTTPAdapter):
    """Makes ``Response.iter_content()`` without a size read 64 KiB at a time.

    exchangelib parses every EWS answer from ``response.iter_content()``, whose default chunk size in
    ``requests`` is one byte: a 200 KB GetItem answer became 200,000 generator steps, a third of the
    gateway's CPU in a month view. Callers that pass a size keep it.
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

    Per-client subclasses set ``metrics`` and ``ca_file``; exchangelib instantiates the adapter
    itself (``BaseProtocol.get_adapter``), so they are class attributes.
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


class _UncachedProtocolMeta(CachingProtocol):
    """Builds protocols without exchangelib's process-global protocol cache: the client owns them."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        return type.__call__(cls, *args, **kwargs)


class _GatewayProtocol(Protocol, metaclass=_UncachedProtocolMeta):
    """exchangelib's EWS protocol with the client's adapter and timeouts (set per client)."""

    RETRY_WAIT = 1  # default back-off (s) exchangelib attaches to a busy answer without BackOffMilliseconds


@dataclass(frozen=True)
class _ProtocolClasses:
    ews: type[Protocol]
    autodiscover: type[AutodiscoverProtocol]


def _protocol_classes(metrics: EwsMetrics | None, ca_file: str | None, timeout: float) -> _ProtocolClasses:
    """Per-client protocol classes: exchangelib reads adapter and timeout from class attributes."""
    adapter = type("GatewayHTTPAdapter", (_MeteredAdapter,), {"metrics": metrics, "ca_file": ca_file})
    ews = type("GatewayEwsProtocol", (_GatewayProtocol,), {"HTTP_ADAPTER_CLS": adapter, "TIMEOUT": timeout})
    autodiscover = type(
        "GatewayAutodiscoverProtocol",
        (AutodiscoverProtocol,),
        {"HTTP_ADAPTER_CLS": adapter, "TIMEOUT": min(timeout, AutodiscoverProtocol.TIMEOUT)},
    )
    return _ProtocolClasses(ews=ews, autodiscover=autodiscover)


def _exl_credentials(login: str, credentials: Credentials) -> BaseCredentials:
    if credentials.auth_type == "oauth2":
        token = OAuth2Token({"access_token": credentials.password, "token_type": "Bearer"})
        return OAuth2AuthorizationCodeCredentials(access_token=token)
    return ExlCredentials(username=login, password=credentials.password)


def login_name(settings: ConnectionSettings) -> str:
    """The username to send: as typed, or ``DOMAIN\\user`` for a bare name when a domain is given."""
    user = settings.credentials.username.strip()
    if "@" in user or "\\" in user or not settings.domain:
        return user
    return f"{settings.domain.strip()}\\{user}"


def ews_url_for(server: str) -> str:
    """The EWS URL for a host name (``https://host/EWS/Exchange.asmx``) or a URL given in full."""
    server = server.strip()
    if "://" not in server:
        if not _HOST.match(server):
            raise ConnectError(
                "invalid_input", f"{server!r} is not a server name; enter e.g. mail.example.com."
            )
        return f"https://{server}/EWS/Exchange.asmx"
    parts = urlsplit(server)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConnectError("invalid_input", "The server URL must start with https:// and name a host.")
    if parts.path in ("", "/"):
        return f"{parts.scheme}://{parts.netloc}/EWS/Exchange.asmx"
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


# --- connection-time diagnosis (pure functions, unit-tested) ------------------------------------


def _schemes(response: requests.Response) -> set[str]:
    values = response.raw.headers.getlist("WWW-Authenticate") if response.raw is not None else []
    if not values and "WWW-Authenticate" in response.headers:
        values = [response.headers["WWW-Authenticate"]]
    schemes = set()
    for value in values:
        # One header may list several challenges: "Negotiate, NTLM, Basic realm=..."
        for part in value.split(","):
            token = part.strip().split(" ", 1)[0].lower()
            if token and "=" not in token:
                schemes.add(token)
    return schemes


def _mentions_modern_auth(response: requests.Response) -> bool:
    text = " ".join(
        response.headers.get(name, "")
        for name in ("x-ms-diagnostics", "ms-diagnostics-public", "X-MS-Diagnostics")
    ).lower()
    return any(word in text for word in ("modern auth", "oauth", "basic auth", "basicauthblocked", "bearer"))


def choose_auth_type(response: requests.Response) -> str:
    """The scheme to use from an unauthenticated probe's answer, or a ConnectError.

    Preference: NTLM (the password never crosses the wire), then Basic. A server offering only
    ``Bearer`` (or saying so in ``x-ms-diagnostics``) accepts modern authentication only.
    """
    if response.status_code != 401:
        raise not_ews_error(response)
    schemes = _schemes(response)
    if schemes & {"ntlm", "negotiate"}:
        return "ntlm"
    if "basic" in schemes:
        return "basic"
    if "bearer" in schemes or _mentions_modern_auth(response):
        raise modern_auth_only_error()
    raise ConnectError(
        "not_ews",
        "The server asked for a sign-in method the gateway does not support; check the EWS URL.",
    )


def modern_auth_only_error() -> ConnectError:
    """The tenant or server refuses passwords (Basic/NTLM) and wants OAuth."""
    return ConnectError(
        "modern_auth_only",
        "This Exchange server accepts only modern authentication (OAuth), not a password. "
        "Ask your administrator to allow Basic or NTLM for EWS, or connect with an OAuth access token.",
    )


def not_ews_error(response: requests.Response) -> ConnectError:
    """The ConnectError for a URL that answered but is not an EWS endpoint."""
    if response.status_code in (301, 302, 303, 307, 308):
        hint = "it redirects elsewhere (an Outlook on the web address?)"
    elif response.status_code == 404:
        hint = "nothing is published at that path"
    else:
        hint = f"it answered HTTP {response.status_code} without an EWS response"
    return ConnectError(
        "not_ews",
        f"The address answered but is not Exchange Web Services: {hint}. "
        "Enter the EWS URL, usually https://<server>/EWS/Exchange.asmx.",
    )


def server_version(content: bytes) -> Version | None:
    """The server version from a SOAP response's ``t:ServerVersionInfo`` header (EWS), or None."""
    try:
        root = etree.fromstring(content, _SAFE_PARSER)
    except etree.XMLSyntaxError:
        return None
    info = root.find(f"{{{_SOAP_NS}}}Header/{EWS_TYPES}ServerVersionInfo")
    if info is None:
        return None
    try:
        build = Build(
            *(
                int(info.get(a, "0"))
                for a in ("MajorVersion", "MinorVersion", "MajorBuildNumber", "MinorBuildNumber")
            )
        )
        return Version(build=build)
    except (ValueError, TypeError, exl_errors.EWSError):
        return None


def connection_error(exc: BaseException, url: str) -> ConnectError:
    """Map a transport failure reaching ``url`` to a ConnectError with advice."""
    host = urlsplit(url).netloc or url
    if isinstance(exc, requests.exceptions.SSLError):
        if "certificate" in str(exc).lower():
            return ConnectError(
                "tls_untrusted",
                f"The certificate of {host} is not trusted. If your organisation uses its own certificate "
                "authority, give the gateway its CA certificate (ca_file); verification stays on.",
            )
        return ConnectError("unreachable", f"A secure connection to {host} could not be established.")
    if isinstance(exc, requests.exceptions.Timeout | TimeoutError | socket.timeout):
        return ConnectError(
            "unreachable", f"{host} did not answer in time; check the server name and network."
        )
    chain = _exception_chain(exc)
    if any(isinstance(e, socket.gaierror) for e in chain) or "resolve" in str(exc).lower():
        return ConnectError(
            "server_not_found", f"The server name {host} could not be found; check its spelling."
        )
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or "refused" in str(exc).lower():
        return ConnectError(
            "server_not_found",
            f"Nothing answers at {host} (connection refused); check the server name and port.",
        )
    return ConnectError("unreachable", f"{host} could not be reached; check the server name and network.")


def _exception_chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        nested = current.args[0] if current.args and isinstance(current.args[0], BaseException) else None
        current = current.__cause__ or current.__context__ or nested or getattr(current, "reason", None)
        if current is not None and not isinstance(current, BaseException):
            current = None
    return seen


def auth_failed_error(login: str) -> ConnectError:
    """Wrong password, or the username in a form this server does not accept."""
    if "@" in login:
        hint = "If your organisation signs in with a Windows account name, try DOMAIN\\user."
    elif "\\" in login:
        hint = "Some servers expect the full address instead; try user@domain."
    else:
        hint = "Try DOMAIN\\user or your full e-mail address as the username."
    return ConnectError(
        "auth_failed", f"Exchange did not accept the username or password. Check the password. {hint}"
    )


# --- the client ---------------------------------------------------------------------------------


@dataclass
class _Discovered:
    email: str
    ews_url: str
    display_name: str | None


class _AccountGate:
    """Per-account concurrency limit and back-off, on the event loop."""

    def __init__(self, limit: int) -> None:
        self.semaphore = asyncio.Semaphore(limit)
        self.back_off_until = 0.0  # loop time

    async def wait_back_off(self) -> None:
        delay = self.back_off_until - asyncio.get_running_loop().time()
        if delay > 0:
            await asyncio.sleep(delay)


class EwsClient:
    """Runs exchangelib for many accounts without blocking the event loop (see module docstring)."""

    def __init__(
        self,
        *,
        max_workers: int = 32,
        per_account_concurrency: int = 4,
        retry_budget_s: float = 30.0,
        request_timeout_s: float = 60.0,
        autodiscover_endpoints: Mapping[str, str] | None = None,
        ca_file: str | None = None,
        metrics: EwsMetrics | None = None,
        max_live_accounts: int = DEFAULT_LIVE_ACCOUNTS,
    ) -> None:
        if per_account_concurrency < 1 or max_workers < 1:
            raise ValueError("max_workers and per_account_concurrency must be at least 1")
        self.metrics = metrics if metrics is not None else EwsMetrics()
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="ews")
        self._per_account = per_account_concurrency
        self._retry_budget = retry_budget_s
        self._timeout = request_timeout_s
        self._ad_endpoints = {k.lower(): v for k, v in (autodiscover_endpoints or {}).items()}
        self._classes = _protocol_classes(self.metrics, ca_file, request_timeout_s)
        if max_live_accounts < 1:
            raise ValueError("max_live_accounts must be at least 1")
        self._max_accounts = max_live_accounts
        self._lock = Lock()  # guards the caches below (account() may run in worker threads)
        # The most recently used accounts (LRU, at most max_live_accounts); a protocol (HTTP session
        # pool) lives while a cached account uses it. Gates are kept for recent accounts and, through
        # weak references, for as long as a call holds one.
        self._accounts: OrderedDict[tuple[str, ...], Account] = OrderedDict()
        self._protocols: dict[tuple[str, ...], Protocol] = {}
        self._protocol_users: Counter[tuple[str, ...]] = Counter()
        self._gates: weakref.WeakValueDictionary[tuple[str, str], _AccountGate] = (
            weakref.WeakValueDictionary()
        )
        self._recent_gates: OrderedDict[tuple[str, str], _AccountGate] = OrderedDict()

    # --- connect ---------------------------------------------------------------------------

    async def connect(self, settings: ConnectionSettings) -> ConnectionInfo:
        """Find and verify the EWS endpoint for a mailbox (Autodiscover or the given server).

        Autodiscover is the SOAP ``GetUserSettings`` operation (MS-OXWSADISC); the endpoint is then
        verified with an authenticated ``ConvertId`` (which reports ``ServerVersionInfo``) and a
        ``GetFolder`` of the calendar. Raises :class:`ConnectError`.
        """
        _validate(settings)
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, self._connect_blocking, settings)
        except ConnectError:
            raise
        except Exception as exc:
            # Only the type is logged: exchangelib's texts can carry raw HTTP exchanges.
            log.warning("Connecting %s failed unexpectedly: %s", settings.email, type(exc).__name__)
            raise ConnectError(
                "unreachable",
                f"Connecting failed unexpectedly ({type(exc).__name__}); try again, or enter the EWS URL manually.",
            ) from None

    def _connect_blocking(self, settings: ConnectionSettings) -> ConnectionInfo:
        login = login_name(settings)
        credentials = settings.credentials
        email = settings.email.strip()
        if settings.server:
            found = _Discovered(email=email, ews_url=ews_url_for(settings.server), display_name=None)
            via = "manual"
        else:
            found = self._autodiscover(email, login, credentials)
            via = "autodiscover"
        auth_type = credentials.auth_type or self._detect_auth(found.ews_url)
        version = self._verify_endpoint(found.ews_url, login, credentials, auth_type)
        info = ConnectionInfo(
            email=found.email,
            ews_url=found.ews_url,
            auth_type=auth_type,
            username=login,
            version=version.api_version,
            build=str(version.build),
            display_name=found.display_name,
            via=via,
        )
        self._verify_calendar(info, credentials)
        return info

    def _detect_auth(self, ews_url: str) -> str:
        """Send an unauthenticated request and read the offered schemes (RFC 7235 §4.1)."""
        probe = self._classes.ews(config=Configuration(service_endpoint=ews_url, retry_policy=FailFast()))
        probe.api_version_hint = "Exchange2013"
        try:
            with probe.raw_session(ews_url) as session:
                response = session.post(
                    ews_url, data=probe.dummy_xml(), allow_redirects=False, timeout=probe.TIMEOUT
                )
        except requests.RequestException as exc:
            raise connection_error(exc, ews_url) from None
        return choose_auth_type(response)

    def _verify_endpoint(self, ews_url: str, login: str, credentials: Credentials, auth_type: str) -> Version:
        """An authenticated ``ConvertId``: proves the credentials and reads the server version."""
        config = Configuration(
            service_endpoint=ews_url,
            credentials=_exl_credentials(login, credentials),
            auth_type=_EXL_AUTH[auth_type],
            retry_policy=FailFast(),
        )
        probe = self._classes.ews(config=config)
        probe.api_version_hint = "Exchange2013"
        try:
            session = probe.create_session()
            try:
                response = session.post(
                    ews_url, data=probe.dummy_xml(), allow_redirects=False, timeout=probe.TIMEOUT
                )
            finally:
                session.close()
        except requests.RequestException as exc:
            raise connection_error(exc, ews_url) from None
        except InsecureTransportError:
            raise ConnectError(
                "invalid_input", "An OAuth access token is only sent over https; enter an https:// EWS URL."
            ) from None
        if response.status_code == 401:
            if _mentions_modern_auth(response) or _schemes(response) == {"bearer"}:
                raise modern_auth_only_error()
            raise auth_failed_error(login)
        version = server_version(response.content) if response.status_code in (200, 500) else None
        if version is None:
            raise not_ews_error(response)
        if version.build.major_version < MINIMUM_MAJOR_VERSION:
            raise ConnectError(
                "too_old",
                f"This server runs Exchange build {version.build}; the gateway needs Exchange 2013 or newer.",
            )
        return version

    def _verify_calendar(self, info: ConnectionInfo, credentials: Credentials) -> None:
        """``GetFolder`` of the distinguished calendar: the mailbox exists and this login may open it.

        The Account and its HTTP session are thrown away afterwards: most connected accounts make no
        CalDAV request soon, and :meth:`account` re-creates one from the stored connection without any
        network traffic when one does.
        """
        protocol = self._classes.ews(config=self._config(info, credentials))
        try:
            self._verify_folder(_new_account(info, protocol), info)
        finally:
            protocol.close()

    def _verify_folder(self, account: Account, info: ConnectionInfo) -> None:
        try:
            distinguished_calendar(account)
        except exl_errors.UnauthorizedError:
            raise auth_failed_error(info.username) from None
        except (exl_errors.ErrorNonExistentMailbox, exl_errors.ErrorMailRecipientNotFound):
            raise ConnectError(
                "invalid_input", f"Exchange has no mailbox {info.email}; check the e-mail address."
            ) from None
        except (exl_errors.ErrorAccessDenied, exl_errors.ErrorImpersonateUserDenied):
            raise ConnectError(
                "auth_failed",
                f"You signed in as {info.username}, but that account may not open the mailbox {info.email}. "
                "Use the mailbox owner's username, or ask for delegate access.",
            ) from None
        except requests.RequestException as exc:
            raise connection_error(exc, info.ews_url) from None
        except exl_errors.EWSError as exc:
            raise ConnectError(
                "unreachable",
                f"Exchange could not open the calendar ({type(exc).__name__}); try again later.",
            ) from None

    # --- Autodiscover ------------------------------------------------------------------------

    def _autodiscover(self, email: str, login: str, credentials: Credentials) -> _Discovered:
        """SOAP Autodiscover (MS-OXWSADISC GetUserSettings), following RedirectAddress answers."""
        visited: set[str] = set()
        for _ in range(MAX_AUTODISCOVER_HOPS):
            visited.add(email.lower())
            response = self._discover_domain(email, login, credentials)
            if response.redirect_address:
                email = response.redirect_address
                if email.lower() in visited:
                    break
                continue
            if not response.ews_url:
                raise _autodiscover_failed(f"Autodiscover for {email} returned no EWS URL.")
            return _Discovered(
                email=response.autodiscover_smtp_address or email,
                ews_url=response.ews_url,
                display_name=response.user_settings.get("user_display_name"),
            )
        raise _autodiscover_failed("Autodiscover redirected in a loop.")

    def _candidates(self, domain: str) -> Iterator[str]:
        """Autodiscover endpoints to try, lazily (each later step costs network round trips).

        The configured endpoint for the domain, or else the steps of "Autodiscover for Exchange"
        (Microsoft's published order): https://{domain}, https://autodiscover.{domain}, the https
        redirect of http://autodiscover.{domain}, then DNS SRV ``_autodiscover._tcp.{domain}``.
        """
        configured = self._ad_endpoints.get(domain)
        if configured:
            yield configured
            return
        yield f"https://{domain}{AUTODISCOVER_PATH}"
        yield f"https://autodiscover.{domain}{AUTODISCOVER_PATH}"
        redirect = self._http_redirect(f"http://autodiscover.{domain}{AUTODISCOVER_PATH}")
        if redirect:
            yield redirect
        yield from srv_autodiscover_urls(_resolve_srv(f"_autodiscover._tcp.{domain}"))

    def _http_redirect(self, url: str) -> str | None:
        """The https Location an unauthenticated GET of ``url`` redirects to, if any."""
        try:
            with self._classes.autodiscover.raw_session(url) as session:
                response = session.get(url, allow_redirects=False, timeout=AutodiscoverProtocol.TIMEOUT)
        except requests.RequestException:
            return None
        location = response.headers.get("Location", "")
        if response.status_code in (301, 302, 307, 308) and location.lower().startswith("https://"):
            return location
        return None

    def _discover_domain(self, email: str, login: str, credentials: Credentials) -> Any:
        """The first usable GetUserSettings answer among the domain's candidate endpoints."""
        domain = email.rpartition("@")[2].lower()
        refused = False
        for url in self._candidates(domain):
            try:
                return self._ask_autodiscover(url, email, login, credentials)
            except exl_errors.UnauthorizedError:
                refused = True
            except exl_errors.ErrorNonExistentMailbox:
                raise _autodiscover_failed(
                    f"Autodiscover knows no mailbox {email}; check the address."
                ) from None
            except (exl_errors.EWSError, requests.RequestException, OSError, ValueError) as exc:
                log.info("Autodiscover at %s failed: %s", url, type(exc).__name__)
        if refused:
            raise auth_failed_error(login)
        raise _autodiscover_failed(f"Autodiscover found no Exchange server for {domain}.")

    def _ask_autodiscover(self, url: str, email: str, login: str, credentials: Credentials) -> Any:
        """One GetUserSettings request; follows RedirectUrl answers to https URLs."""
        for _ in range(MAX_AUTODISCOVER_HOPS):
            config = Configuration(
                service_endpoint=url,
                credentials=_exl_credentials(login, credentials),
                auth_type=_EXL_AUTH.get(credentials.auth_type or ""),
                retry_policy=FailFast(),
            )
            protocol = self._classes.autodiscover(config=config)
            try:
                response = protocol.get_user_settings(user=email)
            finally:
                protocol.close()
            response.raise_errors()
            if not response.redirect_url:
                return response
            if not response.redirect_url.lower().startswith("https://"):
                raise exl_errors.AutoDiscoverFailed("refusing a redirect to a non-https URL")
            url = response.redirect_url
        raise exl_errors.AutoDiscoverFailed("too many redirects")

    # --- accounts and calls ------------------------------------------------------------------

    def account(self, info: ConnectionInfo, credentials: Credentials) -> Account:
        """An exchangelib Account for a stored connection, without network traffic.

        Version and auth type come from ``info``, so the first real call is the only call. Cached
        per (EWS URL, username, auth type, credential fingerprint) and mailbox, for the
        ``max_live_accounts`` most recently used; accounts with the same login share one protocol
        (HTTP session pool). A changed password gives another key, hence a new Account at once.
        """
        key = (info.ews_url, info.username.lower(), info.auth_type, credentials.fingerprint())
        full = (*key, info.email.lower())
        with self._lock:
            account = self._accounts.get(full)
            if account is not None:
                self._accounts.move_to_end(full)
                return account
            protocol = self._protocols.get(key)
            if protocol is None:
                protocol = self._protocols[key] = self._classes.ews(config=self._config(info, credentials))
            account = self._accounts[full] = _new_account(info, protocol)
            self._protocol_users[key] += 1
            retired = self._evict()
        for old in retired:
            old.close()
        return account

    def _evict(self) -> list[Protocol]:
        """Drop the least recently used accounts beyond the limit (lock held); returns the protocols
        no cached account uses any more, to be closed.

        ``Protocol.close`` closes the idle sessions of the pool only: a session a running call holds
        goes back to the retired pool when the call ends, and is closed when that protocol is garbage
        collected (``BaseProtocol.__del__``), so a call never loses its connection.
        """
        retired = []
        while len(self._accounts) > self._max_accounts:
            full, _ = self._accounts.popitem(last=False)
            key = full[:4]
            self._protocol_users[key] -= 1
            if self._protocol_users[key] <= 0:
                del self._protocol_users[key]
                retired.append(self._protocols.pop(key))
        return retired

    def live_accounts(self) -> int:
        """How many exchangelib Accounts are cached (at most ``max_live_accounts``)."""
        with self._lock:
            return len(self._accounts)

    def live_protocols(self) -> int:
        """How many protocols (HTTP session pools) are open."""
        with self._lock:
            return len(self._protocols)

    def _config(self, info: ConnectionInfo, credentials: Credentials) -> Configuration:
        build = Build(*(int(part) for part in info.build.split(".")))
        return Configuration(
            service_endpoint=info.ews_url,
            credentials=_exl_credentials(info.username, credentials),
            auth_type=_EXL_AUTH[info.auth_type],
            version=Version(build=build, api_version=info.version),
            retry_policy=FailFast(),
            max_connections=self._per_account,
        )

    async def run(self, account: Account, operation: str, fn: Callable[[], T]) -> T:
        """Run blocking ``fn`` (exchangelib calls for ``account``) in the pool.

        At most ``per_account_concurrency`` calls per account run at once. ``ErrorServerBusy``
        (including its ``BackOffMilliseconds``) makes this account wait and retry while the budget
        lasts; other accounts are unaffected. A request whose connection broke is not repeated (it
        may have been carried out: repeating a CreateItem would duplicate the event). exchangelib
        errors become ``gateway.ews.errors``.
        """
        gate = self._gate(account)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._retry_budget
        while True:
            await gate.wait_back_off()
            try:
                return await self._call(gate, operation, fn)
            except exl_errors.ErrorServerBusy as exc:
                wait = exc.back_off or _GatewayProtocol.RETRY_WAIT
                if _connection_broke(exc) or loop.time() + wait > deadline:
                    raise translate(exc, operation) from exc
                log.info(
                    "EWS %s for %s: server busy, retrying in %.1f s",
                    operation,
                    account.primary_smtp_address,
                    wait,
                )
                gate.back_off_until = max(gate.back_off_until, loop.time() + wait)
            except EwsError:
                raise
            except Exception as exc:
                raise translate(exc, operation) from exc

    async def _call(self, gate: _AccountGate, operation: str, fn: Callable[[], T]) -> T:
        """One attempt; the account's slot is held until the worker thread really finishes."""
        await gate.semaphore.acquire()
        try:
            future = asyncio.get_running_loop().run_in_executor(self._pool, fn)
        except BaseException:
            gate.semaphore.release()
            raise
        future.add_done_callback(lambda f: _settle(f, gate.semaphore))
        try:
            return await asyncio.wait_for(asyncio.shield(future), self._timeout)
        except TimeoutError:
            raise EwsUnavailable(
                f"Exchange did not answer {operation} within {self._timeout:g} s; try again later.",
                retry_after=math.ceil(self._timeout),
                operation=operation,
            ) from None

    def _gate(self, account: Account) -> _AccountGate:
        """The account's concurrency limit and back-off. A gate in use is always found again (weakly
        referenced while a call holds it); an idle one is kept for the most recently used accounts."""
        key = (account.protocol.service_endpoint, account.primary_smtp_address.lower())
        gate = self._gates.get(key)
        if gate is None:
            gate = self._gates[key] = _AccountGate(self._per_account)
        self._recent_gates[key] = gate
        self._recent_gates.move_to_end(key)
        while len(self._recent_gates) > self._max_accounts:
            self._recent_gates.popitem(last=False)
        return gate

    async def close(self) -> None:
        """Close every HTTP session and stop the worker threads."""
        with self._lock:
            protocols = list(self._protocols.values())
            self._protocols.clear()
            self._protocol_users.clear()
            self._accounts.clear()
        for protocol in protocols:
            protocol.close()
        await asyncio.get_running_loop().run_in_executor(None, self._pool.shutdown)


def distinguished_calendar(account: Account) -> Calendar:
    """The mailbox's default calendar in one ``GetFolder``.

    exchangelib's ``account.calendar`` first fetches the root folder (a second GetFolder); a root
    known only by its distinguished id is enough for addressing the calendar.
    """
    mailbox = Mailbox(email_address=account.primary_smtp_address)
    root = Root(
        account=account,
        _distinguished_id=DistinguishedFolderId(id=Root.DISTINGUISHED_FOLDER_ID, mailbox=mailbox),
    )
    return Calendar.get_distinguished(root=root)


def _new_account(info: ConnectionInfo, protocol: Protocol) -> Account:
    """An exchangelib Account on the given protocol; no network traffic (version and auth are known)."""
    account = Account(
        primary_smtp_address=info.email,
        config=protocol.config,
        autodiscover=False,
        access_type=DELEGATE,
        default_timezone=EWS_UTC,
    )
    # Account() registered a stock exchangelib Protocol in the global cache; use ours instead.
    with suppress(KeyError):
        del Protocol[protocol.config]
    account.protocol = protocol
    return account


def _connection_broke(exc: exl_errors.ErrorServerBusy) -> bool:
    """exchangelib re-raises a broken connection as ErrorServerBusy once it holds several sessions."""
    return isinstance(exc.__context__, exl_errors.ErrorTimeoutExpired)


def _resolve_srv(name: str) -> list[Any]:
    try:
        return list(dns.resolver.resolve(name, "SRV", lifetime=AutodiscoverProtocol.TIMEOUT))
    except dns.exception.DNSException:
        return []


def srv_autodiscover_urls(records: Iterable[Any]) -> list[str]:
    """Autodiscover URLs from SRV records (RFC 2782): port 443 only, lowest priority, then highest weight."""
    usable = [r for r in records if r.port == 443]
    usable.sort(key=lambda r: (r.priority, -r.weight))
    return [f"https://{str(r.target).rstrip('.')}{AUTODISCOVER_PATH}" for r in usable]


def _settle(future: asyncio.Future[Any], semaphore: asyncio.Semaphore) -> None:
    semaphore.release()
    if not future.cancelled():
        future.exception()  # mark retrieved: a timed-out call's late failure is not an "unhandled" error


def _autodiscover_failed(detail: str) -> ConnectError:
    return ConnectError(
        "autodiscover_failed",
        f"{detail} Enter the server name (or EWS URL) and username to connect manually.",
    )


def _validate(settings: ConnectionSettings) -> None:
    email = settings.email.strip()
    local, at, domain = email.rpartition("@")
    if not at or not local or "." not in domain or " " in email:
        raise ConnectError(
            "invalid_input", "Enter the mailbox's full e-mail address, e.g. alice@example.com."
        )
    if not settings.credentials.username.strip() or not settings.credentials.password:
        raise ConnectError("invalid_input", "Enter a username and password.")
    if settings.credentials.auth_type not in (None, *_EXL_AUTH):
        raise ConnectError("invalid_input", "The authentication type must be basic, ntlm or oauth2.")
    if settings.server:
        ews_url_for(settings.server)
