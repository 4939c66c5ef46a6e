"""Where a ticket goes besides the store: the help desk (mail, webhook) and the queue's
agents in their messenger (the lobby, or a direct message to each). Every ticket reaches a
person: `livechat-bridge check` refuses a queue that would leave one with nobody."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bridge.backends.base import Backend, BackendError, BackendUnavailable
from bridge.config import Config, QueueConfig
from bridge.core.models import RoomRef, Ticket
from bridge.store import Store

log = logging.getLogger(__name__)

# A transcript can be long; the messenger gets the start, the help desk the whole text.
AGENT_TEXT_MAX = 8000


@dataclass(frozen=True)
class Routes:
    """The channels one ticket is delivered through."""

    mail: bool
    webhook: bool
    messenger: bool

    @property
    def helpdesk(self) -> bool:
        """Whether a help desk gets it: only then may the visitor read "we will answer by
        email" (otherwise the agents, who have the visitor's address, answer)."""
        return self.mail or self.webhook

    def names(self) -> list[str]:
        return [name for name in ("mail", "webhook", "messenger") if getattr(self, name)]


def routes_for(queue: QueueConfig | None, *, mail_ready: bool) -> Routes:
    """The channels of a queue's tickets; `mail_ready`: [smtp] is set up."""
    if queue is None:
        return Routes(mail=False, webhook=False, messenger=False)
    return Routes(mail=bool(queue.helpdesk_email and mail_ready),
                  webhook=bool(queue.webhook_url),
                  messenger=bool(queue.agents))


def agent_text(ticket: Ticket, queue: QueueConfig, routes: Routes) -> str:
    """The line agents get: who wrote, how to answer, and what they wrote."""
    kind = "Unanswered chat" if ticket.conversation_id else "Offline message"
    who = "The help desk has it too." if routes.helpdesk else "Nobody else got it."
    text = ticket.text
    if len(text) > AGENT_TEXT_MAX:
        text = text[:AGENT_TEXT_MAX] + "\n… (cut here; the whole text is in the ticket)"
    return (f"🎫 {kind} {ticket.id} for {queue.name} from {ticket.name} <{ticket.email}>. "
            f"{who} Please answer by email.\n\n{text}")


class AgentPoster:
    """Posts tickets to a queue's agents: one line in the lobby when the queue has one,
    otherwise a direct message to each agent. Idempotent by the ticket id."""

    def __init__(self, config: Config, store: Store, backend: Backend) -> None:
        self.config = config
        self.store = store
        self.backend = backend

    async def post(self, ticket: Ticket, queue: QueueConfig, routes: Routes) -> None:
        """Raises BackendUnavailable when nobody could be reached yet (retry later)."""
        text = agent_text(ticket, queue, routes)
        lobby = self._lobby(queue)
        if lobby is not None:
            try:
                await self.backend.post_notice(lobby, text, key=f"ticket-{ticket.id}")
                return
            except BackendUnavailable:
                raise
            except BackendError as exc:  # gone or refused: the agents one by one instead
                log.warning("ticket %s: not posted in the lobby of %s (%s); messaging its "
                            "agents", ticket.id, queue.id, exc)
        await self._direct(ticket, queue, text)

    def _lobby(self, queue: QueueConfig) -> RoomRef | None:
        # The lobbies keep their rooms under this key (bridge/routing/lobbies.py).
        room = self.store.kv_get(f"lobby:{queue.id}:room") if queue.lobby else None
        return RoomRef(room) if room else None

    async def _direct(self, ticket: Ticket, queue: QueueConfig, text: str) -> None:
        """Every agent of the queue; done when each got it or was refused for good and at
        least one got it. A retry sends again only under the same keys: nothing doubles."""
        reached, failure = 0, None
        for agent_id in queue.agents:
            agent = self.config.agent(agent_id)
            if agent is None:
                continue
            try:
                await self.backend.post_direct(agent.address, text,
                                               key=f"ticket-{ticket.id}-{agent.id}")
                reached += 1
            except BackendUnavailable as exc:
                failure = exc  # try the others now, this one again later
            except BackendError as exc:
                log.warning("ticket %s: %s cannot be messaged (%s)", ticket.id, agent.id, exc)
        if failure is not None or not reached:
            raise failure or BackendUnavailable(f"no agent of {queue.id} could be messaged")
