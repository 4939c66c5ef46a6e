"""What the bot knows of each group chat it speaks in, shared by the rooms and the inbound
side."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from bridge.backends.base import RoomSpec

# Our lines' ids remembered per room, newest last. Only a line the outbox still waits for
# is ever posted again, and those are the newest few; a room that ran for days must not
# keep every line it ever had.
DELIVERED_MEMORY = 256


@dataclass
class Room:
    """What the bot knows of one group chat it speaks in."""

    spec: RoomSpec
    nick: str = ""  # as the room confirmed it
    joined: bool = False
    delivered: dict[str, str] = field(default_factory=dict)  # our message id -> event id
    real_jids: dict[str, str] = field(default_factory=dict)  # occupant nick -> bare JID
    # While the archive is read after a join, live lines wait here to come after it.
    catching_up: bool = False
    held: list[tuple[ET.Element, str]] = field(default_factory=list)

    def note_delivered(self, key: str, event_id: str) -> None:
        self.delivered.pop(key, None)
        self.delivered[key] = event_id
        while len(self.delivered) > DELIVERED_MEMORY:
            del self.delivered[next(iter(self.delivered))]
