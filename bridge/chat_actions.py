"""What happens to a chat when someone acts on it: an agent's line, a canned reply, an
invitation, a transfer, the end. The hub (for what arrives) and the commands (for what
agents ask) both come here, so each effect exists once."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from bridge.backends.base import BackendError
from bridge.config import AgentConfig, Config, QueueConfig, site_of
from bridge.core.commands import CommandError
from bridge.core.models import (
    AgentId,
    Conversation,
    ConversationId,
    FileInfo,
    ItemKind,
    QueueId,
    RoomRef,
    Sender,
    Status,
)
from bridge.core.names import agent_name
from bridge.core.protocol import ProtocolError
from bridge.core.states import Happening, InvalidTransition, next_status
from bridge.notices import Notices
from bridge.routing.assignment import Assignment
from bridge.routing.waiting_line import WaitingLine
from bridge.timeline import Timeline
from bridge.unanswered import UnansweredTickets

log = logging.getLogger(__name__)


class RoomMembers(Protocol):
    async def invite(self, room: RoomRef, address: str) -> None: ...

    async def remove(self, room: RoomRef, address: str) -> None: ...


class ChatStore(Protocol):
    def conversation(self, conversation_id: str) -> Conversation | None: ...

    def set_agent(self, conversation_id: ConversationId, agent_id: AgentId) -> None: ...

    def set_queue(self, conversation_id: ConversationId, queue_id: QueueId) -> None: ...

    def set_status(self, conversation_id: ConversationId, status: Status, *,
                   ended_at: float | None = None) -> None: ...

    def set_first_response(self, conversation_id: ConversationId, now: float) -> None: ...


class ChatActions:
    """The effects on one chat, each in one place."""

    def __init__(self, config: Config, store: ChatStore, members: RoomMembers,
                 timeline: Timeline, notices: Notices, assignment: Assignment,
                 line: WaitingLine, unanswered: UnansweredTickets,
                 clock: Callable[[], float],
                 ended: Callable[[Conversation], Awaitable[None]] | None = None) -> None:
        self._config = config
        self._store = store
        self._members = members
        self._timeline = timeline
        self._notices = notices
        self._assignment = assignment
        self._line = line
        self._unanswered = unanswered
        self._clock = clock
        self._ended = ended  # what else a chat's end tells (agent lines never seen)

    def placeholders(self, conversation: Conversation | None, agent: AgentConfig
                     ) -> dict[str, str]:
        """Values for {visitor}, {visitor_email}, {agent}, {queue}, {site} in canned texts."""
        queue = self._config.queue(conversation.queue_id) if conversation else None
        return {
            "visitor": conversation.visitor.name if conversation else "",
            "visitor_email": conversation.visitor.email if conversation else "",
            "agent": agent_name(agent, ""),
            "queue": queue.name if queue else "",
            "site": self._config.widget.site or (site_of(conversation.page.url,
                                                          self._config.server)
                                                  if conversation else ""),
        }

    async def agent_said(self, conversation: Conversation, agent: AgentConfig, name: str,
                         text: str, event_id: str, ts: float, file: FileInfo | None = None
                         ) -> None:
        """An agent's line or file for the visitor (once per event id): stored, shown, and
        the chat is the agent's now if nobody had it."""
        item, created = await self._timeline.record(
            conversation.id, ItemKind.FILE if file else ItemKind.TEXT, Sender.AGENT, name,
            text, ts, sender_id=agent.id, event_id=event_id, delivered=True, file=file)
        if not created:
            return
        log.debug("conversation %s: agent %s line seq %d", conversation.id, agent.id, item.seq)
        self._store.set_first_response(conversation.id, ts)
        await self.engaged(conversation, agent, Happening.AGENT_REPLIED)

    async def engaged(self, conversation: Conversation, agent: AgentConfig,
                      happening: Happening) -> None:
        """An agent joined or spoke: the chat becomes active, and has an owner."""
        try:
            status = next_status(conversation.status, happening)
        except InvalidTransition:
            return
        queue = self._config.queue(conversation.queue_id)
        # Under `broadcast` several agents may join; the first to speak (or !claim) owns it.
        first_word = happening is Happening.AGENT_REPLIED or (
            queue is None or queue.strategy != "broadcast")
        if conversation.agent_id is None and first_word:
            await self._assignment.take(conversation, agent)
        if status is not conversation.status:
            self._store.set_status(conversation.id, status)
            await self._line.moved(conversation.queue_id)

    async def agent_line(self, conversation: Conversation, agent: AgentConfig, text: str,
                         key: str) -> None:
        """A line an agent sends through a command (a canned reply): to the visitor, and
        shown in the room so the other agents see what the visitor got. `key` (the command's
        event id) keeps a replayed command from sending it twice."""
        await self.agent_said(conversation, agent, agent_name(agent, ""), text, key,
                              self._clock())
        await self._notices.to_agents(conversation, f"{agent_name(agent, '')} → visitor: "
                                      f"{text}", key=f"said-{key}")

    async def invite_agent(self, conversation: Conversation, agent: AgentConfig) -> None:
        if conversation.room is None:
            raise CommandError("The room is still being set up; try again in a moment.")
        try:
            await self._members.invite(conversation.room, agent.address)
        except BackendError as exc:
            raise CommandError(f"Could not invite {agent.id}: {exc}") from None

    async def claim_waiting(self, conversation: Conversation, agent: AgentConfig) -> None:
        """A waiting chat taken from the line (`!claim N`, a ✅ in the lobby): the agent is
        invited and owns it."""
        await self.invite_agent(conversation, agent)
        await self._assignment.take(conversation, agent)

    async def hand_over(self, conversation: Conversation, current: AgentConfig,
                        target: AgentConfig, queue: QueueConfig | None, *, stay: bool) -> None:
        """`target`, in the room, has the chat now: the visitor is told, and the previous
        agent goes unless they stay."""
        self._store.set_agent(conversation.id, AgentId(target.id))
        if queue is not None:
            self._store.set_queue(conversation.id, QueueId(queue.id))
        await self._timeline.record(conversation.id, ItemKind.TRANSFERRED, Sender.AGENT,
                                    agent_name(target, ""), "", self._clock(),
                                    sender_id=target.id, delivered=True)
        if not stay and conversation.room is not None:
            try:
                await self._members.remove(conversation.room, current.address)
            except BackendError as exc:
                log.warning("conversation %s: could not remove %s (%s)", conversation.id,
                            current.id, exc)
        log.info("conversation %s: transferred from %s to %s", conversation.id, current.id,
                 target.id)

    async def end_by_agent(self, conversation: Conversation, agent: AgentConfig) -> None:
        await self.end(conversation, Sender.AGENT, agent_name(agent, ""))

    async def end(self, conversation: Conversation, by: Sender, name: str) -> None:
        """The chat ends: the visitor gets the survey, an unanswered chat may become a
        ticket, and whoever was invited or waiting moves on."""
        now = self._clock()
        status = next_status(conversation.status, Happening.ENDED)
        item, _ = self._timeline.store_only(conversation.id, ItemKind.ENDED, by, name, now,
                                            delivered=by is Sender.AGENT)
        self._store.set_status(conversation.id, status, ended_at=now)
        log.info("conversation %s: ended by %s", conversation.id, by.value)
        if by is not Sender.AGENT and conversation.first_response_at is None:
            await self._unanswered.ticket_for(conversation)
        await self._timeline.show(item)
        if self._ended is not None:
            await self._ended(conversation)
        self._assignment.forget(conversation)
        if conversation.status is Status.WAITING:
            await self._line.moved(conversation.queue_id)
        else:
            await self._assignment.assign_waiting()  # its agent may take a waiting chat now

    async def leave_message(self, conversation_id: ConversationId) -> None:
        """The waiting visitor gives up on chatting: their lines become a ticket and the
        chat ends. A repeat (a retry after a lost answer) gets the same ticket number."""
        conversation = self._store.conversation(conversation_id)
        if conversation is None:
            raise ProtocolError("no_conversation", "start or resume a conversation first")
        if await self._unanswered.repeat(conversation_id):
            return
        if conversation.status is Status.ENDED:
            raise ProtocolError("ended", "this conversation has ended; start a new one")
        if conversation.first_response_at is not None:
            raise ProtocolError("answered", "an agent is answering you; keep chatting")
        if not self._unanswered.available:
            raise ProtocolError("unavailable", "messages cannot be left here")
        if await self._unanswered.ticket_for(conversation, asked=True) is None:
            raise ProtocolError("nothing_written", "write your message first, then leave it")
        log.info("conversation %s: visitor left a message instead of waiting", conversation.id)
        await self.end(conversation, Sender.VISITOR, conversation.visitor.name)
