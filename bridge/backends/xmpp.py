"""XMPP backend on slixmpp: one members-only group chat (XEP-0045) per conversation.

The bot joins each conversation's group chat with the nick "{visitor} (visitor)", makes the
queue's agents members and invites them (XEP-0249). Typing travels as chat states (XEP-0085),
availability as presence. No slixmpp type or exception leaves this module.

XMPP has no server-side idempotency for messages, so a line counts as delivered only when
the group chat reflects it back with our id. After a restart or a new stream the bot reads
the room's archive (XEP-0313) from where the store says it left off: the lines agents wrote
meanwhile reach the hub, and our own lines found there are not sent again. A service
without an archive gets the join history since that time instead (docs/xmpp.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import ssl
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from slixmpp import JID, ClientXMPP, Message, Presence
from slixmpp.exceptions import IqError, IqTimeout, PresenceError
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXMLMask

from bridge.backends.base import (
    AgentMessage,
    AgentPresence,
    AgentTyping,
    BackendError,
    BackendUnavailable,
    CatchUpSince,
    Connected,
    HandlingDeferred,
    InboundCallback,
    InboundEvent,
    MemberJoined,
    MemberLeft,
    RoomGone,
    RoomSpec,
)
from bridge.backends.xmpp_archive import (
    MAM,
    RESULT,
    ArchivedLine,
    ArchivePage,
    archive_query,
    archived_line,
    page_end,
    parse_stamp,
)
from bridge.config import XmppConfig
from bridge.core.models import RoomRef
from bridge.core.protocol import clean_text
from bridge.startup import xmpp_connect_problem
from bridge.tasks import TaskGroup, backoff_delays

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 15.0
REFLECTION_TIMEOUT_S = 10.0
JOIN_TIMEOUT_S = 15.0
# Read back this much before the point the store gives: the server's clock stamps the
# archive, the bridge's the store.
CATCH_UP_MARGIN_S = 120.0
ARCHIVE_PAGE = 100
ARCHIVE_MAX_PAGES = 100
ARCHIVE_TIMEOUT_S = 30.0
# An event the hub cannot take yet (its store refuses writes) is offered again this often.
DEFERRED_RETRY_S = (0.5, 5.0)
BUSY_SHOWS = {"away", "xa", "dnd"}
# A room that was destroyed (Prosody keeps a tombstone), never existed, or banned the bot.
ROOM_GONE_CONDITIONS = {"gone", "item-not-found", "forbidden", "registration-required"}
# Ask the server to acknowledge our stanzas (XEP-0198 <r/>) after this many, not after every
# 5th (slixmpp's default): an ack round trip costs both sides work while a line is in flight.
# Delivery never rests on these acks (a line counts once the room reflects it); they only
# bound what a resumed stream sends again.
SM_ACK_WINDOW = 50
# Prosody asks for an ack after every stanza it sends us. The answer waits this long, so it
# never competes with the line it came with (the server needs it within tens of seconds);
# one answer covers every request made meanwhile.
SM_ACK_DELAY_S = 0.005
_SM_MAX_SEQ = 2**32
_XML_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "'": "&apos;",
                              '"': "&quot;"})
# Read from the parsed element directly: building slixmpp's stanza objects and matching them
# against its handlers is most of what a line would cost in slixmpp.
_MESSAGE = "{jabber:client}message"
_ACK_REQUEST = "{urn:xmpp:sm:3}r"
_BODY = "{jabber:client}body"
_SUBJECT = "{jabber:client}subject"
_DELAY = "{urn:xmpp:delay}delay"
_STANZA_ID = "{urn:xmpp:sid:0}stanza-id"
_ORIGIN_ID = "{urn:xmpp:sid:0}origin-id"
_REPLACE = "{urn:xmpp:message-correct:0}replace"
_CHAT_STATES = tuple((f"{{http://jabber.org/protocol/chatstates}}{state}", state)
                     for state in ("composing", "active", "paused", "inactive", "gone"))


@dataclass
class _Room:
    """What the bot knows of one group chat it speaks in."""

    spec: RoomSpec
    nick: str = ""  # as the room confirmed it
    joined: bool = False
    delivered: dict[str, str] = field(default_factory=dict)  # our message id -> event id
    real_jids: dict[str, str] = field(default_factory=dict)  # occupant nick -> bare JID
    line_head: str = ""  # our group chat lines up to the id, built once per room
    # While the archive is read after a join, live lines wait here to come after it.
    catching_up: bool = False
    held: list[tuple[ET.Element, str]] = field(default_factory=list)


class _BotClient(ClientXMPP):
    """slixmpp's client with a way around it for the stanzas of a live line: `fast_path` sees
    each parsed stanza first and returns True for those it handled itself."""

    def __init__(self, jid: str, password: str, fast_path: Callable[[ET.Element], bool]
                 ) -> None:
        super().__init__(jid, password)
        self._fast_path = fast_path

    def _spawn_event(self, xml: ET.Element) -> None:
        if not self._fast_path(xml):
            super()._spawn_event(xml)


class XmppBackend:
    """Carries conversations into group chats through one bot account."""

    name = "xmpp"
    presence_default = False

    def __init__(self, config: XmppConfig, agents: tuple[str, ...],
                 catch_up_since: CatchUpSince | None = None) -> None:
        self.config = config
        self._catch_up_since = catch_up_since or (lambda _room: None)
        self._archive_pages: dict[str, ArchivePage] = {}
        self.jid = JID(config.jid)
        self.agents = {JID(a).bare for a in agents}
        self._client: ClientXMPP | None = None
        self._inbound: InboundCallback | None = None
        self._events: asyncio.Queue[InboundEvent] = asyncio.Queue()
        self._rooms: dict[str, _Room] = {}
        self._reflections: dict[str, asyncio.Future[str]] = {}
        self._session = asyncio.Event()
        self._auth_failed = False
        self._connecting = False
        self._failure: Any = None
        self._attempt_failed = asyncio.Event()
        self._stopping = False
        self._ever_connected = False
        self._tasks = TaskGroup()
        self._join_locks: dict[str, asyncio.Lock] = {}
        self._join_refusals: dict[str, asyncio.Future[str]] = {}
        self._session_number = 0
        self._sent_in_session: dict[str, int] = {}
        self._direct_sent: set[str] = set()  # keys of post_direct lines handed to the stream
        self._reconnecting = False
        self._ack_answer: asyncio.TimerHandle | None = None

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self, inbound: InboundCallback) -> None:
        self._inbound = inbound
        self._client = self._make_client()
        self._tasks.spawn(self._deliver_events(), name="xmpp-inbound")
        if not await self._connect_once():
            await self.stop()
            if self._auth_failed:
                raise BackendError(f"xmpp.password: {self.jid} could not log in (wrong password?)")
            raise BackendUnavailable(xmpp_connect_problem(
                self.config.host, self.config.port, self.jid, self._failure))

    async def stop(self) -> None:
        self._stopping = True
        if self._ack_answer is not None:
            self._ack_answer.cancel()
            self._ack_answer = None
        client = self._client
        if client is not None:
            client.cancel_connection_attempt()
            if client.transport is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.disconnect(wait=1.0), 3.0)
            client.abort()
        await self._tasks.close()
        self._client = None

    def _make_client(self) -> ClientXMPP:
        client = _BotClient(self.config.jid, self.config.password, self._take_live_stanza)
        for plugin in ("xep_0030", "xep_0045", "xep_0085", "xep_0199", "xep_0203",
                       "xep_0249", "xep_0308", "xep_0359"):
            client.register_plugin(plugin)
        client.register_plugin("xep_0198", pconfig={"window": SM_ACK_WINDOW})
        client.plugin["xep_0199"].enable_keepalive(interval=60, timeout=15)
        if self.config.plaintext:
            # Loopback test servers only: no TLS at all, SCRAM over the plain stream.
            client.enable_direct_tls = False
            client.enable_starttls = False
            client.enable_plaintext = True
            client.plugin["feature_mechanisms"].unencrypted_scram = True
        else:
            client.enable_direct_tls = False
            client.enable_plaintext = False
            if self.config.ca_file is not None:
                client.ca_certs = self.config.ca_file
            if not self.config.verify_tls:
                client.ssl_context.check_hostname = False
                client.ssl_context.verify_mode = ssl.CERT_NONE
        # Presence subscriptions: agents only; anyone else is neither asked nor accepted.
        client.auto_authorize = None
        client.auto_subscribe = False
        client.add_event_handler("session_start", self._on_session_start)
        client.add_event_handler("session_resumed", self._on_session_resumed)
        client.add_event_handler("failed_auth", self._on_failed_auth)
        client.add_event_handler("connection_failed", self._on_connection_failed)
        client.add_event_handler("ssl_invalid_chain", self._on_invalid_certificate)
        client.add_event_handler("disconnected", self._on_disconnected)
        client.add_event_handler("groupchat_message", self._on_groupchat_message)
        client.add_event_handler("chatstate", self._on_chat_state)
        client.add_event_handler("message", self._on_direct_message)
        client.add_event_handler("groupchat_presence", self._on_groupchat_presence)
        client.add_event_handler("presence_subscribe", self._on_subscribe_request)
        client.add_event_handler("changed_status", self._on_changed_status)
        client.add_event_handler("message_error", self._on_message_error)
        # Not the "presence_error" event: slixmpp drops it for addresses inside group chats.
        client.register_handler(Callback(
            "livechat room refusals",
            MatchXMLMask("<presence xmlns='jabber:client' type='error'/>"),
            self._on_presence_error,
        ))
        return client

    async def _connect_once(self) -> bool:
        """One connection attempt with a deadline; True once the session has started.

        A refused connection, a certificate that does not verify or a refused password
        ends the attempt at once, with the reason kept for the error message.
        """
        client = self._require_client()
        self._session.clear()
        self._failure = None
        self._attempt_failed = asyncio.Event()
        self._connecting = True
        try:
            if self.config.host:
                client.connect(self.config.host, self.config.port)
            else:
                client.connect()  # the domain's SRV records
            waiters = [asyncio.ensure_future(self._session.wait()),
                       asyncio.ensure_future(self._attempt_failed.wait())]
            _, pending = await asyncio.wait(waiters, timeout=CONNECT_TIMEOUT_S,
                                            return_when=asyncio.FIRST_COMPLETED)
            for waiter in pending:
                waiter.cancel()
            if self._session.is_set():
                return True
            client.cancel_connection_attempt()
            client.abort()
            return False
        finally:
            self._connecting = False

    def _attempt_ended(self, reason: Any) -> None:
        self._failure = self._failure or reason  # the first reason is the real one
        self._attempt_failed.set()

    def _on_invalid_certificate(self, error: Exception) -> None:
        # Handling this event keeps slixmpp from disconnecting quietly: we end the attempt.
        log.error("xmpp: the server's certificate does not verify: %s", error)
        self._attempt_ended(error)
        self._require_client().abort()

    async def _reconnect(self) -> None:
        """The one reconnect loop: a second disconnect while it runs starts no other."""
        if self._reconnecting:
            return
        self._reconnecting = True
        try:
            delays = backoff_delays(first=0.5, cap=15.0)
            while not self._stopping:
                await asyncio.sleep(next(delays))
                if self._stopping or self._session.is_set():
                    return
                if await self._connect_once():
                    return
        finally:
            self._reconnecting = False

    def _on_disconnected(self, reason: Any) -> None:
        if self._ack_answer is not None:  # the next stream asks again
            self._ack_answer.cancel()
            self._ack_answer = None
        if self._stopping:
            return
        if self._connecting:
            self._attempt_ended(reason)
            return
        log.warning("xmpp: disconnected (%s); reconnecting", reason)
        self._session.clear()
        for room in self._rooms.values():
            room.joined = False
        for future in self._reflections.values():
            if not future.done():
                future.set_exception(BackendUnavailable("xmpp: disconnected"))
        self._tasks.spawn(self._reconnect(), name="xmpp-reconnect")

    def _on_failed_auth(self, _event: Any) -> None:
        self._auth_failed = True
        self._attempt_ended("authentication failed")

    def _on_connection_failed(self, reason: Any) -> None:
        if self._connecting:
            self._attempt_ended(reason)

    async def _on_session_start(self, _event: Any) -> None:
        """A new session (not a resumed one): presence, roster, and every room again."""
        client = self._require_client()
        self._session_number += 1
        client.send_presence()
        for agent in self.agents:
            if client.client_roster[agent]["subscription"] not in ("both", "to"):
                client.send_presence_subscription(pto=agent, ptype="subscribe")
        for room in self._rooms.values():
            room.joined = False
        self._session.set()
        log.info("xmpp: session started as %s", client.boundjid)
        if self._ever_connected:
            self._queue_event(Connected())
        self._ever_connected = True
        for room_jid in list(self._rooms):
            self._tasks.spawn(self._join_quietly(room_jid), name=f"xmpp-rejoin-{room_jid}")

    def _on_session_resumed(self, _event: Any) -> None:
        # Stream management resumed the old stream: rooms and unacked stanzas are intact.
        self._session.set()
        log.info("xmpp: session resumed")
        self._queue_event(Connected())

    # -- rooms ---------------------------------------------------------------------------

    async def attach_rooms(self, rooms: dict[RoomRef, RoomSpec]) -> None:
        for room, spec in rooms.items():
            self._rooms.setdefault(room, _Room(spec=spec))
            self._tasks.spawn(self._join_quietly(room), name=f"xmpp-join-{room}")

    async def _join_quietly(self, room_jid: str) -> None:
        try:
            await self._ensure_joined(RoomRef(room_jid))
        except BackendError as exc:
            log.warning("xmpp: could not rejoin %s (%s)", room_jid, exc)

    async def open_room(self, spec: RoomSpec) -> RoomRef:
        room = RoomRef(f"lc-{spec.key}@{self.config.muc_service}")
        self._rooms[room] = _Room(spec=spec)
        await self._ensure_joined(room, configure=True)
        return room

    async def _ensure_joined(self, room: RoomRef, *, configure: bool = False) -> _Room:
        """Join (creating and setting up the group chat when it does not exist)."""
        state = self._rooms.get(room)
        if state is None:
            raise BackendError(f"xmpp: {room} is not a conversation room of this bridge")
        if state.joined:
            return state  # every line after the join: no lock to take
        async with self._join_locks.setdefault(room, asyncio.Lock()):
            if state.joined:
                return state
            await self._wait_session()
            client = self._require_client()
            nick = state.nick or state.spec.visitor_nick
            since = None if configure else self._catch_up_since(room)
            if since is not None:
                since -= CATCH_UP_MARGIN_S
            archived = since is not None and await self._has_archive(client, room)
            history: dict[str, Any] = {"maxstanzas": 0}
            if since is not None and not archived:
                history = {"since": datetime.fromtimestamp(since, UTC)}
            state.catching_up = archived
            try:
                presence, lines = await self._join(client, room, nick, history)
                state.nick = presence["from"].resource
                state.joined = True
                for message in lines:
                    self._note_reflection(state, message.xml,
                                          self._event_id(room, message.xml))
                if configure or 201 in presence["muc"]["status_codes"]:
                    # 201: the room did not exist (any more): set it up and invite again.
                    await self._configure(room, state.spec)
                elif archived and since is not None:
                    try:
                        await self._read_archive(client, room, state, since)
                    except BackendError:
                        state.joined = False  # the next use joins and reads again
                        raise
            finally:
                self._release_held(room, state)
            log.info("xmpp: in %s as %r", room, state.nick)
            return state

    async def _has_archive(self, client: ClientXMPP, room: RoomRef) -> bool:
        """Whether the room keeps an archive the bot can read (XEP-0313)."""
        try:
            info = await client.plugin["xep_0030"].get_info(jid=JID(room),
                                                           timeout=JOIN_TIMEOUT_S)
        except IqTimeout:
            raise BackendUnavailable(f"xmpp: {room} did not answer disco#info") from None
        except IqError:
            return False  # gone, or it hides itself: the join says which
        return MAM in info["disco_info"]["features"]

    async def _read_archive(self, client: ClientXMPP, room: RoomRef, state: _Room,
                            since: float) -> None:
        """Every archived line from `since` on, in order: agents' lines to the hub, ours
        noted as delivered."""
        after: str | None = None
        for _ in range(ARCHIVE_MAX_PAGES):
            page = await self._archive_page(client, room, since, after)
            for line in page.lines:
                self._archived_line(room, state, line)
            complete, last = page_end(page.answer)
            if complete or last is None or not page.lines:
                return
            after = last
        log.warning("xmpp: %s: archive longer than %d pages; read the newest part only",
                    room, ARCHIVE_MAX_PAGES)

    async def _archive_page(self, client: ClientXMPP, room: RoomRef, since: float,
                            after: str | None) -> ArchivePage:
        query_id = secrets.token_hex(8)
        page = self._archive_pages[query_id] = ArchivePage(room)
        iq = client.make_iq_set(ito=JID(room))
        iq.append(archive_query(query_id, since, after, ARCHIVE_PAGE))
        try:
            answer = await iq.send(timeout=ARCHIVE_TIMEOUT_S)
        except IqTimeout:
            raise BackendUnavailable(f"xmpp: {room}: the archive did not answer") from None
        except IqError as exc:
            raise BackendUnavailable(f"xmpp: {room}: the archive refused: {exc}") from None
        finally:
            self._archive_pages.pop(query_id, None)
        page.answer = answer.xml
        return page

    def _archived_line(self, room: RoomRef, state: _Room, line: ArchivedLine) -> None:
        message = line.message
        nick = (message.get("from") or "").partition("/")[2]
        if nick == state.nick or line.real_jid == self.jid.bare:
            self._note_reflection(state, message, line.archive_id)
            return
        sender = line.real_jid or state.real_jids.get(nick)
        text = clean_text(message.findtext(_BODY) or "")
        if sender is None or not text or message.find(_SUBJECT) is not None:
            return
        replace = message.find(_REPLACE)
        self._queue_event(AgentMessage(
            room=room, sender=sender, sender_name=nick, text=text,
            event_id=line.archive_id,
            ts=line.stamp if line.stamp is not None else time.time(),
            edited=replace is not None and bool(replace.get("id")),
        ))

    def _release_held(self, room: RoomRef, state: _Room) -> None:
        """Live lines that came while the archive was read, after it (those the archive
        had already are dropped by the hub, by event id)."""
        state.catching_up = False
        held, state.held = state.held, []
        for xml, nick in held:
            self._room_line(xml, room, nick)

    async def _join(self, client: ClientXMPP, room: RoomRef, nick: str,
                    history: dict[str, Any]) -> tuple[Presence, list[Message]]:
        """Join, with the history asked for; a refusal ends the wait at once.

        slixmpp only sees refusals that carry the MUC payload; Prosody's "gone" for a
        destroyed room does not, so refusals are also caught here by the room's address.
        """
        loop = asyncio.get_running_loop()
        refused: asyncio.Future[str] = loop.create_future()
        self._join_refusals[room] = refused
        joining = asyncio.ensure_future(client.plugin["xep_0045"].join_muc_wait(
            JID(room), nick, timeout=JOIN_TIMEOUT_S, **history))
        try:
            await asyncio.wait([joining, refused], timeout=JOIN_TIMEOUT_S,
                               return_when=asyncio.FIRST_COMPLETED)
            if refused.done():
                condition = refused.result()
            elif not joining.done():
                raise BackendUnavailable(f"xmpp: joining {room} timed out")
            else:
                try:
                    presence, _subject, _occupants, history = joining.result()
                    return presence, history
                except PresenceError as exc:
                    condition = str(exc.condition)
                except TimeoutError:
                    raise BackendUnavailable(f"xmpp: joining {room} timed out") from None
        finally:
            self._join_refusals.pop(room, None)
            if not joining.done():
                joining.cancel()
        if condition in ROOM_GONE_CONDITIONS:
            raise RoomGone(f"xmpp: {room} refused the bot: {condition}")
        raise BackendError(f"xmpp: cannot join {room}: {condition}")

    def _on_presence_error(self, presence: Presence) -> None:
        refused = self._join_refusals.get(presence["from"].bare)
        if refused is not None and not refused.done():
            refused.set_result(str(presence["error"]["condition"]))

    async def _configure(self, room: RoomRef, spec: RoomSpec) -> None:
        """Members-only, non-anonymous, persistent; the agents made members and invited."""
        muc = self._require_client().plugin["xep_0045"]
        try:
            form = await muc.get_room_config(JID(room))
            wanted = {
                "muc#roomconfig_roomname": spec.name,
                "muc#roomconfig_roomdesc": spec.topic,
                "muc#roomconfig_membersonly": True,
                "muc#roomconfig_whois": "anyone",
                "muc#roomconfig_persistentroom": True,
                "muc#roomconfig_publicroom": False,
                "muc#roomconfig_changesubject": False,
            }
            offered = form.get_fields()
            form.set_values({var: value for var, value in wanted.items() if var in offered})
            submission = form
            await muc.set_room_config(JID(room), submission)
            for address in spec.invite:
                await muc.set_affiliation(JID(room), "member", jid=JID(address))
        except (IqError, IqTimeout) as exc:
            raise BackendUnavailable(f"xmpp: configuring {room} failed: {exc}") from None
        muc.set_subject(JID(room), f"{spec.name} — {spec.topic}" if spec.topic else spec.name)
        for address in spec.invite:
            self._invite(room, address, spec.name)

    def _invite(self, room: RoomRef, address: str, reason: str) -> None:
        self._require_client().plugin["xep_0249"].send_invitation(
            JID(address), JID(room), reason=reason
        )

    async def invite(self, room: RoomRef, address: str) -> None:
        await self._set_affiliation(room, address, "member")
        self._invite(room, address, "")

    async def remove(self, room: RoomRef, address: str) -> None:
        """No longer a member, and out of the room if present (members-only: for good)."""
        await self._set_affiliation(room, address, "none")

    async def _set_affiliation(self, room: RoomRef, address: str, affiliation: str) -> None:
        await self._ensure_joined(room)
        muc = self._require_client().plugin["xep_0045"]
        try:
            await muc.set_affiliation(JID(room), affiliation, jid=JID(address))
        except IqError as exc:
            raise BackendError(f"xmpp: cannot make {address} {affiliation}: {exc}") from None
        except IqTimeout:
            raise BackendUnavailable("xmpp: affiliation change timed out") from None

    # -- outbound ------------------------------------------------------------------------

    async def post_text(self, room: RoomRef, text: str, *, key: str) -> str:
        return await self._post(room, text, key)

    async def post_notice(self, room: RoomRef, text: str, *, key: str) -> str:
        if room in self.agents:  # a direct chat with an agent, not a group chat
            await self._wait_session()
            return self._direct(room, text)
        # Group chats have no notice type: a marked line is the convention clients show.
        return await self._post(room, f"ℹ️ {text}", key)

    async def post_direct(self, address: str, text: str, *, key: str) -> str:
        # A chat message has no reflection to wait for: once handed to the stream (which
        # stream management carries over a reconnect), a retry must not send it again.
        if key not in self._direct_sent:
            await self._wait_session()
            message = self._require_client().make_message(mto=JID(address), mbody=text,
                                                          mtype="chat")
            message["id"] = key
            message["origin_id"]["id"] = key
            message.send()
            self._direct_sent.add(key)
        return key

    def _direct(self, address: str, text: str) -> str:
        """A chat message to one agent (the replies of commands sent to the bot directly)."""
        message = self._require_client().make_message(mto=JID(address), mbody=text,
                                                      mtype="chat")
        message.send()
        return str(message["id"])

    async def _post(self, room: RoomRef, text: str, key: str) -> str:
        state = await self._ensure_joined(room)
        if key in state.delivered:
            return state.delivered[key]
        loop = asyncio.get_running_loop()
        reflected = self._reflections.setdefault(key, loop.create_future())
        # Within one session a sent line is not sent again, only waited for: the stream
        # (with stream management) delivers it or the session ends. After a new session,
        # the rejoin history has told us whether it arrived.
        if self._sent_in_session.get(key) != self._session_number:
            self._sent_in_session[key] = self._session_number
            self._send_line(state, room, text, key)
        try:
            return await asyncio.wait_for(asyncio.shield(reflected), REFLECTION_TIMEOUT_S)
        except TimeoutError:
            raise BackendUnavailable(f"xmpp: {room} did not reflect {key}") from None
        finally:
            if reflected.done():
                self._reflections.pop(key, None)
                self._sent_in_session.pop(key, None)

    def _send_line(self, state: _Room, room: RoomRef, text: str, key: str) -> None:
        """Send a group chat line whose id (and origin-id, XEP-0359) is `key`.

        The stanza is written from a template at once when nothing waits in slixmpp's send
        queue: building it as a stanza object, the queue's task hop, its filters and its
        serializer cost a few tenths of a millisecond per line. Otherwise it joins the
        queue behind what is there, so lines and chat states keep their order. (An empty
        queue means everything sent before was written: slixmpp takes a stanza off the
        queue only to filter and write it in the same step, our plugins' filters being
        synchronous.)
        """
        client = self._require_client()
        if client.transport is not None and client.waiting_queue.empty():
            if not state.line_head:
                lang = f' xml:lang="{_xml(client.default_lang)}"' if client.default_lang else ""
                state.line_head = (f'<message type="groupchat" to="{_xml(str(JID(room)))}"'
                                   f'{lang} id="')
            quoted = _xml(key)
            self._write_stanza(client, f'{state.line_head}{quoted}"><body>{_xml(text)}</body>'
                                       f'<origin-id xmlns="urn:xmpp:sid:0" id="{quoted}"/>'
                                       "</message>")
            return
        message = client.make_message(mto=JID(room), mbody=text, mtype="groupchat")
        message["id"] = key
        message["origin_id"]["id"] = key
        message.send()

    @staticmethod
    def _write_stanza(client: ClientXMPP, xml: str) -> None:
        """Write one stanza past the send queue, counted for stream management exactly as
        slixmpp's XEP-0198 send filter counts the stanzas it sees: numbered, kept until the
        server acknowledges it (a resumed stream sends it again), an ack requested every
        SM_ACK_WINDOW stanzas. Uncounted, the server's acks would no longer line up."""
        sm = client.plugin["xep_0198"]
        client.send_raw(xml)
        if sm.enabled_out:
            sm.seq = (sm.seq + 1) % _SM_MAX_SEQ
            sm.unacked_queue.append((sm.seq, xml))
            sm.window_counter -= 1
            if sm.window_counter <= 0:
                sm.window_counter = sm.window
                sm.request_ack()

    async def set_typing(self, room: RoomRef, active: bool) -> None:
        state = self._rooms.get(room)
        if state is None or not state.joined:
            return
        message = self._require_client().make_message(mto=JID(room), mtype="groupchat")
        message["chat_state"] = "composing" if active else "active"
        message.send()

    # -- inbound -------------------------------------------------------------------------

    def _take_live_stanza(self, xml: ET.Element) -> bool:
        """Handle a parsed stanza before slixmpp builds a stanza object from it and matches
        that against its ~40 handlers, which takes most of the time a line spends in the
        bot. True when it was handled here.

        Taken here: the server's ack requests (XEP-0198, Prosody sends one after every
        stanza) and live lines and chat states from occupants we know, in rooms we are in,
        whose addresses come exactly as we keep them. Everything else goes through slixmpp:
        room history (it has a delay stamp, and join_muc_wait collects it), subjects,
        presence, errors, other spellings of an address.
        """
        if xml.tag == _ACK_REQUEST:
            self._schedule_ack_answer()
            return True
        if xml.tag == _MESSAGE and xml.get("type") in (None, "normal"):
            return self._take_archive_result(xml)
        if xml.tag != _MESSAGE or xml.get("type") != "groupchat" \
                or xml.find(_SUBJECT) is not None or xml.find(_DELAY) is not None:
            return False
        room_jid, _, nick = (xml.get("from") or "").partition("/")
        state = self._rooms.get(room_jid)
        if state is None or not state.joined \
                or (nick != state.nick and nick not in state.real_jids):
            return False
        has_body = xml.find(_BODY) is not None
        if not has_body and _chat_state(xml) is None:
            return False
        self._count_handled()
        try:
            if has_body:
                self._room_line(xml, room_jid, nick)
            else:
                self._room_chat_state(xml, room_jid, nick)
        except Exception:
            # Raised from here, it would abort slixmpp's read of the stream.
            log.exception("xmpp: handling a stanza from %s failed", xml.get("from"))
        return True

    def _take_archive_result(self, xml: ET.Element) -> bool:
        """A line of a room's archive we asked for (only the room itself may answer)."""
        result = xml.find(RESULT)
        page = self._archive_pages.get(result.get("queryid", "")) if result is not None \
            else None
        if page is None or xml.get("from") != page.room:
            return False
        self._count_handled()
        line = archived_line(xml)
        if line is not None:
            page.lines.append(line)
        return True

    def _count_handled(self) -> None:
        """Count a stanza taken before slixmpp saw it, as its stream management counts every
        message, presence and iq: the server learns from that count what arrived."""
        sm = self._require_client().plugin["xep_0198"]
        if sm.enabled_in:
            sm.handled = (sm.handled + 1) % _SM_MAX_SEQ

    def _schedule_ack_answer(self) -> None:
        if self._ack_answer is None:
            client = self._require_client()
            self._ack_answer = asyncio.get_running_loop().call_later(
                SM_ACK_DELAY_S, self._answer_ack_request, client, client.transport)

    def _answer_ack_request(self, client: ClientXMPP, transport: Any) -> None:
        """What slixmpp's own handler answers, on the stream that asked, without building a
        stanza: how many stanzas we have handled."""
        self._ack_answer = None
        if transport is not None and client.transport is transport:
            handled = client.plugin["xep_0198"].handled
            client.send_raw(f"<a xmlns='urn:xmpp:sm:3' h='{handled}'/>")

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

    def _occupant_address(self, room_jid: str, nick: str, xml: ET.Element) -> str | None:
        """The address of the agent behind `nick` in one of our rooms; None for our own line
        coming back (noted as delivered) and for anyone whose address the room did not give."""
        state = self._rooms.get(room_jid)
        if state is None:
            return None
        if nick == state.nick:
            self._note_reflection(state, xml, self._event_id(room_jid, xml))
            return None
        sender = state.real_jids.get(nick)
        if sender is None and xml.find(_DELAY) is not None:
            sender = _history_address(xml)  # join history: the agent may have left since
        if not nick or sender is None:
            log.info("xmpp: %s: line from %r with no known address; not relayed", room_jid, nick)
            return None
        return sender

    def _on_direct_message(self, message: Message) -> None:
        """An agent writing to the bot directly: commands about themselves (!break, ...)."""
        if message["type"] not in ("chat", "normal") or not message["body"]:
            return
        sender = message["from"].bare
        if sender not in self.agents:
            return  # strangers get nothing, not even an error
        self._queue_event(AgentMessage(
            room=RoomRef(sender), sender=sender, sender_name=message["from"].user,
            text=clean_text(str(message["body"])), event_id=f"{sender}#{message['id']}",
            ts=time.time(),
        ))

    def _on_chat_state(self, message: Message) -> None:
        """slixmpp's path for chat states the fast path left (`_take_live_stanza`)."""
        if message.xml.get("type") == "groupchat":  # direct ones are not about a chat
            address = message["from"]
            self._room_chat_state(message.xml, address.bare, address.resource)

    def _room_chat_state(self, xml: ET.Element, room_jid: str, nick: str) -> None:
        state = _chat_state(xml)
        if state is None or xml.find(_BODY) is not None:
            return  # a line with a state attached: the line itself says enough
        sender = self._occupant_address(room_jid, nick, xml)
        if sender is not None:
            self._queue_event(AgentTyping(RoomRef(room_jid), sender, nick, state == "composing"))

    def _on_groupchat_message(self, message: Message) -> None:
        """slixmpp's path for group chat lines the fast path left: history on a join."""
        address = message["from"]
        self._room_line(message.xml, address.bare, address.resource)

    def _room_line(self, xml: ET.Element, room_jid: str, nick: str) -> None:
        state = self._rooms.get(room_jid)
        if state is not None and state.catching_up:
            state.held.append((xml, nick))
            return
        sender = self._occupant_address(room_jid, nick, xml)
        if sender is None:
            return
        text = clean_text(xml.findtext(_BODY) or "")
        if not text or xml.find(_SUBJECT) is not None:
            return
        delay = xml.find(_DELAY)
        stamp = parse_stamp(delay.get("stamp")) if delay is not None else None  # history
        replace = xml.find(_REPLACE)
        self._queue_event(AgentMessage(
            room=RoomRef(room_jid),
            sender=sender,
            sender_name=nick,
            text=text,
            event_id=self._event_id(room_jid, xml),
            ts=stamp if stamp is not None else time.time(),
            edited=replace is not None and bool(replace.get("id")),  # XEP-0308 correction
        ))

    def _note_reflection(self, state: _Room, xml: ET.Element, event_id: str) -> None:
        """Our own line came back from the room (live, in the join history or the
        archive)."""
        origin = xml.find(_ORIGIN_ID)
        key = (origin.get("id") if origin is not None else None) or xml.get("id")
        if not key:
            return
        state.delivered[key] = event_id
        future = self._reflections.get(key)
        if future is not None and not future.done():
            future.set_result(event_id)

    @staticmethod
    def _event_id(room_jid: str, xml: ET.Element) -> str:
        """The room's own id for a message (XEP-0359) when it gives one, else sender + id."""
        stanza_id = xml.find(_STANZA_ID)
        if stanza_id is not None and stanza_id.get("id") and stanza_id.get("by") == room_jid:
            return str(stanza_id.get("id"))
        return f"{xml.get('from', '')}#{xml.get('id', '')}"

    def _on_groupchat_presence(self, presence: Presence) -> None:
        room_jid = presence["from"].bare
        state = self._rooms.get(room_jid)
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
            event: InboundEvent = MemberLeft(RoomRef(room_jid), address, nick,
                                             f"left:{room_jid}/{nick}:{time.time():.6f}")
        else:
            if state.real_jids.get(nick) == address:
                return  # a status change, not a join
            state.real_jids[nick] = address
            event = MemberJoined(RoomRef(room_jid), address, nick,
                                 f"joined:{room_jid}/{nick}:{time.time():.6f}")
        self._queue_event(event)

    def _on_subscribe_request(self, presence: Presence) -> None:
        asker = presence["from"].bare
        client = self._require_client()
        if asker in self.agents:
            client.send_presence(pto=asker, ptype="subscribed")
        else:
            client.send_presence(pto=asker, ptype="unsubscribed")

    def _on_changed_status(self, presence: Presence) -> None:
        address = presence["from"].bare
        if address not in self.agents:
            return
        # An agent may be online on several devices: available if any of them is.
        resources = self._require_client().client_roster[address].resources
        available = any(r.get("show", "") not in BUSY_SHOWS for r in resources.values())
        self._queue_event(AgentPresence(address, available))

    def _on_message_error(self, message: Message) -> None:
        log.warning("xmpp: error from %s: %s", message["from"], message["error"]["condition"])

    # -- helpers -------------------------------------------------------------------------

    async def _wait_session(self) -> None:
        try:
            await asyncio.wait_for(self._session.wait(), CONNECT_TIMEOUT_S)
        except TimeoutError:
            raise BackendUnavailable("xmpp: not connected") from None

    def _require_client(self) -> ClientXMPP:
        if self._client is None:
            raise BackendUnavailable("xmpp: not started")
        return self._client


def _chat_state(xml: ET.Element) -> str | None:
    """The chat state (XEP-0085) a message carries, if any."""
    for tag, state in _CHAT_STATES:
        if xml.find(tag) is not None:
            return state
    return None


def _history_address(xml: ET.Element) -> str | None:
    """The sender's bare address a non-anonymous room adds to its history."""
    item = xml.find("{http://jabber.org/protocol/muc#user}x/"
                    "{http://jabber.org/protocol/muc#user}item")
    real = item.get("jid") if item is not None else None
    return real.split("/", 1)[0] if real else None


def _xml(text: str) -> str:
    """Text escaped for XML content and attribute values, as slixmpp escapes it."""
    return text.translate(_XML_ESCAPES)
