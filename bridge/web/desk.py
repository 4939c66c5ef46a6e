"""What the web layer asks of the bridge for a visitor: the hub, seen through this
protocol only, so the web layer never depends on the hub's other parts."""

from __future__ import annotations

from typing import Protocol

from bridge.core.models import Conversation, ConversationId
from bridge.core.protocol import (
    CallbackFrame,
    DeleteFrame,
    EditFrame,
    MessageFrame,
    ResumeFrame,
    StartFrame,
    SurveyFrame,
)
from bridge.sinks import VisitorSink


class VisitorDesk(Protocol):
    async def start_conversation(self, frame: StartFrame, sink: VisitorSink
                                 ) -> Conversation: ...

    async def resume(self, frame: ResumeFrame, sink: VisitorSink) -> Conversation: ...

    async def follow(self, conversation_id: ConversationId, after: int, sink: VisitorSink
                     ) -> None: ...

    def detach(self, conversation_id: ConversationId, sink: VisitorSink) -> None: ...

    async def visitor_message(self, conversation_id: ConversationId, frame: MessageFrame,
                              origin: VisitorSink) -> int: ...

    async def visitor_change(self, conversation_id: ConversationId,
                             change: EditFrame | DeleteFrame, origin: VisitorSink
                             ) -> None: ...

    async def visitor_typing(self, conversation_id: ConversationId, active: bool) -> None: ...

    async def visitor_read(self, conversation_id: ConversationId, seq: int) -> None: ...

    async def visitor_end(self, conversation_id: ConversationId) -> None: ...

    async def leave_message(self, conversation_id: ConversationId) -> None: ...

    async def visitor_extend(self, conversation_id: ConversationId) -> float: ...

    async def visitor_draft(self, conversation_id: ConversationId, text: str) -> None: ...

    async def visitor_survey(self, conversation_id: ConversationId, frame: SurveyFrame
                             ) -> None: ...

    async def visitor_callback(self, conversation_id: ConversationId, frame: CallbackFrame
                               ) -> None: ...

    async def visitor_transcript(self, conversation_id: ConversationId, email: str | None
                                 ) -> str: ...
