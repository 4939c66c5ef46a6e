"""Notices for the agents in a conversation's room: never stored in the visitor's timeline."""

from __future__ import annotations

import logging
from typing import Protocol

from bridge.backends.base import BackendError
from bridge.core.models import Conversation, RoomRef

log = logging.getLogger(__name__)


class NoticeBackend(Protocol):
    async def post_notice(self, room: RoomRef, text: str, *, key: str) -> str: ...


class Notices:
    """Posts notices; a notice that cannot be posted is logged, never raised."""

    def __init__(self, backend: NoticeBackend) -> None:
        self._backend = backend

    async def to_agents(self, conversation: Conversation, text: str, *, key: str) -> None:
        """A notice in the conversation's room; `key` keeps a repeat from showing twice."""
        if conversation.room is None:
            return
        try:
            await self._backend.post_notice(conversation.room, text, key=key)
        except BackendError as exc:
            log.warning("conversation %s: notice not posted (%s)", conversation.id, exc)
