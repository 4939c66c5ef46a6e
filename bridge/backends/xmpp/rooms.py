"""The group chats the bot speaks in: joining (and catching up on what was said meanwhile),
setting a new one up, members and invitations."""

from __future__ import annotations

import asyncio
import logging
import secrets
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from slixmpp import JID, ClientXMPP, Message, Presence
from slixmpp.exceptions import IqError, IqTimeout, PresenceError
from slixmpp.xmlstream import StanzaBase
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXMLMask

from bridge.backends.base import (
    BackendError,
    BackendUnavailable,
    CatchUpSince,
    RoomGone,
    RoomSpec,
)
from bridge.backends.xmpp.archive import (
    MAM,
    ArchivedLine,
    ArchivePage,
    archive_query,
    page_end,
)
from bridge.backends.xmpp.connection import Connection
from bridge.backends.xmpp.stanzas import event_id
from bridge.backends.xmpp.state import Room
from bridge.core.models import RoomRef
from bridge.tasks import TaskGroup

log = logging.getLogger(__name__)

JOIN_TIMEOUT_S = 15.0
# Read back this much before the point the store gives: the server's clock stamps the
# archive, the bridge's the store.
CATCH_UP_MARGIN_S = 120.0
ARCHIVE_PAGE = 100
ARCHIVE_MAX_PAGES = 100
ARCHIVE_TIMEOUT_S = 30.0
# A room that was destroyed (Prosody keeps a tombstone), never existed, or banned the bot.
ROOM_GONE_CONDITIONS = {"gone", "item-not-found", "forbidden", "registration-required"}


class Receiver(Protocol):
    """The inbound side, as the rooms hand it what a join or an archive read brings."""

    rooms: dict[str, Room]
    archive_pages: dict[str, ArchivePage]

    def note_reflection(self, state: Room, xml: ET.Element, reflected_id: str) -> None: ...

    def archived_line(self, room: RoomRef, state: Room, line: ArchivedLine) -> None: ...

    def release_held(self, xml: ET.Element, room_jid: str, nick: str) -> None: ...


class Rooms:
    """Joins, catch-up, set-up and membership of the bot's group chats."""

    def __init__(self, link: Connection, receiver: Receiver, muc_service: str,
                 catch_up_since: CatchUpSince, tasks: TaskGroup) -> None:
        self._link = link
        self._receiver = receiver
        self._muc_service = muc_service
        self._catch_up_since = catch_up_since
        self._tasks = tasks
        self.rooms = receiver.rooms  # shared: the inbound side reads the same states
        self._pages = receiver.archive_pages
        self._join_locks: dict[str, asyncio.Lock] = {}
        self._join_refusals: dict[str, asyncio.Future[str]] = {}

    def register(self, client: ClientXMPP) -> None:
        # Not the "presence_error" event: slixmpp drops it for addresses inside group chats.
        client.register_handler(Callback(
            "livechat room refusals",
            MatchXMLMask("<presence xmlns='jabber:client' type='error'/>"),
            self._on_presence_error,
        ))

    def attach(self, rooms: dict[RoomRef, RoomSpec]) -> None:
        for room, spec in rooms.items():
            self.rooms.setdefault(room, Room(spec=spec))
            self._tasks.spawn(self._join_quietly(room), name=f"xmpp-join-{room}")

    def rejoin_all(self) -> None:
        """After a new session: the bot is in none of its rooms any more."""
        self.left_all()
        for room_jid in list(self.rooms):
            self._tasks.spawn(self._join_quietly(room_jid), name=f"xmpp-rejoin-{room_jid}")

    def left_all(self) -> None:
        for room in self.rooms.values():
            room.joined = False

    async def open(self, spec: RoomSpec) -> RoomRef:
        room = RoomRef(f"lc-{spec.key}@{self._muc_service}")
        self.rooms[room] = Room(spec=spec)
        await self.ensure_joined(room, configure=True)
        return room

    async def _join_quietly(self, room_jid: str) -> None:
        try:
            await self.ensure_joined(RoomRef(room_jid))
        except BackendError as exc:
            log.warning("xmpp: could not rejoin %s (%s)", room_jid, exc)

    async def ensure_joined(self, room: RoomRef, *, configure: bool = False) -> Room:
        """Join (creating and setting up the group chat when it does not exist)."""
        state = self.rooms.get(room)
        if state is None:
            raise BackendError(f"xmpp: {room} is not a conversation room of this bridge")
        if state.joined:
            return state  # every line after the join: no lock to take
        async with self._join_locks.setdefault(room, asyncio.Lock()):
            if not state.joined:
                await self._link.wait_online()
                await self._join_and_catch_up(room, state, configure)
            return state

    async def _join_and_catch_up(self, room: RoomRef, state: Room, configure: bool) -> None:
        client = self._link.client
        since = None if configure else self._catch_up_since(room)
        if since is not None:
            since -= CATCH_UP_MARGIN_S
        archived = since is not None and await self._has_archive(client, room)
        history: dict[str, Any] = {"maxstanzas": 0}
        if since is not None and not archived:
            history = {"since": datetime.fromtimestamp(since, UTC)}
        state.catching_up = archived
        try:
            presence, lines = await self._join(client, room, state.nick or state.spec.visitor_nick,
                                               history)
            state.nick = presence["from"].resource
            state.joined = True
            for message in lines:
                self._receiver.note_reflection(state, message.xml, event_id(room, message.xml))
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

    # -- catching up ---------------------------------------------------------------------

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

    async def _read_archive(self, client: ClientXMPP, room: RoomRef, state: Room,
                            since: float) -> None:
        """Every archived line from `since` on, in order: agents' lines to the hub, ours
        noted as delivered."""
        after: str | None = None
        for _ in range(ARCHIVE_MAX_PAGES):
            page = await self._archive_page(client, room, since, after)
            for line in page.lines:
                self._receiver.archived_line(room, state, line)
            complete, last = page_end(page.answer)
            if complete or last is None or not page.lines:
                return
            after = last
        log.warning("xmpp: %s: archive longer than %d pages; read the newest part only",
                    room, ARCHIVE_MAX_PAGES)

    async def _archive_page(self, client: ClientXMPP, room: RoomRef, since: float,
                            after: str | None) -> ArchivePage:
        query_id = secrets.token_hex(8)
        page = self._pages[query_id] = ArchivePage(room)
        iq = client.make_iq_set(ito=JID(room))
        iq.append(archive_query(query_id, since, after, ARCHIVE_PAGE))
        try:
            answer = await iq.send(timeout=ARCHIVE_TIMEOUT_S)
        except IqTimeout:
            raise BackendUnavailable(f"xmpp: {room}: the archive did not answer") from None
        except IqError as exc:
            raise BackendUnavailable(f"xmpp: {room}: the archive refused: {exc}") from None
        finally:
            self._pages.pop(query_id, None)
        page.answer = answer.xml
        return page

    def _release_held(self, room: RoomRef, state: Room) -> None:
        """Live lines (and markers) that came while the archive was read, after it (those
        the archive had already are dropped by the hub, by event id)."""
        state.catching_up = False
        held, state.held = state.held, []
        for xml, nick in held:
            self._receiver.release_held(xml, room, nick)

    # -- joining -------------------------------------------------------------------------

    async def _join(self, client: ClientXMPP, room: RoomRef, nick: str,
                    history: dict[str, Any]) -> tuple[Presence, list[Message]]:
        """Join, with the history asked for; a refusal ends the wait at once.

        slixmpp only sees refusals that carry the MUC payload; Prosody's "gone" for a
        destroyed room does not, so refusals are also caught here by the room's address.
        """
        refused: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._join_refusals[room] = refused
        joining = asyncio.ensure_future(client.plugin["xep_0045"].join_muc_wait(
            JID(room), nick, timeout=JOIN_TIMEOUT_S, **history))
        try:
            waiters: list[asyncio.Future[Any]] = [joining, refused]
            await asyncio.wait(waiters, timeout=JOIN_TIMEOUT_S,
                               return_when=asyncio.FIRST_COMPLETED)
            if refused.done():
                condition = refused.result()
            elif not joining.done():
                raise BackendUnavailable(f"xmpp: joining {room} timed out")
            else:
                try:
                    presence, _subject, _occupants, lines = joining.result()
                    return presence, lines
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

    def _on_presence_error(self, presence: StanzaBase) -> None:
        refused = self._join_refusals.get(presence["from"].bare)
        if refused is not None and not refused.done():
            refused.set_result(str(presence["error"]["condition"]))

    # -- set-up and members --------------------------------------------------------------

    async def _configure(self, room: RoomRef, spec: RoomSpec) -> None:
        """Members-only, non-anonymous, persistent; the agents made members and invited."""
        muc = self._link.client.plugin["xep_0045"]
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
            await muc.set_room_config(JID(room), form)
            for address in spec.invite:
                await muc.set_affiliation(JID(room), "member", jid=JID(address))
        except (IqError, IqTimeout) as exc:
            raise BackendUnavailable(f"xmpp: configuring {room} failed: {exc}") from None
        muc.set_subject(JID(room), f"{spec.name} — {spec.topic}" if spec.topic else spec.name)
        for address in spec.invite:
            self._send_invitation(room, address, spec.name)

    def _send_invitation(self, room: RoomRef, address: str, reason: str) -> None:
        self._link.client.plugin["xep_0249"].send_invitation(
            JID(address), JID(room), reason=reason
        )

    async def invite(self, room: RoomRef, address: str) -> None:
        await self.set_affiliation(room, address, "member")
        self._send_invitation(room, address, "")

    async def set_affiliation(self, room: RoomRef, address: str,
                              affiliation: Literal["member", "none"]) -> None:
        await self.ensure_joined(room)
        muc = self._link.client.plugin["xep_0045"]
        try:
            await muc.set_affiliation(JID(room), affiliation, jid=JID(address))
        except IqError as exc:
            raise BackendError(f"xmpp: cannot make {address} {affiliation}: {exc}") from None
        except IqTimeout:
            raise BackendUnavailable("xmpp: affiliation change timed out") from None
