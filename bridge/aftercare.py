"""After (and around) the end of a chat: the survey, the transcript by download or email,
the callback number, and the summary agents get."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

from bridge.config import AgentConfig, Config, site_of
from bridge.core.models import Conversation, ConversationId, FileInfo, ItemKind, Sender, Status
from bridge.core.names import agent_name
from bridge.core.protocol import CallbackFrame, ProtocolError, SurveyFrame, hash_token
from bridge.core.transcript import (
    RECIPIENT_WINDOW_S,
    mail_body,
    mail_refusal,
    mail_subject,
    render_transcript,
    visitor_recipient,
)
from bridge.mail import BadAddress, Mailer, MailError, build_message, parse_address
from bridge.notices import Notices
from bridge.store import Store
from bridge.timeline import Timeline

log = logging.getLogger(__name__)


class Aftercare:
    """The flows around a chat's end."""

    def __init__(self, config: Config, store: Store, timeline: Timeline, notices: Notices,
                 mailer: Mailer | None, clock: Callable[[], float],
                 file_link: Callable[[FileInfo], str] | None = None) -> None:
        self._config = config
        self._file_link = file_link  # files in transcripts: where the visitor gets them
        self._store = store
        self._timeline = timeline
        self._notices = notices
        self._mailer = mailer
        self._clock = clock
        # Transcript mails waiting for the relay, by conversation id and by address.
        self._sending: Counter[tuple[str, str]] = Counter()

    def summary(self, conversation_id: ConversationId) -> str:
        conversation = self._store.conversation(conversation_id)
        assert conversation is not None
        end = conversation.ended_at or self._clock()
        rating = f"{conversation.rating}/5" if conversation.rating else "not rated yet"
        return (f"Chat ended after {round((end - conversation.created_at) / 60, 1)} min, "
                f"{self._store.message_count(conversation_id)} messages; rating: {rating}.")

    def transcript_text(self, conversation: Conversation, *, audit: bool = False) -> str:
        """The transcript; `audit`: the agents' view, with when each line was seen."""
        changes = self._store.item_changes(conversation.id) if audit else None
        return render_transcript(conversation, self._store.items_after(conversation.id, 0),
                                 self._file_link, audit=changes)

    async def visitor_survey(self, conversation_id: ConversationId, frame: SurveyFrame) -> None:
        """The visitor's rating, once per conversation, after it ended; agents see it."""
        conversation = self._store.conversation(conversation_id)
        if conversation is None:
            raise ProtocolError("no_conversation", "start or resume a conversation first")
        if conversation.status is not Status.ENDED:
            raise ProtocolError("not_ended", "the survey opens when the chat has ended")
        if conversation.rating is not None:
            raise ProtocolError("already_rated", "this chat was already rated")
        self._store.set_rating(conversation.id, frame.rating, frame.comment)
        self._store.add_event(conversation.id, None, "rating", str(frame.rating),
                                 self._clock())
        log.info("conversation %s: rated %d/5", conversation.id, frame.rating)
        comment = f": {frame.comment}" if frame.comment else ""
        await self._notices.to_agents(
            conversation, f"⭐ {conversation.visitor.name} rated the chat {frame.rating}/5"
                              f"{comment}", key=f"rating-{conversation.id}")

    async def ask_callback(self, conversation: Conversation, agent: AgentConfig) -> None:
        await self._timeline.record(conversation.id, ItemKind.CALLBACK, Sender.AGENT,
                                    agent_name(agent, ""), "", self._clock(),
                                    sender_id=agent.id, delivered=True)

    async def visitor_callback(self, conversation_id: ConversationId, frame: CallbackFrame
                               ) -> None:
        """The visitor's phone number and a time, after an agent asked (!callback)."""
        conversation = self._store.conversation(conversation_id)
        if conversation is None:
            raise ProtocolError("no_conversation", "start or resume a conversation first")
        items = self._store.items_after(conversation_id, 0)
        if not any(i.kind is ItemKind.CALLBACK for i in items):
            raise ProtocolError("not_requested", "nobody asked for a callback number")
        self._store.set_callback(conversation.id, frame.phone, frame.time)
        self._store.add_event(conversation.id, None, "callback", frame.phone, self._clock())
        when = f" ({frame.time})" if frame.time else ""
        await self._notices.to_agents(
            conversation, f"📞 {conversation.visitor.name} asks to be called at "
                              f"{frame.phone}{when}",
                              key=f"callback-{conversation.id}-{frame.phone}")

    async def visitor_transcript(self, conversation_id: ConversationId, address: str | None
                                 ) -> str:
        """Mail the transcript to the visitor's own address (the only one they may name);
        returns that address."""
        conversation = self._store.conversation(conversation_id)
        if conversation is None:
            raise ProtocolError("no_conversation", "start or resume a conversation first")
        recipient = visitor_recipient(conversation.visitor.email, address)
        return await self.email_transcript(conversation, recipient)

    async def email_transcript(self, conversation: Conversation, address: str, *,
                               agent_id: str | None = None) -> str:
        """Mail the transcript (for an agent when `agent_id` is given) and return the address
        it went to; ProtocolError with a visitor-safe message when it is not sent."""
        if self._mailer is None:
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
        asked_by = "an agent" if agent_id is not None else conversation.visitor.name
        try:
            answer = await self._send_transcript(conversation, recipient,
                                                 by_agent=agent_id is not None)
            self._store.add_event(conversation.id, agent_id, "transcript_mailed", to[1],
                                     self._clock())
        except ProtocolError as exc:
            await self._record_mail(conversation, f"📧 The transcript for {recipient} (asked "
                                    f"by {asked_by}) was not sent: {exc.message}")
            raise
        finally:
            self._sending -= held  # drops the keys that reach zero
        log.info("conversation %s: transcript emailed", conversation.id)
        await self._record_mail(conversation, f"📧 Transcript emailed to {recipient} at "
                                f"{_clock_time(self._clock())} UTC (asked by {asked_by}); the "
                                f"mail server answered: {answer}")
        return recipient

    async def _record_mail(self, conversation: Conversation, text: str) -> None:
        """What happened to a transcript mail, in the room: agents see the visitor's
        requests and the relay's answer without asking the admin for logs."""
        await self._notices.to_agents(conversation, text,
                                      key=f"mail-{conversation.id}-{self._clock():.6f}")

    async def _send_transcript(self, conversation: Conversation, recipient: str, *,
                               by_agent: bool) -> str:
        assert self._mailer is not None
        site = site_of(conversation.page.url, self._config.server)
        try:
            message = build_message(
                self._mailer.cfg, recipient, mail_subject(site),
                mail_body(site, self.transcript_text(conversation), by_agent=by_agent),
                automatic=True)
            return await self._mailer.send(message)
        except BadAddress:
            raise ProtocolError("bad_email", "that email address cannot be used") from None
        except MailError as exc:
            raise ProtocolError("mail_failed", str(exc)) from None

    def _check_limits(self, chat: tuple[str, str], to: tuple[str, str], *, by_agent: bool
                      ) -> None:
        """`mail_limit` when the chat or the address has had its mails (those still on
        their way to the relay included)."""
        refusal = mail_refusal(
            in_chat=self._mailed_in_chat(chat[1]) + self._sending[chat],
            to_recipient=self._mailed_to(to[1], self._clock()) + self._sending[to],
            by_agent=by_agent)
        if refusal is not None:
            raise ProtocolError("mail_limit", refusal)

    def _mailed_in_chat(self, conversation_id: str) -> int:
        return sum(e["kind"] == "transcript_mailed"
                   for e in self._store.events(conversation_id))

    def _mailed_to(self, key: str, now: float) -> int:
        """Transcript mails to one address within the window, over all conversations, from
        the events table (so the limit holds across restarts)."""
        return self._store.count_events("transcript_mailed", key, now - RECIPIENT_WINDOW_S)

    def transcript_for_token(self, token: str) -> str | None:
        conversation = self._store.conversation_by_token(hash_token(token))
        return None if conversation is None else self.transcript_text(conversation)


def _clock_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%H:%M")
