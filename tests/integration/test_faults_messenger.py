"""Faults on the messenger's side: its server restarted in the middle of a burst (on XMPP the
bot's stream cannot be resumed, the server's state is gone), Synapse throttling the bot with
its default message limit, and a second agent answering while the first one's client is
offline. Each test ends by comparing the visitor's view with the agent's client's view of the
room, line by line.

The throttling test runs in `make test` with a limit twenty times Synapse's default (4
lines/s after a burst of 10: about 10 s for what arrives in 5 s); `make soak` also runs it with
the default itself (0.2/s, burst 10), which takes about 3.5 minutes for 50 lines.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from bridge.app import Bridge
from bridge.backends.xmpp import XmppBackend
from bridge.config import parse_config
from tests.conftest import Homeserver, XmppServer
from tests.integration.conftest import (
    MatrixMessenger,
    Messenger,
    TestAgent,
    XmppMessenger,
    bridge_config,
    bridge_settings,
    chat_with_agent,
    room_of,
)
from tests.integration.helpers import Visitor
from tests.integration.views import assert_same_lines, seen_by, settled_room
from tests.integration.xmpp_agent import XmppAgent

BURST = 20
DOWN_AFTER = 8  # the server goes down after this many lines of the burst were sent
# `[xmpp] rejoin_grace_seconds` where the test waits for it to run out: longer than the 2 s
# the bridge first waits for the agent's own presence (departures.SETTLE_S), so a departure
# reported after that wait alone (without the grace) fails `waited > GRACE_S - 1`.
GRACE_S = 4.0


def xmpp_sessions(bridge: Bridge) -> int:
    """How many new XMPP sessions the bot has had (a resumed stream is not one)."""
    assert isinstance(bridge.backend, XmppBackend)
    return bridge.backend.sessions_started


async def send_all(visitor: Visitor, sent: dict[str, str], prefix: str, count: int,
                   pause: float = 0.0, midway: Any = None) -> None:
    """`count` lines sent without waiting for acks; `midway` runs after line DOWN_AFTER."""
    for n in range(count):
        client_id = f"{prefix}-{n}"
        sent[client_id] = f"{prefix} line {n}"
        await visitor.send({"type": "message", "client_id": client_id, "text": sent[client_id]})
        if midway is not None and n == DOWN_AFTER - 1:
            await midway()
        await asyncio.sleep(pause)
    await visitor.wait("ack", lambda f: f["client_id"] == f"{prefix}-{count - 1}", timeout=30)


async def test_messenger_restarted_mid_burst(make_bridge, agent: TestAgent, visitors,
                                             messenger: Messenger) -> None:
    bridge, visitor, _started, room = await chat_with_agent(make_bridge, visitors, agent)
    sessions = xmpp_sessions(bridge) if messenger.name == "xmpp" else 0
    agent_sessions = agent.sessions if isinstance(agent, XmppAgent) else 0
    sent: dict[str, str] = {}

    async def server_down() -> None:
        await asyncio.to_thread(messenger.stop_server)

    try:  # every line is acked: stored, with the server gone
        await send_all(visitor, sent, "burst", BURST, midway=server_down)
    finally:
        await asyncio.to_thread(messenger.start_server)
    if isinstance(agent, XmppAgent):  # the agent's client is back in the room first
        await agent.until(lambda: agent.sessions > agent_sessions, timeout=30)
    agent_lines = [f"agent line {n}" for n in range(10)]
    for text in agent_lines:  # on XMPP maybe before the bot is back: read from the archive
        await agent.say(room, text)
    await send_all(visitor, sent, "after", 5)
    await visitor.wait("message", lambda f: f["text"] == agent_lines[-1], timeout=30)
    await agent.wait_text(room, "burst line 19", timeout=30)
    room_lines = await settled_room(agent, room, "after line 4")

    assert_same_lines(seen_by(visitor, sent), room_lines, author=lambda text: text.split()[0])
    if messenger.name == "xmpp":  # the old stream could not be resumed: a new session
        assert xmpp_sessions(bridge) == sessions + 1


@pytest.mark.parametrize("limit", [
    "twenty times the default",
    pytest.param("synapse default", marks=[pytest.mark.soak, pytest.mark.timeout(600)])])
async def test_bot_throttled_by_the_homeserver(request: pytest.FixtureRequest, tmp_path: Path,
                                               visitors, limit: str) -> None:
    """50 visitor lines in 5 s against Synapse's message limit for the bot (burst 10)."""
    if limit == "synapse default":  # 0.2 lines/s, which the admin API cannot set
        hs: Homeserver = request.getfixturevalue("homeserver_as_shipped")
        per_second = 0.2
    else:
        hs = request.getfixturevalue("homeserver")
        per_second = 4
    matrix = MatrixMessenger(hs)
    bridges: list[Bridge] = []

    async def make_bridge() -> Bridge:
        bridges.append(Bridge(bridge_config(matrix, tmp_path / "livechat.sqlite3")))
        await bridges[-1].start()
        return bridges[-1]

    agent = await matrix.agent("alice", "Alice")
    try:
        await throttled_chat(hs, make_bridge, visitors, agent, per_second)
    finally:
        await agent.close()
        for bridge in bridges:
            await bridge.stop()


async def throttled_chat(hs: Homeserver, make_bridge: Callable[[], Awaitable[Bridge]],
                         visitors, agent: TestAgent, per_second: float) -> None:
    _bridge, visitor, _started, room = await chat_with_agent(make_bridge, visitors, agent)
    sent: dict[str, str] = {}
    if per_second != 0.2:
        await asyncio.to_thread(hs.server.override_ratelimit, hs.admin_token, hs.bot_id,
                                per_second, 10)
    try:
        began = time.monotonic()
        await send_all(visitor, sent, "storm", 50, pause=0.1)
        await agent.wait_text(room, "storm line 49", timeout=40 / per_second + 60)
        took = time.monotonic() - began
    finally:  # exempt again, as every other test wants it
        await asyncio.to_thread(hs.server.override_ratelimit, hs.admin_token, hs.bot_id)
    await agent.say(room, "all read")
    await visitor.wait("message", lambda f: f["text"] == "all read")
    room_lines = await settled_room(agent, room, "all read")

    assert_same_lines(seen_by(visitor, sent), room_lines)
    # Unthrottled, the last line is in the room as soon as it is sent: after the 5 s the 50
    # lines are sent over (7 s at 4 lines/s, against about 10 s when throttled).
    assert took > 0.7 * 40 / per_second, "the homeserver never throttled the bot"


async def test_second_agent_answers_while_the_first_is_offline(
        make_bridge, agent: TestAgent, visitors, messenger: Messenger) -> None:
    bridge, visitor, started, room = await chat_with_agent(make_bridge, visitors, agent)
    bob = await messenger.agent("bob", "Bob")
    try:
        sent = {"hello": "hello, anyone?"}
        await visitor.say(sent["hello"], client_id="hello")
        await agent.wait_text(room, sent["hello"])
        assert bridge.store.conversation(started["conversation"]).agent_id == "alice"
        await agent.say(room, "!invite bob")
        await bob.join(room)
        await visitor.wait("agent", lambda f: f["event"] == "joined" and "Alice" not in f["name"])
        assert bridge.store.conversation(started["conversation"]).agent_id == "alice"
        await agent.go_offline()

        await bob.say(room, "Bob here while Alice is away")
        await visitor.wait("message", lambda f: f["text"] == "Bob here while Alice is away")
        sent["thanks"] = "thanks Bob"
        await visitor.say(sent["thanks"], client_id="thanks")
        await bob.wait_text(room, sent["thanks"])
        await bob.say(room, "Alice will see this too")
        await visitor.wait("message", lambda f: f["text"] == "Alice will see this too")
        await asyncio.sleep(3)  # what the bridge makes of Alice's absence has happened
        await agent.come_back()
        room_lines = await settled_room(agent, room, "Alice will see this too")
    finally:
        await bob.close()

    assert_same_lines(seen_by(visitor, sent), room_lines)
    conversation = bridge.store.conversation(started["conversation"])
    assert conversation is not None and conversation.agent_id == "alice"  # still hers
    left = [f for f in visitor.of("agent") if f["event"] == "left"]
    assert left == []  # a dropped connection is not leaving the chat


async def test_an_agent_who_does_not_come_back_leaves_after_the_grace(
        xmpp_server: XmppServer, tmp_path: Path, visitors) -> None:
    """XMPP only: there, a lost connection takes the agent out of the group chat."""
    xmpp = XmppMessenger(xmpp_server)
    settings = bridge_settings(xmpp, tmp_path / "livechat.sqlite3")
    settings["xmpp"]["rejoin_grace_seconds"] = GRACE_S
    bridge = Bridge(parse_config(settings))
    await bridge.start()
    alice, bob = await xmpp.agent("alice", "Alice"), await xmpp.agent("bob", "Bob")
    try:
        visitor = await visitors(bridge.base_url)
        started = await visitor.start()
        room = await room_of(bridge, started["conversation"])
        await alice.join(room)
        await visitor.wait("agent", lambda f: f["event"] == "joined")
        await alice.say(room, "!invite bob")
        await bob.join(room)
        await alice.go_offline()
        gone = time.monotonic()
        left = await visitor.wait("agent", lambda f: f["event"] == "left", timeout=GRACE_S + 15)
        waited = time.monotonic() - gone
        conversation = bridge.store.conversation(started["conversation"])
    finally:
        await alice.close()
        await bob.close()
        await bridge.stop()

    assert left["name"] == "Alice"
    assert waited > GRACE_S - 1  # not at the first sign of absence
    assert conversation is not None and conversation.agent_id == "bob"  # still in the room


async def test_a_line_an_xmpp_client_sends_twice_reaches_the_visitor_once(
        make_xmpp_bridge, xmpp_agent: XmppAgent, visitors) -> None:
    """A client whose stream broke before the server acknowledged a line sends it again,
    same id; the group chat keeps every copy (a Matrix homeserver deduplicates a resent
    event by its transaction id itself)."""
    agent = xmpp_agent
    _bridge, visitor, _started, room = await chat_with_agent(make_xmpp_bridge, visitors, agent)
    for _ in range(3):
        await agent.say(room, "sent three times", message_id="resent-1")
    await agent.say(room, "and then once")
    await visitor.wait("message", lambda f: f["text"] == "and then once")
    await asyncio.sleep(1)  # time for a copy to show
    texts = [f["text"] for f in visitor.of("message")]

    assert texts.count("sent three times") == 1
    assert agent.texts(room).count("sent three times") == 3  # the room has every copy
