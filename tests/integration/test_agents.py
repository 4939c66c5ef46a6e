"""What agents do beyond plain lines: presence, corrections; on both backends."""

from __future__ import annotations

import asyncio

import aiohttp

from tests.integration.conftest import TestAgent, room_of


async def status(base_url: str) -> dict:
    async with aiohttp.ClientSession() as http, http.get(f"{base_url}/v1/status") as response:
        return await response.json()


async def wait_available(base_url: str, wanted: bool, timeout: float = 15.0) -> dict:
    """Until the support queue (Alice's) is available or not, as wanted."""
    async with asyncio.timeout(timeout):
        while (answer := await status(base_url))["queues"][0]["available"] != wanted:
            await asyncio.sleep(0.1)
    return answer


async def test_presence_decides_availability(make_bridge, agent: TestAgent, visitors) -> None:
    bridge = await make_bridge()
    visitor = await visitors(bridge.base_url)
    started = await visitor.start()
    room = await room_of(bridge, started["conversation"])
    await agent.join(room)  # a shared room: Matrix shows presence to those who share one
    await agent.set_away(False)
    answer = await wait_available(bridge.base_url, True)
    assert answer["available"] is True

    await agent.set_away(True)  # Matrix "unavailable", XMPP "dnd"
    answer = await wait_available(bridge.base_url, False)
    assert answer["queues"][0]["id"] == "support" and answer["queues"][0]["open"] is True
    await agent.set_away(False)
    await wait_available(bridge.base_url, True)


async def test_agent_corrections_reach_the_visitor_marked(make_bridge, agent: TestAgent,
                                                          visitors) -> None:
    bridge = await make_bridge()
    visitor = await visitors(bridge.base_url)
    started = await visitor.start()
    room = await room_of(bridge, started["conversation"])
    await agent.join(room)
    first = await agent.say(room, "Your order ships on Mondya")
    await visitor.wait("message", lambda f: f["text"] == "Your order ships on Mondya")
    await agent.correct(room, first, "Your order ships on Monday")
    fixed = await visitor.wait("message", lambda f: f["text"].startswith("✎"))
    assert fixed["text"] == "✎ Your order ships on Monday"
    assert fixed["from"] == "agent"
