"""Transfers as offers: `!transfer bob` invites Bob and tells him who hands over what; the
chat stays with the offering agent until Bob joins. Bob declining (turning the invitation
down, or "no" to the bot), or not answering in time, gives it back; the visitor hears of
the transfer only once Bob is in the room."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from bridge.backends.base import BackendError
from bridge.chat_actions import ChatActions
from bridge.config import AgentConfig, Config, QueueConfig
from bridge.core.models import Conversation, RoomRef
from bridge.core.names import agent_name
from bridge.core.offers import Offer, expired
from bridge.notices import Notices

log = logging.getLogger(__name__)


class OfferStore(Protocol):
    def conversation(self, conversation_id: str) -> Conversation | None: ...

    def agent_present(self, conversation_id: str, agent_id: str) -> bool: ...


class OfferRepository(Protocol):
    def put_offer(self, offer: Offer) -> None: ...

    def drop_offer(self, conversation_id: str) -> None: ...

    def offer(self, conversation_id: str) -> Offer | None: ...

    def open_offers(self) -> list[Offer]: ...


class OfferMessenger(Protocol):
    async def remove(self, room: RoomRef, address: str) -> None: ...

    async def post_direct(self, address: str, text: str, *, key: str) -> str: ...


class TransferOffers:
    """Makes, settles and times out the offers of `!transfer`."""

    def __init__(self, config: Config, store: OfferStore, offers: OfferRepository,
                 actions: ChatActions, notices: Notices, messenger: OfferMessenger,
                 clock: Callable[[], float]) -> None:
        self._config = config
        self._store = store
        self._offers = offers
        self._actions = actions
        self._notices = notices
        self._messenger = messenger
        self._clock = clock
        self._timeout_s = config.chats.transfer_offer_seconds

    async def offer(self, conversation: Conversation, current: AgentConfig,
                    target: AgentConfig, queue: QueueConfig | None, note: str, *,
                    stay: bool) -> str:
        """Offer the chat to `target` (handed over at once when they are in the room
        already); the text for the agents."""
        if self._store.agent_present(conversation.id, target.id):
            await self._actions.hand_over(conversation, current, target, queue, stay=stay)
            self._offers.drop_offer(conversation.id)
            return f"Transferred to {_name(target)}." + (f" Note: {note}" if note else "")
        earlier = self._offers.offer(conversation.id)
        if earlier is not None and earlier.to_agent != target.id:
            await self._withdraw(conversation, earlier, "the chat was offered to someone else")
        await self._actions.invite_agent(conversation, target)
        offer = Offer(conversation.id, current.id, target.id, queue.id if queue else None,
                      note, stay, self._clock())
        self._offers.put_offer(offer)
        log.info("conversation %s: offered by %s to %s", conversation.id, current.id, target.id)
        await self._tell(target, conversation, offer, self._invitation_text(conversation,
                                                                            current, offer))
        return (f"Offered to {_name(target)}" + (f" (note: {note})" if note else "")
                + f". The chat stays with you until they join; it comes back to you if they "
                f"decline or do not answer within {_duration(self._timeout_s)}.")

    def _invitation_text(self, conversation: Conversation, current: AgentConfig,
                         offer: Offer) -> str:
        queue = self._config.queue(offer.queue_id or conversation.queue_id)
        about = f"the chat with {conversation.visitor.name}" + (
            f" ({queue.name})" if queue else "")
        note = f' Note: "{offer.note}".' if offer.note else ""
        return (f"{_name(current)} offers you {about}.{note} Join the room to take it, or "
                f"answer no (or turn the invitation down) to decline; the offer stands for "
                f"{_duration(self._timeout_s)}.")

    async def joined(self, conversation: Conversation, agent: AgentConfig) -> None:
        """`agent` came into the room: if the chat was offered to them, it is theirs now."""
        offer = self._offers.offer(conversation.id)
        if offer is None or offer.to_agent != agent.id:
            return
        current = self._config.agent(offer.from_agent)
        queue = self._config.queue(offer.queue_id) if offer.queue_id else None
        self._offers.drop_offer(conversation.id)
        if current is None:  # no longer configured: nobody to hand over from
            return
        # Said before the hand-over, which may take the offering agent out of the room.
        await self._notices.to_agents(
            conversation, f"{_name(agent)} took over the chat from {_name(current)}."
            + (f" Note: {offer.note}" if offer.note else ""),
            key=f"offer-taken-{conversation.id}-{offer.made_at}")
        await self._actions.hand_over(conversation, current, agent, queue, stay=offer.stay)

    async def declined(self, conversation: Conversation, agent: AgentConfig) -> bool:
        """`agent` turned down what was offered to them (an invitation rejected or "no");
        False when nothing was."""
        offer = self._offers.offer(conversation.id)
        if offer is None or offer.to_agent != agent.id:
            return False
        self._offers.drop_offer(conversation.id)
        await self._give_back(conversation, offer, f"{_name(agent)} declined the chat")
        return True

    async def answered(self, agent: AgentConfig, yes: bool) -> str | None:
        """A "yes" or "no" the agent wrote to the bot: answers the newest chat offered to
        them; the reply, or None when nothing is."""
        offer = next((o for o in reversed(self._offers.open_offers())
                      if o.to_agent == agent.id), None)
        conversation = self._store.conversation(offer.conversation_id) if offer else None
        if offer is None or conversation is None:
            return None
        if yes:
            return (f"Join the room {conversation.room} (your invitation is waiting) to take "
                    f"the chat with {conversation.visitor.name}.")
        self._offers.drop_offer(conversation.id)
        await self._remove(conversation, agent)
        await self._give_back(conversation, offer, f"{_name(agent)} declined the chat")
        return f"Declined: the chat with {conversation.visitor.name} stays where it was."

    async def chat_ended(self, conversation: Conversation) -> None:
        """The chat ended while offered: the invitation is withdrawn, the colleague told."""
        offer = self._offers.offer(conversation.id)
        if offer is not None:
            await self._withdraw(conversation, offer, "the chat has ended")

    async def expire(self) -> None:
        """Offers unanswered for too long go back to the agent who made them."""
        for offer in expired(self._offers.open_offers(), self._clock(), self._timeout_s):
            conversation = self._store.conversation(offer.conversation_id)
            if conversation is None:
                continue
            self._offers.drop_offer(conversation.id)
            target = self._config.agent(offer.to_agent)
            if target is not None:
                await self._remove(conversation, target)
                await self._tell(target, conversation, offer,
                                 f"The offer of the chat with {conversation.visitor.name} "
                                 "was withdrawn: it was not taken in time.", "expired")
            await self._give_back(conversation, offer, f"{_name_of(self._config, offer.to_agent)}"
                                  f" did not answer within {_duration(self._timeout_s)}")

    async def _withdraw(self, conversation: Conversation, offer: Offer, why: str) -> None:
        self._offers.drop_offer(conversation.id)
        target = self._config.agent(offer.to_agent)
        if target is not None:
            await self._remove(conversation, target)
            await self._tell(target, conversation, offer, f"The offer of the chat with "
                             f"{conversation.visitor.name} was withdrawn: {why}.", "withdrawn")

    async def _give_back(self, conversation: Conversation, offer: Offer, what: str) -> None:
        log.info("conversation %s: offer to %s settled: %s", conversation.id, offer.to_agent,
                 what)
        owner = _name_of(self._config, offer.from_agent)
        await self._notices.to_agents(conversation, f"{what}; the chat stays with {owner}.",
                                      key=f"offer-back-{conversation.id}-{offer.made_at}")

    async def _remove(self, conversation: Conversation, agent: AgentConfig) -> None:
        if conversation.room is None:
            return
        try:
            await self._messenger.remove(conversation.room, agent.address)
        except BackendError as exc:  # already gone, or the invitation turned down
            log.info("conversation %s: invitation of %s not withdrawn (%s)", conversation.id,
                     agent.id, exc)

    async def _tell(self, agent: AgentConfig, conversation: Conversation, offer: Offer,
                    text: str, what: str = "made") -> None:
        try:
            await self._messenger.post_direct(
                agent.address, text, key=f"offer-{what}-{conversation.id}-{offer.made_at}")
        except BackendError as exc:
            log.warning("conversation %s: %s not told of the offer (%s)", conversation.id,
                        agent.id, exc)


def _name(agent: AgentConfig) -> str:
    return agent_name(agent, "")


def _name_of(config: Config, agent_id: str) -> str:
    agent = config.agent(agent_id)
    return _name(agent) if agent else agent_id


def _duration(seconds: float) -> str:
    if seconds >= 120 and seconds % 60 == 0:
        return f"{seconds / 60:.0f} minutes"
    return f"{seconds:.0f} seconds"
