"""SyncFolderItems: item changes of one calendar folder since an opaque sync state.

The state encodes the folder and a position in the folder's change journal, signed so that a
state the emulator did not issue (or one for another folder) is refused with
ErrorInvalidSyncStateData, as Exchange refuses a corrupt state.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

from lxml import etree

from gateway.ews.emulator.folder_ops import first_child, resolve_folder
from gateway.ews.emulator.items import Shape, item_xml
from gateway.ews.emulator.model import Change, Folder
from gateway.ews.emulator.soap import (
    EwsError,
    M,
    OperationContext,
    T,
    error_message,
    operation,
    success_message,
    wrap_response,
)

# Per-process key: states survive a reset of the same process but not a restart of the emulator.
_KEY = secrets.token_bytes(32)
# Exchange's documented maximum for MaxChangesReturned.
MAX_CHANGES = 512


def encode_state(epoch: str, folder: Folder, seq: int) -> str:
    """An opaque, signed SyncState for ``folder`` at journal position ``seq`` of store ``epoch``."""
    body = f"{epoch}|{folder.folder_id}|{seq}".encode()
    mac = hmac.new(_KEY, body, hashlib.sha256).digest()[:16]
    return base64.b64encode(b"\x01" + mac + body).decode()


def decode_state(state: str, epoch: str, folder: Folder) -> int:
    """The journal position of a SyncState issued for ``folder`` (EwsError otherwise)."""
    invalid = EwsError(
        "ErrorInvalidSyncStateData", "Synchronization state data is corrupt or otherwise invalid."
    )
    try:
        raw = base64.b64decode(state, validate=True)
    except (binascii.Error, ValueError):
        raise invalid from None
    mac, body = raw[1:17], raw[17:]
    if raw[:1] != b"\x01" or not hmac.compare_digest(mac, hmac.new(_KEY, body, hashlib.sha256).digest()[:16]):
        raise invalid
    # A state from before a reset (another epoch) describes data that no longer exists.
    state_epoch, folder_id, seq = body.decode().split("|")
    if state_epoch != epoch or folder_id != folder.folder_id or int(seq) > folder.seq:
        raise invalid
    return int(seq)


def _change_xml(change: Change, shape: Shape) -> etree._Element:
    if change.kind == "Delete":
        return T.Delete(T.ItemId(Id=change.item_id))
    assert change.item is not None
    return getattr(T, change.kind)(item_xml(change.item, shape))


@operation("SyncFolderItems")
def sync_folder_items(ctx: OperationContext, request: etree._Element) -> etree._Element:
    """SyncFolderItems (EWS operation): Create/Update/Delete changes after SyncState, oldest first."""
    shape = Shape.parse(first_child(request, "ItemShape"))
    folder_ids = first_child(request, "SyncFolderId")
    if folder_ids is None or len(folder_ids) == 0:
        raise EwsError("ErrorInvalidRequest", "SyncFolderId is required.")
    box, folder = resolve_folder(ctx, folder_ids[0])
    state_elem = first_child(request, "SyncState")
    state = (state_elem.text or "").strip() if state_elem is not None else ""
    try:
        seq = decode_state(state, ctx.state.store.epoch, folder) if state else 0
    except EwsError as exc:
        # As Exchange does, the error message still carries an empty SyncState (exchangelib reads it).
        message = error_message("SyncFolderItems", exc.code, exc.message)
        message.extend([M.SyncState(), M.IncludesLastItemInRange("true")])
        return wrap_response("SyncFolderItems", [message])
    max_elem = first_child(request, "MaxChangesReturned")
    requested = int(max_elem.text or MAX_CHANGES) if max_elem is not None else MAX_CHANGES
    limit = max(1, min(requested, MAX_CHANGES))
    ignore = first_child(request, "Ignore")
    ignored = {i.get("Id") for i in ignore} if ignore is not None else set()
    # Ignored items (types.xsd ArrayOfBaseItemIdsType) are skipped; the state still moves past them.
    changes = [c for c in folder.changes_since(seq) if c.item_id not in ignored]
    shown = changes[:limit]
    last = len(shown) == len(changes)
    new_seq = folder.seq if last else shown[-1].seq
    message = success_message("SyncFolderItems")
    message.append(M.SyncState(encode_state(ctx.state.store.epoch, folder, new_seq)))
    message.append(M.IncludesLastItemInRange("true" if last else "false"))
    message.append(M.Changes(*[_change_xml(c, shape) for c in shown]))
    return wrap_response("SyncFolderItems", [message])
