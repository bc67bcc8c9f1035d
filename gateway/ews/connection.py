"""What connecting a mailbox takes and gives: plain values, checked without any network or exchangelib.

The accounts service, the web pages and the CLI handle these (and store :class:`ConnectionInfo`); they
import this module only, so adding a user or showing a page never loads exchangelib, requests or DNS
code. :class:`gateway.ews.client.EwsClient` turns them into EWS traffic.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

# Our names for the authentication schemes (exchangelib's BASIC, NTLM, OAUTH2 in gateway/ews/connect.py).
AUTH_TYPES = ("basic", "ntlm", "oauth2")
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
        "insecure_transport",
    }
)
# How the connect sentences name what the user fills in, as the web form labels it. Another surface with
# other names (the CLI and its flags) puts its own in their place: ConnectError.worded.
SERVER_FIELD = "the server name (or EWS URL)"
EWS_URL_FIELD = "the EWS URL"
LOGIN_FIELD = "the username"
FIELDS = {"server": SERVER_FIELD, "ews_url": EWS_URL_FIELD, "login": LOGIN_FIELD}
_HOST = re.compile(r"^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")
# A per-process key, so credential fingerprints (cache keys) can't be brute-forced offline.
_FINGERPRINT_KEY = os.urandom(32)


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

    def worded(self, names: Mapping[str, str]) -> str:
        """The message with the fields named as another surface names them (keys of ``FIELDS``)."""
        text = self.message
        for key, phrase in sorted(FIELDS.items(), key=lambda item: -len(item[1])):
            if key in names:
                text = text.replace(phrase, names[key])
        return text


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


def validate(settings: ConnectionSettings) -> None:
    """Raise ConnectError ``invalid_input`` for settings no server could accept, before any traffic."""
    email = settings.email.strip()
    local, at, domain = email.rpartition("@")
    if not at or not local or "." not in domain or " " in email:
        raise ConnectError(
            "invalid_input", "Enter the mailbox's full e-mail address, e.g. alice@example.com."
        )
    if not settings.credentials.username.strip() or not settings.credentials.password:
        raise ConnectError("invalid_input", "Enter a username and password.")
    if settings.credentials.auth_type not in (None, *AUTH_TYPES):
        raise ConnectError("invalid_input", "The authentication type must be basic, ntlm or oauth2.")
    if settings.server:
        ews_url_for(settings.server)


def is_loopback_host(host: str | None) -> bool:
    """``localhost`` or a loopback address: traffic that never leaves this machine."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def plain_http_refusal(url: str, auth_type: str | None, allow_ntlm: bool) -> ConnectError | None:
    """Why a password may not be sent to ``url``, or None.

    Over plain ``http://`` to another machine, Basic (RFC 7617) would carry the password readable to anyone
    on the path and NTLM a response that can be cracked offline; the gateway sends neither, except NTLM when
    ``[ews] allow_ntlm_over_http`` says the network is trusted. ``auth_type`` None (not yet detected) passes
    when NTLM is allowed: the detected scheme is checked again. Loopback (the emulator) is always allowed;
    OAuth tokens are refused over http by exchangelib itself.
    """
    parts = urlsplit(url)
    if parts.scheme != "http" or is_loopback_host(parts.hostname) or auth_type == "oauth2":
        return None
    if allow_ntlm and auth_type in (None, "ntlm"):
        return None
    host = parts.hostname
    if auth_type == "basic":
        why = "with Basic sign-in anyone on the network could read it"
        remedy = f"Use an https:// address for {EWS_URL_FIELD}."
    else:
        why = "Basic sign-in would show it to anyone on the network, NTLM sign-in a hash of it that can be cracked"
        remedy = (
            f"Use an https:// address for {EWS_URL_FIELD}, or, on a trusted network, allow NTLM with "
            "[ews] allow_ntlm_over_http = true in the gateway's configuration."
        )
    return ConnectError(
        "insecure_transport",
        f"The gateway does not send an Exchange password to {host} over plain http://: {why}. {remedy}",
    )


def untrusted_certificate_error(host: str, autodiscover_domain: str | None = None) -> ConnectError:
    """The server's TLS certificate does not verify against the trusted CAs (``[ews] ca_file`` or the system's)."""
    which = f" (the Autodiscover server for {autodiscover_domain})" if autodiscover_domain else ""
    return ConnectError(
        "tls_untrusted",
        f"The certificate of {host}{which} is not trusted. If your organisation uses its own certificate "
        "authority (CA), give the gateway the CA certificate: set [ews] ca_file to its PEM file in the "
        "gateway's configuration and restart. Certificate verification stays on.",
    )


def modern_auth_only_error() -> ConnectError:
    """The tenant or server refuses passwords (Basic/NTLM) and wants OAuth."""
    return ConnectError(
        "modern_auth_only",
        "This Exchange server accepts only modern authentication (OAuth), not a password. "
        "Ask your administrator to allow Basic or NTLM for EWS, or connect with an OAuth access token.",
    )


def auth_failed_error(login: str) -> ConnectError:
    """Wrong password, or the username in a form this server does not accept."""
    if "@" in login:
        hint = "If your organisation signs in with a Windows account name, try DOMAIN\\user."
    elif "\\" in login:
        hint = "Some servers expect the full address instead; try user@domain."
    else:
        hint = f"Try DOMAIN\\user or your full e-mail address as {LOGIN_FIELD}."
    return ConnectError(
        "auth_failed", f"Exchange did not accept this username and password. Check the password. {hint}"
    )


def autodiscover_failed(detail: str) -> ConnectError:
    """Autodiscover found nothing usable: the user can still enter the server by hand."""
    return ConnectError(
        "autodiscover_failed",
        f"{detail} Enter {SERVER_FIELD} and {LOGIN_FIELD} to connect manually.",
    )
