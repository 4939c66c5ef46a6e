"""The Matrix backend driven directly on a real Synapse, without the hub: the bot logged in
with its state in a real store, every inbound event recorded. Shared by the backend-level
tests (files, receipts, edits); the fixtures that start it (`start_bot`, `bot`,
`room`) are in conftest.py."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from bridge.backends.base import (
    AgentMessage,
    AgentRead,
    AgentRetracted,
    InboundEvent,
)
from bridge.backends.matrix import MatrixBackend
from bridge.store import Store, StoreBackendState
from tests.integration.helpers import MatrixAgent

E = TypeVar("E")


@dataclass
class Bot:
    backend: MatrixBackend
    store: Store
    state: StoreBackendState
    events: list[InboundEvent] = field(default_factory=list)
    running: bool = True

    async def stop(self) -> None:
        """The bridge goes away, its state closed as on a clean shutdown (once)."""
        if self.running:
            self.running = False
            await self.backend.stop()
            self.store.close()

    async def until(self, check: Callable[[], Any], timeout: float = 15.0) -> Any:
        async with asyncio.timeout(timeout):
            while not (found := check()):
                await asyncio.sleep(0.05)
            return found

    def of(self, kind: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, kind)]

    def messages(self) -> list[AgentMessage]:
        return self.of(AgentMessage)

    def retractions(self) -> list[AgentRetracted]:
        return self.of(AgentRetracted)

    def reads(self) -> list[AgentRead]:
        return self.of(AgentRead)

    async def line(self, event_id: str) -> AgentMessage:
        return await self.until(lambda: next(
            (m for m in self.messages() if m.event_id == event_id), None))


StartBot = Callable[[Path], Awaitable[Bot]]


def agent_client(agent: object) -> MatrixAgent:
    assert isinstance(agent, MatrixAgent)
    return agent
