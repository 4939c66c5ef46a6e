"""What reaches the bot: group chat lines, chat states, presence, direct messages, archive
results, turned into the hub's events.

Each rule lives once, on the parsed element: the fast path (fastpath.py) calls the same
methods for the stanzas it takes as slixmpp's handlers, registered here, for the rest.
"""

from __future__ import annotations

import asyncio
import logging
import time
import xml.etree.ElementTree as ET
from collections import OrderedDict
from collections.abc import Callable

from slixmpp import JID, ClientXMPP, Message, Presence
from slixmpp.xmlstream import StanzaBase
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from bridge.backends.base import (
    AgentFile,
    AgentMessage,
    AgentPresence,
    AgentRead,
    AgentTyping,
    BackendUnavailable,
    InboundEvent,
    MemberJoined,
    MemberLeft,
)
from bridge.backends.xmpp.archive import RESULT, ArchivedLine, ArchivePage, archived_line
from bridge.backends.xmpp.connection import Connection
from bridge.backends.xmpp.corrections import Corrections, is_retraction
from bridge.backends.xmpp.departures import Departures
from bridge.backends.xmpp.drafts import PREVIEW_KEY
from bridge.backends.xmpp.markers import ReadMarks, displayed_marker
from bridge.backends.xmpp.oob import name_from_url, oob_url
from bridge.backends.xmpp.stanzas import (
    BODY,
    DELAY,
    DISPLAYED,
    MESSAGE,
    SUBJECT,
    chat_state,
    delay_stamp,
    event_id,
    history_address,
    is_correction,
    reply_id,
    sent_key,
)
from bridge.backends.xmpp.state import Room
from bridge.core.models import RoomRef
from bridge.core.protocol import clean_text

log = logging.getLogger(__name__)

BUSY_SHOWS = {"away", "xa", "dnd"}
# Agents' lines whose client ids are remembered to spot a client sending one again.
RESEND_MEMORY = 10_000


class Resends:
    """Lines an agent's client sent twice. A client whose stream broke before the server
    acknowledged a message sends it again with the same id, and the group chat, which does
    not deduplicate, gives the copy an archive id of its own. A copy is a line whose
    client id (per room and sender) came before with another archive id; the same archive
    id again is the same stanza read twice (live and from the archive), which the store
    deduplicates, and must pass: its first reading may not have been stored."""

    def __init__(self, memory: int = RESEND_MEMORY) -> None:
        self._memory = memory
        self._first: OrderedDict[tuple[str, str, str], str] = OrderedDict()

    def is_resend(self, room: str, sender: str, sent_id: str | None, line_id: str) -> bool:
        if sent_id is None:
            return False
        key = (room, sender, sent_id)
        first = self._first.get(key)
        if first is None:
            self._first[key] = line_id
            if len(self._first) > self._memory:
                self._first.popitem(last=False)
            return False
        return first != line_id


class Receiver:
    """Turns stanzas into events for the hub, and notes our own lines coming back."""

    def __init__(self, link: Connection, bot_jid: str, agents: set[str],
                 queue_event: Callable[[InboundEvent], None], departures: Departures,
                 is_upload_url: Callable[[str], bool] = lambda _url: False,
                 read_marks: ReadMarks | None = None) -> None:
        self._link = link
        self._is_upload_url = is_upload_url
        self._bot_jid = bot_jid  # bare
        self._agents = agents
        self._queue_event = queue_event
        self._departures = departures
        self._resends = Resends()
        self._read_marks = read_marks if read_marks is not None else ReadMarks()
        self.rooms: dict[str, Room] = {}
        self._edits = Corrections(self.rooms, bot_jid, self._read_marks, queue_event)
        self.archive_pages: dict[str, ArchivePage] = {}  # query id -> page being read
        self.reflections: dict[str, asyncio.Future[str]] = {}  # our message id -> waiter

    def register(self, client: ClientXMPP) -> None:
        for event, handler in (("groupchat_message", self._on_groupchat_message),
                               ("chatstate", self._on_chat_state),
                               ("message", self._on_direct_message),
                               ("groupchat_presence", self._on_groupchat_presence),
                               ("presence_subscribe", self._on_subscribe_request),
                               ("changed_status", self._on_changed_status),
                               ("message_error", self._on_message_error)):
            client.add_event_handler(event, handler)
        # The fast path takes these first; with it off, they come this way.
        client.register_handler(Callback(
            "livechat archive results", MatchXPath(f"{MESSAGE}/{RESULT}"),
            lambda message: self.archive_result(message.xml)))
        # Markers have no body, so slixmpp's group chat events pass them by.
        client.register_handler(Callback(
            "livechat read markers", MatchXPath(f"{MESSAGE}/{DISPLAYED}"), self._on_marker))
        self._edits.register(client, self.room_retraction)

    def fail_reflections(self) -> None:
        """The stream is gone: whoever waits for a line to come back stops waiting."""
        for future in self.reflections.values():
            if not future.done():
                future.set_exception(BackendUnavailable("xmpp: disconnected"))

    # -- group chat lines and chat states ------------------------------------------------

    def takes_from(self, room_jid: str, nick: str) -> bool:
        state = self.rooms.get(room_jid)
        return state is not None and state.joined \
            and (nick == state.nick or nick in state.real_jids)

    def room_line(self, xml: ET.Element, room_jid: str, nick: str) -> None:
        state = self.rooms.get(room_jid)
        if state is not None and state.catching_up:
            state.held.append((xml, nick))
            return
        if is_retraction(xml):  # with a fallback text for clients that know none
            self.room_retraction(xml, room_jid, nick)
            return
        sender = self._occupant_address(room_jid, nick, xml)
        if sender is None:
            return
        text = clean_text(xml.findtext(BODY) or "")
        if not text or xml.find(SUBJECT) is not None:
            return
        line_id = event_id(room_jid, xml)
        sent_id = sent_key(xml)
        if self._resends.is_resend(room_jid, sender, sent_id, line_id):
            log.info("xmpp: %s: %s sent %s again; relayed once", room_jid, sender, line_id)
            return
        self._read_marks.note_line(room_jid, line_id, sent_id, sender)
        if state is not None:
            state.latest_line = line_id
        stamp = delay_stamp(xml)  # history
        self._queue_event(self._line_event(RoomRef(room_jid), sender, nick, xml, text, line_id,
                                           stamp if stamp is not None else time.time()))

    def _line_event(self, room: RoomRef, sender: str, nick: str, xml: ET.Element, text: str,
                    line_id: str, ts: float) -> AgentMessage | AgentFile:
        """An agent's line (live, history or archive): a file when it carries the URL
        (XEP-0066) of a file on the upload service, else its text."""
        url = oob_url(xml)
        if url is not None and self._is_upload_url(url):
            return AgentFile(room=room, sender=sender, sender_name=nick,
                             name=name_from_url(url), url=url, mimetype="", size=None,
                             event_id=line_id, ts=ts)
        edited = is_correction(xml)  # XEP-0308
        return AgentMessage(room=room, sender=sender, sender_name=nick, text=text,
                            event_id=line_id, ts=ts, edited=edited,
                            replaces=self._edits.replaces(room, sender, xml, line_id)
                            if edited else None, reply_to=reply_id(xml))

    def room_marker(self, xml: ET.Element, room_jid: str, nick: str) -> None:
        """A displayed marker (XEP-0333) from an occupant: the agent's client has shown the
        room up to the line it names. Only live ones count (history and the archive replay
        old ones), and not the bot's own coming back."""
        state = self.rooms.get(room_jid)
        if state is None or nick == state.nick or xml.find(BODY) is not None \
                or xml.find(DELAY) is not None:
            return
        if state.catching_up:  # after the archive's lines, or the line it names is unknown
            state.held.append((xml, nick))
            return
        marker = displayed_marker(xml)
        sender = state.real_jids.get(nick)
        if marker is None or sender is None or sender == self._bot_jid:
            return
        line_id = state.previews.get(marker[0]) \
            or self._read_marks.line_for(room_jid, *marker, state.delivered)
        log.debug("xmpp: %s: %s displayed up to %s", room_jid, sender, line_id)
        self._queue_event(AgentRead(RoomRef(room_jid), sender, line_id))

    def room_retraction(self, xml: ET.Element, room_jid: str, nick: str) -> None:
        """A retraction (XEP-0424) or a moderation (XEP-0425), live or from the join
        history; after the archive's lines, like the lines it may name."""
        state = self.rooms.get(room_jid)
        if state is not None and state.catching_up:
            state.held.append((xml, nick))
            return
        history = history_address(xml) if xml.find(DELAY) is not None else None
        self._edits.retraction(xml, room_jid, nick, history)

    def release_held(self, xml: ET.Element, room_jid: str, nick: str) -> None:
        """A live stanza held while the archive was read: a line, a retraction or a
        marker."""
        if xml.find(BODY) is not None:
            self.room_line(xml, room_jid, nick)
        elif is_retraction(xml):
            self.room_retraction(xml, room_jid, nick)
        else:
            self.room_marker(xml, room_jid, nick)

    def room_chat_state(self, xml: ET.Element, room_jid: str, nick: str) -> None:
        state = chat_state(xml)
        if state is None or xml.find(BODY) is not None:
            return  # a line with a state attached: the line itself says enough
        room = self.rooms.get(room_jid)
        if room is None or nick == room.nick:
            return  # ours coming back: no line, nothing to note
        sender = self._occupant_address(room_jid, nick, xml)
        if sender is not None:
            self._queue_event(AgentTyping(RoomRef(room_jid), sender, nick, state == "composing"))

    def _occupant_address(self, room_jid: str, nick: str, xml: ET.Element) -> str | None:
        """The address of the agent behind `nick` in one of our rooms; None for our own line
        coming back (noted as delivered) and for anyone whose address the room did not give."""
        state = self.rooms.get(room_jid)
        if state is None:
            return None
        if nick == state.nick:
            self.note_reflection(state, xml, event_id(room_jid, xml))
            return None
        sender = state.real_jids.get(nick)
        if sender is None and xml.find(DELAY) is not None:
            sender = history_address(xml)  # join history: the agent may have left since
        if not nick or sender is None:
            log.info("xmpp: %s: line from %r with no known address; not relayed", room_jid, nick)
            return None
        return sender

    def note_reflection(self, state: Room, xml: ET.Element, reflected_id: str) -> None:
        """Our own line came back from the room (live, in the join history or the
        archive)."""
        key = sent_key(xml)
        if not key:
            return
        state.note_delivered(key, reflected_id)
        if key.startswith(PREVIEW_KEY):
            state.note_preview(reflected_id)
        else:
            state.latest_line = reflected_id
        future = self.reflections.get(key)
        if future is not None and not future.done():
            future.set_result(reflected_id)

    # -- the archive ---------------------------------------------------------------------

    def archive_result(self, xml: ET.Element) -> bool:
        """Collect a line of a room's archive we asked for (only the room itself may
        answer); False when the stanza is none."""
        result = xml.find(RESULT)
        page = self.archive_pages.get(result.get("queryid", "")) if result is not None \
            else None
        if page is None or xml.get("from") != page.room:
            return False
        line = archived_line(xml)
        if line is not None:
            page.lines.append(line)
        return True

    def archived_line(self, room: RoomRef, state: Room, line: ArchivedLine) -> None:
        message = line.message
        nick = (message.get("from") or "").partition("/")[2]
        if is_retraction(message):
            self._edits.retraction(message, room, nick, line.real_jid)
            return
        text = clean_text(message.findtext(BODY) or "")
        if nick == state.nick or line.real_jid == self._bot_jid:
            if text:  # not a marker of ours: those have ids that are no line's
                self.note_reflection(state, message, line.archive_id)
            return
        sender = line.real_jid or state.real_jids.get(nick)
        if sender is None or not text or message.find(SUBJECT) is not None:
            return
        self._read_marks.note_line(room, line.archive_id, sent_key(message), sender)
        state.latest_line = line.archive_id
        self._queue_event(self._line_event(
            room, sender, nick, message, text, line.archive_id,
            line.stamp if line.stamp is not None else time.time()))

    # -- slixmpp's handlers --------------------------------------------------------------

    def _on_groupchat_message(self, message: Message) -> None:
        """Group chat lines the fast path left: history on a join, and everything when it
        is off."""
        address = message["from"]
        self.room_line(message.xml, address.bare, address.resource)

    def _on_marker(self, message: StanzaBase) -> None:
        """Markers the fast path left (history, and everything when it is off)."""
        if message.xml.get("type") == "groupchat":  # in a direct chat they are about nothing
            address = message["from"]
            self.room_marker(message.xml, address.bare, address.resource)

    def _on_chat_state(self, message: Message) -> None:
        """Chat states the fast path left."""
        if message.xml.get("type") == "groupchat":  # direct ones are not about a chat
            address = message["from"]
            self.room_chat_state(message.xml, address.bare, address.resource)

    def _on_direct_message(self, message: Message) -> None:
        """An agent writing to the bot directly: commands about themselves (!break, ...)."""
        if message["type"] not in ("chat", "normal") or not message["body"]:
            return
        sender = message["from"].bare
        if sender not in self._agents:
            return  # strangers get nothing, not even an error
        self._queue_event(AgentMessage(
            room=RoomRef(sender), sender=sender, sender_name=message["from"].user,
            text=clean_text(str(message["body"])), event_id=f"{sender}#{message['id']}",
            ts=time.time(),
        ))

    def _on_groupchat_presence(self, presence: Presence) -> None:
        room_jid = presence["from"].bare
        state = self.rooms.get(room_jid)
        if state is None:
            return
        nick = presence["from"].resource
        real = presence["muc"]["jid"]
        codes = presence["muc"]["status_codes"]
        if nick == state.nick or 110 in codes:
            if presence["type"] == "unavailable":
                # Kicked, or the room was destroyed: join again before the next line.
                log.warning("xmpp: the bot left %s (codes %s)", room_jid, sorted(codes))
                state.joined = False
            return
        if not real:
            return
        address = real.bare
        if presence["type"] == "unavailable":
            state.real_jids.pop(nick, None)
            self._departures.left(room_jid, str(real), lambda: self._queue_event(MemberLeft(
                RoomRef(room_jid), address, nick, f"left:{room_jid}/{nick}:{time.time():.6f}")))
            return
        if state.real_jids.get(nick) == address:
            return  # a status change, not a join
        state.real_jids[nick] = address
        if self._departures.came_back(room_jid, address):
            return  # back within the grace: for the hub they never left
        self._queue_event(MemberJoined(RoomRef(room_jid), address, nick,
                                       f"joined:{room_jid}/{nick}:{time.time():.6f}"))

    def online(self, full_jid: str) -> bool:
        """Whether this client of an agent is connected, as the agent's presence says."""
        jid = JID(full_jid)
        try:
            resources = self._link.client.client_roster[jid.bare].resources
        except BackendUnavailable:  # the bot itself is offline: nothing is known
            return False
        return jid.resource in resources

    def _on_subscribe_request(self, presence: Presence) -> None:
        asker = presence["from"].bare
        if asker in self._agents:
            self._link.client.send_presence(pto=asker, ptype="subscribed")
        else:
            self._link.client.send_presence(pto=asker, ptype="unsubscribed")

    def _on_changed_status(self, presence: Presence) -> None:
        address = presence["from"].bare
        if address not in self._agents:
            return
        # An agent may be online on several devices: available if any of them is.
        resources = self._link.client.client_roster[address].resources
        available = any(r.get("show", "") not in BUSY_SHOWS for r in resources.values())
        self._queue_event(AgentPresence(address, available))

    def _on_message_error(self, message: Message) -> None:
        log.warning("xmpp: error from %s: %s", message["from"], message["error"]["condition"])
