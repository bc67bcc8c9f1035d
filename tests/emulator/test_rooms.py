"""GetRoomLists and GetRooms of the EWS emulator, through real exchangelib: the demo's room-1 is in
the room list ``rooms@example.com``; people are in none."""

from __future__ import annotations

import pytest
from exchangelib.errors import ErrorNameResolutionNoResults

from tests.emulator.test_platform_auth import fresh_protocols, protocol  # noqa: F401


def test_room_lists_and_their_rooms(emulator):
    ews = protocol(emulator, "alice@example.com", "alice-pw")
    lists = list(ews.get_roomlists())
    assert [(r.name, r.email_address, r.mailbox_type) for r in lists] == [
        ("Rooms", "rooms@example.com", "PublicDL")
    ]
    rooms = list(ews.get_rooms("rooms@example.com"))
    assert [(r.name, r.email_address) for r in rooms] == [("Room 1", "room-1@example.com")]
    assert emulator.stats()["operations"]["GetRooms"] == 1


def test_rooms_of_an_address_that_is_no_room_list(emulator):
    ews = protocol(emulator, "alice@example.com", "alice-pw")
    with pytest.raises(ErrorNameResolutionNoResults):
        list(ews.get_rooms("bob@example.com"))
