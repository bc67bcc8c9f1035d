"""Gateway passwords: slow salted hashes (hashed off the event loop on two dedicated threads),
app-password generation and a short verify cache (failed sign-ins: ``gateway.accounts.throttle``).

Hashes use scrypt (RFC 7914) with a per-password random salt, stored as
``scrypt$<log2 N>$<r>$<p>$<salt b64>$<hash b64>``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from gateway.common.stages import TimedPool

_LOG2_N, _R, _P, _DKLEN = 14, 8, 1, 32
# Unambiguous characters (no 0/o, 1/l/i) so a password read off a screen types correctly.
_APP_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, _LOG2_N, _R, _P)
    return "$".join(
        [
            "scrypt",
            str(_LOG2_N),
            str(_R),
            str(_P),
            base64.b64encode(salt).decode(),
            base64.b64encode(digest).decode(),
        ]
    )


def hash_generated_secret(secret: str) -> str:
    """A salted SHA-256 of a secret the gateway generated (an app password: ~98 random bits).

    A slow hash protects passwords people choose, which can be guessed from lists; nobody can try
    2^98 candidates, so a stolen database tells no more with SHA-256 than with scrypt. The check
    then costs microseconds instead of a scrypt run (~0.1 s of CPU) per sign-in: 100 clients
    signing in at once waited seconds for the two hashing threads (docs/PERFORMANCE.md, "the tail").
    """
    salt = secrets.token_bytes(16)
    digest = hashlib.sha256(salt + secret.encode("utf-8")).digest()
    return "$".join(["sha256", base64.b64encode(salt).decode(), base64.b64encode(digest).decode()])


def is_fast_hash(stored: str) -> bool:
    """Whether ``stored`` came from :func:`hash_generated_secret` (checked on the loop, no thread)."""
    return stored.startswith("sha256$")


def verify_password(password: str, stored: str) -> bool:
    try:
        if is_fast_hash(stored):
            _, salt_text, digest_text = stored.split("$")
            salt = base64.b64decode(salt_text)
            actual = hashlib.sha256(salt + password.encode("utf-8")).digest()
            return hmac.compare_digest(base64.b64decode(digest_text), actual)
        kind, log2n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = _scrypt(password, base64.b64decode(salt), int(log2n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(expected, actual)


# scrypt (N=2^14, r=8) needs a 16 MB buffer per hash. Run on asyncio's default executor, every one of its
# threads would keep such a buffer in its own malloc arena after the first sign-ins (about 100 MB on a
# 2-core machine); two dedicated threads bound that, and more would not hash faster on a few cores.
_HASHING = TimedPool("password_hash", 2, thread_name_prefix="password-hash")


async def hash_off_loop(password: str) -> str:
    """``hash_password`` off the event loop (scrypt takes tens of milliseconds), on the hashing threads."""
    return await asyncio.get_running_loop().run_in_executor(_HASHING, hash_password, password)


async def verify_off_loop(password: str, stored: str) -> bool:
    """``verify_password`` off the event loop, on the hashing threads (a fast hash: at once)."""
    if is_fast_hash(stored):
        return verify_password(password, stored)
    return await asyncio.get_running_loop().run_in_executor(_HASHING, verify_password, password, stored)


def _scrypt(password: str, salt: bytes, log2n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=1 << log2n, r=r, p=p, dklen=_DKLEN, maxmem=64 << 20
    )


# A hash of a random password: verified against when the user does not exist.
DUMMY_HASH = hash_password(secrets.token_urlsafe(16))
DUMMY_GENERATED_HASH = hash_generated_secret(secrets.token_urlsafe(16))  # the same for app passwords


def app_password_lookup(password: str) -> str:
    """The non-secret index of an app password (see schema ``app_passwords.lookup``)."""
    return hashlib.sha256(password.encode("utf-8")).hexdigest()[:16]


def generate_app_password() -> str:
    """Four groups of five characters (~98 bits), e.g. ``k7mq2-x9ahe-...``."""
    return "-".join("".join(secrets.choice(_APP_ALPHABET) for _ in range(5)) for _ in range(4))


@dataclass
class _CacheEntry:
    user_id: str
    app_password_id: str
    expires: float


class VerifiedCache:
    """Remembers successful app-password checks briefly.

    CalDAV clients send Basic credentials on every request; re-running scrypt each
    time would cost tens of milliseconds per request. The key is a SHA-256 of
    username and password (fast, fine for a memory-only map of *verified* pairs).
    """

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._entries: dict[bytes, _CacheEntry] = {}

    @staticmethod
    def _key(username: str, password: str) -> bytes:
        return hashlib.sha256(f"{username}\0{password}".encode()).digest()

    def get(self, username: str, password: str) -> _CacheEntry | None:
        entry = self._entries.get(self._key(username, password))
        if entry is None or entry.expires < self._clock():
            return None
        return entry

    def put(self, username: str, password: str, user_id: str, app_password_id: str) -> None:
        if self.ttl > 0:
            self._entries[self._key(username, password)] = _CacheEntry(
                user_id, app_password_id, self._clock() + self.ttl
            )

    def forget(self, *, user_id: str | None = None, app_password_id: str | None = None) -> None:
        """Drop entries of a revoked app password or a deleted user at once; with neither, every entry
        (the invalidation notices may have been missed: gateway/store/notify.py)."""
        if user_id is None and app_password_id is None:
            self._entries = {}
            return
        self._entries = {
            k: e
            for k, e in self._entries.items()
            if e.user_id != user_id and e.app_password_id != app_password_id
        }
