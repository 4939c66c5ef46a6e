"""Queues and routing on real messengers: hours, capacity, strategies, the waiting line."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import aiohttp

from tests.integration.conftest import Messenger, TestAgent, room_of


async def status(base_url: str) -> dict:
    async with aiohttp.ClientSession() as http, http.get(f"{base_url}/v1/status") as response:
        return await response.json()


async def test_a_closed_queue_refuses_chats_and_says_so(make_matrix_bridge, visitors) -> None:
    today = datetime.now(UTC).date()
    holidays = [str(today - timedelta(days=1)), str(today), str(today + timedelta(days=1))]
    bridge = await make_matrix_bridge(queues=[
        {"id": "support", "name": "Support", "agents": ["alice"], "holidays": holidays},
        {"id": "sales", "name": "Sales", "agents": ["bob"],
         "hours": {"mon": "00:00-24:00", "tue": "00:00-24:00", "wed": "00:00-24:00",
                   "thu": "00:00-24:00", "fri": "00:00-24:00", "sat": "00:00-24:00",
                   "sun": "00:00-24:00"}},
    ])
    answer = await status(bridge.base_url)
    by_id = {q["id"]: q for q in answer["queues"]}
    assert by_id["support"]["open"] is False and by_id["support"]["available"] is False
    assert by_id["sales"]["open"] is True
    visitor = await visitors(bridge.base_url)
    await visitor.send({"type": "start", "topic": "support",
                        "visitor": {"name": "A", "email": "a@example.com"}})
    error = await visitor.wait("error")
    assert error["code"] == "queue_closed"
    assert bridge.store.open_conversations() == []
    started = await visitor.start(topic="sales")
    assert started["conversation"]


async def test_least_busy_invites_the_agent_with_room_to_spare(
    make_bridge, agent: TestAgent, visitors, messenger: Messenger
) -> None:
    bob = await messenger.agent("bob", "Bob")
    try:
        await bob.set_away(False)
        bridge = await make_bridge(queues=[{
            "id": "support", "name": "Support", "strategy": "least_busy",
            "agents": [{"id": "alice", "priority": 10}, "bob"]}])
        async with asyncio.timeout(15):  # both agents' presence reaches the bridge (XMPP)
            while not all(bridge.hub.parts.availability.agent_available(bridge.config.agent(a))
                          for a in ("alice", "bob")):
                await asyncio.sleep(0.1)
        first = await visitors(bridge.base_url)
        one = await first.start(name="One")
        room1 = await room_of(bridge, one["conversation"])
        await agent.join(room1)  # alice has the higher priority: invited first
        await first.wait("agent", lambda f: f["event"] == "joined")
        await agent.say(room1, "Alice here")
        await first.wait("message", lambda f: f["text"] == "Alice here")

        await agent.say(room1, "!break")  # alice takes no new chats: the next goes to bob
        await agent.until(lambda: any("You are on a break" in t
                                      for t in agent.texts(room1, notice=True)))
        second = await visitors(bridge.base_url)
        two = await second.start(name="Two")
        room2 = await room_of(bridge, two["conversation"])
        await bob.join(room2)
        await second.wait("agent", lambda f: f["event"] == "joined")
        assert room2 not in agent.invites
    finally:
        await bob.close()


async def test_a_waiting_chat_goes_to_the_agent_who_comes_back(
    make_bridge, agent: TestAgent, visitors
) -> None:
    bridge = await make_bridge(queues=[{"id": "support", "name": "Support",
                                        "agents": ["alice"]}])
    first = await visitors(bridge.base_url)
    await first.start()
    await asyncio.sleep(0.3)
    conversation = bridge.store.open_conversations()[0]
    room = await room_of(bridge, conversation.id)
    await agent.join(room)
    await agent.say(room, "!break")
    await agent.until(lambda: any("You are on a break" in t
                                  for t in agent.texts(room, notice=True)))
    second = await visitors(bridge.base_url)
    waiting = await second.start(name="Waits")
    room2 = await room_of(bridge, waiting["conversation"])
    await asyncio.sleep(0.5)
    assert room2 not in agent.invites  # on a break: nobody is invited, the chat waits
    assert (await second.wait("queue"))["position"] == 1
    await agent.say(room, "!back")
    await agent.join(room2)  # invited once back
    await second.wait("agent", lambda f: f["event"] == "joined")


async def test_a_full_waiting_line_sends_visitors_to_the_offline_form(make_matrix_bridge,
                                                                      visitors) -> None:
    bridge = await make_matrix_bridge(queues=[{"id": "support", "name": "Support",
                                        "agents": ["alice"], "max_waiting": 1}])
    first = await visitors(bridge.base_url)
    await first.start()
    second = await visitors(bridge.base_url)
    await second.send({"type": "start", "visitor": {"name": "B", "email": "b@example.com"}})
    assert (await second.wait("error"))["code"] == "queue_full"
