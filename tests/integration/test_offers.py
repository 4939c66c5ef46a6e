"""Transfers as offers and claims from the lobby, on a real Synapse and a real Prosody, with
the agents' own clients: Bob declines (Matrix: turns the invitation down; XMPP: answers the
bot "no"), lets the offer time out, then takes it by joining; a waiting chat is claimed by a
✅ reaction on its lobby line (Matrix) or a "yes" in reply to it (XMPP)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest
from slixmpp import JID

from bridge.app import Bridge
from bridge.config import parse_config
from tests.integration.conftest import Messenger, TestAgent, bridge_settings, room_of
from tests.integration.helpers import MatrixAgent

OFFER_S = 3  # short, so that the timeout is seen within the test

StartBridge = Callable[..., Awaitable[Bridge]]


@pytest.fixture
async def start_bridge(messenger: Messenger, tmp_path: Path) -> AsyncIterator[StartBridge]:
    """A bridge whose offers time out after OFFER_S seconds; stopped after the test."""
    running: list[Bridge] = []

    async def start(**tables: Any) -> Bridge:
        raw = bridge_settings(messenger, tmp_path / "offers.sqlite3", **tables)
        raw["chats"] = {"transfer_offer_seconds": OFFER_S}
        bridge = Bridge(parse_config(raw))
        await bridge.start()
        running.append(bridge)
        return bridge

    yield start
    for bridge in running:
        await bridge.stop()


async def notice(agent: TestAgent, room: str, fragment: str, after: int = 0) -> str:
    """The first notice from the `after`-th on that contains `fragment`."""
    return await agent.until(lambda: next(
        (t for t in agent.texts(room, notice=True)[after:] if fragment in t), None))


async def decline(bob: TestAgent, messenger: Messenger, room: str) -> None:
    """Bob says no the way his network lets him: Matrix, by turning the invitation down;
    XMPP (where invitations have no decline), by answering the bot's offer message."""
    if isinstance(bob, MatrixAgent):
        await bob.until(lambda: room in bob.invites)
        await bob.leave(room)
        return
    await bob.until(lambda: any("offers you the chat with Anna" in t
                                for t in bob.direct_texts(messenger.bot)))
    await bob.say_direct(messenger.bot, "no")


async def test_an_offer_is_declined_times_out_and_is_taken_by_joining(
        start_bridge: StartBridge, agent: TestAgent, visitors, messenger: Messenger) -> None:
    bob = await messenger.agent("bob", "Bob")
    try:
        await bob.set_away(False)
        bridge = await start_bridge()
        visitor = await visitors(bridge.base_url)
        started = await visitor.start()
        conversation_id = started["conversation"]
        room = await room_of(bridge, conversation_id)
        await agent.join(room)
        await visitor.wait("agent", lambda f: f["event"] == "joined")
        await asyncio.sleep(0.3)  # presence settles (XMPP reports it after subscription)

        # 1. Bob declines: the chat stays with Alice, the visitor hears nothing.
        await agent.say(room, "!transfer bob refund question")
        await notice(agent, room, "Offered to bob (note: refund question). The chat stays "
                     "with you until they join")
        await decline(bob, messenger, room)
        seen = len(agent.texts(room, notice=True))
        await notice(agent, room, "bob declined the chat; the chat stays with Alice.")
        assert bridge.store.conversation(conversation_id).agent_id == "alice"

        # 2. Bob does not answer: after OFFER_S the offer is withdrawn.
        seen = len(agent.texts(room, notice=True))
        await agent.say(room, "!transfer bob")
        await notice(agent, room, "Offered to bob", seen)
        await notice(agent, room, f"bob did not answer within {OFFER_S} seconds; the chat "
                     "stays with Alice.", seen)
        assert bridge.store.offers.offer(conversation_id) is None
        assert not [f for f in visitor.of("agent") if f["event"] == "transferred"]

        # 3. Bob joins: the chat is his, and only now is the visitor told.
        seen = len(agent.texts(room, notice=True))
        await agent.say(room, "!transfer bob")
        await notice(agent, room, "Offered to bob", seen)
        await bob.join(room)
        await notice(agent, room, "bob took over the chat from Alice.", seen)
        moved = await visitor.wait("agent", lambda f: f["event"] == "transferred")
        assert moved["name"] == "bob"
        assert bridge.store.conversation(conversation_id).agent_id == "bob"
    finally:
        await bob.close()


async def lobby_line_id(agent: TestAgent, lobby: str, fragment: str,
                        known: Callable[[str], bool]) -> str:
    """The id the agent's client has for the lobby line containing `fragment`: the Matrix
    event id, or the room's stanza-id (XEP-0359) that XMPP replies name."""
    if isinstance(agent, MatrixAgent):
        response = await agent.client.room_messages(lobby, start=agent.client.next_batch,
                                                    limit=30)
        return next(e.event_id for e in response.chunk
                    if fragment in (getattr(e, "body", "") or "") and known(e.event_id))
    # The newest such line: the lobby's history may bring an earlier test's too.
    return await agent.until(lambda: next(
        (i for (room, body), i in reversed(agent.archive_ids.items())
         if room == lobby and fragment in body and known(i)), None))


async def claim(agent: TestAgent, lobby: str, line_id: str) -> None:
    """Matrix: a ✅ reaction on the line; XMPP: "yes" in reply to it (XEP-0461)."""
    if isinstance(agent, MatrixAgent):
        await agent.client.room_send(lobby, "m.reaction", {"m.relates_to": {
            "rel_type": "m.annotation", "event_id": line_id, "key": "✅"}})
        return
    message = agent.client.make_message(mto=JID(lobby), mbody="yes", mtype="groupchat")
    message.append(ET.Element("{urn:xmpp:reply:0}reply", {"id": line_id}))
    message.send()


async def test_a_waiting_chat_is_claimed_from_its_lobby_line(
        start_bridge: StartBridge, agent: TestAgent, visitors) -> None:
    queues = [{"id": "support", "name": "Support", "agents": ["alice"], "lobby": True}]
    bridge = await start_bridge(queues=queues)
    lobby = bridge.store.kv_get("lobby:support:room")
    assert lobby
    await agent.join(lobby)
    await agent.say(lobby, "!break")
    async with asyncio.timeout(15):  # the store, not a notice the lobby's history may hold
        while not bridge.store.on_break("alice"):
            await asyncio.sleep(0.05)
    visitor = await visitors(bridge.base_url)
    started = await visitor.start()
    room = await room_of(bridge, started["conversation"])
    await notice(agent, lobby, "Anna <anna@example.com> is waiting, number 1 in line")
    line = await lobby_line_id(  # a line of this bridge's, not an earlier test's
        agent, lobby, "Anna <anna@example.com> is waiting",
        lambda i: bridge.hub.parts.lobbies.waiting_line(i) is not None)

    await claim(agent, lobby, line)
    await agent.wait_text(lobby, "Invited you to the chat with Anna.", notice=True)
    await agent.wait_text(lobby, "✅ Alice took the chat with Anna.", notice=True)
    assert bridge.store.conversation(started["conversation"]).agent_id == "alice"
    await agent.join(room)
    await visitor.wait("agent", lambda f: f["event"] == "joined")
    claims = [e for e in bridge.store.events(started["conversation"]) if e["kind"] == "claim"]
    assert [e["agent_id"] for e in claims] == ["alice"]
