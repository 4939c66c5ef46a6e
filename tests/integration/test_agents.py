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


async def test_agent_corrections_and_retractions_change_the_line_in_place(
        make_bridge, agent: TestAgent, visitors) -> None:
    bridge = await make_bridge()
    visitor = await visitors(bridge.base_url)
    started = await visitor.start()
    room = await room_of(bridge, started["conversation"])
    await agent.join(room)
    first = await agent.say(room, "Your order ships on Mondya")
    line = await visitor.wait("message", lambda f: f["text"] == "Your order ships on Mondya")
    await agent.correct(room, first, "Your order ships on Monday")
    fixed = await visitor.wait("edit")
    assert (fixed["seq"], fixed["text"]) == (line["seq"], "Your order ships on Monday")
    slip = await agent.say(room, "Meant for another chat")
    gone = await visitor.wait("message", lambda f: f["text"] == "Meant for another chat")
    await agent.retract(room, slip, "Meant for another chat")
    assert (await visitor.wait("delete"))["seq"] == gone["seq"]

    # A widget coming back gets the final state, and no "✎" line was ever added.
    again = await visitors(bridge.base_url)
    await again.send({"type": "resume", "token": started["token"], "after": 0})
    await again.wait("message", lambda f: f["seq"] == gone["seq"])
    replayed = {f["seq"]: f for f in again.of("message")}
    assert replayed[line["seq"]]["text"] == "Your order ships on Monday"
    assert replayed[line["seq"]]["edited"] is True
    assert (replayed[gone["seq"]]["deleted"], replayed[gone["seq"]]["text"]) == (True, "")
    assert not [f for f in again.of("message") if f["text"].startswith("✎")]
    transcript = bridge.hub.parts.aftercare.transcript_for_token(started["token"]) or ""
    assert "Monday" in transcript and "Mondya" not in transcript
    assert "another chat" not in transcript
