"""The visitor's unsent text in a group chat: one preview line, corrected in place while
they type (XEP-0308), then corrected to "✍ …" and retracted (XEP-0424, by the id the room
gave it) when the line is sent or the box cleared. Clients that know retractions drop the
preview; the others keep one short "✍ …" line where it was."""

from __future__ import annotations

import secrets
import xml.etree.ElementTree as ET

from slixmpp import JID

from bridge.backends.xmpp.connection import Connection
from bridge.backends.xmpp.corrections import RETRACT
from bridge.backends.xmpp.stanzas import STORE_HINT
from bridge.backends.xmpp.state import Room
from bridge.core.models import RoomRef

DRAFT_MARK = "✍ "
PREVIEW_KEY = "draft-"  # how the ids of preview lines start, to tell them from lines


class DraftPreviews:
    def __init__(self, link: Connection, rooms: dict[str, Room]) -> None:
        self._link = link
        self._rooms = rooms
        self._shown: dict[RoomRef, str] = {}  # room -> our id of its preview line

    def show(self, room: RoomRef, text: str) -> None:
        state = self._rooms.get(room)
        if state is None or not state.joined:
            return
        shown = self._shown.get(room)
        if not text:
            if shown is not None:
                del self._shown[room]
                self._send(room, f"{DRAFT_MARK}…", replaces=shown)
                if (archived_id := state.delivered.get(shown)) is not None:
                    self._retract(room, archived_id)
            return
        if shown is None:
            self._shown[room] = self._send(room, f"{DRAFT_MARK}{text}")
        else:
            self._send(room, f"{DRAFT_MARK}{text}", replaces=shown)

    def _send(self, room: RoomRef, body: str, replaces: str | None = None) -> str:
        message = self._link.client.make_message(mto=JID(room), mbody=body, mtype="groupchat")
        key = f"{PREVIEW_KEY}{secrets.token_hex(8)}"
        message["id"] = key
        message["origin_id"]["id"] = key
        if replaces is not None:
            message["replace"]["id"] = replaces
        message.send()
        return key

    def _retract(self, room: RoomRef, archived_id: str) -> None:
        message = self._link.client.make_message(mto=JID(room), mtype="groupchat")
        message.xml.append(ET.Element(RETRACT, {"id": archived_id}))
        message.xml.append(ET.Element(STORE_HINT))
        message.send()
