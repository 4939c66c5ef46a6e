"""Claiming a waiting chat from its line in the queue's lobby without typing `!claim N`: a
✅ reaction on the line (Matrix) or a "yes" in reply to it (XMPP, or any client that
marks replies). The claim itself is `!claim`'s: `ChatActions.claim_waiting`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from bridge.config import AgentConfig, QueueConfig
from bridge.core.commands import CommandError
from bridge.core.models import Conversation, ConversationId, RoomRef, Status
from bridge.core.offers import answer, claims

log = logging.getLogger(__name__)


class LobbyLines(Protocol):
    def queue_of(self, room: RoomRef) -> QueueConfig | None: ...

    def waiting_line(self, event_id: str) -> ConversationId | None: ...

    def announced(self) -> list[ConversationId]: ...


class ClaimStore(Protocol):
    def conversation(self, conversation_id: str) -> Conversation | None: ...

    def add_event(self, conversation_id: str | None, agent_id: str | None, kind: str,
                  detail: str, now: float) -> None: ...


class Claimer(Protocol):
    async def claim_waiting(self, conversation: Conversation, agent: AgentConfig) -> None: ...


class LobbyClaims:
    """Turns a ✅ or a "yes" in a lobby into a claim; each answer is a notice's text."""

    def __init__(self, lobbies: LobbyLines, store: ClaimStore, claimer: Claimer,
                 clock: Callable[[], float]) -> None:
        self._lobbies = lobbies
        self._store = store
        self._claimer = claimer
        self._clock = clock

    def is_lobby(self, room: RoomRef) -> bool:
        return self._lobbies.queue_of(room) is not None

    async def reacted(self, room: RoomRef, line: str, key: str, agent: AgentConfig
                      ) -> str | None:
        """A reaction on `line`: a claim when it is a ✅ on a waiting chat's line."""
        queue = self._lobbies.queue_of(room)
        conversation_id = self._lobbies.waiting_line(line)
        if queue is None or conversation_id is None or not claims(key):
            return None
        return await self._claim(conversation_id, agent, queue)

    async def answered(self, room: RoomRef, text: str, reply_to: str | None,
                       agent: AgentConfig) -> str | None:
        """A line in a lobby: a claim when it is a "yes" to a waiting chat's line, or to
        the one chat waiting there; None when it is no yes."""
        queue = self._lobbies.queue_of(room)
        if queue is None or answer(text) is not True:
            return None
        if reply_to is not None:
            conversation_id = self._lobbies.waiting_line(reply_to)
            if conversation_id is None:
                return "That line is no waiting chat; !queue lists them."
            return await self._claim(conversation_id, agent, queue)
        waiting = [c for c in self._lobbies.announced() if self._waits_in(c, queue)]
        if not waiting:
            return "Nobody is waiting in this queue now."
        if len(waiting) > 1:
            return ("Several chats are waiting: answer yes in reply to one's line, or "
                    "!claim N (!queue lists them).")
        return await self._claim(waiting[0], agent, queue)

    def _waits_in(self, conversation_id: str, queue: QueueConfig) -> bool:
        conversation = self._store.conversation(conversation_id)
        return conversation is not None and conversation.queue_id == queue.id \
            and conversation.status is Status.WAITING and conversation.agent_id is None

    async def _claim(self, conversation_id: ConversationId, agent: AgentConfig,
                     queue: QueueConfig) -> str:
        conversation = self._store.conversation(conversation_id)
        if conversation is None or not self._waits_in(conversation_id, queue):
            owner = conversation.agent_id if conversation else None
            name = conversation.visitor.name if conversation else "that visitor"
            return f"The chat with {name} is no longer waiting" + (
                f"; {owner} has it." if owner else ".")
        try:
            await self._claimer.claim_waiting(conversation, agent)
        except CommandError as exc:
            return str(exc)
        self._store.add_event(conversation.id, agent.id, "claim", "", self._clock())
        log.info("conversation %s: claimed by %s from the lobby", conversation.id, agent.id)
        return f"Invited you to the chat with {conversation.visitor.name}."
