"""A visitor on a real WebSocket and an agent on a real Matrix client, through the bridge."""

from __future__ import annotations

import pytest

from tests.conftest import Homeserver
from tests.integration.conftest import room_of
from tests.integration.helpers import Agent

pytestmark = pytest.mark.synapse


async def test_visitor_and_agent_talk_both_ways(make_bridge, agent: Agent, visitors,
                                                homeserver: Homeserver) -> None:
    bridge = await make_bridge()
    visitor = await visitors(bridge.base_url)
    started = await visitor.start(name="Anna")
    welcome = await visitor.wait("message", lambda f: f["from"] == "system")
    assert welcome["text"] == "Hi Anna, an agent will be with you shortly."
    await visitor.wait("queue")
    ack = await visitor.say("Hello, where is my order?")
    assert ack["seq"] > welcome["seq"]

    room = await room_of(bridge, started["conversation"])
    await agent.join(room)
    await agent.wait_text(room, "Hello, where is my order?")
    state = await agent.client.room_get_state_event(room, "m.room.name")
    assert state.content["name"] == "💬 Anna · Support"
    member = await agent.client.room_get_state_event(room, "m.room.member", homeserver.bot_id)
    assert member.content["displayname"] == "Anna (visitor)"

    joined = await visitor.wait("agent", lambda f: f["event"] == "joined")
    assert joined["name"] == "Alice"
    await agent.say(room, "It ships today.")
    reply = await visitor.wait("message", lambda f: f["from"] == "agent")
    assert (reply["name"], reply["text"]) == ("Alice", "It ships today.")
    assert reply["seq"] > joined["seq"]
