"""The visitors' live connections, by conversation: where a stored item is pushed."""

from __future__ import annotations

from typing import Protocol

from bridge.core import frames
from bridge.core.models import ConversationId


class VisitorSink(Protocol):
    """One live visitor connection; the web layer implements it over a WebSocket."""

    async def send(self, frame: frames.Frame) -> None:
        """Queue a frame for this connection; never waits on the network."""

    async def drain(self) -> None:
        """Wait until the queued frames were written."""


class Sinks:
    """Which connections follow which conversation."""

    def __init__(self) -> None:
        self._by_conversation: dict[ConversationId, set[VisitorSink]] = {}

    def attach(self, conversation_id: ConversationId, sink: VisitorSink) -> None:
        self._by_conversation.setdefault(conversation_id, set()).add(sink)

    def detach(self, conversation_id: ConversationId, sink: VisitorSink) -> None:
        sinks = self._by_conversation.get(conversation_id)
        if sinks is not None:
            sinks.discard(sink)
            if not sinks:
                del self._by_conversation[conversation_id]

    def has_visitor(self, conversation_id: ConversationId) -> bool:
        """Whether the visitor has the chat open somewhere right now."""
        return bool(self._by_conversation.get(conversation_id))

    def of(self, conversation_id: ConversationId) -> list[VisitorSink]:
        return list(self._by_conversation.get(conversation_id, ()))

    async def push(self, conversation_id: ConversationId, frame: frames.Frame,
                   skip: VisitorSink | None = None) -> None:
        for sink in list(self._by_conversation.get(conversation_id, ())):
            if sink is not skip:
                await sink.send(frame)
