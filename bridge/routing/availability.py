"""Who can take a chat now: presence, breaks, open chats and the invitations on their way.

The invitation marks live here because an invitation counts as a chat on its way: two
waiting chats never go to one free place.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Protocol

from bridge.config import AgentConfig, Config, QueueConfig
from bridge.core.models import ConversationId
from bridge.core.routing import AgentView, is_open

log = logging.getLogger(__name__)


class MarksStore(Protocol):
    def routing_marks(self) -> list[tuple[ConversationId, str, str]]: ...

    def add_routing_marks(self, conversation_id: ConversationId, kind: str,
                          agent_ids: Iterable[str]) -> None: ...

    def clear_routing_marks(self, conversation_id: ConversationId, kind: str | None = None
                            ) -> None: ...


class AvailabilityStore(Protocol):
    def on_break(self, agent_id: str) -> bool: ...

    def open_chats_of(self, agent_id: str) -> int: ...


class Invitations:
    """Agents routing invited to each waiting chat, and those who left it or turned it down
    (who are not invited to it again); kept in the store too, so a restart remembers."""

    def __init__(self, store: MarksStore) -> None:
        self._store = store
        self._invited: dict[ConversationId, set[str]] = {}
        self._declined: dict[ConversationId, set[str]] = {}
        for conversation_id, agent_id, kind in store.routing_marks():
            self._marks(kind).setdefault(conversation_id, set()).add(agent_id)

    def _marks(self, kind: str) -> dict[ConversationId, set[str]]:
        return self._invited if kind == "invited" else self._declined

    def mark(self, conversation_id: ConversationId, kind: str, agent_ids: Iterable[str]
             ) -> None:
        marked = self._marks(kind).setdefault(conversation_id, set())
        new = [agent_id for agent_id in agent_ids if agent_id not in marked]
        if new:
            marked.update(new)
            self._store.add_routing_marks(conversation_id, kind, new)

    def replace_invited(self, conversation_id: ConversationId, agent_ids: Iterable[str]
                        ) -> None:
        """The invitations of a new room: those to an earlier room (gone, or never sent
        because the bridge stopped before it opened) no longer hold anyone's place."""
        self._invited.pop(conversation_id, None)
        self._store.clear_routing_marks(conversation_id, "invited")
        self.mark(conversation_id, "invited", agent_ids)

    def invited(self, conversation_id: ConversationId) -> set[str]:
        return self._invited.get(conversation_id, set())

    def declined(self, conversation_id: ConversationId) -> set[str]:
        return self._declined.get(conversation_id, set())

    def pending(self) -> Counter[str]:
        """Per agent, the invitations that are neither taken nor turned down."""
        return Counter(agent_id for conversation_id, invited in self._invited.items()
                       for agent_id in invited - self._declined.get(conversation_id, set()))

    def settle(self, conversation_id: ConversationId) -> set[str]:
        """The chat was taken or ended: forget its marks; returns whom it had invited."""
        invited = self._invited.pop(conversation_id, set())
        self._declined.pop(conversation_id, None)
        self._store.clear_routing_marks(conversation_id)
        return invited


class Availability:
    """Presence as the messenger reports it, breaks and open chats, per agent."""

    def __init__(self, config: Config, store: AvailabilityStore, invitations: Invitations,
                 presence_default: bool, clock: Callable[[], float]) -> None:
        self._config = config
        self._store = store
        self._invitations = invitations
        self._presence_default = presence_default
        self._clock = clock
        self._presence: dict[str, bool] = {}

    def set_presence(self, agent: AgentConfig, available: bool) -> bool:
        """Note a presence change; False when it is no change."""
        if self._presence.get(agent.id) == available:
            return False
        self._presence[agent.id] = available
        log.info("agent %s is %s", agent.id, "available" if available else "away")
        return True

    def agent_available(self, agent: AgentConfig) -> bool:
        """On a break, or away, busy (dnd), extended away or offline: no new chats."""
        if self._store.on_break(agent.id):
            return False
        return self._presence.get(agent.id, self._presence_default)

    def open_chats(self, agent: AgentConfig, pending: Counter[str] | None = None) -> int:
        """The agent's open chats, counting the waiting ones routing invited them to.
        `pending`: the invitations counted once for a whole routing pass."""
        if pending is None:
            pending = self._invitations.pending()
        return self._store.open_chats_of(agent.id) + pending[agent.id]

    def can_take(self, agent: AgentConfig) -> bool:
        return self.agent_available(agent) and self.open_chats(agent) < agent.max_chats

    def on_break(self, agent_id: str) -> bool:
        return self._store.on_break(agent_id)

    def queue_open(self, queue: QueueConfig) -> bool:
        local = datetime.fromtimestamp(self._clock(), queue.timezone)
        return is_open(queue.hours, queue.holidays, local)

    def members(self, queue: QueueConfig, pending: Counter[str] | None = None
                ) -> list[AgentView]:
        if pending is None:
            pending = self._invitations.pending()
        return [
            AgentView(id=agent.id, priority=queue.agent_priorities.get(agent.id, 0),
                      open_chats=self.open_chats(agent, pending), max_chats=agent.max_chats,
                      available=self.agent_available(agent))
            for agent in self.agents_of(queue)
        ]

    def agents_of(self, queue: QueueConfig) -> Iterator[AgentConfig]:
        for agent_id in queue.agents:
            if (agent := self._config.agent(agent_id)) is not None:
                yield agent
