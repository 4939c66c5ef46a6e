"""The real hub ring on the project's own fakes: `bridge.app.build_hub` with a SQLite store,
a `RecordingBackend`, a fake clock and list-backed visitor sinks, plus the few moves a test
makes (a visitor starts and writes, an agent writes, joins and leaves)."""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.app import build_hub
from bridge.backends.base import AgentMessage, MemberJoined, MemberLeft
from bridge.config import Config, parse_config
from bridge.core.models import Conversation, ConversationId, RoomRef
from bridge.core.protocol import MessageFrame, ResumeFrame, StartFrame, parse_frame
from bridge.hub import Hub
from bridge.store import Store
from bridge.tasks import TaskGroup
from bridge.tickets import Tickets
from tests.fakes.backend import RecordingBackend
from tests.fakes.clock import FakeClock
from tests.fakes.sink import ListSink

ALICE = "@alice:example.org"
BOB = "@bob:example.org"
CAROL = "@carol:example.org"
WAIT_S = 1.0  # how long `eventually` waits: every effect here takes milliseconds

BASE_CONFIG: dict[str, Any] = {
    "server": {"listen": "127.0.0.1:8080", "public_url": "https://chat.example.com",
               "allowed_origins": ["https://shop.example.com"]},
    "backend": {"type": "matrix"},  # the addresses' form; the backend itself is the fake
    "matrix": {"homeserver": "http://127.0.0.1:9", "user_id": "@support:example.org",
               "password": "never-used-in-tests"},
    "agents": [
        {"id": "alice", "address": ALICE, "name": "Alice", "max_chats": 2},
        {"id": "bob", "address": BOB, "name": "Bob", "max_chats": 2},
        {"id": "carol", "address": CAROL, "name": "Carol"},
    ],
    "queues": [
        {"id": "support", "name": "Support", "agents": ["alice", "bob"],
         "welcome": "Hi {visitor}, {agent} will be with you shortly."},
        {"id": "sales", "name": "Sales", "agents": ["carol"]},
    ],
    "canned": {"greeting": "Hello {visitor}, I'm {agent} from {queue}. How can I help?"},
}

Tweak = Callable[[dict[str, Any]], None]


def hub_config(tweak: Tweak | None = None, base_dir: Path = Path(".")) -> Config:
    """The small config of the fast tests; `tweak` edits a fresh copy of its dict."""
    raw = copy.deepcopy(BASE_CONFIG)
    if tweak is not None:
        tweak(raw)
    return parse_config(raw, base_dir=base_dir)


@dataclass
class Chat:
    """One visitor's conversation as the widget holds it."""

    id: ConversationId
    token: str
    sink: ListSink


class HubHarness:
    """A started hub ring and the handles a test needs on it."""

    def __init__(self, config: Config, store: Store, backend: RecordingBackend,
                 clock: FakeClock) -> None:
        self.config = config
        self.store = store
        self.backend = backend
        self.clock = clock
        self._ticket_tasks = TaskGroup()
        # As the running bridge has them: unanswered chats become tickets.
        self.tickets = Tickets(config, store, None, self._ticket_tasks, backend)
        self.hub: Hub = build_hub(config, store, backend, tickets=self.tickets, clock=clock)
        self._event_ids = itertools.count(1)
        self._client_ids = itertools.count(1)

    async def start(self) -> None:
        await self.hub.start()

    async def stop(self) -> None:
        await self.hub.stop()
        await self._ticket_tasks.close()
        self.store.close()

    # -- the visitor's side --------------------------------------------------------------

    async def start_chat(self, name: str = "Anna", email: str = "anna@example.com",
                         topic: str = "", **fields: Any) -> Chat:
        """A `start` frame as the widget sends it, through the protocol's parser."""
        raw = {"type": "start", "visitor": {"name": name, "email": email}, "topic": topic,
               "page": {"url": "https://shop.example.com/pricing", "title": "Pricing"},
               **fields}
        frame = parse_frame(json.dumps(raw), max_text=self.config.server.max_text)
        assert isinstance(frame, StartFrame)
        sink = ListSink()
        conversation = await self.hub.start_conversation(frame, sink)
        token = sink.last("started")["token"]
        return Chat(conversation.id, token, sink)

    async def say(self, chat: Chat, text: str, client_id: str | None = None) -> int:
        """A visitor line; returns the seq its `ack` carries."""
        client_id = client_id or f"c{next(self._client_ids)}"
        return await self.hub.visitor_message(chat.id, MessageFrame(client_id, text), chat.sink)

    async def resume(self, chat: Chat, after: int = 0) -> ListSink:
        """Another tab of the same visitor, following the chat from `after`."""
        sink = ListSink()
        await self.hub.resume(ResumeFrame(chat.token, after), sink)
        return sink

    # -- the agents' side ----------------------------------------------------------------

    def event_id(self) -> str:
        return f"$ev{next(self._event_ids)}"

    def message(self, room: RoomRef, text: str, sender: str = ALICE,
                event_id: str | None = None) -> AgentMessage:
        agent = self.config.agent_by_address(sender)
        return AgentMessage(room=room, sender=sender, sender_name=agent.name if agent else "",
                            text=text, event_id=event_id or self.event_id(), ts=self.clock())

    async def agent_says(self, room: RoomRef, text: str, sender: str = ALICE) -> AgentMessage:
        event = self.message(room, text, sender)
        await self.backend.emit(event)
        return event

    async def join(self, room: RoomRef, member: str = ALICE) -> None:
        agent = self.config.agent_by_address(member)
        await self.backend.emit(MemberJoined(room, member, agent.name if agent else "",
                                             self.event_id()))

    async def leave(self, room: RoomRef, member: str = ALICE) -> None:
        agent = self.config.agent_by_address(member)
        await self.backend.emit(MemberLeft(room, member, agent.name if agent else "",
                                           self.event_id()))

    async def command(self, room: RoomRef, line: str, sender: str = ALICE) -> list[str]:
        """Run a command line as an agent; returns the notices it added to the room."""
        before = len(self.backend.notices_in(room))
        await self.agent_says(room, line, sender)
        return self.backend.notices_in(room)[before:]

    # -- looking -------------------------------------------------------------------------

    def conversation(self, chat: Chat) -> Conversation:
        conversation = self.store.conversation(chat.id)
        assert conversation is not None
        return conversation

    async def room_of(self, chat: Chat) -> RoomRef:
        """The chat's room, once the outbox opened it."""
        await eventually(lambda: self.conversation(chat).room is not None)
        room = self.conversation(chat).room
        assert room is not None
        return room

    async def delivered(self, chat: Chat) -> None:
        """Wait until the outbox posted everything of the chat."""
        await eventually(lambda: not self.store.undelivered(chat.id))


async def eventually(condition: Callable[[], object], timeout: float = WAIT_S) -> None:
    """Let the ring's tasks run until `condition()` holds; fail after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"not reached within {timeout}s: {condition}")
        await asyncio.sleep(0.001)


async def start_harness(tweak: Tweak | None = None, *, clock: FakeClock | None = None,
                        store: Store | None = None,
                        backend: RecordingBackend | None = None) -> HubHarness:
    """Build the ring from the small config (edited by `tweak`) and start it."""
    harness = HubHarness(hub_config(tweak), store or Store(":memory:"),
                         backend or RecordingBackend(), clock or FakeClock())
    await harness.start()
    return harness
