"""Lobby rooms: one per queue with `lobby = true`, where agents see chats nobody could take
(`!queue`, `!claim N`) and hear when one was taken."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

from bridge.backends.base import BackendError, RoomGone, RoomSpec
from bridge.config import Config, QueueConfig
from bridge.core.models import Conversation, ConversationId, RoomRef

log = logging.getLogger(__name__)


class LobbyBackend(Protocol):
    async def open_room(self, spec: RoomSpec) -> RoomRef: ...

    async def invite(self, room: RoomRef, address: str) -> None: ...

    async def remove(self, room: RoomRef, address: str) -> None: ...

    async def post_notice(self, room: RoomRef, text: str, *, key: str) -> str: ...


class LobbyStore(Protocol):
    def kv_get(self, key: str) -> str | None: ...

    def kv_set(self, key: str, value: str, *, durable: bool = True) -> None: ...

    def waiting_position(self, conversation: Conversation) -> int: ...


class Lobbies:
    """The queues' lobby rooms, made once and kept across restarts (`kv`)."""

    def __init__(self, config: Config, store: LobbyStore, backend: LobbyBackend,
                 clock: Callable[[], float]) -> None:
        self._config = config
        self._store = store
        self._backend = backend
        self._clock = clock
        self._rooms: dict[RoomRef, str] = {}  # lobby room → queue id
        self._announced: set[ConversationId] = set()
        # The waiting lines posted (their event ids and keys), for a ✅ or a "yes" in
        # answer to one of them.
        self._lines: dict[str, ConversationId] = {}

    async def open(self) -> dict[RoomRef, RoomSpec]:
        """Make sure every queue with `lobby = true` has its room; returns the rooms to
        attach after a restart (then `update_members`)."""
        rooms: dict[RoomRef, RoomSpec] = {}
        for queue in self._config.queues:
            if not queue.lobby:
                continue
            spec = self._spec(queue)
            room = self._store.kv_get(f"lobby:{queue.id}:room") or None
            try:
                if room is None:
                    room = await self._open(queue, spec)
            except BackendError as exc:
                log.warning("queue %s: lobby not available (%s)", queue.id, exc)
                continue
            self._rooms[RoomRef(room)] = queue.id
            rooms[RoomRef(room)] = spec
        return rooms

    def _spec(self, queue: QueueConfig) -> RoomSpec:
        return RoomSpec(name=f"📥 {queue.name} · lobby",
                        topic=f"Chats waiting in {queue.name}: !queue lists them, "
                              "!claim N takes one",
                        visitor_nick="livechat", invite=self._member_addresses(queue),
                        key=f"lobby-{queue.id}")

    def _member_addresses(self, queue: QueueConfig) -> tuple[str, ...]:
        return tuple(a.address for agent_id in queue.agents
                     if (a := self._config.agent(agent_id)) is not None)

    async def _open(self, queue: QueueConfig, spec: RoomSpec) -> RoomRef:
        room = await self._backend.open_room(spec)
        self._store.kv_set(f"lobby:{queue.id}:room", room)
        self._store.kv_set(f"lobby:{queue.id}:invited", json.dumps(sorted(spec.invite)))
        log.info("queue %s: lobby %s opened", queue.id, room)
        return room

    async def update_members(self) -> None:
        """Agents added to a queue since its lobby was made are invited once; agents taken
        out of the queue are taken out of its lobby. Run once the lobbies are attached."""
        for room, queue_id in list(self._rooms.items()):
            queue = self._config.queue(queue_id)
            if queue is None:
                continue
            try:
                await self._update_members(queue, room)
            except BackendError as exc:
                log.warning("queue %s: lobby members not updated (%s)", queue.id, exc)

    async def _update_members(self, queue: QueueConfig, room: RoomRef) -> None:
        key = f"lobby:{queue.id}:invited"
        invited = set(json.loads(self._store.kv_get(key) or "[]"))
        members = set(self._member_addresses(queue))
        for address in sorted(members - invited):
            await self._backend.invite(room, address)
            invited.add(address)
            self._store.kv_set(key, json.dumps(sorted(invited)))
        for address in sorted(invited - members):
            try:
                await self._backend.remove(room, address)
            except BackendError as exc:
                log.warning("queue %s: could not take %s out of the lobby (%s)", queue.id,
                            address, exc)
                continue
            invited.discard(address)
            self._store.kv_set(key, json.dumps(sorted(invited)))
            log.info("queue %s: %s is no longer in the queue; taken out of the lobby",
                     queue.id, address)

    def queue_of(self, room: RoomRef) -> QueueConfig | None:
        """The queue whose lobby `room` is, if it is one."""
        queue_id = self._rooms.get(room)
        return self._config.queue(queue_id) if queue_id else None

    async def announce(self, conversation: Conversation, queue: QueueConfig) -> None:
        """One lobby line per chat that waits with nobody to invite."""
        if not queue.lobby or conversation.id in self._announced:
            return
        self._announced.add(conversation.id)
        position = self._store.waiting_position(conversation)
        key = f"waiting-{conversation.id}"
        event_id = await self.post(
            queue.id, f"⏳ {conversation.visitor.name} <{conversation.visitor.email}> is "
            f"waiting, number {position} in line. !queue lists the line; !claim {position}, "
            "a ✅ reaction or a \"yes\" in reply to this line takes this chat.", key=key)
        self._lines[key] = conversation.id
        if event_id:
            self._lines[event_id] = conversation.id

    def waiting_line(self, event_id: str) -> ConversationId | None:
        """The chat whose waiting line `event_id` is (by event id, or by the id the bot
        gave it: XMPP clients may name either)."""
        return self._lines.get(event_id)

    def announced(self) -> list[ConversationId]:
        """The chats whose waiting line is up, in the order they came."""
        return [c for c in dict.fromkeys(self._lines.values()) if c in self._announced]

    async def taken(self, conversation: Conversation, agent_name: str, key: str) -> None:
        """The chat announced in the lobby has an agent now."""
        if conversation.id in self._announced:
            await self.post(conversation.queue_id,
                            f"✅ {agent_name} took the chat with {conversation.visitor.name}.",
                            key=key)

    def forget(self, conversation_id: ConversationId) -> None:
        """The chat is back in line (to be announced again) or over."""
        self._announced.discard(conversation_id)
        for line in [e for e, c in self._lines.items() if c == conversation_id]:
            del self._lines[line]

    async def post(self, queue_id: str, text: str, *, key: str) -> str | None:
        """Post in the queue's lobby; the line's event id, None when not posted."""
        room = next((r for r, q in self._rooms.items() if q == queue_id), None)
        queue = self._config.queue(queue_id)
        if room is None or queue is None:
            return None
        try:
            return await self._backend.post_notice(room, text, key=key)
        except RoomGone:
            # An admin deleted the lobby: make a new one and say it there.
            log.warning("queue %s: lobby %s is gone; opening a new one", queue_id, room)
            del self._rooms[room]
            self._store.kv_set(f"lobby:{queue_id}:room", "")
            try:
                spec = self._spec(queue)
                # A new key: the old room's address may stay taken (XMPP tombstones).
                new_room = await self._open(
                    queue, replace(spec, key=f"{spec.key}-{int(self._clock())}"))
                self._rooms[new_room] = queue_id
                return await self._backend.post_notice(new_room, text, key=key)
            except BackendError as exc:
                log.warning("queue %s: lobby line not posted (%s)", queue_id, exc)
        except BackendError as exc:
            log.warning("queue %s: lobby line not posted (%s)", queue_id, exc)
        return None
