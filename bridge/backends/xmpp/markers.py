"""Read states in the group chats as displayed markers (XEP-0333): the bot's marker when the
visitor has seen agents' lines, and agents' markers turned into the ids the backend reports.

In a group chat a marker names a line by the id the room gave it (its stanza-id, XEP-0359),
which is the id this backend already reports for every line, the bot's (what `post_text`
returns) and the agents' (`AgentMessage.event_id`). Some clients name a line by the id its
sender gave it instead (its origin-id, or the message id); those are mapped back here. A room
that gives no stanza-ids has lines named "{room}/{nick}#{message id}", and a marker then
names the message id with the occupant as its `sender` (as Conversations writes it).
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Protocol

from slixmpp import JID, ClientXMPP

from bridge.backends.base import BackendError, BackendUnavailable
from bridge.backends.xmpp.stanzas import DISPLAYED, STORE_HINT
from bridge.core.models import RoomRef

log = logging.getLogger(__name__)

# Agents' lines remembered (per room, newest last) for the order of markers and for clients
# that name a line by the id they gave it: markers name recent lines.
LINE_MEMORY = 10_000

# Joins the room if the bot is not in it (rooms.Rooms.ensure_joined).
EnsureJoined = Callable[[RoomRef], Awaitable[object]]


def displayed_marker(xml: ET.Element) -> tuple[str, str | None] | None:
    """The id a displayed marker names and its `sender` (the occupant whose line it is, when
    the client had no stanza-id for it); None for a stanza that is no such marker."""
    marker = xml.find(DISPLAYED)
    marker_id = marker.get("id") if marker is not None else None
    if marker is None or not marker_id:
        return None
    return marker_id, marker.get("sender") or None


def marker_target(room_jid: str, line_id: str) -> tuple[str, str | None]:
    """How a displayed marker names the line with this event id: the room's stanza-id as it
    is; for a line of a room without stanza-ids ("{room}/{nick}#{id}"), its message id and
    the occupant who sent it."""
    prefix = f"{room_jid}/"
    if line_id.startswith(prefix) and "#" in line_id[len(prefix):]:
        sender, _, message_id = line_id.rpartition("#")
        return message_id, sender
    return line_id, None


def displayed_element(marker_id: str, sender: str | None = None) -> ET.Element:
    attrs = {"id": marker_id} | ({"sender": sender} if sender else {})
    return ET.Element(DISPLAYED, attrs)


class ReadMarks:
    """What the markers need to know of the lines: agents' lines in the order they came, who
    wrote them and the ids their clients gave them, and the last line the bot marked in each
    room. Corrections and retractions (corrections.py) name lines by the same ids."""

    def __init__(self, memory: int = LINE_MEMORY) -> None:
        self._memory = memory
        # Oldest first; an OrderedDict forgets its oldest in constant time, where a dict
        # would scan past every slot it freed before.
        # (room, id) -> (place, sender)
        self._order: OrderedDict[tuple[str, str], tuple[int, str | None]] = OrderedDict()
        # (room, client id) -> (id, sender)
        self._by_sent: OrderedDict[tuple[str, str], tuple[str, str | None]] = OrderedDict()
        self._count = 0
        self._marked: dict[str, str] = {}  # room -> the last line the bot marked displayed

    def note_line(self, room_jid: str, line_id: str, sent_id: str | None,
                  sender: str | None = None) -> None:
        """An agent's line as the hub gets it (live, held or from the archive)."""
        self._count += 1
        self._order[(room_jid, line_id)] = (self._count, sender)
        if len(self._order) > self._memory:
            self._order.popitem(last=False)
        if sent_id:
            self._by_sent[(room_jid, sent_id)] = (line_id, sender)
            if len(self._by_sent) > self._memory:
                self._by_sent.popitem(last=False)

    def sent(self, room_jid: str, sent_id: str) -> tuple[str, str | None] | None:
        """The event id and the sender of the line whose client gave it `sent_id`."""
        return self._by_sent.get((room_jid, sent_id))

    def sent_by(self, room_jid: str, sender: str, sent_id: str) -> str | None:
        """The event id of `sender`'s line their client gave `sent_id`; None when unknown
        (or another's: a correction only ever names the sender's own)."""
        known = self._by_sent.get((room_jid, sent_id))
        return known[0] if known is not None and known[1] == sender else None

    def owner(self, room_jid: str, line_id: str) -> str | None:
        """Who wrote the agent's line with this event id; None when it is not remembered."""
        known = self._order.get((room_jid, line_id))
        return known[1] if known is not None else None

    def line_for(self, room_jid: str, marker_id: str, sender: str | None,
                 delivered: dict[str, str]) -> str:
        """The event id of the line a marker names: one of our lines by the id we gave it
        (`delivered`: our id -> the room's), an agent's line by the id their client gave it,
        a line of a room without stanza-ids by its sender and id; else the room's id as
        named."""
        ours = delivered.get(marker_id)
        if ours is not None:
            return ours
        theirs = self._by_sent.get((room_jid, marker_id))
        if theirs is not None:
            return theirs[0]
        return f"{sender}#{marker_id}" if sender else marker_id

    def forward(self, room_jid: str, line_id: str) -> bool:
        """Whether the bot's marker should move to this line: not the one it is on, and not
        a line before it (when both are known; after a restart the hub's word is taken).
        True also records it as marked."""
        last = self._marked.get(room_jid)
        if last == line_id:
            return False
        if last is not None:
            position = self._order.get((room_jid, line_id))
            previous = self._order.get((room_jid, last))
            if position is not None and previous is not None and position[0] < previous[0]:
                return False
        self._marked[room_jid] = line_id
        return True


class ClientLink(Protocol):
    """The one thing the markers need of the connection: its current client."""

    @property
    def client(self) -> ClientXMPP: ...


class Markers:
    """Sends the bot's displayed markers."""

    def __init__(self, link: ClientLink, read_marks: ReadMarks, ensure_joined: EnsureJoined
                 ) -> None:
        self._link = link
        self._read_marks = read_marks
        self._ensure_joined = ensure_joined

    async def mark_read(self, room: RoomRef, line_id: str) -> None:
        """The visitor has seen the agents' lines up to `line_id`: a displayed marker for it
        in the group chat, archived (the store hint) so that clients joining later see it
        too. A room that refuses the bot is only logged; the room's error, should it refuse
        the marker, is logged by the inbound side."""
        try:
            await self._ensure_joined(room)
        except BackendUnavailable:
            raise
        except BackendError as exc:
            log.warning("xmpp: %s: no read marker for %s: %s", room, line_id, exc)
            return
        if not self._read_marks.forward(room, line_id):
            log.debug("xmpp: %s: read marker already at or after %s", room, line_id)
            return
        marker_id, sender = marker_target(room, line_id)
        message = self._link.client.make_message(mto=JID(room), mtype="groupchat")
        message.xml.append(displayed_element(marker_id, sender))
        message.xml.append(ET.Element(STORE_HINT))
        message.send()
        log.debug("xmpp: %s: read marker at %s", room, line_id)
