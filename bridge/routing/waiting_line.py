"""The waiting line: places, honest estimates, the "leave a message" offer, /v1/status."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from bridge.config import Config, QueueConfig
from bridge.core import frames
from bridge.core.models import Conversation, ConversationId, Status
from bridge.core.routing import estimate_wait
from bridge.routing.availability import Availability
from bridge.sinks import Sinks

log = logging.getLogger(__name__)

ESTIMATE_WINDOW_S = 24 * 3600  # answers older than a day say little about today's line


class LineStore(Protocol):
    def waiting_position(self, conversation: Conversation) -> int: ...

    def waiting_conversations(self, queue_id: str) -> Iterator[Conversation]: ...

    def each_open_conversation(self) -> Iterator[Conversation]: ...

    def count_waiting(self, queue_id: str) -> int: ...

    def recent_waits(self, queue_id: str, since: float, limit: int = 50) -> list[float]: ...


class WaitingLine:
    """Tells waiting visitors their place, and anyone asking how busy the queues are."""

    def __init__(self, config: Config, store: LineStore, availability: Availability,
                 sinks: Sinks, clock: Callable[[], float]) -> None:
        self._config = config
        self._store = store
        self._availability = availability
        self._sinks = sinks
        self._clock = clock
        self._offered: set[ConversationId] = set()

    def wait_s(self, queue: QueueConfig, position: int, waited_s: float = 0.0) -> int | None:
        """An honest estimate of the wait at `position`, or None (see estimate_wait)."""
        return self._estimator(queue)(position, waited_s)

    def offer_due(self, conversation: Conversation, queue: QueueConfig | None) -> bool:
        """Whether the visitor has waited long enough to be offered "leave a message"."""
        if queue is None or not queue.offer_message_after_minutes:
            return False
        waited = self._clock() - conversation.created_at
        return waited >= queue.offer_message_after_minutes * 60

    def position_frame(self, conversation: Conversation, position: int | None = None,
                       estimate: Callable[[int, float], int | None] | None = None
                       ) -> frames.Frame:
        """The visitor's place in line with the estimate; a caller going through the whole
        line passes the position and an `estimate` prepared once for the queue."""
        queue = self._config.queue(conversation.queue_id)
        if position is None:
            position = self._store.waiting_position(conversation)
        waited = self._clock() - conversation.created_at
        if estimate is None and queue is not None:
            estimate = self._estimator(queue)
        wait_s = estimate(position, waited) if estimate else None
        return frames.queue_frame(position, wait_s, self.offer_due(conversation, queue))

    def _estimator(self, queue: QueueConfig) -> Callable[[int, float], int | None]:
        waits = self._store.recent_waits(queue.id, self._clock() - ESTIMATE_WINDOW_S)
        serving = sum(1 for m in self._availability.members(queue) if m.available)
        return lambda position, waited: estimate_wait(position, waits, serving, waited)

    async def moved(self, queue_id: str) -> None:
        """The line changed: tell everyone waiting their place."""
        queue = self._config.queue(queue_id)
        estimate = self._estimator(queue) if queue else None
        for position, waiting in enumerate(self._store.waiting_conversations(queue_id), 1):
            if self._sinks.has_visitor(waiting.id):
                await self._sinks.push(waiting.id,
                                       self.position_frame(waiting, position, estimate))

    async def offer_messages(self) -> None:
        """Offer "leave a message instead" to visitors who waited the queue's limit."""
        for conversation in self._store.each_open_conversation():
            if (conversation.status is not Status.WAITING or conversation.id in self._offered
                    or not self._sinks.has_visitor(conversation.id)):
                continue
            if self.offer_due(conversation, self._config.queue(conversation.queue_id)):
                self._offered.add(conversation.id)
                log.info("conversation %s: offered to leave a message", conversation.id)
                await self._sinks.push(conversation.id, self.position_frame(conversation))

    def forget(self, conversation_id: ConversationId) -> None:
        self._offered.discard(conversation_id)

    def status(self, lang: str = "") -> dict[str, Any]:
        """The public availability answer behind GET /v1/status, with the queues' names in
        the visitor's language."""
        queues = [{"id": queue.id, "name": queue.text("name", lang),
                   "topic": queue.text("topic", lang), **self._queue_status(queue)}
                  for queue in self._config.queues]
        return {"available": any(q["available"] for q in queues), "queues": queues}

    def _queue_status(self, queue: QueueConfig) -> dict[str, Any]:
        is_open_now = self._availability.queue_open(queue)
        members = self._availability.members(queue)
        available = is_open_now and any(m.can_take for m in members)
        waiting = self._store.count_waiting(queue.id)
        wait_s = (None if not is_open_now else 0 if available and not waiting
                  else self.wait_s(queue, waiting + 1))
        # On duty ignores presence: a client that stopped syncing reads as away, yet the
        # chat waits for that agent (invited on their return) or for a !claim in the lobby.
        on_duty = any(not self._availability.on_break(m.id) for m in members)
        full = bool(queue.max_waiting) and waiting >= queue.max_waiting  # start says queue_full
        state = ("closed" if not is_open_now else "nobody" if not on_duty else
                 "full" if full else "available" if available else "busy")
        return {"open": is_open_now, "available": available, "waiting": waiting,
                "wait_s": wait_s, "state": state}
