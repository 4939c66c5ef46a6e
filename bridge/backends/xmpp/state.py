"""What the bot knows of each group chat it speaks in, shared by the rooms and the inbound
side."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from bridge.backends.base import RoomSpec


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
