"""Who has seen what: the visitor's `read` moves the bot's read marker in the room to the
newest agent line shown; an agent's receipt or marker tells the widget its lines were seen;
a chat that ends with agent lines the visitor never saw says so to the agents.

Every state is stored with its item (`read_at`), so it survives restarts and a resumed
widget learns it again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol

from bridge.backends.base import BackendError
from bridge.core import frames
from bridge.core.models import Conversation, ConversationId, Item, RoomRef, Sender
from bridge.core.untrusted import ProtocolError
from bridge.notices import Notices
from bridge.sinks import Sinks

log = logging.getLogger(__name__)

UNSEEN_LISTED = 5  # lines quoted in the notice at the end; the rest are counted
QUOTE_CHARS = 60


class ReadStore(Protocol):
    def conversation(self, conversation_id: str) -> Conversation | None: ...

    def item_by_event_id(self, conversation_id: str, event_id: str) -> Item | None: ...

    def mark_read(self, conversation_id: str, sender: Sender, up_to_seq: int, now: float
                  ) -> Item | None: ...

    def read_up_to(self, conversation_id: str, sender: Sender) -> int: ...

    def unread_lines(self, conversation_id: str, sender: Sender) -> list[Item]: ...


Spawn = Callable[[Coroutine[Any, Any, None], str], object]


class ReadStates:
    """Read states both ways, stored with the items."""

    def __init__(self, store: ReadStore, mark_read: Callable[[RoomRef, str], Awaitable[None]],
                 sinks: Sinks, notices: Notices, spawn: Spawn,
                 clock: Callable[[], float]) -> None:
        self._store = store
        self._mark_read = mark_read  # the backend's: the bot's receipt or marker
        self._sinks = sinks
        self._notices = notices
        self._spawn = spawn
        self._clock = clock

    async def visitor_read(self, conversation_id: ConversationId, seq: int) -> None:
        """The widget showed everything up to `seq`: the agents' lines up to it are seen,
        and the bot's read marker moves to the newest of them."""
        conversation = self._store.conversation(conversation_id)
        if conversation is None:
            raise ProtocolError("no_conversation", "start or resume a conversation first")
        newest = self._store.mark_read(conversation_id, Sender.AGENT,
                                       min(seq, conversation.last_seq), self._clock())
        if newest is None or newest.event_id is None or conversation.room is None:
            return
        log.debug("conversation %s: visitor saw up to seq %d", conversation_id, newest.seq)
        self._spawn(self._move_marker(conversation_id, conversation.room, newest.event_id),
                    f"read-{conversation_id}")

    async def _move_marker(self, conversation_id: ConversationId, room: RoomRef,
                           event_id: str) -> None:
        try:
            await self._mark_read(room, event_id)
        except BackendError as exc:  # best effort: the next `read` moves it on anyway
            log.info("conversation %s: read marker not moved (%s)", conversation_id, exc)

    async def agent_read(self, conversation: Conversation, event_id: str) -> None:
        """An agent's client read the room up to `event_id`: the visitor's lines up to it
        are seen, and the widget shows it."""
        item = self._store.item_by_event_id(conversation.id, event_id)
        if item is None:
            return  # an event the bridge did not store (a command's answer, a notice)
        newest = self._store.mark_read(conversation.id, Sender.VISITOR, item.seq,
                                       self._clock())
        if newest is not None:
            await self._sinks.push(conversation.id, frames.read_frame(newest.seq))

    def seen_up_to(self, conversation_id: ConversationId) -> int:
        """The newest visitor line an agent has seen (0: none), for a resuming widget."""
        return self._store.read_up_to(conversation_id, Sender.VISITOR)

    async def chat_ended(self, conversation: Conversation) -> None:
        """Tell the agents which of their lines the visitor never saw."""
        unseen = self._store.unread_lines(conversation.id, Sender.AGENT)
        if unseen:
            await self._notices.to_agents(conversation, unseen_notice(unseen),
                                          key=f"unseen-{conversation.id}")


def unseen_notice(unseen: list[Item]) -> str:
    quoted = [_quote(item.text) for item in unseen[:UNSEEN_LISTED]]
    more = len(unseen) - len(quoted)
    listing = ", ".join(quoted) + (f" and {more} more" if more else "")
    lines = "line" if len(unseen) == 1 else "lines"
    return (f"The visitor did not see {len(unseen)} {lines} before the chat ended: {listing}. "
            "They reach the visitor only in an emailed transcript (!transcript).")


def _quote(text: str) -> str:
    line = " ".join(text.split())
    return f"“{line[:QUOTE_CHARS]}…”" if len(line) > QUOTE_CHARS else f"“{line}”"
