"""Sneak peek: in a queue with `peek = true`, agents see what the visitor is typing before
it is sent, as one preview in the room that is updated in place (the visitor is told so in
the widget). Throttled to one update per PEEK_INTERVAL_S per chat, the latest text winning;
never stored; best effort."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol

from bridge.backends.base import BackendError
from bridge.config import Config
from bridge.core.models import Conversation, ConversationId, RoomRef, Status
from bridge.core.protocol import ProtocolError

log = logging.getLogger(__name__)

PEEK_INTERVAL_S = 1.5


class PeekBackend(Protocol):
    async def show_draft(self, room: RoomRef, text: str) -> None: ...


class PeekStore(Protocol):
    def conversation(self, conversation_id: str) -> Conversation | None: ...


class Peeks:
    def __init__(self, config: Config, store: PeekStore, backend: PeekBackend,
                 spawn: Callable[[Any, str], asyncio.Task[None]]) -> None:
        self._config = config
        self._store = store
        self._backend = backend
        self._spawn = spawn
        self._latest: dict[ConversationId, str] = {}  # text not shown yet
        self._showing: dict[ConversationId, str] = {}  # what the room shows ("" nothing)
        self._couriers: dict[ConversationId, asyncio.Task[None]] = {}

    def draft(self, conversation_id: ConversationId, text: str) -> None:
        """The visitor's unsent text; refused where the queue does not show drafts."""
        conversation = self._store.conversation(conversation_id)
        if conversation is None or conversation.status is Status.ENDED:
            raise ProtocolError("ended", "this conversation has ended")
        queue = self._config.queue(conversation.queue_id)
        if queue is None or not queue.peek:
            raise ProtocolError("peek_off", "this chat does not show drafts to agents")
        if conversation.room is not None:
            self._want(conversation.id, conversation.room, text)

    def sent(self, conversation: Conversation) -> None:
        """The visitor sent a line: the preview goes (the line itself follows)."""
        if conversation.room is not None and (
                self._showing.get(conversation.id) or self._latest.get(conversation.id)):
            self._want(conversation.id, conversation.room, "")

    def _want(self, conversation_id: ConversationId, room: RoomRef, text: str) -> None:
        self._latest[conversation_id] = text
        courier = self._couriers.get(conversation_id)
        if courier is None or courier.done():
            self._couriers[conversation_id] = self._spawn(
                self._show(conversation_id, room), f"peek-{conversation_id}")

    async def _show(self, conversation_id: ConversationId, room: RoomRef) -> None:
        while conversation_id in self._latest:
            text = self._latest.pop(conversation_id)
            if text == self._showing.get(conversation_id, ""):
                continue
            try:
                await self._backend.show_draft(room, text)
                self._showing[conversation_id] = text
            except BackendError as exc:  # a lost preview is no loss
                log.debug("conversation %s: draft not shown (%s)", conversation_id, exc)
            await asyncio.sleep(PEEK_INTERVAL_S)
        if not self._showing.get(conversation_id):
            self._showing.pop(conversation_id, None)
        if self._couriers.get(conversation_id) is asyncio.current_task():
            del self._couriers[conversation_id]
