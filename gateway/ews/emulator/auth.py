"""HTTP authentication as IIS does it for EWS: Basic, NTLM (connection-based) and Bearer tokens.

NTLM (MS-NLMP §3.2.5) authenticates the TCP connection, not the request: type-1 → 401 with a
type-2 challenge → type-3 with the real request → 200; later requests on that keep-alive
connection need no Authorization header. The server side of NTLMv2 is computed here from the
mailbox password with pyspnego's message and crypto primitives, so no process-wide credential
file (``NTLM_USER_FILE``) is needed. NTLMv1 responses are refused, as on a hardened server.
``Negotiate`` accepts a raw NTLM token (what Windows clients fall back to without Kerberos).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import weakref
from dataclasses import dataclass

from aiohttp import web
from spnego._ntlm_raw.crypto import compute_response_v2, ntowfv1, ntowfv2
from spnego._ntlm_raw.messages import (
    Authenticate,
    AvId,
    Challenge,
    FileTime,
    Negotiate,
    NegotiateFlags,
    NTClientChallengeV2,
    TargetInfo,
)

from gateway.ews.emulator.directory import Directory, Mailbox

NETBIOS_DOMAIN = "EMULATOR"
SERVER_NAME = "EWSEMU"

# The order in which schemes are offered in WWW-Authenticate (strongest first, as IIS lists them).
_CHALLENGE_ORDER = (
    ("negotiate", "Negotiate"),
    ("ntlm", "NTLM"),
    ("basic", 'Basic realm="EWS"'),
    ("bearer", 'Bearer realm="EWS"'),
)


class Unauthorized(Exception):
    """The request is not authenticated; ``challenge`` holds the WWW-Authenticate values to send."""

    def __init__(self, challenge: list[str]) -> None:
        super().__init__("authentication required")
        self.challenge = challenge


@dataclass
class _Connection:
    """Per-TCP-connection NTLM state."""

    pending: tuple[Negotiate, Challenge] | None = None
    mailbox: Mailbox | None = None


class Authenticator:
    """Authenticates requests against a :class:`Directory`."""

    def __init__(self) -> None:
        # Keyed by the asyncio transport, so the state disappears with the connection.
        self._connections: weakref.WeakKeyDictionary[object, _Connection] = weakref.WeakKeyDictionary()

    def authenticate(self, request: web.Request, directory: Directory) -> Mailbox:
        """The mailbox ``request`` is authenticated as, or raise :class:`Unauthorized`."""
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        scheme = scheme.lower()
        value = value.strip()
        conn = self._connection(request)
        if not header:
            remembered = directory.get(conn.mailbox.email) if conn is not None and conn.mailbox else None
            if remembered is not None:
                return remembered
            raise Unauthorized(offered_challenges(directory))
        if scheme == "basic":
            return self._basic(value, directory)
        if scheme == "bearer":
            mailbox = directory.for_token(value)
            if mailbox is None or "bearer" not in mailbox.auth:
                raise Unauthorized(offered_challenges(directory))
            return mailbox
        if scheme in ("ntlm", "negotiate"):
            return self._ntlm(request, scheme, value, directory)
        raise Unauthorized(offered_challenges(directory))

    def _connection(self, request: web.Request) -> _Connection | None:
        transport = request.transport
        return None if transport is None else self._connections.get(transport)

    def _basic(self, value: str, directory: Directory) -> Mailbox:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise Unauthorized(offered_challenges(directory)) from None
        username, sep, password = decoded.partition(":")
        mailbox = directory.for_login(username) if sep else None
        if mailbox is not None and "basic" not in mailbox.auth:
            raise Unauthorized(_challenges(set(mailbox.auth)))  # tell the client what this mailbox takes
        if mailbox is None or not mailbox.check_password(password):
            raise Unauthorized(offered_challenges(directory))
        return mailbox

    def _ntlm(self, request: web.Request, scheme: str, value: str, directory: Directory) -> Mailbox:
        try:
            token = base64.b64decode(value, validate=True)
        except binascii.Error:
            raise Unauthorized(offered_challenges(directory)) from None
        if not token.startswith(b"NTLMSSP\x00") or len(token) < 12:
            raise Unauthorized(offered_challenges(directory))
        transport = request.transport
        message_type = int.from_bytes(token[8:12], "little")
        if message_type == 1 and transport is not None:
            negotiate = Negotiate.unpack(token)
            challenge = _make_challenge(negotiate)
            self._connections[transport] = _Connection(pending=(negotiate, challenge))
            label = "Negotiate" if scheme == "negotiate" else "NTLM"
            raise Unauthorized([f"{label} {base64.b64encode(challenge.pack()).decode()}"])
        conn = self._connection(request)
        if message_type != 3 or conn is None or conn.pending is None:
            raise Unauthorized(offered_challenges(directory))
        _, challenge = conn.pending
        conn.pending = None
        mailbox = _verify_authenticate(token, challenge.server_challenge, directory)
        if mailbox is None or not ({"ntlm", "negotiate"} & set(mailbox.auth)):
            raise Unauthorized(offered_challenges(directory))
        conn.mailbox = mailbox
        return mailbox


def offered_challenges(directory: Directory) -> list[str]:
    """WWW-Authenticate values before we know the user: the union of the mailboxes' schemes."""
    return _challenges({scheme for mailbox in directory for scheme in mailbox.auth})


def _challenges(schemes: set[str]) -> list[str]:
    return [challenge for scheme, challenge in _CHALLENGE_ORDER if scheme in schemes] or ['Basic realm="EWS"']


def _make_challenge(negotiate: Negotiate) -> Challenge:
    """The type-2 message answering ``negotiate`` (MS-NLMP §2.2.1.2)."""
    flags = (
        negotiate.flags
        | NegotiateFlags.request_target
        | NegotiateFlags.ntlm
        | NegotiateFlags.always_sign
        | NegotiateFlags.target_info
        | NegotiateFlags.target_type_domain
    )
    if flags & NegotiateFlags.unicode:
        flags &= ~NegotiateFlags.oem
    if flags & NegotiateFlags.extended_session_security:
        flags &= ~NegotiateFlags.lm_key
    flags &= ~NegotiateFlags.version  # no Version field: keeps the message minimal and valid
    target_info = TargetInfo()
    target_info[AvId.nb_domain_name] = NETBIOS_DOMAIN
    target_info[AvId.nb_computer_name] = SERVER_NAME
    target_info[AvId.dns_domain_name] = "emulator.local"
    target_info[AvId.dns_computer_name] = "ews.emulator.local"
    target_info[AvId.timestamp] = FileTime.now()
    return Challenge(flags, os.urandom(8), target_name=NETBIOS_DOMAIN, target_info=target_info)


def _verify_authenticate(token: bytes, server_challenge: bytes, directory: Directory) -> Mailbox | None:
    """Check an NTLMv2 type-3 message against the mailbox password (MS-NLMP §3.3.2)."""
    auth = Authenticate.unpack(token)
    if not auth.user_name:
        return None
    login = f"{auth.domain_name}\\{auth.user_name}" if auth.domain_name else auth.user_name
    mailbox = directory.for_login(login)
    response = auth.nt_challenge_response or b""
    if mailbox is None or not mailbox.password or len(response) <= 24:
        return None
    # The client derives the key from the user and domain exactly as it sent them.
    key = ntowfv2(auth.user_name, ntowfv1(mailbox.password), auth.domain_name)
    client = NTClientChallengeV2.unpack(response[16:])
    expected, _, _ = compute_response_v2(
        key, server_challenge, client.challenge_from_client, client.time_stamp, client.av_pairs
    )
    return mailbox if hmac.compare_digest(expected, response) else None
