"""What the backend reports, in the order it happened: agents' lines and commands, typing,
joins and leaves, presence. Each event is matched to its conversation and agent here and
handed to the part that acts on it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from bridge.backends.base import (
    AgentFile,
    AgentMessage,
    AgentPresence,
    AgentReaction,
    AgentRead,
    AgentRetracted,
    AgentTyping,
    BackendError,
    BackendUnavailable,
    Connected,
    FileRefused,
    HandlingDeferred,
    InboundEvent,
    MemberJoined,
    MemberLeft,
)
from bridge.chat_actions import ChatActions
from bridge.commands import Commands
from bridge.config import AgentConfig, Config
from bridge.core import frames
from bridge.core.commands import Command, CommandError, Literal, parse_line
from bridge.core.models import Conversation, FileInfo, ItemKind, RoomRef, Sender, Status
from bridge.core.names import agent_name
from bridge.core.offers import answer
from bridge.core.states import Happening
from bridge.corrections import Corrections
from bridge.lobby_claims import LobbyClaims
from bridge.notices import NoticeBackend, Notices
from bridge.opening_rooms import OpeningRooms
from bridge.routing.assignment import Assignment
from bridge.routing.lobbies import Lobbies
from bridge.sinks import Sinks
from bridge.store import StoreUnavailable
from bridge.timeline import Timeline

log = logging.getLogger(__name__)

EDIT_MARK = "✎ "


class InboundStore(Protocol):
    def conversation_by_room(self, room: str) -> Conversation | None: ...

    def agent_present(self, conversation_id: str, agent_id: str) -> bool: ...

    def command_handled(self, event_id: str) -> bool: ...

    def mark_command_handled(self, event_id: str, now: float, room: str) -> None: ...


class AgentFiles(Protocol):
    async def agent_file(self, conversation: Conversation, event: AgentFile
                         ) -> FileInfo | None: ...


class AgentReads(Protocol):
    async def agent_read(self, conversation: Conversation, event_id: str) -> None: ...


class OfferAnswers(Protocol):
    """What settles a chat offered with `!transfer` (bridge.transfers)."""

    async def joined(self, conversation: Conversation, agent: AgentConfig) -> None: ...

    async def declined(self, conversation: Conversation, agent: AgentConfig) -> bool: ...

    async def answered(self, agent: AgentConfig, yes: bool) -> str | None: ...


class Inbound:
    """Turns backend events into effects; the backend's one callback."""

    def __init__(self, config: Config, store: InboundStore, backend: NoticeBackend,
                 sinks: Sinks, timeline: Timeline, notices: Notices, actions: ChatActions,
                 assignment: Assignment, lobbies: Lobbies, commands: Commands,
                 reconnected: Callable[[], None], opening: OpeningRooms,
                 files: AgentFiles, reads: AgentReads, corrections: Corrections,
                 offers: OfferAnswers, claims: LobbyClaims, clock: Callable[[], float]
                 ) -> None:
        self._config = config
        self._store = store
        self._backend = backend
        self._sinks = sinks
        self._timeline = timeline
        self._notices = notices
        self._actions = actions
        self._assignment = assignment
        self._lobbies = lobbies
        self._commands = commands
        self._reconnected = reconnected  # anything that failed meanwhile is retried now
        self._opening = opening
        self._files = files
        self._reads = reads
        self._corrections = corrections
        self._offers = offers
        self._claims = claims
        self._clock = clock
        # One event at a time, the backend's and the replayed ones alike, in order (and
        # the commands agents run from forms, which take the same turn).
        self.turn = asyncio.Lock()

    async def __call__(self, event: InboundEvent) -> None:
        async with self.turn:
            if self._opening.has_held():
                await self._replay()  # held events come before anything newer
            await self._handle(event)

    async def replay_held(self) -> None:
        """A new room was stored: the events that waited for it, in their order."""
        async with self.turn:
            await self._replay()

    async def _replay(self) -> None:
        held = self._opening.take_held()
        for n, event in enumerate(held):
            try:
                await self._handle(event)
            except HandlingDeferred:  # the store refuses writes: they wait for the next turn
                self._opening.hold_again(held[n:])
                return

    async def _handle(self, event: InboundEvent) -> None:
        room = getattr(event, "room", None)
        if room is not None and self._store.conversation_by_room(room) is None \
                and self._opening.hold(event):
            return  # maybe a room still being opened: handled once it is stored
        try:
            if isinstance(event, Connected):
                self._reconnected()
            elif isinstance(event, AgentMessage):
                await self._on_agent_message(event)
            elif isinstance(event, AgentFile):
                await self._on_agent_file(event)
            elif isinstance(event, AgentRetracted):
                found = self._agent_in_room(event.room, event.sender, "retraction")
                if found is not None:
                    await self._corrections.retracted(found[0], found[1], event.event_id)
            elif isinstance(event, AgentRead):
                found = self._agent_in_room(event.room, event.sender, "read receipt")
                if found is not None:
                    await self._reads.agent_read(found[0], event.event_id)
            elif isinstance(event, AgentTyping):
                await self._on_agent_typing(event)
            elif isinstance(event, AgentReaction):
                await self._on_reaction(event)
            elif isinstance(event, MemberJoined | MemberLeft):
                await self._on_membership(event)
            elif isinstance(event, AgentPresence):
                agent = self._config.agent_by_address(event.address)
                if agent is not None:
                    await self._assignment.on_presence(agent, event.available)
        except StoreUnavailable as exc:
            # Not dropped: the backend hands it over again once the store takes writes.
            log.warning("%s from %s held back: %s", type(event).__name__,
                        getattr(event, "room", "-"), exc)
            raise HandlingDeferred(str(exc)) from exc
        except HandlingDeferred:
            raise
        except Exception:
            log.exception("failed to handle %s", type(event).__name__)

    def _agent_in_room(self, room: RoomRef, address: str, what: str
                       ) -> tuple[Conversation, AgentConfig] | None:
        conversation = self._store.conversation_by_room(room)
        if conversation is None:
            return None
        agent = self._config.agent_by_address(address)
        if agent is None:
            log.warning("conversation %s: %s from %s, who is not a configured agent; not relayed",
                        conversation.id, what, address)
            return None
        return conversation, agent

    async def _on_agent_message(self, event: AgentMessage) -> None:
        if self._store.conversation_by_room(event.room) is None:
            await self._on_direct(event)
            return
        found = self._agent_in_room(event.room, event.sender, "message")
        if found is None:
            return
        conversation, agent = found
        name = agent_name(agent, event.sender_name)
        if event.thread:  # a thread is the agents' side conversation: a note
            await self._run_command(Command("note", (), rest=event.text), event, agent,
                                    conversation)
            return
        if event.edited:
            await self._on_correction(event, conversation, agent, name)
            return
        try:
            parsed = parse_line(event.text, self._commands.registry.prefix)
        except CommandError as exc:
            await self._notices.to_agents(conversation, str(exc), key=f"cmd-{event.event_id}")
            return
        if isinstance(parsed, Command):
            await self._run_command(parsed, event, agent, conversation)
            return
        if conversation.status is Status.ENDED:
            await self._notices.to_agents(conversation, "This chat has ended; the visitor no "
                                          "longer sees new messages.",
                                          key=f"ended-{event.event_id}")
            return
        text = parsed.text if isinstance(parsed, Literal) else event.text
        await self._actions.agent_said(conversation, agent, name, text, event.event_id,
                                       event.ts)

    async def _on_agent_file(self, event: AgentFile) -> None:
        """An agent's file: fetched from the messenger's server and passed on, or the
        agents are told why the visitor did not get it."""
        found = self._agent_in_room(event.room, event.sender, "file")
        if found is None:
            return
        conversation, agent = found
        key = f"file-{event.event_id}"
        if conversation.status is Status.ENDED:
            await self._notices.to_agents(conversation, f"This chat has ended; the visitor "
                                          f"did not get {event.name}.", key=key)
            return
        try:
            file = await self._files.agent_file(conversation, event)
        except FileRefused as exc:
            log.warning("conversation %s: agent file not passed on: %s", conversation.id, exc)
            await self._notices.to_agents(conversation, f"The visitor did not get {event.name}: "
                                          f"{exc}.", key=key)
            return
        except BackendUnavailable as exc:
            raise HandlingDeferred(f"file not fetched yet: {exc}") from exc
        if file is not None:
            await self._actions.agent_said(conversation, agent, agent_name(
                agent, event.sender_name), file.name, event.event_id, event.ts, file=file)

    async def _on_correction(self, event: AgentMessage, conversation: Conversation,
                             agent: AgentConfig, name: str) -> None:
        """A line the visitor has changes in place. A corrected command is neither run
        again nor shown; a correction of anything else the visitor never got comes as a
        new, marked line."""
        line = self._corrections.line(conversation, event.replaces)
        if line is not None:
            await self._corrections.corrected(conversation, agent, line, event.text)
            return
        if (event.replaces is not None and self._store.command_handled(event.replaces)) \
                or event.text.startswith(self._commands.registry.prefix) \
                or conversation.status is Status.ENDED:
            return
        await self._actions.agent_said(conversation, agent, name, f"{EDIT_MARK}{event.text}",
                                       event.event_id, event.ts)

    async def _run_command(self, command: Command, event: AgentMessage, agent: AgentConfig,
                           conversation: Conversation) -> None:
        log.info("conversation %s: agent %s runs %s", conversation.id, agent.id, command.name)
        reply = await self._run_once(command, event, agent, conversation)
        if reply:
            await self._notices.to_agents(conversation, reply, key=f"cmd-{event.event_id}")

    async def _run_once(self, command: Command, event: AgentMessage, agent: AgentConfig,
                        conversation: Conversation | None) -> str:
        """Run a command unless its event ran it before (a sync batch fetched again, an
        archive read); the text for the agents, empty for a repeat."""
        async def run() -> str:
            lobby = self._lobbies.queue_of(event.room) if conversation is None else None
            return (await self._commands.run(command, agent, conversation, event.event_id,
                                             lobby=lobby)).to_agents

        return await self._once(event.event_id, event.room, run)

    async def _once(self, event_id: str, room: RoomRef, act: Callable[[], Awaitable[str]]
                    ) -> str:
        """`act` unless the event was acted on before; its text, empty for a repeat."""
        if self._store.command_handled(event_id):
            return ""
        text = await act()
        self._store.mark_command_handled(event_id, self._clock(), room)
        return text

    async def _on_direct(self, event: AgentMessage) -> None:
        """A line in a room that is no conversation's: a queue's lobby or an agent's direct
        chat with the bot, where only commands about the agent make sense."""
        agent = self._config.agent_by_address(event.sender)
        if agent is None:
            return
        try:
            parsed = parse_line(event.text, self._commands.registry.prefix)
        except CommandError as exc:
            reply = str(exc)
        else:
            if isinstance(parsed, Command):
                reply = await self._run_once(parsed, event, agent, None)
            else:
                reply = await self._answer_once(event, agent)
        if reply:
            try:
                await self._backend.post_notice(event.room, reply, key=f"cmd-{event.event_id}")
            except BackendError as exc:
                log.warning("agent %s: command reply not posted (%s)", agent.id, exc)

    async def _answer_once(self, event: AgentMessage, agent: AgentConfig) -> str:
        """A line to the bot that is no command: a "yes" taking a waiting chat in a lobby,
        or a "yes"/"no" to a chat offered to the agent; once per event id."""
        async def answered() -> str:
            if self._claims.is_lobby(event.room):
                reply = await self._claims.answered(event.room, event.text, event.reply_to,
                                                    agent)
            else:
                yes = answer(event.text)
                reply = None if yes is None else await self._offers.answered(agent, yes)
            return reply or "Only commands work here; try !help."

        return await self._once(event.event_id, event.room, answered)

    async def _on_reaction(self, event: AgentReaction) -> None:
        """A ✅ on a waiting chat's line in a lobby claims it (once per reaction)."""
        agent = self._config.agent_by_address(event.sender)
        if agent is None:
            return

        async def claimed() -> str:
            return await self._claims.reacted(event.room, event.event_id, event.key,
                                              agent) or ""

        reply = await self._once(event.reaction_id, event.room, claimed)
        if reply:
            await self._backend.post_notice(event.room, reply, key=f"cmd-{event.reaction_id}")

    async def _on_agent_typing(self, event: AgentTyping) -> None:
        found = self._agent_in_room(event.room, event.sender, "typing")
        if found is None:
            return
        conversation, agent = found
        if conversation.status is Status.ENDED:
            return
        await self._sinks.push(conversation.id, frames.typing_frame(
            agent_name(agent, event.sender_name), event.active))

    async def _on_membership(self, event: MemberJoined | MemberLeft) -> None:
        found = self._agent_in_room(event.room, event.member, "membership")
        if found is None:
            return
        conversation, agent = found
        if conversation.status is Status.ENDED:
            return  # agents leaving a finished chat is not news for the visitor
        joined = isinstance(event, MemberJoined)
        if self._store.agent_present(conversation.id, agent.id) == joined:
            if not joined:  # an invitation turned down: not news, but routing must know
                await self._offers.declined(conversation, agent)
                await self._assignment.on_agent_left(conversation, agent)
            return  # or a rejoin after a reconnect, not news for the visitor
        _, created = await self._timeline.record(
            conversation.id, ItemKind.JOINED if joined else ItemKind.LEFT, Sender.AGENT,
            agent_name(agent, event.member_name), "", self._clock(), sender_id=agent.id,
            event_id=event.event_id, delivered=True)
        if not created:
            return
        log.info("conversation %s: agent %s %s", conversation.id, agent.id,
                 "joined" if joined else "left")
        if joined:
            await self._actions.engaged(conversation, agent, Happening.AGENT_JOINED)
            await self._offers.joined(conversation, agent)
        else:
            await self._assignment.on_agent_left(conversation, agent)
