"""Routing's effects: who is invited to a chat, who owns it, the waiting line and the lobbies.

The decisions are pure and live in bridge/core/routing.py; this module gathers the state
they need (presence, breaks, open chats, recent waits) and carries them out through the
backend and the hub.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bridge.backends.base import BackendError, RoomGone, RoomSpec
from bridge.config import AgentConfig, QueueConfig
from bridge.core import frames
from bridge.core.models import AgentId, Conversation, ConversationId, RoomRef, Status
from bridge.core.routing import AgentView, choose_agents, estimate_wait, is_open
from bridge.core.states import Happening, next_status

if TYPE_CHECKING:
    from bridge.hub import Hub

log = logging.getLogger(__name__)

ESTIMATE_WINDOW_S = 24 * 3600  # answers older than a day say little about today's line


class Router:
    """Applies the queues' routing rules for one hub."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._presence: dict[str, bool] = {}
        # Agents routing invited to each waiting chat, and those who left it: someone who
        # walked out of a chat is not invited to it again by routing.
        # Kept in the store as well (`routing_marks`), so a restart remembers them.
        self._invited: dict[ConversationId, set[str]] = {}
        self._declined: dict[ConversationId, set[str]] = {}
        for conversation_id, agent_id, kind in hub.store.routing_marks():
            self._marks(kind).setdefault(conversation_id, set()).add(agent_id)
        self._offered: set[ConversationId] = set()
        self._lobbies: dict[RoomRef, str] = {}  # lobby room → queue id
        self._announced: set[ConversationId] = set()
        self._pass: asyncio.Task[None] | None = None  # a routing pass after new rooms
        self._again = False  # more rooms opened while that pass ran

    # -- availability --------------------------------------------------------------------

    async def on_presence(self, agent: AgentConfig, available: bool) -> None:
        if self._presence.get(agent.id) == available:
            return
        self._presence[agent.id] = available
        log.info("agent %s is %s", agent.id, "available" if available else "away")
        if available:
            await self.assign_waiting()

    def agent_available(self, agent: AgentConfig) -> bool:
        """On a break, or away, busy (dnd), extended away or offline: no new chats."""
        if self.hub.store.on_break(agent.id):
            return False
        return self._presence.get(agent.id, self.hub.backend.presence_default)

    def open_chats(self, agent: AgentConfig, pending: Counter[str] | None = None) -> int:
        """The agent's open chats, counting the waiting ones routing invited them to: an
        invitation is a chat on its way, so two waiting chats never go to one free place.
        `pending`: the invitations counted once for a whole routing pass."""
        if pending is None:
            pending = self._pending()
        return self.hub.store.open_chats_of(agent.id) + pending[agent.id]

    def _pending(self) -> Counter[str]:
        """Per agent, the invitations routing sent that are neither taken nor turned down."""
        return Counter(agent_id for conversation_id, invited in self._invited.items()
                       for agent_id in invited - self._declined.get(conversation_id, set()))

    def can_take(self, agent: AgentConfig) -> bool:
        return self.agent_available(agent) and self.open_chats(agent) < agent.max_chats

    def queue_open(self, queue: QueueConfig) -> bool:
        local = datetime.fromtimestamp(self.hub.clock(), queue.timezone)
        return is_open(queue.hours, queue.holidays, local)

    def members(self, queue: QueueConfig, pending: Counter[str] | None = None
                ) -> list[AgentView]:
        if pending is None:
            pending = self._pending()
        return [
            AgentView(id=agent.id, priority=queue.agent_priorities.get(agent.id, 0),
                      open_chats=self.open_chats(agent, pending), max_chats=agent.max_chats,
                      available=self.agent_available(agent))
            for agent_id in queue.agents
            if (agent := self.hub.config.agent(agent_id)) is not None
        ]

    # -- who gets a chat -----------------------------------------------------------------

    def invitees(self, conversation: Conversation) -> tuple[str, ...]:
        """Who is invited to the conversation's room: its agent if it has one, else whom
        the queue's strategy picks among the agents who can take a chat now (maybe nobody:
        the chat then waits until someone can)."""
        if conversation.agent_id and (agent := self.hub.config.agent(conversation.agent_id)):
            return (agent.address,)
        queue = self.hub.config.queue(conversation.queue_id)
        if queue is None:
            return ()
        chosen = choose_agents(queue.strategy, self.members(queue))
        self._mark(conversation.id, "invited", chosen)
        return tuple(a.address for agent_id in chosen if (a := self.hub.config.agent(agent_id)))

    async def assign_waiting(self) -> None:
        """Invite someone to each waiting chat whose invited agents can no longer take it
        (or who had nobody), and show chats nobody can take in their queue's lobby. Called
        when a room opens, an agent comes back, a chat ends or is left, and regularly.
        Chats of higher-priority queues go first, then the longest waiting."""
        # One pass reads each queue's members once (again only after an invitation changed
        # someone's count): thousands of waiting chats cost a loop, not thousands of queries.
        pending = self._pending()
        views: dict[str, list[AgentView]] = {}
        for conversation, queue in self._waiting_by_priority():
            if conversation.room is None or conversation.agent_id:
                continue  # no room to invite to yet, or claimed by an agent on their way
            invited = self._invited.get(conversation.id, set())
            declined = self._declined.get(conversation.id, set())
            if queue.id not in views:
                views[queue.id] = self.members(queue, pending)
            members = views[queue.id]
            # An invitee's count includes this very chat: they are still coming while it
            # does not take them over their limit.
            if any(m.available and m.open_chats <= m.max_chats
                   for m in members if m.id in invited - declined):
                continue
            fresh = [m for m in members if m.id not in invited | declined]
            chosen = choose_agents(queue.strategy, fresh)
            for agent_id in chosen:
                agent = self.hub.config.agent(agent_id)
                if agent is not None and await self._invite(conversation, agent):
                    self._mark(conversation.id, "invited", [agent.id])
                    pending[agent.id] += 1
                    views.clear()
            if not chosen:
                await self._announce(conversation, queue)

    async def room_opened(self) -> None:
        """A new room exists: route it soon. Passes are coalesced, so a burst of new chats
        costs a few passes over the line, not one pass per chat."""
        if self._pass is None or self._pass.done():
            self._pass = self.hub.spawn(self._passes(), name="routing-pass")
        else:
            self._again = True

    async def _passes(self) -> None:
        while True:
            self._again = False
            await self.assign_waiting()
            if not self._again:
                return

    def _waiting_by_priority(self) -> Iterator[tuple[Conversation, QueueConfig]]:
        """Waiting chats of configured queues, the highest priority first, then the oldest.
        Chats of a queue removed from the config wait for a transfer or a !claim."""
        for queue in sorted(self.hub.config.queues, key=lambda q: -q.priority):
            for conversation in self.hub.store.waiting_conversations(queue.id):
                yield conversation, queue

    async def _invite(self, conversation: Conversation, agent: AgentConfig) -> bool:
        assert conversation.room is not None
        try:
            await self.hub.backend.invite(conversation.room, agent.address)
        except BackendError as exc:
            log.warning("conversation %s: could not invite %s (%s)", conversation.id,
                        agent.id, exc)
            return False
        log.info("conversation %s: invited %s from the waiting line", conversation.id,
                 agent.id)
        return True

    async def take(self, conversation: Conversation, agent: AgentConfig) -> None:
        """`agent` owns the chat now (joined, spoke first, or claimed it): the others
        routing invited are let go, and the lobby hears it was taken."""
        self.hub.store.set_agent(conversation.id, AgentId(agent.id))
        others = self._invited.pop(conversation.id, set()) - {agent.id}
        self._declined.pop(conversation.id, None)
        self.hub.store.clear_routing_marks(conversation.id)
        self._offered.discard(conversation.id)
        if conversation.room is not None:
            for other_id in sorted(others):
                other = self.hub.config.agent(other_id)
                if other is None:
                    continue
                try:
                    await self.hub.backend.remove(conversation.room, other.address)
                except BackendError as exc:
                    log.warning("conversation %s: could not let %s go (%s)", conversation.id,
                                other.id, exc)
        log.info("conversation %s: taken by %s (%d other invitees let go)", conversation.id,
                 agent.id, len(others))
        if conversation.id in self._announced:
            await self._post_lobby(conversation.queue_id,
                                   f"✅ {self.hub.agent_name(agent, '')} took the chat with "
                                   f"{conversation.visitor.name}.",
                                   key=f"taken-{conversation.id}-{agent.id}")

    async def on_agent_left(self, conversation: Conversation, agent: AgentConfig) -> None:
        """An agent walked out of an open chat (or turned its invitation down). If it was
        the chat's agent, another agent still in the room has it now; with nobody left, the
        chat goes back to its place in the line and someone else is invited."""
        self._mark(conversation.id, "declined", [agent.id])
        if conversation.agent_id == agent.id and (heir := self._someone_present(conversation)):
            self.hub.store.set_agent(conversation.id, AgentId(heir.id))
            log.info("conversation %s: %s left; %s has it now", conversation.id, agent.id,
                     heir.id)
        elif conversation.agent_id == agent.id:
            self.hub.store.clear_agent(conversation.id)
            if conversation.status is not Status.ACTIVE:  # claimed, then turned down
                await self.assign_waiting()
                return
            status = next_status(conversation.status, Happening.AGENT_GONE)
            self.hub.store.set_status(conversation.id, status)
            self._announced.discard(conversation.id)
            log.info("conversation %s: %s left; back in the waiting line", conversation.id,
                     agent.id)
            await self.hub.notice(conversation, f"{self.hub.agent_name(agent, '')} left; "
                                  "the chat is back in the waiting line.",
                                  key=f"requeued-{conversation.id}-{agent.id}")
            await self.line_moved(conversation.queue_id)
        await self.assign_waiting()

    def _marks(self, kind: str) -> dict[ConversationId, set[str]]:
        return self._invited if kind == "invited" else self._declined

    def _mark(self, conversation_id: ConversationId, kind: str, agent_ids: Iterable[str]
              ) -> None:
        marked = self._marks(kind).setdefault(conversation_id, set())
        new = [agent_id for agent_id in agent_ids if agent_id not in marked]
        if new:
            marked.update(new)
            self.hub.store.add_routing_marks(conversation_id, kind, new)

    def _someone_present(self, conversation: Conversation) -> AgentConfig | None:
        return next((agent for agent in self.hub.config.agents
                     if self.hub.store.agent_present(conversation.id, agent.id)), None)

    def forget(self, conversation_id: ConversationId) -> None:
        """The chat ended: nothing of it is left to route."""
        for memory in (self._invited, self._declined):
            memory.pop(conversation_id, None)
        self.hub.store.clear_routing_marks(conversation_id)
        self._offered.discard(conversation_id)
        self._announced.discard(conversation_id)

    # -- the waiting line ----------------------------------------------------------------

    def wait_s(self, queue: QueueConfig, position: int, waited_s: float = 0.0) -> int | None:
        """An honest estimate of the wait at `position`, or None (see estimate_wait)."""
        return self._estimator(queue)(position, waited_s)

    def offer_due(self, conversation: Conversation, queue: QueueConfig | None) -> bool:
        """Whether the visitor has waited long enough to be offered "leave a message"."""
        if queue is None or not queue.offer_message_after_minutes:
            return False
        waited = self.hub.clock() - conversation.created_at
        return waited >= queue.offer_message_after_minutes * 60

    def position_frame(self, conversation: Conversation, position: int | None = None,
                       estimate: Callable[[int, float], int | None] | None = None
                       ) -> frames.Frame:
        """The visitor's place in line with the estimate; a caller going through the whole
        line passes the position and an `estimate` prepared once for the queue."""
        queue = self.hub.config.queue(conversation.queue_id)
        if position is None:
            position = self.hub.store.waiting_position(conversation)
        waited = self.hub.clock() - conversation.created_at
        if estimate is None and queue is not None:
            estimate = self._estimator(queue)
        wait_s = estimate(position, waited) if estimate else None
        return frames.queue_frame(position, wait_s, self.offer_due(conversation, queue))

    def _estimator(self, queue: QueueConfig) -> Callable[[int, float], int | None]:
        waits = self.hub.store.recent_waits(queue.id, self.hub.clock() - ESTIMATE_WINDOW_S)
        serving = sum(1 for m in self.members(queue) if m.available)
        return lambda position, waited: estimate_wait(position, waits, serving, waited)

    async def line_moved(self, queue_id: str) -> None:
        """The line changed: tell everyone waiting their place."""
        queue = self.hub.config.queue(queue_id)
        estimate = self._estimator(queue) if queue else None
        for position, waiting in enumerate(self.hub.store.waiting_conversations(queue_id), 1):
            if self.hub.has_visitor(waiting.id):
                await self.hub.push(waiting.id, self.position_frame(waiting, position, estimate))

    async def offer_messages(self) -> None:
        """Offer "leave a message instead" to visitors who waited the queue's limit."""
        for conversation in self.hub.store.each_open_conversation():
            if (conversation.status is not Status.WAITING or conversation.id in self._offered
                    or not self.hub.has_visitor(conversation.id)):
                continue
            if self.offer_due(conversation, self.hub.config.queue(conversation.queue_id)):
                self._offered.add(conversation.id)
                log.info("conversation %s: offered to leave a message", conversation.id)
                await self.hub.push(conversation.id, self.position_frame(conversation))

    def status(self, lang: str = "") -> dict[str, Any]:
        """The public availability answer behind GET /v1/status, with the queues' names in
        the visitor's language."""
        queues = [{"id": queue.id, "name": queue.text("name", lang),
                   "topic": queue.text("topic", lang), **self._queue_status(queue)}
                  for queue in self.hub.config.queues]
        return {"available": any(q["available"] for q in queues), "queues": queues}

    def _queue_status(self, queue: QueueConfig) -> dict[str, Any]:
        is_open_now = self.queue_open(queue)
        members = self.members(queue)
        available = is_open_now and any(m.can_take for m in members)
        waiting = self.hub.store.count_waiting(queue.id)
        wait_s = (None if not is_open_now else 0 if available and not waiting
                  else self.wait_s(queue, waiting + 1))
        # On duty ignores presence: a client that stopped syncing reads as away, yet the
        # chat waits for that agent (invited on their return) or for a !claim in the lobby.
        on_duty = any(not self.hub.store.on_break(m.id) for m in members)
        full = bool(queue.max_waiting) and waiting >= queue.max_waiting  # start says queue_full
        state = ("closed" if not is_open_now else "nobody" if not on_duty else
                 "full" if full else "available" if available else "busy")
        return {"open": is_open_now, "available": available, "waiting": waiting,
                "wait_s": wait_s, "state": state}

    # -- lobbies -------------------------------------------------------------------------

    async def open_lobbies(self) -> dict[RoomRef, RoomSpec]:
        """Make sure every queue with `lobby = true` has its room; returns the rooms to
        attach after a restart (then `update_lobby_members`)."""
        rooms: dict[RoomRef, RoomSpec] = {}
        for queue in self.hub.config.queues:
            if not queue.lobby:
                continue
            spec = self._lobby_spec(queue)
            room = self.hub.store.kv_get(f"lobby:{queue.id}:room") or None
            try:
                if room is None:
                    room = await self._open_lobby(queue, spec)
            except BackendError as exc:
                log.warning("queue %s: lobby not available (%s)", queue.id, exc)
                continue
            self._lobbies[RoomRef(room)] = queue.id
            rooms[RoomRef(room)] = spec
        return rooms

    def _lobby_spec(self, queue: QueueConfig) -> RoomSpec:
        return RoomSpec(name=f"📥 {queue.name} · lobby",
                        topic=f"Chats waiting in {queue.name}: !queue lists them, "
                              "!claim N takes one",
                        visitor_nick="livechat", invite=self._member_addresses(queue),
                        key=f"lobby-{queue.id}")

    def _member_addresses(self, queue: QueueConfig) -> tuple[str, ...]:
        return tuple(a.address for agent_id in queue.agents
                     if (a := self.hub.config.agent(agent_id)) is not None)

    async def _open_lobby(self, queue: QueueConfig, spec: RoomSpec) -> RoomRef:
        room = await self.hub.backend.open_room(spec)
        self.hub.store.kv_set(f"lobby:{queue.id}:room", room)
        self.hub.store.kv_set(f"lobby:{queue.id}:invited", json.dumps(sorted(spec.invite)))
        log.info("queue %s: lobby %s opened", queue.id, room)
        return room

    async def update_lobby_members(self) -> None:
        """Agents added to a queue since its lobby was made are invited once; agents taken
        out of the queue are taken out of its lobby. Run once the lobbies are attached."""
        for room, queue_id in list(self._lobbies.items()):
            queue = self.hub.config.queue(queue_id)
            if queue is None:
                continue
            try:
                await self._update_members(queue, room)
            except BackendError as exc:
                log.warning("queue %s: lobby members not updated (%s)", queue.id, exc)

    async def _update_members(self, queue: QueueConfig, room: RoomRef) -> None:
        key = f"lobby:{queue.id}:invited"
        invited = set(json.loads(self.hub.store.kv_get(key) or "[]"))
        members = set(self._member_addresses(queue))
        for address in sorted(members - invited):
            await self.hub.backend.invite(room, address)
            invited.add(address)
            self.hub.store.kv_set(key, json.dumps(sorted(invited)))
        for address in sorted(invited - members):
            try:
                await self.hub.backend.remove(room, address)
            except BackendError as exc:
                log.warning("queue %s: could not take %s out of the lobby (%s)", queue.id,
                            address, exc)
                continue
            invited.discard(address)
            self.hub.store.kv_set(key, json.dumps(sorted(invited)))
            log.info("queue %s: %s is no longer in the queue; taken out of the lobby",
                     queue.id, address)

    def lobby_queue(self, room: RoomRef) -> QueueConfig | None:
        queue_id = self._lobbies.get(room)
        return self.hub.config.queue(queue_id) if queue_id else None

    async def _announce(self, conversation: Conversation, queue: QueueConfig) -> None:
        """One lobby line per chat that waits with nobody to invite."""
        if not queue.lobby or conversation.id in self._announced:
            return
        self._announced.add(conversation.id)
        position = self.hub.store.waiting_position(conversation)
        await self._post_lobby(queue.id,
                               f"⏳ {conversation.visitor.name} <{conversation.visitor.email}> "
                               f"is waiting, number {position} in line. !queue lists the "
                               f"line; !claim {position} takes this chat.",
                               key=f"waiting-{conversation.id}")

    async def _post_lobby(self, queue_id: str, text: str, *, key: str) -> None:
        room = next((r for r, q in self._lobbies.items() if q == queue_id), None)
        queue = self.hub.config.queue(queue_id)
        if room is None or queue is None:
            return
        try:
            await self.hub.backend.post_notice(room, text, key=key)
        except RoomGone:
            # An admin deleted the lobby: make a new one and say it there.
            log.warning("queue %s: lobby %s is gone; opening a new one", queue_id, room)
            del self._lobbies[room]
            self.hub.store.kv_set(f"lobby:{queue_id}:room", "")
            try:
                spec = self._lobby_spec(queue)
                # A new key: the old room's address may stay taken (XMPP tombstones).
                new_room = await self._open_lobby(
                    queue, replace(spec, key=f"{spec.key}-{int(self.hub.clock())}"))
                self._lobbies[new_room] = queue_id
                await self.hub.backend.post_notice(new_room, text, key=key)
            except BackendError as exc:
                log.warning("queue %s: lobby line not posted (%s)", queue_id, exc)
        except BackendError as exc:
            log.warning("queue %s: lobby line not posted (%s)", queue_id, exc)
