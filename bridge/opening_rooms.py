"""Rooms being opened. The messenger may tell of an invited agent's join (or even their first
line) in a new room before the outbox has stored the room for its conversation: the invitation
goes out while the room is made. Such events wait here and are handled, in their order, as
soon as the room is stored; none is dropped. Only events of agents invited to a room that is
being opened wait, and only until that opening ends (a line in a direct chat of theirs is
handled then, as before)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from bridge.backends.base import AgentMessage, AgentTyping, InboundEvent, MemberJoined, MemberLeft


class OpeningRooms:
    def __init__(self) -> None:
        self._invited: Counter[str] = Counter()  # agents invited to rooms being opened
        self._held: list[InboundEvent] = []

    @contextmanager
    def opening(self, invitees: tuple[str, ...]) -> Iterator[None]:
        """While a room is made with these agents invited (and until it is stored)."""
        self._invited.update(invitees)
        try:
            yield
        finally:
            self._invited.subtract(invitees)
            self._invited += Counter()  # drop the zeros

    def hold(self, event: InboundEvent) -> bool:
        """Keep an event of a room no conversation has (yet); False when it is not one an
        agent being invited could have caused."""
        if isinstance(event, MemberJoined | MemberLeft):
            who = event.member
        elif isinstance(event, AgentMessage | AgentTyping):
            who = event.sender
        else:
            return False
        if not self._invited[who]:
            return False
        self._held.append(event)
        return True

    def has_held(self) -> bool:
        return bool(self._held)

    def take_held(self) -> list[InboundEvent]:
        held, self._held = self._held, []
        return held

    def hold_again(self, events: list[InboundEvent]) -> None:
        """Events that could not be handled yet, before any held since."""
        self._held[:0] = events
