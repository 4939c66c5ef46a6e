"""Agents' corrections and retractions, mirrored to the visitor: a corrected line changes in
place ("edited"), a line taken back disappears ("message deleted"); the store keeps what
it was for the agents' audit view (`!history N`)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from bridge.config import AgentConfig
from bridge.core.models import Conversation, Item, ItemKind, Sender, Status

log = logging.getLogger(__name__)


class CorrectionStore(Protocol):
    def item_by_event_id(self, conversation_id: str, event_id: str) -> Item | None: ...


class LineChanges(Protocol):
    async def change(self, item: Item, kind: str, text: str, by: str | None, now: float
                     ) -> None: ...


class Corrections:
    """Changes to agents' lines the visitor has (only those: a line the visitor never got
    has nothing to change)."""

    def __init__(self, store: CorrectionStore, timeline: LineChanges,
                 clock: Callable[[], float]) -> None:
        self._store = store
        self._timeline = timeline
        self._clock = clock

    def line(self, conversation: Conversation, event_id: str | None) -> Item | None:
        """The agent's line (text or file) with this event id, unless taken back."""
        if event_id is None:
            return None
        item = self._store.item_by_event_id(conversation.id, event_id)
        if item is None or item.sender is not Sender.AGENT or item.deleted_at is not None \
                or item.kind not in (ItemKind.TEXT, ItemKind.FILE):
            return None
        return item

    async def corrected(self, conversation: Conversation, agent: AgentConfig, item: Item,
                        text: str) -> None:
        if conversation.status is Status.ENDED or item.kind is not ItemKind.TEXT \
                or text == item.text:
            return  # after the end the visitor keeps what they saw; a file has no text
        await self._timeline.change(item, "edit", text, agent.id, self._clock())
        log.info("conversation %s: agent %s corrected seq %d", conversation.id, agent.id,
                 item.seq)

    async def retracted(self, conversation: Conversation, agent: AgentConfig,
                        event_id: str) -> None:
        item = self.line(conversation, event_id)
        if item is None or conversation.status is Status.ENDED:
            return
        await self._timeline.change(item, "delete", "", agent.id, self._clock())
        log.info("conversation %s: agent %s took back seq %d", conversation.id, agent.id,
                 item.seq)
