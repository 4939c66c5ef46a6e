"""After (and around) the end of a chat: the survey, the transcript by download or email,
the callback number, and the summary agents get."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from bridge.config import AgentConfig
from bridge.core.models import Conversation, ConversationId, ItemKind, Sender, Status
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
        await self.hub._notice(conversation,
                           f"⭐ {conversation.visitor.name} rated the chat {frame.rating}/5"
                           f"{comment}", key=f"rating-{conversation.id}")

    async def ask_callback(self, conversation: Conversation, agent: AgentConfig) -> None:
        item, _ = self.hub.store.append_item(conversation.id, ItemKind.CALLBACK, Sender.AGENT,
                                         self.hub._agent_name(agent, ""), "", self.hub.clock(),
                                         sender_id=agent.id, delivered=True)
        await self.hub._push(conversation.id, self.hub._frame(item))

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
        await self.hub._notice(conversation, f"📞 {conversation.visitor.name} asks to be called at "
                           f"{frame.phone}{when}", key=f"callback-{conversation.id}-{frame.phone}")

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

    def transcript_for_token(self, token: str) -> str | None:
        conversation = self.hub.store.conversation_by_token(hash_token(token))
        return None if conversation is None else self.transcript_text(conversation)
