"""What connecting a mailbox takes and gives: plain values, checked without any network or exchangelib.

The accounts service, the web pages and the CLI handle these (and store :class:`ConnectionInfo`); they
import this module only, so adding a user or showing a page never loads exchangelib, requests or DNS
code. :class:`gateway.ews.client.EwsClient` turns them into EWS traffic.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
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
    }
)
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
