"""Read states on Matrix: agents' public read receipts in, the bot's read marker out.

Agents' clients send an `m.read` receipt on the last event shown; it arrives in the bot's
sync as an `m.receipt` ephemeral event, which the backend turns into `AgentRead`s here. The
visitor's "seen" goes the other way: the bot's `m.read` receipt (with its private
`m.fully_read` marker) on the agent line the visitor has displayed.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from bridge.backends.base import AgentRead, BackendError, BackendUnavailable
from bridge.core.models import RoomRef

log = logging.getLogger(__name__)

PUBLIC_READ = "m.read"
# An unthreaded receipt (no thread_id) covers the whole room; "main" is the main timeline
# of a client that knows threads. A receipt inside a thread says nothing about the room's
# main line of conversation, where every visitor line is.
MAIN_TIMELINE = (None, "main")


def agent_reads(room: RoomRef, receipts: Iterable[Any], own_id: str) -> list[AgentRead]:
    """One `AgentRead` per (user, event) of the public receipts of everyone but the bot.

    `receipts` are nio `Receipt`s (event_id, receipt_type, user_id, thread_id). A private
    receipt (`m.read.private`) never counts: not telling is the agent's choice (Synapse
    only shows it to its owner anyway)."""
    reads: list[AgentRead] = []
    seen: set[tuple[str, str]] = set()
    for receipt in receipts:
        if (receipt.receipt_type != PUBLIC_READ or receipt.user_id == own_id
                or getattr(receipt, "thread_id", None) not in MAIN_TIMELINE):
            continue
        key = (receipt.user_id, receipt.event_id)
        if key not in seen:  # an unthreaded and a "main" receipt on the same event
            seen.add(key)
            reads.append(AgentRead(room, receipt.user_id, receipt.event_id))
    return reads


class ReadMarkers:
    """The bot's read marker per room, moved only when it names a new event.

    The homeserver itself never moves a receipt back to an older event (Synapse ignores
    one older than the current), so only the repeat of the last id is skipped here: from
    memory, which a restart clears (one repeated request, harmless)."""

    def __init__(self, send: Callable[[RoomRef, str], Awaitable[Any]]) -> None:
        self._send = send
        self._marked: dict[RoomRef, str] = {}

    async def mark(self, room: RoomRef, event_id: str) -> None:
        if self._marked.get(room) == event_id:
            return
        try:
            await self._send(room, event_id)
        except BackendUnavailable:
            raise  # may work later: the caller retries or drops it
        except BackendError as exc:
            # Refused (an unknown event, the bot no longer in the room): asking again
            # would be refused again, so it counts as done.
            log.warning("matrix: read marker in %s not moved to %s (%s)", room, event_id, exc)
        self._marked[room] = event_id
