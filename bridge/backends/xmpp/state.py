"""What the bot knows of each group chat it speaks in, shared by the rooms and the inbound
side."""

from __future__ import annotations

import asyncio
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
    # While the archive is read after a join, live lines (and markers) wait here to come
    # after it.
    catching_up: bool = False
    held: list[tuple[ET.Element, str]] = field(default_factory=list)
    # For read markers (markers.py): the newest line (ours or an agent's), and for each of
    # the visitor's draft previews the newest line before it. A client marks the newest
    # line it shows, which while the visitor types is the preview, a line the hub never
    # hears of: it stands for the line before it.
    latest_line: str | None = None
    previews: dict[str, str] = field(default_factory=dict)  # preview's event id -> line's
    # Our retractions waiting for the room to reflect them (the inbound side notes them as
    # delivered, corrections.py), by our id.
    awaited: dict[str, asyncio.Future[str]] = field(default_factory=dict)

    def note_delivered(self, key: str, event_id: str) -> None:
        self.delivered.pop(key, None)
        self.delivered[key] = event_id
        while len(self.delivered) > DELIVERED_MEMORY:
            del self.delivered[next(iter(self.delivered))]
        waiter = self.awaited.pop(key, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(event_id)

    def note_preview(self, event_id: str) -> None:
        if self.latest_line is not None:
            self.previews[event_id] = self.latest_line
            while len(self.previews) > DELIVERED_MEMORY:
                del self.previews[next(iter(self.previews))]
