"""After (and around) the end of a chat: the survey, the transcript by download or email,
the callback number, and the summary agents get."""

from __future__ import annotations

import logging
from collections import Counter
from typing import TYPE_CHECKING

from bridge.config import AgentConfig, normalize_origin
from bridge.core import frames
from bridge.core.models import Conversation, ConversationId, ItemKind, Sender, Status, Ticket
from bridge.core.protocol import CallbackFrame, ProtocolError, SurveyFrame, hash_token
from bridge.core.transcript import (
    RECIPIENT_WINDOW_S,
    mail_body,
    mail_refusal,
    mail_subject,
    render_transcript,
    visitor_recipient,
)
from bridge.mail import BadAddress, MailError, build_message, parse_address

if TYPE_CHECKING:
    from bridge.hub import Hub

log = logging.getLogger(__name__)


class Aftercare:
    """The flows around a chat's end, acting through the hub."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        # Transcript mails waiting for the relay, by conversation id and by address.
        self._sending: Counter[tuple[str, str]] = Counter()

    def summary(self, conversation_id: ConversationId) -> str:
        conversation = self.hub.store.conversation(conversation_id)
        assert conversation is not None
        end = conversation.ended_at or self.hub.clock()
        rating = f"{conversation.rating}/5" if conversation.rating else "not rated yet"
        return (f"Chat ended after {round((end - conversation.created_at) / 60, 1)} min, "
                f"{self.hub.store.message_count(conversation_id)} messages; rating: {rating}.")

    def transcript_text(self, conversation: Conversation) -> str:
        return render_transcript(conversation, self.hub.store.items_after(conversation.id, 0))

    async def visitor_survey(self, conversation_id: ConversationId, frame: SurveyFrame) -> None:
        """The visitor's rating, once per conversation, after it ended; agents see it."""
        conversation = self.hub.store.conversation(conversation_id)
        if conversation is None:
            raise ProtocolError("no_conversation", "start or resume a conversation first")
        if conversation.status is not Status.ENDED:
            raise ProtocolError("not_ended", "the survey opens when the chat has ended")
        if conversation.rating is not None:
            raise ProtocolError("already_rated", "this chat was already rated")
        self.hub.store.set_rating(conversation.id, frame.rating, frame.comment)
        self.hub.store.add_event(conversation.id, None, "rating", str(frame.rating),
                                 self.hub.clock())
        log.info("conversation %s: rated %d/5", conversation.id, frame.rating)
        comment = f": {frame.comment}" if frame.comment else ""
        await self.hub.notice(conversation,
                              f"⭐ {conversation.visitor.name} rated the chat {frame.rating}/5"
                              f"{comment}", key=f"rating-{conversation.id}")

    async def ask_callback(self, conversation: Conversation, agent: AgentConfig) -> None:
        item, _ = self.hub.store.append_item(conversation.id, ItemKind.CALLBACK, Sender.AGENT,
                                             self.hub.agent_name(agent, ""), "",
                                             self.hub.clock(), sender_id=agent.id,
                                             delivered=True)
        await self.hub.push(conversation.id, self.hub.frame(item))

    async def visitor_callback(self, conversation_id: ConversationId, frame: CallbackFrame
                               ) -> None:
        """The visitor's phone number and a time, after an agent asked (!callback)."""
        conversation = self.hub.store.conversation(conversation_id)
        if conversation is None:
            raise ProtocolError("no_conversation", "start or resume a conversation first")
        items = self.hub.store.items_after(conversation_id, 0)
        if not any(i.kind is ItemKind.CALLBACK for i in items):
            raise ProtocolError("not_requested", "nobody asked for a callback number")
        self.hub.store.set_callback(conversation.id, frame.phone, frame.time)
        self.hub.store.add_event(conversation.id, None, "callback", frame.phone, self.hub.clock())
        when = f" ({frame.time})" if frame.time else ""
        await self.hub.notice(conversation,
                              f"📞 {conversation.visitor.name} asks to be called at "
                              f"{frame.phone}{when}",
                              key=f"callback-{conversation.id}-{frame.phone}")

    async def visitor_transcript(self, conversation_id: ConversationId, address: str | None
                                 ) -> str:
        """Mail the transcript to the visitor's own address (the only one they may name);
        returns that address."""
        conversation = self.hub.store.conversation(conversation_id)
        if conversation is None:
            raise ProtocolError("no_conversation", "start or resume a conversation first")
        recipient = visitor_recipient(conversation.visitor.email, address)
        return await self.email_transcript(conversation, recipient)

    async def email_transcript(self, conversation: Conversation, address: str, *,
                               agent_id: str | None = None) -> str:
        """Mail the transcript (for an agent when `agent_id` is given) and return the address
        it went to; ProtocolError with a visitor-safe message when it is not sent."""
        if self.hub.mailer is None:
            raise ProtocolError("mail_unavailable", "sending email is not set up here")
        try:
            recipient = parse_address(address).addr_spec
        except BadAddress:
            raise ProtocolError("bad_email", "that email address cannot be used") from None
        # Letter case does not make another mailbox for the limit: count it as one.
        chat, to = ("chat", str(conversation.id)), ("to", recipient.lower())
        self._check_limits(chat, to, by_agent=agent_id is not None)
        # Held while the relay answers, so requests at the same moment cannot all pass.
        held = Counter((chat, to))
        self._sending += held
        try:
            await self._send_transcript(conversation, recipient, by_agent=agent_id is not None)
            self.hub.store.add_event(conversation.id, agent_id, "transcript_mailed", to[1],
                                     self.hub.clock())
        finally:
            self._sending -= held  # drops the keys that reach zero
        log.info("conversation %s: transcript emailed", conversation.id)
        return recipient

    async def _send_transcript(self, conversation: Conversation, recipient: str, *,
                               by_agent: bool) -> None:
        assert self.hub.mailer is not None
        site = self._site(conversation)
        try:
            message = build_message(
                self.hub.mailer.cfg, recipient, mail_subject(site),
                mail_body(site, self.transcript_text(conversation), by_agent=by_agent),
                automatic=True)
            await self.hub.mailer.send(message)
        except BadAddress:
            raise ProtocolError("bad_email", "that email address cannot be used") from None
        except MailError as exc:
            raise ProtocolError("mail_failed", str(exc)) from None

    def _site(self, conversation: Conversation) -> str:
        """The site the chat was on, as host[:port]: the page's origin when it is one of the
        configured sites (the page URL comes from the visitor), else the bridge's own."""
        server = self.hub.config.server
        origin = normalize_origin(conversation.page.url)
        if origin not in server.origins:
            origin = server.public_origin
        return origin.partition("://")[2]

    def _check_limits(self, chat: tuple[str, str], to: tuple[str, str], *, by_agent: bool
                      ) -> None:
        """`mail_limit` when the chat or the address has had its mails (those still on
        their way to the relay included)."""
        refusal = mail_refusal(
            in_chat=self._mailed_in_chat(chat[1]) + self._sending[chat],
            to_recipient=self._mailed_to(to[1], self.hub.clock()) + self._sending[to],
            by_agent=by_agent)
        if refusal is not None:
            raise ProtocolError("mail_limit", refusal)

    def _mailed_in_chat(self, conversation_id: str) -> int:
        return sum(e["kind"] == "transcript_mailed"
                   for e in self.hub.store.events(conversation_id))

    def _mailed_to(self, key: str, now: float) -> int:
        """Transcript mails to one address within the window, over all conversations, from
        the events table (so the limit holds across restarts)."""
        return self.hub.store.count_events("transcript_mailed", key, now - RECIPIENT_WINDOW_S)

    async def unanswered_ticket(self, conversation: Conversation, *, asked: bool = False
                                ) -> Ticket | None:
        """A chat nobody answered becomes a ticket, so what the visitor wrote is answered by
        email (by the help desk, or by the queue's agents it is posted to): when its queue
        says so, or when the visitor asked. Once per chat, and only when the visitor wrote
        something."""
        queue = self.hub.config.queue(conversation.queue_id)
        wanted = asked or (queue is not None and queue.unanswered_to_ticket)
        if (self.hub.tickets is None or not wanted
                or self.hub.store.ticket_of_conversation(conversation.id) is not None):
            return None
        items = self.hub.store.items_after(conversation.id, 0)
        if not any(i.kind is ItemKind.TEXT and i.sender is Sender.VISITOR for i in items):
            return None
        ticket = self.hub.tickets.from_chat(conversation, render_transcript(conversation, items),
                                            self.hub.clock())
        await self.hub.push(conversation.id, self._ticket_frame(ticket))
        answer = (" for the help desk." if self.hub.tickets.routes(ticket.queue_id).helpdesk
                  else f": please answer by email to {ticket.email}.")
        await self.hub.notice(conversation, f"🎫 Nobody answered; {conversation.visitor.name}'s "
                              f"lines are ticket {ticket.id}{answer}",
                              key=f"ticket-{conversation.id}")
        return ticket

    def _ticket_frame(self, ticket: Ticket) -> frames.Frame:
        """`ticket`, saying whether a help desk has it: only then may the widget promise
        "we will answer by email" (else the agents got it and answer)."""
        assert self.hub.tickets is not None
        return {**frames.ticket_frame(ticket.id),
                "helpdesk": self.hub.tickets.routes(ticket.queue_id).helpdesk}

    async def leave_message(self, conversation_id: ConversationId) -> None:
        """The waiting visitor gives up on chatting: their lines become a ticket and the
        chat ends. A repeat (a retry after a lost answer) gets the same ticket number."""
        conversation = self.hub.store.conversation(conversation_id)
        if conversation is None:
            raise ProtocolError("no_conversation", "start or resume a conversation first")
        known = self.hub.store.ticket_of_conversation(conversation_id)
        if known is not None:
            await self.hub.push(conversation_id, self._ticket_frame(known))
            return
        if conversation.status is Status.ENDED:
            raise ProtocolError("ended", "this conversation has ended; start a new one")
        if conversation.first_response_at is not None:
            raise ProtocolError("answered", "an agent is answering you; keep chatting")
        if self.hub.tickets is None:
            raise ProtocolError("unavailable", "messages cannot be left here")
        if await self.unanswered_ticket(conversation, asked=True) is None:
            raise ProtocolError("nothing_written", "write your message first, then leave it")
        log.info("conversation %s: visitor left a message instead of waiting", conversation.id)
        await self.hub.visitor_end(conversation_id)

    def transcript_for_token(self, token: str) -> str | None:
        conversation = self.hub.store.conversation_by_token(hash_token(token))
        return None if conversation is None else self.transcript_text(conversation)
