"""The credential vault: AES-GCM sealing bound to the account row, key ids, key loading."""

from __future__ import annotations

import base64
import logging

import pytest

from gateway.accounts.vault import KeyRing, MissingSecretKeyError, Vault, VaultError, generate_key, key_id
from gateway.logsafe import RedactingFilter


def _ring(*keys: str) -> KeyRing:
    return KeyRing.from_env({"GATEWAY_SECRET_KEY": keys[0], "GATEWAY_OLD_SECRET_KEYS": ",".join(keys[1:])})


def test_seal_and_open_round_trip_without_plaintext_in_the_sealed_text() -> None:
    vault = Vault(_ring(generate_key()))
    sealed = vault.seal("acc1", {"kind": "password", "password": "s3cret-Exchange"})
    assert "s3cret" not in sealed and sealed.startswith(f"v1.{vault.keyring.current_id}.")
    assert vault.open("acc1", sealed) == {"kind": "password", "password": "s3cret-Exchange"}


def test_a_ciphertext_copied_to_another_row_fails() -> None:
    vault = Vault(_ring(generate_key()))
    sealed = vault.seal("acc1", {"password": "p"})
    with pytest.raises(VaultError, match="acc2.*altered or belong to another account"):
        vault.open("acc2", sealed)


def test_wrong_key_names_the_missing_key_id_not_the_secret() -> None:
    old = generate_key()
    sealed = Vault(_ring(old)).seal("acc1", {"password": "hunter2"})
    with pytest.raises(VaultError) as info:
        Vault(_ring(generate_key())).open("acc1", sealed)
    message = str(info.value)
    assert key_id(base64.b64decode(old)) in message and "GATEWAY_OLD_SECRET_KEYS" in message
    assert "hunter2" not in message


def test_old_keys_still_open_and_rotation_is_detected() -> None:
    old, new = generate_key(), generate_key()
    sealed = Vault(_ring(old)).seal("acc1", {"password": "p"})
    rotated = Vault(_ring(new, old))
    assert rotated.needs_rotation(sealed)
    assert rotated.open("acc1", sealed) == {"password": "p"}
    assert not rotated.needs_rotation(rotated.seal("acc1", {"password": "p"}))


def test_missing_or_malformed_key_is_refused_without_echoing_it() -> None:
    with pytest.raises(MissingSecretKeyError, match="GATEWAY_SECRET_KEY is not set"):
        KeyRing.from_env({})
    with pytest.raises(VaultError) as info:
        KeyRing.from_env({"GATEWAY_SECRET_KEY": "not-a-real-key-value"})
    assert "not-a-real-key-value" not in str(info.value)


def test_keyring_repr_shows_no_key_material() -> None:
    key = generate_key()
    ring = _ring(key)
    assert key not in repr(ring) and base64.b64decode(key).hex() not in repr(ring)


def test_an_opened_password_is_redacted_from_every_later_log_line(caplog: pytest.LogCaptureFixture) -> None:
    vault = Vault(_ring(generate_key()))
    sealed = vault.seal("acct-log", {"password": "opened-pw-5d1e"})
    handler_filter = RedactingFilter()
    record = logging.LogRecord(
        "exchangelib", logging.DEBUG, __file__, 1, "sent %s", ("opened-pw-5d1e",), None
    )
    assert handler_filter.filter(record) and "opened-pw-5d1e" in record.getMessage()  # not known yet
    vault.open("acct-log", sealed)
    record = logging.LogRecord(
        "exchangelib", logging.DEBUG, __file__, 1, "sent %s", ("opened-pw-5d1e",), None
    )
    handler_filter.filter(record)
    assert "opened-pw-5d1e" not in record.getMessage()


def test_opening_redacts_the_secret_from_logs_but_not_the_word_naming_its_kind() -> None:
    vault = Vault(_ring(generate_key()))
    vault.open("acc1", vault.seal("acc1", {"kind": "password", "password": "Opened-Secret-7731"}))
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "password Opened-Secret-7731", (), None)
    assert RedactingFilter().filter(record)
    assert record.getMessage() == "password [redacted]"
