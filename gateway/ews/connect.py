"""Connecting a mailbox: Autodiscover, then verification, with a sentence for every way it fails.

- *Autodiscover* (MS-OXWSADISC ``GetUserSettings``) is driven here with exchangelib's
  ``AutodiscoverProtocol``/``GetUserSettings`` against a candidate list: the endpoint configured for
  the domain (``autodiscover_endpoints``, config key ``[ews] autodiscover_endpoints``) or the
  standard ``https://{domain}/…`` and ``https://autodiscover.{domain}/…`` URLs, an http redirect and
  DNS SRV (RFC 2782). exchangelib's own ``Autodiscovery`` keeps a process-global cache persisted to a
  shared temp file; it is not used.
- *Verification*: an unauthenticated request reads the offered schemes (RFC 7235 §4.1) unless the
  user chose one, an authenticated ``ConvertId`` proves the credentials and reports
  ``ServerVersionInfo``, and a ``GetFolder`` of the calendar proves the mailbox may be opened.
- *Diagnosis*: every failure becomes a :class:`ConnectError` whose code says why and whose message
  says what to do next (the pure functions below are unit-tested one by one).

Everything here blocks; :meth:`gateway.ews.client.EwsClient.connect` runs it in its worker pool.
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import dns.exception
import dns.resolver
import requests
from exchangelib import Account, Configuration, FailFast
from exchangelib import Credentials as ExlCredentials
from exchangelib import errors as exl_errors
from exchangelib.autodiscover.protocol import AutodiscoverProtocol
from exchangelib.credentials import BaseCredentials, OAuth2AuthorizationCodeCredentials
from exchangelib.properties import UserResponse
from exchangelib.transport import BASIC, NTLM, OAUTH2
from exchangelib.version import Build, Version
from lxml import etree
from oauthlib.oauth2 import InsecureTransportError, OAuth2Token

from gateway.ews.connection import (
    EWS_URL_FIELD,
    ConnectError,
    ConnectionInfo,
    ConnectionSettings,
    Credentials,
    auth_failed_error,
    autodiscover_failed,
    ews_url_for,
    login_name,
    modern_auth_only_error,
    plain_http_refusal,
    untrusted_certificate_error,
)
from gateway.ews.exchange import (
    EWS_TYPES,
    ProtocolClasses,
    distinguished_calendar,
    get_unauthenticated,
    new_account,
    post_probe,
)

log = logging.getLogger(__name__)

# Our names for authentication schemes (gateway.ews.connection.AUTH_TYPES) ⇄ exchangelib's.
EXL_AUTH = {"basic": BASIC, "ntlm": NTLM, "oauth2": OAUTH2}
MINIMUM_MAJOR_VERSION = 15  # Exchange 2013 is 15.0
MAX_AUTODISCOVER_HOPS = 10  # redirects (address or URL) before giving up, as exchangelib does
AUTODISCOVER_PATH = "/autodiscover/autodiscover.svc"
_SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
_SAFE_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


# --- exchangelib configuration -------------------------------------------------------------------


def exl_credentials(login: str, credentials: Credentials) -> BaseCredentials:
    """exchangelib credentials for ``login``: an OAuth access token as a Bearer token, else a password."""
    if credentials.auth_type == "oauth2":
        token = OAuth2Token({"access_token": credentials.password, "token_type": "Bearer"})
        return OAuth2AuthorizationCodeCredentials(access_token=token)
    return ExlCredentials(username=login, password=credentials.password)


def ews_configuration(info: ConnectionInfo, credentials: Credentials, max_connections: int) -> Configuration:
    """The configuration of a stored connection: version and auth type known, so no probe is sent."""
    build = Build(*(int(part) for part in info.build.split(".")))
    return Configuration(
        service_endpoint=info.ews_url,
        credentials=exl_credentials(info.username, credentials),
        auth_type=EXL_AUTH[info.auth_type],
        version=Version(build=build, api_version=info.version),
        retry_policy=FailFast(),
        max_connections=max_connections,
    )


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
        f"Enter {EWS_URL_FIELD}, usually https://<server>/EWS/Exchange.asmx.",
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
    if certificate_untrusted(exc):
        return untrusted_certificate_error(urlsplit(url).hostname or host)
    if isinstance(exc, requests.exceptions.SSLError):
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


def certificate_untrusted(exc: BaseException) -> bool:
    """Whether a failure was the server's certificate failing verification (however exchangelib wraps it)."""
    if isinstance(exc, requests.exceptions.SSLError) and "certificate" in str(exc).lower():
        return True
    return any(isinstance(e, ssl.SSLCertVerificationError) for e in _exception_chain(exc))


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


# --- Autodiscover candidates from DNS -----------------------------------------------------------


def _resolve_srv(name: str) -> list[Any]:
    """The SRV records of ``name``, or none when DNS has none or does not answer in time."""
    try:
        return list(dns.resolver.resolve(name, "SRV", lifetime=AutodiscoverProtocol.TIMEOUT))
    except dns.exception.DNSException:
        return []


def srv_autodiscover_urls(records: Iterable[Any]) -> list[str]:
    """Autodiscover URLs from SRV records (RFC 2782): port 443 only, lowest priority, then highest weight."""
    usable = [r for r in records if r.port == 443]
    usable.sort(key=lambda r: (r.priority, -r.weight))
    return [f"https://{str(r.target).rstrip('.')}{AUTODISCOVER_PATH}" for r in usable]


# --- connecting -----------------------------------------------------------------------------------


@dataclass
class _Discovered:
    """Where Autodiscover (or the user) says the mailbox is served."""

    email: str
    ews_url: str
    display_name: str | None


class MailboxConnector:
    """Finds and verifies the EWS endpoint of a mailbox (blocking; see the module docstring)."""

    def __init__(
        self,
        classes: ProtocolClasses,
        autodiscover_endpoints: Mapping[str, str],
        max_connections: int,
        allow_ntlm_over_http: bool = False,
    ) -> None:
        self._classes = classes
        self._ad_endpoints = {k.lower(): v for k, v in autodiscover_endpoints.items()}
        self._max_connections = max_connections  # per account, as the client's pool uses it
        self._allow_ntlm = allow_ntlm_over_http  # [ews] allow_ntlm_over_http (see plain_http_refusal)

    def connect(self, settings: ConnectionSettings) -> ConnectionInfo:
        """Autodiscover (unless a server is given), then verify endpoint, credentials and calendar."""
        login = login_name(settings)
        credentials = settings.credentials
        email = settings.email.strip()
        if settings.server:
            found = _Discovered(email=email, ews_url=ews_url_for(settings.server), display_name=None)
            via = "manual"
        else:
            found = self._autodiscover(email, login, credentials)
            via = "autodiscover"
        self._refuse_plain_http(found.ews_url, credentials.auth_type)  # before even the probe
        auth_type = credentials.auth_type or self._detect_auth(found.ews_url)
        self._refuse_plain_http(found.ews_url, auth_type)
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

    def _refuse_plain_http(self, url: str, auth_type: str | None) -> None:
        refusal = plain_http_refusal(url, auth_type, self._allow_ntlm)
        if refusal is not None:
            raise refusal

    def _detect_auth(self, ews_url: str) -> str:
        """Send an unauthenticated request and read the offered schemes (RFC 7235 §4.1)."""
        probe = self._classes.ews(config=Configuration(service_endpoint=ews_url, retry_policy=FailFast()))
        try:
            response = post_probe(probe, authenticated=False)
        except requests.RequestException as exc:
            raise connection_error(exc, ews_url) from None
        return choose_auth_type(response)

    def _verify_endpoint(self, ews_url: str, login: str, credentials: Credentials, auth_type: str) -> Version:
        """An authenticated ``ConvertId``: proves the credentials and reads the server version."""
        config = Configuration(
            service_endpoint=ews_url,
            credentials=exl_credentials(login, credentials),
            auth_type=EXL_AUTH[auth_type],
            retry_policy=FailFast(),
        )
        probe = self._classes.ews(config=config)
        try:
            response = post_probe(probe, authenticated=True)
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
        CalDAV request soon, and ``EwsClient.account`` re-creates one from the stored connection without any
        network traffic when one does.
        """
        protocol = self._classes.ews(config=ews_configuration(info, credentials, self._max_connections))
        try:
            self._verify_folder(new_account(info.email, protocol), info)
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
                raise autodiscover_failed(f"Autodiscover for {email} returned no EWS URL.")
            return _Discovered(
                email=response.autodiscover_smtp_address or email,
                ews_url=response.ews_url,
                display_name=response.user_settings.get("user_display_name"),
            )
        raise autodiscover_failed("Autodiscover redirected in a loop.")

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
            response = get_unauthenticated(self._classes.autodiscover, url, AutodiscoverProtocol.TIMEOUT)
        except requests.RequestException:
            return None
        location = response.headers.get("Location", "")
        if response.status_code in (301, 302, 307, 308) and location.lower().startswith("https://"):
            return location
        return None

    def _discover_domain(self, email: str, login: str, credentials: Credentials) -> UserResponse:
        """The first usable GetUserSettings answer among the domain's candidate endpoints."""
        domain = email.rpartition("@")[2].lower()
        refused = False
        untrusted: str | None = None  # the first candidate whose certificate failed verification
        for url in self._candidates(domain):
            try:
                return self._ask_autodiscover(url, email, login, credentials)
            except exl_errors.UnauthorizedError:
                refused = True
            except exl_errors.ErrorNonExistentMailbox:
                raise autodiscover_failed(
                    f"Autodiscover knows no mailbox {email}; check the address."
                ) from None
            except (exl_errors.EWSError, requests.RequestException, OSError, ValueError) as exc:
                log.info("Autodiscover at %s failed: %s", url, type(exc).__name__)
                if untrusted is None and certificate_untrusted(exc):
                    untrusted = url
        if refused:
            raise auth_failed_error(login)
        if untrusted is not None:  # no server found, but one was there: say why it was not believed
            raise untrusted_certificate_error(urlsplit(untrusted).hostname or untrusted, domain)
        raise autodiscover_failed(f"Autodiscover found no Exchange server for {domain}.")

    def _ask_autodiscover(self, url: str, email: str, login: str, credentials: Credentials) -> UserResponse:
        """One GetUserSettings request; follows RedirectUrl answers to https URLs.

        Drives ``AutodiscoverProtocol.get_user_settings`` itself (checked by
        tests/ews/test_exchange_contract.py), not exchangelib's cached ``Autodiscovery``.
        """
        for _ in range(MAX_AUTODISCOVER_HOPS):
            self._refuse_plain_http(url, credentials.auth_type)
            auth_type = credentials.auth_type
            if auth_type is None and plain_http_refusal(url, "basic", self._allow_ntlm) is not None:
                auth_type = "ntlm"  # plain http to another machine, NTLM allowed: never let Basic be chosen
            config = Configuration(
                service_endpoint=url,
                credentials=exl_credentials(login, credentials),
                auth_type=EXL_AUTH.get(auth_type or ""),
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
