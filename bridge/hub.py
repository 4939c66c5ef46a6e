"""The switchboard: the one place where every event is ordered, stored and routed.

Visitor line: validate → store (gets its seq) → ack → outbox → backend.
Agent line: identify conversation and agent → store → push to the visitor's live sockets.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import Any, Protocol

from bridge.aftercare import Aftercare
from bridge.backends.base import (
    AgentMessage,
    AgentPresence,
    AgentTyping,
    Backend,
    BackendError,
    Connected,
    HandlingDeferred,
    InboundEvent,
    MemberJoined,
    MemberLeft,
)
from bridge.commands import Commands
from bridge.config import AgentConfig, Config, QueueConfig
from bridge.core import frames
from bridge.core.commands import Command, CommandError, Literal, parse_line
from bridge.core.models import (
    AgentId,
    Conversation,
    ConversationId,
    Item,
    ItemKind,
    QueueId,
    RoomRef,
    Sender,
    Status,
)
from bridge.core.protocol import (
    MessageFrame,
    ProtocolError,
    ResumeFrame,
    StartFrame,
    hash_token,
    identity_verified,
)
from bridge.core.states import Happening, InvalidTransition, is_abandoned, next_status
from bridge.core.templates import render
from bridge.mail import Mailer
from bridge.outbox import Outbox
from bridge.routing import Router
from bridge.store import Store, StoreUnavailable
from bridge.tasks import TaskGroup
from bridge.tickets import Tickets

log = logging.getLogger(__name__)

SURVEY_QUESTION = "How was this chat?"
REPLAY_BATCH = 100
SWEEP_S = 30.0
EDIT_MARK = "✎ "
STORE_FULL_MESSAGE = "the line could not be stored right now; send it again in a few seconds"


class VisitorSink(Protocol):
    """One live visitor connection; the web layer implements it over a WebSocket."""

    async def send(self, frame: frames.Frame) -> None:
        """Queue a frame for this connection; never waits on the network."""

    async def drain(self) -> None:
        """Wait until the queued frames were written."""


class Hub:
    """Orders, stores and routes every event between visitors and the backend."""

    def __init__(
        self,
        config: Config,
        store: Store,
        backend: Backend,
        *,
        clock: Callable[[], float] = time.time,
        mailer: Mailer | None = None,
        tickets: Tickets | None = None,
    ) -> None:
        self.config = config
        self.mailer = mailer
        self.tickets = tickets
        self.store = store
        self.backend = backend
        self.clock = clock
        self._sinks: dict[ConversationId, set[VisitorSink]] = {}
        self._tasks = TaskGroup()
        self.commands = Commands(self)
        self.aftercare = Aftercare(self)
        self.router = Router(self)
        self.outbox = Outbox(config, store, backend, self._tasks, self.router.invitees,
                             self.router.room_opened)

    async def start(self) -> None:
        """Start the backend, then resume every delivery a previous run left unfinished."""
        await self.backend.start(self.on_inbound)
        open_conversations = self.store.open_conversations()
        lobbies = await self.router.open_lobbies()
        await self.backend.attach_rooms(lobbies | {
            c.room: self.outbox.room_spec(c) for c in open_conversations if c.room is not None
        })
        await self.router.update_lobby_members()
        for conversation in open_conversations:
            if conversation.room is None:
                self.outbox.kick(conversation.id)
        for conversation_id in self.store.conversations_with_outbox():
            self.outbox.kick(conversation_id)
        self._tasks.spawn(self._sweep(), name="sweep")

    async def _sweep(self) -> None:
        """Now and then: end abandoned chats, and give waiting chats to whoever can take
        them (a safety net behind the events that normally do it)."""
        timeout_s = self.config.server.idle_timeout_minutes * 60
        limits = [timeout_s] + [q.offer_message_after_minutes * 60 for q in self.config.queues]
        interval = min([SWEEP_S] + [max(s / 4, 0.2) for s in limits if s])
        while True:
            await asyncio.sleep(interval)
            try:
                if timeout_s:
                    await self._end_abandoned_chats(timeout_s)
                await self.router.assign_waiting()
                await self.router.offer_messages()
            except Exception:
                log.exception("sweep failed; next one in %.0fs", interval)

    async def _end_abandoned_chats(self, timeout_s: float) -> None:
        """End chats nobody wrote in for the configured time; the visitor gets the survey."""
        now = self.clock()
        for conversation_id, last in self.store.last_activity():
            if not is_abandoned(last, now, timeout_s):
                continue
            conversation = self.store.conversation(conversation_id)
            if conversation is None or conversation.status is Status.ENDED:
                continue
            log.info("conversation %s: ended after %.0f min without a line",
                     conversation_id, (now - last) / 60)
            await self._end(conversation, Sender.SYSTEM, "")

    async def stop(self) -> None:
        # The backend first: once it is quiet, no event can start a new task behind us.
        await self.backend.stop()
        await self._tasks.close()

    # -- visitor side --------------------------------------------------------------------

    async def start_conversation(self, frame: StartFrame, sink: VisitorSink) -> Conversation:
        queue = self._queue_for_topic(frame.topic)
        if not self.router.queue_open(queue):
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
            ConversationId(secrets.token_hex(8)),
            QueueId(queue.id),
            visitor,
            frame.page,
            hash_token(token),
            self.clock(),
        )
        log.info("conversation %s: started in queue %s", conversation.id, queue.id)
        if queue.text("welcome", conversation.visitor.lang):
            self.store.append_item(conversation.id, ItemKind.TEXT, Sender.SYSTEM, "",
                                   self._render_welcome(conversation, queue), self.clock())
        self.outbox.kick(conversation.id)
        await sink.send(frames.started_frame(conversation, token))
        await self.follow(conversation.id, 0, sink)
        return conversation

    async def resume(self, frame: ResumeFrame, sink: VisitorSink) -> Conversation:
        conversation = self.store.conversation_by_token(hash_token(frame.token))
        if conversation is None:
            raise ProtocolError("bad_token", "unknown conversation token")
        await sink.send(frames.resumed_frame(conversation))
        await self.follow(conversation.id, frame.after, sink)
        log.info("conversation %s: visitor resumed after seq %d", conversation.id, frame.after)
        return conversation

    async def follow(self, conversation_id: ConversationId, after: int, sink: VisitorSink
                     ) -> None:
        """Send the sink everything after `after`, then keep it live (and, while the chat
        waits, tell it its place in line)."""
        await self._replay(conversation_id, after, sink)
        conversation = self.store.conversation(conversation_id)
        if conversation is not None and conversation.status is Status.WAITING:
            await sink.send(self.router.position_frame(conversation))

    async def _replay(self, conversation_id: ConversationId, after: int, sink: VisitorSink
                      ) -> None:
        """Send everything after `after`, then go live with no gap and nothing out of order:
        the sink is attached right after a query that found nothing new, with no await
        in between, so every later item reaches it as a live push."""
        while items := self.store.items_after(conversation_id, after):
            for count, item in enumerate(items, 1):
                await sink.send(self.frame(item))
                after = item.seq
                if count % REPLAY_BATCH == 0:
                    await sink.drain()  # a long chat goes out in batches, not all queued
        self.attach(conversation_id, sink)

    def attach(self, conversation_id: ConversationId, sink: VisitorSink) -> None:
        self._sinks.setdefault(conversation_id, set()).add(sink)

    def detach(self, conversation_id: ConversationId, sink: VisitorSink) -> None:
        sinks = self._sinks.get(conversation_id)
        if sinks is not None:
            sinks.discard(sink)
            if not sinks:
                del self._sinks[conversation_id]

    def spawn(self, coroutine: Coroutine[Any, Any, None], *, name: str) -> asyncio.Task[None]:
        """A background task of the hub's, stopped with it."""
        return self._tasks.spawn(coroutine, name=name)

    def has_visitor(self, conversation_id: ConversationId) -> bool:
        """Whether the visitor has the chat open somewhere right now."""
        return bool(self._sinks.get(conversation_id))

    async def visitor_message(
        self, conversation_id: ConversationId, frame: MessageFrame, origin: VisitorSink
    ) -> int:
        """Store a visitor line durably and queue it for the room; returns its seq."""
        conversation = self.store.conversation(conversation_id)
        if conversation is None:
            raise ProtocolError("no_conversation", "start or resume a conversation first")
        if conversation.status is Status.ENDED:
            known = self.store.item_by_client_id(conversation_id, frame.client_id)
            if known is not None:
                return known.seq  # a retry of a line stored before the chat ended
            raise ProtocolError("ended", "this conversation has ended; start a new one")
        try:
            item, created = self.store.append_item(  # a repeated client_id: its first seq
                conversation.id,
                ItemKind.TEXT,
                Sender.VISITOR,
                conversation.visitor.name,
                frame.text,
                self.clock(),
                client_id=frame.client_id,
                wait_for_disk=False,
            )
        except StoreUnavailable as exc:
            log.warning("conversation %s: visitor line not stored: %s", conversation.id, exc)
            raise ProtocolError("try_again", STORE_FULL_MESSAGE) from exc
        if created:
            log.debug("conversation %s: visitor line seq %d: %r", conversation.id, item.seq,
                      item.text)
            # The room may see the line while the disk catches up: a crash cannot lose a
            # committed line, and the visitor resends any line not acknowledged.
            self.outbox.kick(conversation.id, item)
            await asyncio.sleep(0)  # the courier posts the line before the fsync is set going
        try:
            await self.store.flush()  # a retry, too, is acknowledged only once on disk
        except StoreUnavailable as exc:
            # Committed but maybe not on disk: no ack; the resend finds it by client_id.
            log.warning("conversation %s: visitor line seq %d not synced: %s",
                        conversation.id, item.seq, exc)
            raise ProtocolError("try_again", STORE_FULL_MESSAGE) from exc
        if created:
            await self.push(conversation.id, self.frame(item), skip=origin)
        return item.seq

    async def visitor_typing(self, conversation_id: ConversationId, active: bool) -> None:
        conversation = self._open_conversation(conversation_id)
        if conversation.room is not None:
            self._tasks.spawn(
                self._set_typing(conversation.id, conversation.room, active),
                name=f"typing-{conversation.id}",
            )

    async def visitor_end(self, conversation_id: ConversationId) -> None:
        conversation = self._open_conversation(conversation_id)
        await self._end(conversation, Sender.VISITOR, conversation.visitor.name)

    def _open_conversation(self, conversation_id: ConversationId) -> Conversation:
        conversation = self.store.conversation(conversation_id)
        if conversation is None:
            raise ProtocolError("no_conversation", "start or resume a conversation first")
        if conversation.status is Status.ENDED:
            raise ProtocolError("ended", "this conversation has ended; start a new one")
        return conversation

    async def _end(self, conversation: Conversation, by: Sender, name: str) -> None:
        now = self.clock()
        status = next_status(conversation.status, Happening.ENDED)
        item, _ = self.store.append_item(
            conversation.id, ItemKind.ENDED, by, name, "", now, delivered=by is Sender.AGENT
        )
        self.store.set_status(conversation.id, status, ended_at=now)
        log.info("conversation %s: ended by %s", conversation.id, by.value)
        if by is not Sender.AGENT and conversation.first_response_at is None:
            await self.aftercare.unanswered_ticket(conversation)
        await self.push(conversation.id, self.frame(item))
        self.outbox.kick(conversation.id)
        self.router.forget(conversation.id)
        if conversation.status is Status.WAITING:
            await self.router.line_moved(conversation.queue_id)
        else:
            await self.router.assign_waiting()  # its agent may take a waiting chat now

    # -- backend side --------------------------------------------------------------------

    async def on_inbound(self, event: InboundEvent) -> None:
        """The one entry point for everything a backend reports, in the order it happened."""
        try:
            if isinstance(event, Connected):
                self.outbox.wake()
            elif isinstance(event, AgentMessage):
                await self._on_agent_message(event)
            elif isinstance(event, AgentTyping):
                await self._on_agent_typing(event)
            elif isinstance(event, MemberJoined | MemberLeft):
                await self._on_membership(event)
            elif isinstance(event, AgentPresence):
                await self._on_presence(event)
        except StoreUnavailable as exc:
            # Not dropped: the backend hands it over again once the store takes writes.
            log.warning("%s from %s held back: %s", type(event).__name__,
                        getattr(event, "room", "-"), exc)
            raise HandlingDeferred(str(exc)) from exc
        except Exception:
            log.exception("failed to handle %s", type(event).__name__)

    async def _on_presence(self, event: AgentPresence) -> None:
        agent = self.config.agent_by_address(event.address)
        if agent is not None:
            await self.router.on_presence(agent, event.available)

    def _agent_in_room(
        self, room: RoomRef, address: str, what: str
    ) -> tuple[Conversation, AgentConfig] | None:
        conversation = self.store.conversation_by_room(room)
        if conversation is None:
            return None
        agent = self.config.agent_by_address(address)
        if agent is None:
            log.warning("conversation %s: %s from %s, who is not a configured agent; not relayed",
                        conversation.id, what, address)
            return None
        return conversation, agent

    async def _on_direct(self, event: AgentMessage) -> None:
        """A line in a room that is no conversation's: a queue's lobby or an agent's direct
        chat with the bot, where only commands about the agent make sense."""
        agent = self.config.agent_by_address(event.sender)
        if agent is None:
            return
        try:
            parsed = parse_line(event.text, self.commands.registry.prefix)
        except CommandError as exc:
            reply = str(exc)
        else:
            if isinstance(parsed, Command):
                if self.store.command_handled(event.event_id):
                    return  # delivered again (a sync batch fetched again, an archive read)
                lobby = self.router.lobby_queue(event.room)
                reply = (await self.commands.run(parsed, agent, None, event.event_id,
                                                 lobby=lobby)).to_agents
                self.store.mark_command_handled(event.event_id, self.clock(), event.room)
            else:
                reply = "Only commands work here; try !help."
        if reply:
            try:
                await self.backend.post_notice(event.room, reply, key=f"cmd-{event.event_id}")
            except BackendError as exc:
                log.warning("agent %s: command reply not posted (%s)", agent.id, exc)

    async def _on_agent_message(self, event: AgentMessage) -> None:
        if self.store.conversation_by_room(event.room) is None:
            await self._on_direct(event)
            return
        found = self._agent_in_room(event.room, event.sender, "message")
        if found is None:
            return
        conversation, agent = found
        if event.edited:
            # The widget has no edits yet: the corrected line comes as a new, marked line
            # (and a corrected command is not run again).
            if conversation.status is not Status.ENDED:
                await self._agent_item(conversation, agent,
                                       self.agent_name(agent, event.sender_name),
                                       f"{EDIT_MARK}{event.text}", event.event_id, event.ts)
            return
        try:
            parsed = parse_line(event.text, self.commands.registry.prefix)
        except CommandError as exc:
            await self.notice(conversation, str(exc), key=f"cmd-{event.event_id}")
            return
        if isinstance(parsed, Command):
            if self.store.command_handled(event.event_id):
                return  # delivered again (a sync batch fetched again, an archive read)
            log.info("conversation %s: agent %s runs %s", conversation.id, agent.id, parsed.name)
            reply = await self.commands.run(parsed, agent, conversation, event.event_id)
            self.store.mark_command_handled(event.event_id, self.clock(), event.room)
            if reply.to_agents:
                await self.notice(conversation, reply.to_agents, key=f"cmd-{event.event_id}")
            return
        if conversation.status is Status.ENDED:
            await self.notice(conversation, "This chat has ended; the visitor no longer sees "
                              "new messages.", key=f"ended-{event.event_id}")
            return
        text = parsed.text if isinstance(parsed, Literal) else event.text
        name = self.agent_name(agent, event.sender_name)
        await self._agent_item(conversation, agent, name, text, event.event_id, event.ts)

    async def _agent_item(self, conversation: Conversation, agent: AgentConfig, name: str,
                          text: str, event_id: str, ts: float) -> None:
        """Store an agent's line for the visitor (once per event id) and push it."""
        item, created = self.store.append_item(
            conversation.id, ItemKind.TEXT, Sender.AGENT, name, text, ts,
            sender_id=agent.id, event_id=event_id, delivered=True,
        )
        if not created:
            return
        log.debug("conversation %s: agent %s line seq %d", conversation.id, agent.id, item.seq)
        await self.push(conversation.id, self.frame(item))
        self.store.set_first_response(conversation.id, ts)
        await self._agent_engaged(conversation, agent, Happening.AGENT_REPLIED)

    # -- effects that commands ask for ---------------------------------------------------

    def placeholders(self, conversation: Conversation | None, agent: AgentConfig
                     ) -> dict[str, str]:
        """Values for {visitor}, {visitor_email}, {agent}, {queue}, {site} in canned texts."""
        queue = self._queue(conversation.queue_id) if conversation else None
        return {
            "visitor": conversation.visitor.name if conversation else "",
            "visitor_email": conversation.visitor.email if conversation else "",
            "agent": self.agent_name(agent, ""),
            "queue": queue.name if queue else "",
            "site": self.config.widget.title,
        }

    async def agent_line(self, conversation: Conversation, agent: AgentConfig, text: str,
                         key: str) -> None:
        """A line an agent sends through a command (a canned reply): to the visitor, and
        shown in the room so the other agents see what the visitor got. `key` (the command's
        event id) keeps a replayed command from sending it twice."""
        await self._agent_item(conversation, agent, self.agent_name(agent, ""), text, key,
                               self.clock())
        await self.notice(conversation, f"{self.agent_name(agent, '')} → visitor: {text}",
                          key=f"said-{key}")

    async def invite_agent(self, conversation: Conversation, agent: AgentConfig) -> None:
        if conversation.room is None:
            raise CommandError("The room is still being set up; try again in a moment.")
        try:
            await self.backend.invite(conversation.room, agent.address)
        except BackendError as exc:
            raise CommandError(f"Could not invite {agent.id}: {exc}") from None

    async def transfer(self, conversation: Conversation, current: AgentConfig,
                       target: AgentConfig, queue: QueueConfig | None, *, stay: bool) -> None:
        """Hand the chat to `target`: invite, tell the visitor, let the previous agent go."""
        await self.invite_agent(conversation, target)
        self.store.set_agent(conversation.id, AgentId(target.id))
        if queue is not None:
            self.store.set_queue(conversation.id, QueueId(queue.id))
        name = self.agent_name(target, "")
        item, _ = self.store.append_item(conversation.id, ItemKind.TRANSFERRED, Sender.AGENT,
                                         name, "", self.clock(), sender_id=target.id,
                                         delivered=True)
        await self.push(conversation.id, self.frame(item))
        if not stay and conversation.room is not None:
            try:
                await self.backend.remove(conversation.room, current.address)
            except BackendError as exc:
                log.warning("conversation %s: could not remove %s (%s)", conversation.id,
                            current.id, exc)
        log.info("conversation %s: transferred from %s to %s", conversation.id, current.id,
                 target.id)

    async def end_by_agent(self, conversation: Conversation, agent: AgentConfig) -> None:
        await self._end(conversation, Sender.AGENT, self.agent_name(agent, ""))

    async def _on_agent_typing(self, event: AgentTyping) -> None:
        found = self._agent_in_room(event.room, event.sender, "typing")
        if found is None:
            return
        conversation, agent = found
        if conversation.status is Status.ENDED:
            return
        name = self.agent_name(agent, event.sender_name)
        await self.push(conversation.id, frames.typing_frame(name, event.active))

    async def _on_membership(self, event: MemberJoined | MemberLeft) -> None:
        found = self._agent_in_room(event.room, event.member, "membership")
        if found is None:
            return
        conversation, agent = found
        if conversation.status is Status.ENDED:
            return  # agents leaving a finished chat is not news for the visitor
        joined = isinstance(event, MemberJoined)
        if self.store.agent_present(conversation.id, agent.id) == joined:
            if not joined:  # an invitation turned down: not news, but routing must know
                await self.router.on_agent_left(conversation, agent)
            return  # or a rejoin after a reconnect, not news for the visitor
        item, created = self.store.append_item(
            conversation.id,
            ItemKind.JOINED if joined else ItemKind.LEFT,
            Sender.AGENT,
            self.agent_name(agent, event.member_name),
            "",
            self.clock(),
            sender_id=agent.id,
            event_id=event.event_id,
            delivered=True,
        )
        if not created:
            return
        log.info("conversation %s: agent %s %s", conversation.id, agent.id,
                 "joined" if joined else "left")
        await self.push(conversation.id, self.frame(item))
        if joined:
            await self._agent_engaged(conversation, agent, Happening.AGENT_JOINED)
        else:
            await self.router.on_agent_left(conversation, agent)

    async def _agent_engaged(
        self, conversation: Conversation, agent: AgentConfig, happening: Happening
    ) -> None:
        try:
            status = next_status(conversation.status, happening)
        except InvalidTransition:
            return
        queue = self._queue(conversation.queue_id)
        # Under `broadcast` several agents may join; the first to speak (or !claim) owns it.
        first_word = happening is Happening.AGENT_REPLIED or (
            queue is None or queue.strategy != "broadcast")
        if conversation.agent_id is None and first_word:
            await self.router.take(conversation, agent)
        if status is not conversation.status:
            self.store.set_status(conversation.id, status)
            await self.router.line_moved(conversation.queue_id)

    # -- helpers -------------------------------------------------------------------------

    async def notice(self, conversation: Conversation, text: str, *, key: str) -> None:
        """A notice for the agents only (never stored in the visitor's timeline)."""
        if conversation.room is None:
            return
        try:
            await self.backend.post_notice(conversation.room, text, key=key)
        except BackendError as exc:
            log.warning("conversation %s: notice not posted (%s)", conversation.id, exc)

    async def _set_typing(self, conversation_id: ConversationId, room: RoomRef,
                          active: bool) -> None:
        try:
            await self.backend.set_typing(room, active)
        except BackendError as exc:
            log.debug("conversation %s: typing not shown (%s)", conversation_id, exc)

    async def push(
        self, conversation_id: ConversationId, frame: frames.Frame, skip: VisitorSink | None = None
    ) -> None:
        for sink in list(self._sinks.get(conversation_id, ())):
            if sink is not skip:
                await sink.send(frame)

    def _queue_for_topic(self, topic: str | None) -> QueueConfig:
        if topic is None or topic == "":
            return self.config.queues[0]
        queue = self.config.queue(topic)
        if queue is None:
            raise ProtocolError("unknown_topic", "no such topic; see /v1/status")
        return queue

    def _queue(self, queue_id: str) -> QueueConfig | None:
        return self.config.queue(queue_id)

    def _render_welcome(self, conversation: Conversation, queue: QueueConfig) -> str:
        lang = conversation.visitor.lang
        return render(
            queue.text("welcome", lang),
            {"visitor": conversation.visitor.name, "queue": queue.text("name", lang),
             "agent": self.config.widget.strings_in(lang).get("someone", "an agent")},
        )

    @staticmethod
    def agent_name(agent: AgentConfig, shown_name: str) -> str:
        return agent.name or shown_name or agent.id

    def frame(self, item: Item) -> frames.Frame:
        return frames.item_frame(item, self.config.widget.strings.get("survey", SURVEY_QUESTION))
