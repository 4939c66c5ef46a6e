"""Sneak peek on the real servers: in a queue with `peek`, the visitor's unsent text shows
in the agents' room as one preview updated in place, and goes when the line is sent
(Matrix: an edited notice, then redacted; XMPP: a corrected line, then retracted)."""

from __future__ import annotations

import asyncio
import urllib.parse
from typing import Any

import aiohttp

from bridge.peek import PEEK_INTERVAL_S
from tests.integration.conftest import Messenger, TestAgent, chat_with_agent
from tests.integration.helpers import MatrixAgent
from tests.integration.xmpp_agent import XmppAgent

PEEKING = [{"id": "support", "name": "Support", "agents": ["alice"], "peek": True}]
MARK = "✍ "


async def matrix_events(agent: MatrixAgent, room: str) -> list[dict[str, Any]]:
    """The room's recent events as the server has them now (redactions applied)."""
    client = agent.client
    url = (f"{client.homeserver}/_matrix/client/v3/rooms/{urllib.parse.quote(room)}"
           "/messages?dir=b&limit=50")
    async with aiohttp.ClientSession() as http, http.get(
            url, headers={"Authorization": f"Bearer {client.access_token}"}) as response:
        assert response.status == 200
        return list((await response.json())["chunk"])


async def test_the_agent_sees_the_draft_then_the_line(make_bridge, agent: TestAgent,
                                                      visitors, messenger: Messenger) -> None:
    bridge, visitor, started, room = await chat_with_agent(
        lambda: make_bridge(queues=PEEKING), visitors, agent)
    await visitor.send({"type": "draft", "text": "I have a q"})
    await agent.wait_text(room, f"{MARK}I have a q", notice=messenger.name == "matrix")
    await asyncio.sleep(PEEK_INTERVAL_S + 0.2)
    await visitor.send({"type": "draft", "text": "I have a question"})
    await asyncio.sleep(PEEK_INTERVAL_S + 0.2)
    await visitor.say("I have a question about my order")
    await agent.wait_text(room, "I have a question about my order")
    await asyncio.sleep(PEEK_INTERVAL_S + 1)  # the preview's last update has been made

    texts = [i.text for i in bridge.store.items_after(started["conversation"], 0)]
    assert not any(MARK in text for text in texts)  # never stored
    if isinstance(agent, MatrixAgent):
        events = await matrix_events(agent, room)
        previews = [e for e in events if e["content"].get("m.relates_to") is None
                    and e["sender"] == agent.bot_id and "redacted_because" in e["unsigned"]]
        edits = [e["content"]["m.new_content"]["body"] for e in events
                 if e["content"].get("m.relates_to", {}).get("rel_type") == "m.replace"]
        assert len(previews) == 1  # one preview, and it is gone
        assert edits == [f"{MARK}I have a question"]
    else:
        assert isinstance(agent, XmppAgent)
        first = agent.archive_ids[(room, f"{MARK}I have a q")]
        bodies = [body for r, _, body in agent.corrections if r == room]
        assert bodies == [f"{MARK}I have a question", f"{MARK}…"]
        assert agent.retracted == [(room, first)]
