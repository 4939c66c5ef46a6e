"""A ticket with no help desk (no mail, no webhook) still reaches a person: the queue's agent
gets it in their messenger, once, and the visitor is not promised an answer "by email" from
a help desk that does not exist. Runs on Matrix and on XMPP."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from bridge.app import Bridge
from tests.integration.conftest import Messenger, TestAgent, room_of
from tests.integration.test_offline import post
from tests.integration.xmpp_agent import XmppAgent

MESSAGE = {"name": "Anna", "email": "anna@example.com", "topic": "support",
           "text": "Where is my order 1234?"}


async def bot_direct_lines(bridge: Bridge, messenger: Messenger, agent: TestAgent
                           ) -> Callable[[], list[str]]:
    """The lines of the bot's direct chat with the agent; on Matrix the agent first accepts
    the direct room the bot opened (and remembered in its state)."""
    if isinstance(agent, XmppAgent):
        return lambda: agent.direct_texts(messenger.bot)
    async with asyncio.timeout(15):
        while not (room := bridge.store.kv_get(f"matrix:direct:{agent.address}")):
            await asyncio.sleep(0.05)
    await agent.join(room)
    return lambda: agent.direct_texts(room)


async def test_an_offline_message_reaches_the_queues_agent_once(
    make_bridge, messenger: Messenger, agent: TestAgent
) -> None:
    bridge = await make_bridge()  # no [smtp], no webhook: the agents are the only way
    status, answer = await post(bridge.base_url, MESSAGE)
    assert status == 201
    assert (answer["helpdesk"], answer["routes"]) == (False, ["messenger"])
    ticket = answer["ticket"]

    lines = await bot_direct_lines(bridge, messenger, agent)
    mine = lambda: [line for line in lines() if ticket in line]  # noqa: E731
    await agent.until(mine)
    assert mine()[0].startswith(f"🎫 Offline message {ticket} for Support from Anna "
                                "<anna@example.com>. Nobody else got it. Please answer by email.")
    assert mine()[0].endswith("Where is my order 1234?")
    async with asyncio.timeout(10):  # marked delivered
        while bridge.store.tickets_for_messenger():
            await asyncio.sleep(0.05)

    # Delivered again, as after a retry whose first try went through: shown once.
    with bridge.store._transaction(durable=True):
        bridge.store.db.execute("UPDATE tickets SET messenger_pending = 1")
    bridge.tickets.resume()
    async with asyncio.timeout(10):
        while bridge.store.tickets_for_messenger():
            await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)  # time for a second line to arrive, were there one
    assert len(mine()) == 1


async def test_an_unanswered_chat_reaches_the_agent_in_their_direct_chat(
    make_bridge, messenger: Messenger, agent: TestAgent, visitors
) -> None:
    bridge = await make_bridge()
    direct = await agent.open_direct(messenger.bot)  # the bot uses this one, opens no other
    visitor = await visitors(bridge.base_url)
    started = await visitor.start()
    await room_of(bridge, started["conversation"])
    await visitor.say("Is anyone there? My parcel is lost.")
    await visitor.send({"type": "end"})  # before any agent wrote: an unanswered chat

    frame = await visitor.wait("ticket")
    assert frame["helpdesk"] is False  # the widget says "our team will get back to you"
    ticket = frame["ticket"]
    mine = lambda: [t for t in agent.direct_texts(direct) if ticket in t]  # noqa: E731
    await agent.until(mine)
    assert mine()[0].startswith(f"🎫 Unanswered chat {ticket} for Support from Anna")
    assert "My parcel is lost." in mine()[0]
    await asyncio.sleep(1.0)
    assert len(mine()) == 1
