"""Chats nobody answered become tickets, so what the visitor wrote reaches someone who answers
by email (the help desk, or the queue's agents it is posted to)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from bridge.config import Config
from bridge.core import frames
from bridge.core.models import Conversation, ConversationId, Item, ItemKind, Sender, Ticket
from bridge.core.transcript import render_transcript
from bridge.notices import Notices
from bridge.sinks import Sinks
from bridge.tickets import Tickets

log = logging.getLogger(__name__)


class TicketStore(Protocol):
    def ticket_of_conversation(self, conversation_id: str) -> Ticket | None: ...

    def items_after(self, conversation_id: str, after: int) -> list[Item]: ...


class UnansweredTickets:
    """Makes the ticket of an unanswered chat, once per chat."""

    def __init__(self, config: Config, store: TicketStore, tickets: Tickets | None,
                 sinks: Sinks, notices: Notices, clock: Callable[[], float]) -> None:
        self._config = config
        self._store = store
        self._tickets = tickets
        self._sinks = sinks
        self._notices = notices
        self._clock = clock

    @property
    def available(self) -> bool:
        """Whether this bridge takes tickets at all."""
        return self._tickets is not None

    async def ticket_for(self, conversation: Conversation, *, asked: bool = False
                         ) -> Ticket | None:
        """The chat's ticket, when its queue says so or the visitor asked; only when the
        visitor wrote something, and once per chat."""
        queue = self._config.queue(conversation.queue_id)
        wanted = asked or (queue is not None and queue.unanswered_to_ticket)
        if (self._tickets is None or not wanted
                or self._store.ticket_of_conversation(conversation.id) is not None):
            return None
        items = self._store.items_after(conversation.id, 0)
        if not any(i.kind is ItemKind.TEXT and i.sender is Sender.VISITOR for i in items):
            return None
        ticket = self._tickets.from_chat(conversation, render_transcript(conversation, items),
                                         self._clock())
        await self._sinks.push(conversation.id, self._frame(ticket))
        answer = (" for the help desk." if self._tickets.routes(ticket.queue_id).helpdesk
                  else f": please answer by email to {ticket.email}.")
        await self._notices.to_agents(conversation, f"🎫 Nobody answered; "
                                      f"{conversation.visitor.name}'s lines are ticket "
                                      f"{ticket.id}{answer}", key=f"ticket-{conversation.id}")
        return ticket

    async def repeat(self, conversation_id: ConversationId) -> bool:
        """A second "leave a message" for a chat that has its ticket: the same number
        again; True when it was one."""
        known = self._store.ticket_of_conversation(conversation_id)
        if known is None:
            return False
        await self._sinks.push(conversation_id, self._frame(known))
        return True

    def _frame(self, ticket: Ticket) -> frames.Frame:
        """`ticket`, saying whether a help desk has it: only then may the widget promise
        "we will answer by email" (else the agents got it and answer)."""
        assert self._tickets is not None
        return {**frames.ticket_frame(ticket.id),
                "helpdesk": self._tickets.routes(ticket.queue_id).helpdesk}
