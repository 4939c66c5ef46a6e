"""Who gets a chat: invitations to waiting chats, who owns a chat, agents walking out.

The decisions are pure (bridge/core/routing.py); this module gathers the state they need
and carries them out through the backend.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, Protocol

from bridge.backends.base import BackendError
from bridge.config import AgentConfig, Config, QueueConfig
from bridge.core.models import AgentId, Conversation, ConversationId, RoomRef, Status
from bridge.core.names import agent_name
from bridge.core.routing import AgentView, choose_agents
from bridge.core.states import Happening, next_status
from bridge.notices import Notices
from bridge.routing.availability import Availability, Invitations
from bridge.routing.lobbies import Lobbies
from bridge.routing.waiting_line import WaitingLine

log = logging.getLogger(__name__)

Spawn = Callable[[Coroutine[Any, Any, None], str], asyncio.Task[None]]


class RoomMembers(Protocol):
    async def invite(self, room: RoomRef, address: str) -> None: ...

    async def remove(self, room: RoomRef, address: str) -> None: ...


class OwnershipStore(Protocol):
    def waiting_conversations(self, queue_id: str) -> Iterator[Conversation]: ...

    def set_agent(self, conversation_id: ConversationId, agent_id: AgentId) -> None: ...

    def clear_agent(self, conversation_id: ConversationId) -> None: ...

    def set_status(self, conversation_id: ConversationId, status: Status, *,
                   ended_at: float | None = None) -> None: ...

    def agent_present(self, conversation_id: str, agent_id: str) -> bool: ...


class Assignment:
    """Applies the queues' strategies: invites, hands chats over, requeues walk-outs."""

    def __init__(self, config: Config, store: OwnershipStore, members: RoomMembers,
                 availability: Availability, invitations: Invitations, line: WaitingLine,
                 lobbies: Lobbies, notices: Notices, spawn: Spawn) -> None:
        self._config = config
        self._store = store
        self._members = members
        self._availability = availability
        self._invitations = invitations
        self._line = line
        self._lobbies = lobbies
        self._notices = notices
        self._spawn = spawn
        self._pass: asyncio.Task[None] | None = None  # a routing pass after new rooms
        self._again = False  # more rooms opened while that pass ran

    async def on_presence(self, agent: AgentConfig, available: bool) -> None:
        if self._availability.set_presence(agent, available) and available:
            await self.assign_waiting()

    def invitees(self, conversation: Conversation, new_room: bool = True) -> tuple[str, ...]:
        """Who is invited to the conversation's room: its agent if it has one, else whom
        the queue's strategy picks among the agents who can take a chat now (maybe nobody:
        the chat then waits until someone can). For a room that exists already, those
        routing invited to it before, and nobody is chosen anew."""
        if conversation.agent_id and (agent := self._config.agent(conversation.agent_id)):
            return (agent.address,)
        queue = self._config.queue(conversation.queue_id)
        if queue is None:
            return ()
        if not new_room:
            invited = (self._invitations.invited(conversation.id)
                       - self._invitations.declined(conversation.id))
            return tuple(a.address for agent_id in sorted(invited)
                         if (a := self._config.agent(agent_id)))
        # The chat's own invitations (to a room that is gone) do not count against anyone.
        pending = self._invitations.pending()
        pending.subtract(self._invitations.invited(conversation.id)
                         - self._invitations.declined(conversation.id))
        chosen = choose_agents(queue.strategy, self._availability.members(queue, pending))
        self._invitations.replace_invited(conversation.id, chosen)
        return tuple(a.address for agent_id in chosen if (a := self._config.agent(agent_id)))

    async def assign_waiting(self) -> None:
        """Invite someone to each waiting chat whose invited agents can no longer take it
        (or who had nobody), and show chats nobody can take in their queue's lobby. Called
        when a room opens, an agent comes back, a chat ends or is left, and regularly.
        Chats of higher-priority queues go first, then the longest waiting."""
        # One pass reads each queue's members once (again only after an invitation changed
        # someone's count): thousands of waiting chats cost a loop, not thousands of queries.
        pending = self._invitations.pending()
        views: dict[str, list[AgentView]] = {}
        for conversation, queue in self._waiting_by_priority():
            if conversation.room is None or conversation.agent_id:
                continue  # no room to invite to yet, or claimed by an agent on their way
            invited = self._invitations.invited(conversation.id)
            declined = self._invitations.declined(conversation.id)
            if queue.id not in views:
                views[queue.id] = self._availability.members(queue, pending)
            members = views[queue.id]
            # An invitee's count includes this very chat: they are still coming while it
            # does not take them over their limit.
            if any(m.available and m.open_chats <= m.max_chats
                   for m in members if m.id in invited - declined):
                continue
            fresh = [m for m in members if m.id not in invited | declined]
            chosen = choose_agents(queue.strategy, fresh)
            for agent_id in chosen:
                agent = self._config.agent(agent_id)
                if agent is not None and await self._invite(conversation, agent):
                    self._invitations.mark(conversation.id, "invited", [agent.id])
                    pending[agent.id] += 1
                    views.clear()
            if not chosen:
                await self._lobbies.announce(conversation, queue)

    async def room_opened(self) -> None:
        """A new room exists: route it soon. Passes are coalesced, so a burst of new chats
        costs a few passes over the line, not one pass per chat."""
        if self._pass is None or self._pass.done():
            self._pass = self._spawn(self._passes(), "routing-pass")
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
        for queue in sorted(self._config.queues, key=lambda q: -q.priority):
            for conversation in self._store.waiting_conversations(queue.id):
                yield conversation, queue

    async def _invite(self, conversation: Conversation, agent: AgentConfig) -> bool:
        assert conversation.room is not None
        try:
            await self._members.invite(conversation.room, agent.address)
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
        self._store.set_agent(conversation.id, AgentId(agent.id))
        others = self._invitations.settle(conversation.id) - {agent.id}
        self._line.forget(conversation.id)
        if conversation.room is not None:
            for other_id in sorted(others):
                other = self._config.agent(other_id)
                if other is None:
                    continue
                try:
                    await self._members.remove(conversation.room, other.address)
                except BackendError as exc:
                    log.warning("conversation %s: could not let %s go (%s)", conversation.id,
                                other.id, exc)
        log.info("conversation %s: taken by %s (%d other invitees let go)", conversation.id,
                 agent.id, len(others))
        await self._lobbies.taken(conversation, agent_name(agent, ""),
                                  key=f"taken-{conversation.id}-{agent.id}")

    async def on_agent_left(self, conversation: Conversation, agent: AgentConfig) -> None:
        """An agent walked out of an open chat (or turned its invitation down). If it was
        the chat's agent, another agent still in the room has it now; with nobody left, the
        chat goes back to its place in the line and someone else is invited."""
        self._invitations.mark(conversation.id, "declined", [agent.id])
        if conversation.agent_id == agent.id and (heir := self._someone_present(conversation)):
            self._store.set_agent(conversation.id, AgentId(heir.id))
            log.info("conversation %s: %s left; %s has it now", conversation.id, agent.id,
                     heir.id)
        elif conversation.agent_id == agent.id:
            self._store.clear_agent(conversation.id)
            if conversation.status is not Status.ACTIVE:  # claimed, then turned down
                await self.assign_waiting()
                return
            status = next_status(conversation.status, Happening.AGENT_GONE)
            self._store.set_status(conversation.id, status)
            self._lobbies.forget(conversation.id)
            log.info("conversation %s: %s left; back in the waiting line", conversation.id,
                     agent.id)
            await self._notices.to_agents(conversation, f"{agent_name(agent, '')} left; "
                                          "the chat is back in the waiting line.",
                                          key=f"requeued-{conversation.id}-{agent.id}")
            await self._line.moved(conversation.queue_id)
        await self.assign_waiting()

    def _someone_present(self, conversation: Conversation) -> AgentConfig | None:
        return next((agent for agent in self._config.agents
                     if self._store.agent_present(conversation.id, agent.id)), None)

    def forget(self, conversation: Conversation) -> None:
        """The chat ended: nothing of it is left to route."""
        self._invitations.settle(conversation.id)
        self._line.forget(conversation.id)
        self._lobbies.forget(conversation.id)
