"""Exchange-looking opaque ids: ItemIds, FolderIds, ChangeKeys, occurrence ids and UIDs.

Ids are base64 of raw bytes whose first byte tells the kind: a stored item or folder (Exchange's
leading 0x00), or an occurrence of a series, which carries its master's id and its 1-based
instance index (as an EWS ``OccurrenceItemId`` names it) so that it needs no storage.
"""

from __future__ import annotations

import base64
import hashlib

from gateway.ews.emulator.model import StoreError

_KIND_STORE = 0
_KIND_OCCURRENCE = 1


def mailbox_part(email: str) -> bytes:
    """The part of every id that names the mailbox holding it (as Exchange ids carry the mailbox GUID)."""
    return hashlib.sha256(email.lower().encode()).digest()


def mailbox_part_of(raw: bytes) -> bytes | None:
    """The mailbox part of a raw stored id or occurrence id (None for bytes that are not our ids)."""
    if raw[:1] == bytes([_KIND_OCCURRENCE]):
        raw = raw[5:]
    if len(raw) < 35 or raw[:1] != bytes([_KIND_STORE]):
        return None
    return raw[3:35]


class IdFactory:
    """Deterministic, Exchange-looking opaque ids: the same seed gives the same ids after a reset."""

    def __init__(self, email: str) -> None:
        self._salt = mailbox_part(email)
        self._counter = 0
        # Set once the seed is loaded: ids made later never repeat ids made before a reset.
        self.epoch = b""

    def _raw(self, kind: bytes) -> bytes:
        self._counter += 1
        digest = hashlib.sha256(self._salt + self.epoch + kind + self._counter.to_bytes(8, "big")).digest()
        # 3 header bytes + mailbox part + item part: 152 base64 characters, like Exchange's.
        tail = hashlib.sha256(digest).digest() + digest[:8]
        return bytes([_KIND_STORE, 3, 0x24]) + self._salt + kind + digest + tail + b"\x00\x00"

    def item_id(self) -> str:
        return base64.b64encode(self._raw(b"\x46\x00\x00")).decode()

    def folder_id(self) -> str:
        return base64.b64encode(self._raw(b"\x2e\x00\x00")).decode()

    def change_key(self) -> str:
        self._counter += 1
        digest = hashlib.sha256(self._salt + b"ck" + self._counter.to_bytes(8, "big")).digest()
        return base64.b64encode(b"\x0f\x00\x00\x00\x16\x00\x00\x00" + digest[:32]).decode()


def new_uid(item_id: str) -> str:
    """An Outlook-style UID (the hex GlobalObjectId form) for an item created without one."""
    digest = hashlib.sha256(item_id.encode()).hexdigest().upper()[:32]
    return f"040000008200E00074C5B7101A82E00800000000{digest}"


def occurrence_id(master_id: str, index: int) -> str:
    """The ItemId of occurrence ``index`` of a series (stable, decodable by :func:`parse_occurrence_id`)."""
    raw = base64.b64decode(master_id)
    return base64.b64encode(bytes([_KIND_OCCURRENCE]) + index.to_bytes(4, "big") + raw).decode()


def parse_occurrence_id(item_id: str) -> tuple[str, int] | None:
    """(master id, instance index) for an occurrence id, None for a store id.

    Raises ``StoreError(ErrorInvalidIdMalformed)`` when the id is not one of ours at all.
    """
    try:
        raw = base64.b64decode(item_id, validate=True)
    except ValueError as exc:
        raise StoreError("ErrorInvalidIdMalformed", "Id is malformed.") from exc
    if len(raw) < 8:
        raise StoreError("ErrorInvalidIdMalformed", "Id is malformed.")
    if raw[0] == _KIND_OCCURRENCE:
        return base64.b64encode(raw[5:]).decode(), int.from_bytes(raw[1:5], "big")
    return None
