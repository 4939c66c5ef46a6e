"""Idle chats: a chat nobody wrote in for `[server] idle_timeout_minutes` ends by itself, and
the visitor is warned first and can keep it open with one action (WCAG 2.2.1)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from bridge.core import frames
from bridge.core.models import Conversation, ConversationId, Sender, Status
from bridge.core.protocol import ProtocolError
from bridge.core.states import idle_ends_in, idle_warning_window, is_abandoned
from bridge.sinks import Sinks

log = logging.getLogger(__name__)


class IdleStore(Protocol):
    def last_activity(self) -> list[tuple[ConversationId, float]]: ...

    def conversation(self, conversation_id: str) -> Conversation | None: ...

    def extend(self, conversation_id: ConversationId, now: float) -> None: ...


class IdleChats:
    """Warns visitors of chats about to end for silence, and ends the silent ones."""

    def __init__(self, timeout_s: float, store: IdleStore, sinks: Sinks,
                 end: Callable[[Conversation, Sender, str], Awaitable[None]],
                 clock: Callable[[], float]) -> None:
        self.timeout_s = timeout_s
        self._store = store
        self._sinks = sinks
        self._end = end
        self._clock = clock
        # The activity time each conversation was last warned about: one warning per silence.
        self._warned: dict[ConversationId, float] = {}

    def check_every(self) -> float | None:
        """How often `check` must run to warn inside the window; None when chats never end."""
        if not self.timeout_s:
            return None
        return max(idle_warning_window(self.timeout_s) / 3, 0.2)

    async def check(self) -> None:
        now = self._clock()
        activity = self._store.last_activity()
        for gone in self._warned.keys() - {conversation_id for conversation_id, _ in activity}:
            del self._warned[gone]  # ended some other way
        for conversation_id, last in activity:
            if is_abandoned(last, now, self.timeout_s):
                await self._end_silent(conversation_id, now - last)
            elif (ends_in := idle_ends_in(last, now, self.timeout_s)) is not None \
                    and self._warned.get(conversation_id) != last:
                self._warned[conversation_id] = last
                log.info("conversation %s: idle, ends in %.0f s unless kept open",
                         conversation_id, ends_in)
                await self._sinks.push(conversation_id, frames.idle_frame(ends_in))

    async def extend(self, conversation_id: ConversationId) -> float:
        """The visitor keeps the chat open; the seconds it has now."""
        conversation = self._store.conversation(conversation_id)
        if conversation is None or conversation.status is Status.ENDED:
            raise ProtocolError("ended", "this conversation has ended")
        self._store.extend(conversation_id, self._clock())
        self._warned.pop(conversation_id, None)
        log.info("conversation %s: kept open by the visitor", conversation_id)
        return self.timeout_s

    async def _end_silent(self, conversation_id: ConversationId, silent_s: float) -> None:
        self._warned.pop(conversation_id, None)
        conversation = self._store.conversation(conversation_id)
        if conversation is None or conversation.status is Status.ENDED:
            return
        log.info("conversation %s: ended after %.0f min without a line", conversation_id,
                 silent_s / 60)
        await self._end(conversation, Sender.SYSTEM, "")
