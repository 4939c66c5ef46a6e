"""What agents' commands act through: narrow parts handed over by the composition root."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bridge.aftercare import Aftercare
from bridge.chat_actions import ChatActions
from bridge.config import Config
from bridge.routing.assignment import Assignment
from bridge.routing.availability import Availability
from bridge.store import Store
from bridge.transfers import TransferOffers


@dataclass(frozen=True)
class CommandTools:
    config: Config
    store: Store
    actions: ChatActions  # effects on a chat: canned lines, invitations, transfers, the end
    aftercare: Aftercare  # transcripts, callbacks, the summary
    assignment: Assignment  # who owns a chat
    availability: Availability  # who can take one
    offers: TransferOffers  # `!transfer` as an offer the colleague takes by joining
    clock: Callable[[], float]
