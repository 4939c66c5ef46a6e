"""The XMPP backend: the connection, the rooms, the inbound side and the fast path tied
together behind the `Backend` protocol, and the lines the bot sends."""

from __future__ import annotations

import asyncio
import logging
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator

from slixmpp import JID, ClientXMPP

from bridge.backends.base import (
    BackendState,
    BackendUnavailable,
    CatchUpSince,
    Connected,
    HandlingDeferred,
    InboundCallback,
    InboundEvent,
    OutgoingFile,
    PostedLine,
    RoomSpec,
)
from bridge.backends.xmpp.adhoc import AdhocCommands, CommandDesk
from bridge.backends.xmpp.connection import Connection, SessionHooks, build_client
from bridge.backends.xmpp.corrections import RETRACTION_FALLBACK, retract_elements
from bridge.backends.xmpp.departures import Departures
from bridge.backends.xmpp.drafts import DraftPreviews
from bridge.backends.xmpp.fastpath import BotClient, FastPath
from bridge.backends.xmpp.files import Files, MemoryState
from bridge.backends.xmpp.inbound import Receiver
from bridge.backends.xmpp.markers import Markers, ReadMarks
from bridge.backends.xmpp.oob import oob_element
from bridge.backends.xmpp.rooms import Rooms
from bridge.backends.xmpp.stanzas import MARKABLE
from bridge.config import XmppConfig
from bridge.core.models import RoomRef
from bridge.tasks import TaskGroup

log = logging.getLogger(__name__)

REFLECTION_TIMEOUT_S = 10.0
# An event the hub cannot take yet (its store refuses writes) is offered again this often.
DEFERRED_RETRY_S = (0.5, 5.0)


class XmppBackend:
    """Carries conversations into group chats through one bot account."""

    name = "xmpp"
    presence_default = False

    def __init__(self, config: XmppConfig, agents: tuple[str, ...],
                 catch_up_since: CatchUpSince | None = None,
                 state: BackendState | None = None) -> None:
        self.config = config
        self.jid = JID(config.jid)
        self.agents = {JID(a).bare for a in agents}
        self._inbound: InboundCallback | None = None
        self._events: asyncio.Queue[InboundEvent] = asyncio.Queue()
        self._tasks = TaskGroup()
        self._link = Connection(config, SessionHooks(started=self._on_session_started,
                                                     resumed=self._on_session_resumed,
                                                     lost=self._on_session_lost), self._tasks)
        departures = Departures(lambda full_jid: self._receiver.online(full_jid), self._tasks,
                                config.rejoin_grace_seconds)
        # Without a store (tests, tools) what was uploaded is forgotten on restart.
        self._files = Files(self._link, state or MemoryState(), config, self._tasks)
        read_marks = ReadMarks()
        self._receiver = Receiver(self._link, self.jid.bare, self.agents, self._queue_event,
                                  departures, self._files.is_upload_url, read_marks)
        self._rooms = Rooms(self._link, self._receiver, config.muc_service,
                            catch_up_since or (lambda _room: None), self._tasks)
        self._markers = Markers(self._link, read_marks, self._rooms.ensure_joined)
        self._fast: FastPath | None = None
        self._drafts = DraftPreviews(self._link, self._rooms.rooms)
        self._sent_in_session: dict[str, int] = {}
        self._direct_sent: set[str] = set()  # keys of post_direct lines handed to the stream
        self._adhoc = AdhocCommands()

    @property
    def sessions_started(self) -> int:
        """New sessions so far; a stream resumed by stream management is not one."""
        return self._link.session_number

    @property
    def _client(self) -> ClientXMPP | None:
        """The running client (None before start and after stop)."""
        return self._link.client if self._link.started else None

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self, inbound: InboundCallback) -> None:
        self._inbound = inbound
        self._wire(build_client(self.config))
        self._tasks.spawn(self._deliver_events(), name="xmpp-inbound")
        if not await self._link.start():
            await self.stop()
            raise self._link.failure()

    def _wire(self, client: BotClient) -> None:
        """Every part's handlers on the client, the fast path first to see a stanza."""
        self._fast = FastPath(client, self._receiver)
        self._receiver.register(client)
        self._rooms.register(client)
        self._adhoc.register(client)
        self._link.attach(client)

    def serve_forms(self, desk: CommandDesk) -> None:
        """Agents' commands as ad-hoc commands (XEP-0050), answered by `desk`."""
        self._adhoc.serve(desk)

    async def stop(self) -> None:
        if self._fast is not None:
            self._fast.close()
        await self._link.stop()
        await self._tasks.close()
        await self._files.close()

    def _on_session_started(self, number: int) -> None:
        """A new session (not a resumed one): presence, roster, and every room again."""
        client = self._link.client
        client.send_presence()
        for agent in self.agents:
            if client.client_roster[agent]["subscription"] not in ("both", "to"):
                client.send_presence_subscription(pto=agent, ptype="subscribe")
        if number > 1:
            self._queue_event(Connected())
        self._files.session_started()
        self._rooms.rejoin_all()

    def _on_session_resumed(self) -> None:
        # Stream management resumed the old stream: rooms and unacked stanzas are intact.
        self._queue_event(Connected())

    def _on_session_lost(self) -> None:
        self._rooms.left_all()
        self._receiver.fail_reflections()
        for state in self._rooms.rooms.values():  # retractions waiting to come back
            for waiter in state.awaited.values():
                if not waiter.done():
                    waiter.set_exception(BackendUnavailable("xmpp: disconnected"))

    # -- rooms ---------------------------------------------------------------------------

    async def attach_rooms(self, rooms: dict[RoomRef, RoomSpec]) -> None:
        self._rooms.attach(rooms)

    async def open_room(self, spec: RoomSpec) -> RoomRef:
        return await self._rooms.open(spec)

    async def invite(self, room: RoomRef, address: str) -> None:
        await self._rooms.invite(room, address)

    async def remove(self, room: RoomRef, address: str) -> None:
        """No longer a member, and out of the room if present (members-only: for good)."""
        await self._rooms.set_affiliation(room, address, "none")

    # -- outbound ------------------------------------------------------------------------

    async def post_text(self, room: RoomRef, text: str, *, key: str) -> str:
        return await self._post(room, text, key)

    async def post_notice(self, room: RoomRef, text: str, *, key: str) -> str:
        if room in self.agents:  # a direct chat with an agent, not a group chat
            await self._link.wait_online()
            return self._direct(room, text)
        # Group chats have no notice type: a marked line is the convention clients show.
        return await self._post(room, f"ℹ️ {text}", key)

    async def post_direct(self, address: str, text: str, *, key: str) -> str:
        # A chat message has no reflection to wait for: once handed to the stream (which
        # stream management carries over a reconnect), a retry must not send it again.
        if key not in self._direct_sent:
            await self._link.wait_online()
            message = self._link.client.make_message(mto=JID(address), mbody=text,
                                                     mtype="chat")
            message["id"] = key
            message["origin_id"]["id"] = key
            message.send()
            self._direct_sent.add(key)
        return key

    def _direct(self, address: str, text: str) -> str:
        """A chat message to one agent (the replies of commands sent to the bot directly)."""
        message = self._link.client.make_message(mto=JID(address), mbody=text, mtype="chat")
        message.send()
        return str(message["id"])

    async def post_file(self, room: RoomRef, file: OutgoingFile, *, key: str) -> str:
        """The file's URL as a line with an OOB element: uploaded to the server's upload
        service, or the bridge's link (docs/files.md). A line the room already reflected
        is neither uploaded nor sent again."""
        state = await self._rooms.ensure_joined(room)
        if key in state.delivered:
            return state.delivered[key]
        url = await self._files.url_for(room, file, key)
        return await self._post(room, url, key, oob=url)

    def fetch_file(self, url: str, max_bytes: int) -> AsyncIterator[bytes]:
        return self._files.fetch(url, max_bytes)

    async def edit_line(self, room: RoomRef, line: PostedLine, text: str, *, key: str
                        ) -> None:
        """A correction (XEP-0308) naming the line by the id the bot gave it, as clients
        match corrections; delivered, like a line, once the room reflects it."""
        await self._post(room, text, key, replaces=line.key)

    async def retract_line(self, room: RoomRef, line: PostedLine, *, key: str) -> None:
        """A retraction (XEP-0424) with its fallback text; delivered once the room reflects
        it (corrections.py notes it), sent again only in a new session that did not see
        it come back."""
        state = await self._rooms.ensure_joined(room)
        if key in state.delivered:
            return
        waiter = state.awaited.get(key)
        if waiter is None or waiter.done():
            waiter = state.awaited[key] = asyncio.get_running_loop().create_future()
        session = self._link.session_number
        if self._sent_in_session.get(key) != session:
            self._sent_in_session[key] = session
            message = self._link.client.make_message(mto=JID(room), mbody=RETRACTION_FALLBACK,
                                                     mtype="groupchat")
            message["id"] = key
            message["origin_id"]["id"] = key
            # A room without ids of its own: the line's event id is "{from}#{our id}".
            target = line.key if line.event_id.endswith(f"#{line.key}") else line.event_id
            for element in retract_elements(target, line.key):
                message.append(element)
            message.send()
        try:
            await asyncio.wait_for(asyncio.shield(waiter), REFLECTION_TIMEOUT_S)
        except TimeoutError:
            raise BackendUnavailable(f"xmpp: {room} did not reflect {key}") from None
        finally:
            if waiter.done():
                state.awaited.pop(key, None)
                self._sent_in_session.pop(key, None)

    async def _post(self, room: RoomRef, text: str, key: str, *, oob: str | None = None,
                    replaces: str | None = None) -> str:
        state = await self._rooms.ensure_joined(room)
        if key in state.delivered:
            return state.delivered[key]
        reflections = self._receiver.reflections
        reflected = reflections.setdefault(key, asyncio.get_running_loop().create_future())
        # Within one session a sent line is not sent again, only waited for: the stream
        # (with stream management) delivers it or the session ends. After a new session,
        # the rejoin history has told us whether it arrived.
        session = self._link.session_number
        if self._sent_in_session.get(key) != session:
            self._sent_in_session[key] = session
            self._send_line(room, text, key, oob, replaces)
        try:
            return await asyncio.wait_for(asyncio.shield(reflected), REFLECTION_TIMEOUT_S)
        except TimeoutError:
            raise BackendUnavailable(f"xmpp: {room} did not reflect {key}") from None
        finally:
            if reflected.done():
                reflections.pop(key, None)
                self._sent_in_session.pop(key, None)

    def _send_line(self, room: RoomRef, text: str, key: str, oob: str | None = None,
                   replaces: str | None = None) -> None:
        """Send a group chat line whose id (and origin-id, XEP-0359) is `key`: written at
        once by the fast path when it can (building a stanza object, the send queue's task
        hop, its filters and its serializer cost a few tenths of a millisecond a line),
        otherwise through slixmpp's send queue; `replaces`: a correction of the line with
        that id (always through the queue: the fast path writes plain lines only)."""
        if replaces is None and self._fast is not None \
                and self._fast.send_line(room, key, text, oob):
            return
        message = self._link.client.make_message(mto=JID(room), mbody=text, mtype="groupchat")
        message["id"] = key
        if oob is not None:
            message.append(oob_element(oob))
        if replaces is not None:
            message["replace"]["id"] = replaces
        message["origin_id"]["id"] = key
        message.append(ET.Element(MARKABLE))
        message.send()

    async def show_draft(self, room: RoomRef, text: str) -> None:
        self._drafts.show(room, text)

    async def set_typing(self, room: RoomRef, active: bool) -> None:
        state = self._rooms.rooms.get(room)
        if state is None or not state.joined:
            return
        message = self._link.client.make_message(mto=JID(room), mtype="groupchat")
        message["chat_state"] = "composing" if active else "active"
        message.send()

    async def mark_read(self, room: RoomRef, event_id: str) -> None:
        await self._markers.mark_read(room, event_id)

    # -- inbound -------------------------------------------------------------------------

    def _queue_event(self, event: InboundEvent) -> None:
        self._events.put_nowait(event)

    async def _deliver_events(self) -> None:
        """Hand events to the hub one at a time, in the order the stream delivered them; an
        event the hub defers is offered again (and the ones after it wait) until it takes
        it."""
        while True:
            event = await self._events.get()
            pause = DEFERRED_RETRY_S[0]
            while self._inbound is not None:
                try:
                    await self._inbound(event)
                except HandlingDeferred:
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, DEFERRED_RETRY_S[1])
                    continue
                except Exception:
                    log.exception("xmpp: inbound handler failed for %s", type(event).__name__)
                break
