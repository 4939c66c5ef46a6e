"""After (and around) the end of a chat: the survey, the transcript by download or email,
the callback number, and the summary agents get."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from bridge.config import AgentConfig
from bridge.core import frames
from bridge.core.models import Conversation, ConversationId, ItemKind, Sender, Status, Ticket
from bridge.core.protocol import CallbackFrame, ProtocolError, SurveyFrame, hash_token
from bridge.core.transcript import render_transcript
from bridge.mail import BadAddress, MailError, build_message

if TYPE_CHECKING:
    from bridge.hub import Hub

log = logging.getLogger(__name__)

TRANSCRIPT_MAILS_PER_CHAT = 3


class Aftercare:
    """The flows around a chat's end, acting through the hub."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

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

    async def visitor_transcript(self, conversation_id: ConversationId, address: str) -> None:
        conversation = self.hub.store.conversation(conversation_id)
        if conversation is None:
            raise ProtocolError("no_conversation", "start or resume a conversation first")
        await self.email_transcript(conversation, address)

    async def email_transcript(self, conversation: Conversation, address: str) -> None:
        """Mail the transcript; ProtocolError with a visitor-safe message when it fails."""
        if self.hub.mailer is None:
            raise ProtocolError("mail_unavailable", "sending email is not set up here")
        mailed = [e for e in self.hub.store.events(conversation.id)
                  if e["kind"] == "transcript_mailed"]
        if len(mailed) >= TRANSCRIPT_MAILS_PER_CHAT:
            # Visitor-written text from the site's address: not a mail cannon.
            raise ProtocolError("mail_limit", "this transcript was already emailed "
                                f"{TRANSCRIPT_MAILS_PER_CHAT} times")
        try:
            message = build_message(
                self.hub.mailer.cfg, (conversation.visitor.name, address)
                if address == conversation.visitor.email else address,
                f"{self.hub.config.widget.title}: your chat transcript",
                self.transcript_text(conversation))
            await self.hub.mailer.send(message)
        except BadAddress:
            raise ProtocolError("bad_email", "that email address cannot be used") from None
        except MailError as exc:
            raise ProtocolError("mail_failed", str(exc)) from None
        self.hub.store.add_event(conversation.id, None, "transcript_mailed", "", self.hub.clock())
        log.info("conversation %s: transcript emailed", conversation.id)

    async def unanswered_ticket(self, conversation: Conversation, *, asked: bool = False
                                ) -> Ticket | None:
        """A chat nobody answered becomes a help-desk ticket, so what the visitor wrote is
        answered by email: when its queue says so, or when the visitor asked. Once per chat,
        and only when the visitor wrote something."""
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
        await self.hub.push(conversation.id, frames.ticket_frame(ticket.id))
        await self.hub.notice(conversation, f"🎫 Nobody answered; {conversation.visitor.name}'s "
                              f"lines are ticket {ticket.id} for the help desk.",
                              key=f"ticket-{conversation.id}")
        return ticket

    async def leave_message(self, conversation_id: ConversationId) -> None:
        """The waiting visitor gives up on chatting: their lines become a ticket and the
        chat ends. A repeat (a retry after a lost answer) gets the same ticket number."""
        conversation = self.hub.store.conversation(conversation_id)
        if conversation is None:
            raise ProtocolError("no_conversation", "start or resume a conversation first")
        known = self.hub.store.ticket_of_conversation(conversation_id)
        if known is not None:
            await self.hub.push(conversation_id, frames.ticket_frame(known.id))
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
