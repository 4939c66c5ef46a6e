"""The switchboard on the visitors' side: starting, resuming and following conversations,
and what visitors send, in order. What the backend reports goes through `bridge.inbound`;
every item is recorded through `bridge.timeline`.

Visitor line: validate → store (gets its seq) → outbox → backend; ack once on disk.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace

from bridge.aftercare import Aftercare
from bridge.backends.base import Backend, BackendError
from bridge.chat_actions import ChatActions
from bridge.config import Config, QueueConfig
from bridge.core import frames
from bridge.core.models import (
    Conversation,
    ConversationId,
    ItemKind,
    QueueId,
    Sender,
    Status,
)
from bridge.core.protocol import (
    CallbackFrame,
    DeleteFrame,
    EditFrame,
    MessageFrame,
    ProtocolError,
    ResumeFrame,
    StartFrame,
    SurveyFrame,
    hash_token,
    identity_verified,
)
from bridge.core.templates import render
from bridge.files import Files
from bridge.i18n import pick_language, visitor_strings
from bridge.idle import IdleChats
from bridge.inbound import Inbound
from bridge.outbox import Outbox
from bridge.peek import Peeks
from bridge.read_states import ReadStates
from bridge.routing.assignment import Assignment
from bridge.routing.availability import Availability
from bridge.routing.lobbies import Lobbies
from bridge.routing.waiting_line import WaitingLine
from bridge.sinks import Sinks, VisitorSink
from bridge.store import Store
from bridge.tasks import TaskGroup
from bridge.timeline import Timeline
from bridge.transfers import TransferOffers
from bridge.visitor_edits import VisitorEdits

log = logging.getLogger(__name__)

SWEEP_S = 30.0


@dataclass(frozen=True)
class HubParts:
    """The parts the hub orders, built by the composition root (bridge/app.py)."""

    sinks: Sinks
    timeline: Timeline
    outbox: Outbox
    availability: Availability
    assignment: Assignment
    line: WaitingLine
    lobbies: Lobbies
    actions: ChatActions
    aftercare: Aftercare
    idle: IdleChats
    peeks: Peeks
    edits: VisitorEdits
    inbound: Inbound
    files: Files
    reads: ReadStates
    offers: TransferOffers
    tasks: TaskGroup


class Hub:
    """Orders what visitors do; starts and stops the backend and the parts with it."""

    def __init__(self, config: Config, store: Store, backend: Backend, parts: HubParts, *,
                 clock: Callable[[], float]) -> None:
        self.config = config
        self.store = store
        self.backend = backend
        self.parts = parts
        self.clock = clock

    async def start(self) -> None:
        """Start the backend, then resume every delivery a previous run left unfinished."""
        parts = self.parts
        await self.backend.start(parts.inbound)
        open_conversations = self.store.open_conversations()
        lobbies = await parts.lobbies.open()
        await self.backend.attach_rooms(lobbies | {
            c.room: parts.outbox.room_spec(c, new_room=False)
            for c in open_conversations if c.room is not None
        })
        await parts.lobbies.update_members()
        for conversation in open_conversations:
            if conversation.room is None:
                parts.outbox.kick(conversation.id)
        for conversation_id in self.store.conversations_with_outbox():
            parts.outbox.kick(conversation_id)
        parts.tasks.spawn(self._sweep(), name="sweep")
        parts.tasks.spawn(parts.files.sweep_now_and_then(), name="files-sweep")

    async def stop(self) -> None:
        # The backend first: once it is quiet, no event can start a new task behind us.
        await self.backend.stop()
        await self.parts.tasks.close()

    async def _sweep(self) -> None:
        """Now and then: warn of idle chats and end silent ones, and give waiting chats to
        whoever can take them (a safety net behind the events that normally do it)."""
        parts = self.parts
        limits = [q.offer_message_after_minutes * 60 for q in self.config.queues]
        limits.append(self.config.chats.transfer_offer_seconds)
        idle_every = parts.idle.check_every()
        interval = min([SWEEP_S] + [max(s / 4, 0.2) for s in limits if s]
                       + ([idle_every] if idle_every else []))
        while True:
            await asyncio.sleep(interval)
            try:
                if idle_every:
                    await parts.idle.check()
                await parts.assignment.assign_waiting()
                await parts.line.offer_messages()
                await parts.offers.expire()
            except Exception:
                log.exception("sweep failed; next one in %.0fs", interval)

    # -- visitors ------------------------------------------------------------------------

    async def start_conversation(self, frame: StartFrame, sink: VisitorSink) -> Conversation:
        queue = self._queue_for_topic(frame.topic)
        if not self.parts.availability.queue_open(queue):
            raise ProtocolError("queue_closed", f"{queue.name} is closed now; please leave "
                                "a message instead")
        if queue.max_waiting and self.store.count_waiting(queue.id) >= queue.max_waiting:
            raise ProtocolError("queue_full", f"too many people are waiting for {queue.name}; "
                                "please leave a message instead")
        if self.store.is_banned(frame.visitor.email):
            # Said plainly but without "banned": nothing to argue with, nothing to probe.
            raise ProtocolError("unavailable", "chat is not available; please use email")
        token = secrets.token_urlsafe(24)
        visitor = frame.visitor
        if frame.identity is not None:
            # A wrong hash is not an error: the chat starts, flagged unverified for agents.
            verified = identity_verified(self.config.identity_secret, frame.identity)
            visitor = replace(visitor, identity_id=frame.identity.id, verified=verified)
        conversation = self.store.create_conversation(
            ConversationId(secrets.token_hex(8)), QueueId(queue.id), visitor, frame.page,
            hash_token(token), self.clock())
        log.info("conversation %s: started in queue %s", conversation.id, queue.id)
        if queue.text("welcome", conversation.visitor.lang):
            # Nobody follows the conversation yet: it reaches the visitor in the replay.
            await self.parts.timeline.record(conversation.id, ItemKind.TEXT, Sender.SYSTEM, "",
                                             self._render_welcome(conversation, queue),
                                             self.clock())
        else:
            self.parts.outbox.kick(conversation.id)  # the room is made all the same
        await sink.send(frames.started_frame(conversation, token))
        await self.follow(conversation.id, 0, sink)
        return conversation

    async def resume(self, frame: ResumeFrame, sink: VisitorSink) -> Conversation:
        conversation = self.store.conversation_by_token(hash_token(frame.token))
        if conversation is None:
            raise ProtocolError("bad_token", "unknown conversation token")
        await sink.send(frames.resumed_frame(
            conversation, self.parts.reads.seen_up_to(conversation.id)))
        await self.follow(conversation.id, frame.after, sink)
        log.info("conversation %s: visitor resumed after seq %d", conversation.id, frame.after)
        return conversation

    async def follow(self, conversation_id: ConversationId, after: int, sink: VisitorSink
                     ) -> None:
        """Send the sink everything after `after`, then keep it live (and, while the chat
        waits, tell it its place in line)."""
        await self.parts.timeline.replay(conversation_id, after, sink)
        conversation = self.store.conversation(conversation_id)
        if conversation is not None and conversation.status is Status.WAITING:
            await sink.send(self.parts.line.position_frame(conversation))

    async def visitor_read(self, conversation_id: ConversationId, seq: int) -> None:
        await self.parts.reads.visitor_read(conversation_id, seq)

    def detach(self, conversation_id: ConversationId, sink: VisitorSink) -> None:
        self.parts.sinks.detach(conversation_id, sink)

    async def visitor_message(self, conversation_id: ConversationId, frame: MessageFrame,
                              origin: VisitorSink) -> int:
        """Store a visitor line durably and queue it for the room; returns its seq."""
        conversation = self.store.conversation(conversation_id)
        if conversation is None:
            raise ProtocolError("no_conversation", "start or resume a conversation first")
        if conversation.status is Status.ENDED:
            known = self.store.item_by_client_id(conversation_id, frame.client_id)
            if known is not None:
                return known.seq  # a retry of a line stored before the chat ended
            raise ProtocolError("ended", "this conversation has ended; start a new one")
        seq = await self.parts.timeline.visitor_line(
            conversation.id, conversation.visitor.name, frame.text, frame.client_id,
            self.clock(), origin)
        self.parts.peeks.sent(conversation)
        return seq

    async def visitor_change(self, conversation_id: ConversationId,
                             change: EditFrame | DeleteFrame, origin: VisitorSink) -> None:
        """The visitor edits or deletes their last line; every connection of the chat gets
        the `edit` or `delete` frame (a repeat: `origin` alone)."""
        conversation = await self.parts.edits.change(conversation_id, change, origin)
        self.parts.peeks.sent(conversation)  # the preview of the new text, if any, goes

    async def visitor_typing(self, conversation_id: ConversationId, active: bool) -> None:
        conversation = self._open_conversation(conversation_id)
        if conversation.room is not None:
            self.parts.tasks.spawn(self._set_typing(conversation, active),
                                   name=f"typing-{conversation.id}")

    async def _set_typing(self, conversation: Conversation, active: bool) -> None:
        assert conversation.room is not None
        try:
            await self.backend.set_typing(conversation.room, active)
        except BackendError as exc:  # best effort: a lost typing state is no loss
            log.debug("conversation %s: typing not shown (%s)", conversation.id, exc)

    async def visitor_end(self, conversation_id: ConversationId) -> None:
        conversation = self._open_conversation(conversation_id)
        await self.parts.actions.end(conversation, Sender.VISITOR, conversation.visitor.name)

    async def leave_message(self, conversation_id: ConversationId) -> None:
        await self.parts.actions.leave_message(conversation_id)

    async def visitor_extend(self, conversation_id: ConversationId) -> float:
        return await self.parts.idle.extend(conversation_id)

    async def visitor_draft(self, conversation_id: ConversationId, text: str) -> None:
        self.parts.peeks.draft(conversation_id, text)

    async def visitor_survey(self, conversation_id: ConversationId, frame: SurveyFrame
                             ) -> None:
        await self.parts.aftercare.visitor_survey(conversation_id, frame)

    async def visitor_callback(self, conversation_id: ConversationId, frame: CallbackFrame
                               ) -> None:
        await self.parts.aftercare.visitor_callback(conversation_id, frame)

    async def visitor_transcript(self, conversation_id: ConversationId, email: str | None
                                 ) -> str:
        return await self.parts.aftercare.visitor_transcript(conversation_id, email)

    def _open_conversation(self, conversation_id: ConversationId) -> Conversation:
        conversation = self.store.conversation(conversation_id)
        if conversation is None:
            raise ProtocolError("no_conversation", "start or resume a conversation first")
        if conversation.status is Status.ENDED:
            raise ProtocolError("ended", "this conversation has ended; start a new one")
        return conversation

    def _queue_for_topic(self, topic: str | None) -> QueueConfig:
        if topic is None or topic == "":
            return self.config.queues[0]
        queue = self.config.queue(topic)
        if queue is None:
            raise ProtocolError("unknown_topic", "no such topic; see /v1/status")
        return queue

    def _render_welcome(self, conversation: Conversation, queue: QueueConfig) -> str:
        lang = pick_language(conversation.visitor.lang, self.config)
        return render(
            queue.text("welcome", lang),
            {"visitor": conversation.visitor.name, "queue": queue.text("name", lang),
             "agent": visitor_strings(self.config, lang)["someone"]},
        )
