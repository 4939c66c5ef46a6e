"""A joined room's timeline and typing events, as nio parsed them, turned into the Matrix
backend's inbound events (its own module so that matrix.py stays small). No nio type leaves
it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from nio import (
    BadEvent,
    RedactedEvent,
    RoomMemberEvent,
    RoomMessageEmote,
    RoomMessageMedia,
    RoomMessageNotice,
    RoomMessageText,
)

from bridge.backends.base import (
    AgentFile,
    AgentMessage,
    AgentReaction,
    AgentRetracted,
    AgentTyping,
    InboundEvent,
    MemberJoined,
    MemberLeft,
)
from bridge.backends.matrix_media import media_event
from bridge.backends.matrix_wire import (
    Threads,
    plain_body,
    reaction_of,
    redacted_id,
    reply_target,
)
from bridge.core.models import RoomRef

_NIO_OLD_REDACTION = "'redacts' is a required property"


class _RedactionsFromRoomV11(logging.Filter):
    """nio 0.26 knows only the old place of `redacts` and warns, with the whole event, of
    every redaction that has it in `content` only (room version 11 on, from a server that
    does not copy it to the top): each agent's deletion would leave that noise in the log.
    They are read here (`redacted_id`), so that one warning is dropped; nio's others stay."""

    def filter(self, record: logging.LogRecord) -> bool:
        return _NIO_OLD_REDACTION not in record.getMessage()


logging.getLogger("nio.events.misc").addFilter(_RedactionsFromRoomV11())


def _lines_of(inbound: InboundEvent) -> set[str | None]:
    """The lines an agent's message or file is, or corrects (none for other events)."""
    if isinstance(inbound, AgentMessage):
        return {inbound.event_id, inbound.replaces}
    return {inbound.event_id} if isinstance(inbound, AgentFile) else set()


class Timeline:
    """Translates what other members do in the bot's rooms; `name` gives a member's shown
    name in a room. Keeps what the translation needs to remember: the threads (an edit of
    a note stays a note) and who is typing where."""

    def __init__(self, user_id: str, name: Callable[[RoomRef, str], str]) -> None:
        self.user_id = user_id
        self._name = name
        self._threads = Threads()  # agents' side conversations: notes, never relayed
        self._typing: dict[str, set[str]] = {}

    def translate_batch(self, room: RoomRef, events: list[Any]) -> list[InboundEvent]:
        """What one sync gives of a room's timeline, the bot's own echoes left out. A line
        whose redaction is in the same batch is left out too, and corrections of it: Synapse
        serves such a line redacted, but a server may serve it as written (Dendrite's sync
        did), and the visitor must never see what the agent took back. The retraction is
        still reported (the line may have come in an earlier batch being replayed)."""
        taken_back = {redacted_id(event.source) for event in events} - {None}
        translated: list[InboundEvent] = []
        for event in events:
            if getattr(event, "sender", None) == self.user_id:
                continue  # our own echo
            inbound = self.translate(room, event)
            if inbound is None:
                continue
            if not taken_back & _lines_of(inbound):
                translated.append(inbound)
        return translated

    def translate(self, room: RoomRef, event: Any) -> InboundEvent | None:
        """The inbound event for one timeline event of another member, or None."""
        if isinstance(event, RedactedEvent):
            # Taken back before the bot saw it (e.g. while it was away): nothing to pass on.
            return None
        if isinstance(event, RoomMessageText | RoomMessageNotice | RoomMessageEmote):
            return self._message(room, event)
        reaction = reaction_of(event.source)
        if reaction is not None:
            sender = event.source.get("sender")
            return AgentReaction(room, sender, *reaction, str(event.event_id)) \
                if isinstance(sender, str) else None
        retracted = redacted_id(event.source)
        if retracted is not None:
            sender = event.source.get("sender")
            if not isinstance(sender, str) or sender == self.user_id:
                return None  # the bot's own (draft previews), or no one to name
            return AgentRetracted(room, sender, retracted)
        if isinstance(event, RoomMessageMedia | BadEvent):  # BadEvent: e.g. encrypted media
            return media_event(room, event.source, self._name(room, event.sender))
        if isinstance(event, RoomMemberEvent) and event.state_key != self.user_id:
            was_in = event.prev_membership == "join"
            name = (event.content or {}).get("displayname") or event.state_key
            if event.membership == "join" and not was_in:
                return MemberJoined(room, event.state_key, name, event.event_id)
            # A rejected (or withdrawn) invitation counts as leaving: routing must know.
            if event.membership in ("leave", "ban") and event.prev_membership in ("join",
                                                                                  "invite"):
                return MemberLeft(room, event.state_key, name, event.event_id)
        return None

    def _message(self, room: RoomRef, event: Any) -> AgentMessage | None:
        text, replaces = plain_body(event)
        if not text:
            return None
        if isinstance(event, RoomMessageEmote):
            text = f"* {self._name(room, event.sender)} {text}"
        return AgentMessage(
            room=room,
            sender=event.sender,
            sender_name=self._name(room, event.sender),
            text=text,
            event_id=event.event_id,
            ts=event.server_timestamp / 1000,
            edited=replaces is not None,
            replaces=replaces,
            thread=self._threads.in_thread(event),
            reply_to=reply_target(event),
        )

    def typing_changes(self, room: RoomRef, typing_now: set[str]) -> list[AgentTyping]:
        """Matrix sends the whole set of typing users; the hub wants per-person changes."""
        typing_now.discard(self.user_id)
        before = self._typing.get(room, set())
        self._typing[room] = typing_now
        started = [AgentTyping(room, u, self._name(room, u), True) for u in typing_now - before]
        stopped = [AgentTyping(room, u, self._name(room, u), False) for u in before - typing_now]
        return started + stopped
