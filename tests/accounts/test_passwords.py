"""Slow salted hashes, app-password format and the verified cache."""

from __future__ import annotations

import re

from gateway.accounts.passwords import (
    VerifiedCache,
    generate_app_password,
    hash_password,
    verify_password,
)


def test_hash_is_salted_scrypt_and_verifies_only_the_right_password() -> None:
    first, second = hash_password("correct horse"), hash_password("correct horse")
    assert first.startswith("scrypt$") and first != second
    assert "correct horse" not in first
    assert verify_password("correct horse", first)
    assert not verify_password("correct horsE", first)
    assert not verify_password("x", "garbage")


def test_app_passwords_are_long_random_and_unambiguous() -> None:
    passwords = {generate_app_password() for _ in range(50)}
    assert len(passwords) == 50
    assert all(re.fullmatch(r"([a-z2-9]{5}-){3}[a-z2-9]{5}", p) for p in passwords)
    assert not any(set(p) & set("01ilo") for p in passwords)


def test_verified_cache_expires_and_forgets_revoked_passwords() -> None:
    now = [0.0]
    cache = VerifiedCache(ttl=60, clock=lambda: now[0])
    cache.put("ann", "pw", "u1", "ap1")
    assert cache.get("ann", "pw").user_id == "u1"
    assert cache.get("ann", "other") is None
    cache.forget(app_password_id="ap1")
    assert cache.get("ann", "pw") is None
    cache.put("ann", "pw", "u1", "ap1")
    now[0] = 61
    assert cache.get("ann", "pw") is None
