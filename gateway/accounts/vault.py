"""The credential vault: AES-256-GCM over a JSON secret, bound to its account row.

Keys come only from the environment:

- ``GATEWAY_SECRET_KEY``: the current key (base64 of 32 random bytes); new rows use it;
- ``GATEWAY_OLD_SECRET_KEYS``: comma-separated older keys, still accepted for reading
  until ``keys rotate`` has re-encrypted every row under the current key.

A key's id is the first 16 hex digits of SHA-256 over the key, so ids need no
configuration. A sealed value is ``v1.<key id>.<base64url(nonce ‖ ciphertext ‖ tag)>``;
the associated data is the account row id, so a ciphertext copied to another row
fails authentication.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.logsafe import register_secret

log = logging.getLogger(__name__)

SECRET_KEY_ENV = "GATEWAY_SECRET_KEY"
OLD_SECRET_KEYS_ENV = "GATEWAY_OLD_SECRET_KEYS"
_FORMAT = "v1"
_NONCE_BYTES = 12


class VaultError(Exception):
    """A stored secret cannot be used. The message names the account, never the secret."""


class MissingSecretKeyError(VaultError):
    """No key is configured: the server must not start."""


def generate_key() -> str:
    """A fresh key in the form ``GATEWAY_SECRET_KEY`` expects."""
    return base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:16]


def _decode_key(text: str, source: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        # Do not echo the value: it is (meant to be) a secret.
        raise VaultError(
            f"{source} is not a base64-encoded 32-byte key; create one with: caldav-gateway keys generate"
        )
    return raw


@dataclass(frozen=True)
class KeyRing:
    """The current key and the older ones still accepted for decryption."""

    current: bytes = field(repr=False)
    old: tuple[bytes, ...] = field(default=(), repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> KeyRing:
        env = os.environ if env is None else env
        current = env.get(SECRET_KEY_ENV, "").strip()
        if not current:
            raise MissingSecretKeyError(
                f"{SECRET_KEY_ENV} is not set: the gateway needs it to encrypt Exchange passwords. "
                "Create one with 'caldav-gateway keys generate' and keep it safe."
            )
        olds = [s for s in env.get(OLD_SECRET_KEYS_ENV, "").split(",") if s.strip()]
        return cls(
            current=_decode_key(current, SECRET_KEY_ENV),
            old=tuple(_decode_key(s, OLD_SECRET_KEYS_ENV) for s in olds),
        )

    @classmethod
    def ephemeral(cls) -> KeyRing:
        """A throw-away key for the demo; says so, because stored secrets die with it."""
        log.warning(
            "no %s configured: using an ephemeral key for this run only; "
            "connected accounts will not be readable after a restart",
            SECRET_KEY_ENV,
        )
        return cls(current=base64.b64decode(generate_key()))

    @property
    def current_id(self) -> str:
        return key_id(self.current)

    def by_id(self, kid: str) -> bytes | None:
        for key in (self.current, *self.old):
            if key_id(key) == kid:
                return key
        return None

    def __repr__(self) -> str:
        return f"KeyRing(current_id={self.current_id!r}, old={len(self.old)})"


class Vault:
    """Seals and opens account secrets (a JSON object) with AES-GCM."""

    def __init__(self, keyring: KeyRing) -> None:
        self.keyring = keyring

    def seal(self, account_id: str, secret: Mapping[str, str]) -> str:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        plaintext = json.dumps(dict(secret), separators=(",", ":")).encode("utf-8")
        ct = AESGCM(self.keyring.current).encrypt(nonce, plaintext, _aad(account_id))
        body = base64.urlsafe_b64encode(nonce + ct).decode("ascii")
        return f"{_FORMAT}.{self.keyring.current_id}.{body}"

    def open(self, account_id: str, sealed: str) -> dict[str, str]:
        kid, blob = self._parse(account_id, sealed)
        key = self.keyring.by_id(kid)
        if key is None:
            raise VaultError(
                f"the credentials of account {account_id} were encrypted with key {kid}, which is not "
                f"configured; add that key to {OLD_SECRET_KEYS_ENV} or reconnect the account"
            )
        try:
            plaintext = AESGCM(key).decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], _aad(account_id))
        except InvalidTag:
            raise VaultError(
                f"the credentials of account {account_id} failed authentication: they were altered or "
                "belong to another account; reconnect the account"
            ) from None
        secret: dict[str, str] = json.loads(plaintext)
        for name, value in secret.items():
            if name != "kind":  # "password"/"oauth2" says what the secret is; redacting that word is noise
                register_secret(value)  # from now on, no log line of this process can carry it
        return secret

    def needs_rotation(self, sealed: str) -> bool:
        return not sealed.startswith(f"{_FORMAT}.{self.keyring.current_id}.")

    @staticmethod
    def _parse(account_id: str, sealed: str) -> tuple[str, bytes]:
        parts = sealed.split(".")
        if len(parts) != 3 or parts[0] != _FORMAT:
            raise VaultError(f"the stored credentials of account {account_id} are not in a known format")
        try:
            return parts[1], base64.urlsafe_b64decode(parts[2])
        except (binascii.Error, ValueError):
            raise VaultError(f"the stored credentials of account {account_id} are corrupt") from None


def _aad(account_id: str) -> bytes:
    # Binding to the row id: a ciphertext moved to another row no longer authenticates.
    return f"caldav-gateway/account-secret/{account_id}".encode()
