"""The visitor edits or deletes their own last line: whether they may is decided in
`bridge.core.line_edits`; here the change is stored with what the line was (the agents'
audit view, `!history`), shown on every connection of the chat with the same `edit` and
`delete` frames as agents' changes, and left to the outbox to make in the room after the
line itself (a real edit or redaction on Matrix, a correction or retraction on XMPP)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from bridge.core import frames
from bridge.core.line_edits import DeleteFrame, EditFrame, judge_change
from bridge.core.models import Conversation, ConversationId, Item, Sender, Status
from bridge.core.protocol import ProtocolError
from bridge.sinks import VisitorSink

log = logging.getLogger(__name__)

BY_VISITOR = "visitor"  # who made the change, in the store's `item_changes`


class EditStore(Protocol):
    def conversation(self, conversation_id: str) -> Conversation | None: ...

    def newest_line(self, conversation_id: str, sender: Sender) -> Item | None: ...


class LineChanges(Protocol):
    async def change(self, item: Item, kind: str, text: str, by: str | None, now: float, *,
                     to_room: bool = False) -> None: ...


class VisitorEdits:
    """Edits and deletions of the visitor's newest line, within `window_s` of sending it."""

    def __init__(self, store: EditStore, timeline: LineChanges, window_s: float,
                 clock: Callable[[], float]) -> None:
        self._store = store
        self._timeline = timeline
        self._window_s = window_s
        self._clock = clock

    async def change(self, conversation_id: ConversationId, change: EditFrame | DeleteFrame,
                     origin: VisitorSink) -> Conversation:
        """Make the change, or answer a repeat of one made before on `origin` alone with the
        line as it is; ProtocolError (nothing changed) when it may not be made."""
        conversation = self._store.conversation(conversation_id)
        if conversation is None:
            raise ProtocolError("no_conversation", "start or resume a conversation first")
        line = self._store.newest_line(conversation.id, Sender.VISITOR)
        now = self._clock()
        if not judge_change(change, line, ended=conversation.status is Status.ENDED, now=now,
                            window_s=self._window_s):
            assert line is not None
            await origin.send(_as_it_is(line))
            return conversation
        assert line is not None
        if isinstance(change, DeleteFrame):
            await self._timeline.change(line, "delete", "", BY_VISITOR, now, to_room=True)
        else:
            await self._timeline.change(line, "edit", change.text, BY_VISITOR, now,
                                        to_room=True)
        log.info("conversation %s: the visitor %s seq %d", conversation.id,
                 "deleted" if isinstance(change, DeleteFrame) else "edited", line.seq)
        return conversation


def _as_it_is(line: Item) -> frames.Frame:
    """The answer to a repeated change: the frame that shows the line as it is now."""
    if line.deleted_at is not None:
        return frames.delete_frame(line.seq)
    if line.edited_at is not None:
        return frames.edit_frame(line, line.edited_at)
    return frames.item_frame(line)  # "edited" to the text it always had: nothing happened
