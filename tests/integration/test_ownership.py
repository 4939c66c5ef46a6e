"""Who owns a chat, on both messengers: broadcast's first word, an agent walking out,
capacity across queues, the lobby's !claim, and a queue removed while its chats are open."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bridge.backends.matrix import MatrixBackend
from bridge.backends.xmpp import XmppBackend
from bridge.core.models import Status
from bridge.report import build_report
from tests.integration.conftest import Messenger, TestAgent, room_of


async def wait_available(bridge, *agent_ids: str) -> None:
    """Until the bridge has seen these agents' presence (XMPP reports it after login)."""
    async with asyncio.timeout(15):
        while not all(bridge.hub.parts.availability.agent_available(bridge.config.agent(a))
                      for a in agent_ids):
            await asyncio.sleep(0.1)


async def test_broadcast_gives_the_chat_to_the_first_who_speaks(
    make_bridge, agent: TestAgent, visitors, messenger: Messenger
) -> None:
    bob = await messenger.agent("bob", "Bob")
    try:
        bridge = await make_bridge(queues=[{"id": "support", "name": "Support",
                                            "strategy": "broadcast", "agents": ["alice", "bob"]}])
        await wait_available(bridge, "alice", "bob")
        visitor = await visitors(bridge.base_url)
        started = await visitor.start()
        room = await room_of(bridge, started["conversation"])
        await agent.join(room)  # both were invited; both look
        await bob.join(room)
        await visitor.wait("agent", lambda f: f["event"] == "joined" and f["name"] == "Alice")
        assert bridge.store.conversation(started["conversation"]).agent_id is None

        await bob.say(room, "Bob here, how can I help?")
        await visitor.wait("message", lambda f: f["text"] == "Bob here, how can I help?")
        await agent.until(lambda: room in agent.removed)  # alice is let go
        assert bridge.store.conversation(started["conversation"]).agent_id == "bob"
        assert room not in bob.removed
        await visitor.say("My order")
        await bob.wait_text(room, "My order")
    finally:
        await bob.close()


async def test_an_agent_who_walks_out_hands_the_chat_back_to_the_line(
    make_bridge, agent: TestAgent, visitors, messenger: Messenger
) -> None:
    bob = await messenger.agent("bob", "Bob")
    try:
        bridge = await make_bridge(queues=[{
            "id": "support", "name": "Support",
            "agents": [{"id": "alice", "priority": 10}, "bob"]}])
        await wait_available(bridge, "alice", "bob")
        visitor = await visitors(bridge.base_url)
        started = await visitor.start()
        conversation_id = started["conversation"]
        room = await room_of(bridge, conversation_id)
        await agent.join(room)
        await agent.say(room, "Alice here")
        await visitor.wait("message", lambda f: f["text"] == "Alice here")
        assert room not in bob.invites

        await agent.leave(room)
        await visitor.wait("agent", lambda f: f["event"] == "left")
        back = await visitor.wait("queue")
        assert back["position"] == 1
        conversation = bridge.store.conversation(conversation_id)
        assert conversation.status is Status.WAITING and conversation.agent_id is None
        await bob.join(room)  # the next agent who can take it is invited
        await visitor.wait("agent", lambda f: f["event"] == "joined" and f["name"] != "Alice")
        await bob.say(room, "Bob takes over")
        await visitor.wait("message", lambda f: f["text"] == "Bob takes over")
        assert bridge.store.conversation(conversation_id).agent_id == "bob"
        assert "Alice left; the chat is back in the waiting line." in bob.texts(room, notice=True)
    finally:
        await bob.close()


async def test_a_full_agent_gets_no_chat_from_any_of_their_queues(
    make_bridge, agent: TestAgent, visitors
) -> None:
    bridge = await make_bridge(
        agents={"alice": {"max_chats": 1}},
        queues=[{"id": "support", "name": "Support", "agents": ["alice"]},
                {"id": "sales", "name": "Sales", "agents": ["alice"]}])
    await wait_available(bridge, "alice")
    first = await visitors(bridge.base_url)
    one = await first.start()
    room = await room_of(bridge, one["conversation"])
    await agent.join(room)
    await first.wait("agent", lambda f: f["event"] == "joined")

    second = await visitors(bridge.base_url)
    two = await second.start(name="Two", topic="sales")  # alice is full: the chat waits
    room2 = await room_of(bridge, two["conversation"])
    assert (await second.wait("queue"))["position"] == 1
    await asyncio.sleep(0.5)
    assert room2 not in agent.invites
    status = bridge.hub.parts.line.status()
    assert {q["id"]: q["available"] for q in status["queues"]} == {"support": False,
                                                                  "sales": False}
    await agent.say(room, "!end")  # her first chat ends: she can take the waiting one
    await agent.join(room2)
    await second.wait("agent", lambda f: f["event"] == "joined")


async def test_a_restart_remembers_whom_routing_invited(
    make_bridge, agent: TestAgent, visitors, messenger: Messenger,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    backend_class = MatrixBackend if messenger.name == "matrix" else XmppBackend
    invited: list[tuple[str, str]] = []
    real_invite = backend_class.invite

    async def counting_invite(self: Any, room: str, address: str) -> None:
        invited.append((room, address))
        await real_invite(self, room, address)

    monkeypatch.setattr(backend_class, "invite", counting_invite)
    bridge = await make_bridge(agents={"alice": {"max_chats": 1}})
    await wait_available(bridge, "alice")
    first = await visitors(bridge.base_url)
    one = await first.start()
    room = await room_of(bridge, one["conversation"])
    await agent.until(lambda: room in agent.invites)  # her one place is promised to it
    await bridge.stop()
    invited.clear()

    bridge = await make_bridge(agents={"alice": {"max_chats": 1}})
    await wait_available(bridge, "alice")
    second = await visitors(bridge.base_url)
    two = await second.start(name="Two")
    room2 = await room_of(bridge, two["conversation"])
    assert (await second.wait("queue"))["position"] == 2
    await asyncio.sleep(0.5)
    assert room2 not in agent.invites  # the invitation from before the restart still counts
    assert invited == []  # and she is not invited to the first chat a second time

    await agent.join(room)  # she takes the chat she was invited to before the restart
    await agent.say(room, "!end")
    await agent.join(room2)  # then, free again, she is invited to the next
    await second.wait("agent", lambda f: f["event"] == "joined")
    assert invited == [(room2, messenger.address("alice"))]


async def on_break(bridge, agent_id: str) -> None:
    async with asyncio.timeout(15):
        while not bridge.store.on_break(agent_id):
            await asyncio.sleep(0.05)


async def test_the_lobby_shows_waiting_chats_and_claim_takes_one(
    make_bridge, agent: TestAgent, visitors
) -> None:
    queues = [{"id": "support", "name": "Support", "agents": ["alice"], "lobby": True}]
    bridge = await make_bridge(queues=queues)
    lobby = bridge.store.kv_get("lobby:support:room")
    assert lobby
    await agent.join(lobby)
    await agent.say(lobby, "!break")
    # The bridge's own record, not the notice: an earlier test's "You are on a break" can
    # come back with the lobby's history.
    await on_break(bridge, "alice")

    visitor = await visitors(bridge.base_url)
    started = await visitor.start()
    room = await room_of(bridge, started["conversation"])
    await agent.until(lambda: any("Anna <anna@example.com> is waiting, number 1 in line" in t
                                  for t in agent.texts(lobby, notice=True)))
    assert room not in agent.invites
    await agent.say(lobby, "!queue")
    await agent.until(lambda: any(t.startswith("Waiting (take one with !claim N):\n1. Anna")
                                  for t in agent.texts(lobby, notice=True)))
    await agent.say(lobby, "!claim 1")
    await agent.wait_text(lobby, "Invited you to the chat with Anna.", notice=True)
    await agent.wait_text(lobby, "✅ Alice took the chat with Anna.", notice=True)
    await agent.join(room)
    await visitor.wait("agent", lambda f: f["event"] == "joined")
    assert bridge.store.conversation(started["conversation"]).agent_id == "alice"

    await bridge.stop()  # the same lobby after a restart
    again = await make_bridge(queues=queues)
    assert again.store.kv_get("lobby:support:room") == lobby
    await agent.say(lobby, "!queue")
    await agent.wait_text(lobby, "Nobody is waiting in your queues.", notice=True)


async def test_an_agent_taken_out_of_a_queue_leaves_its_lobby(
    make_bridge, agent: TestAgent, messenger: Messenger
) -> None:
    bob = await messenger.agent("bob", "Bob")
    try:
        both = [{"id": "support", "name": "Support", "agents": ["alice", "bob"], "lobby": True}]
        bridge = await make_bridge(queues=both)
        lobby = bridge.store.kv_get("lobby:support:room")
        assert lobby
        await agent.join(lobby)
        await bob.join(lobby)
        await bridge.stop()

        alone = [{"id": "support", "name": "Support", "agents": ["alice"], "lobby": True}]
        bridge = await make_bridge(queues=alone)
        assert bridge.store.kv_get("lobby:support:room") == lobby  # the same lobby
        await bob.until(lambda: lobby in bob.removed)
        assert lobby not in agent.removed
        assert bridge.store.kv_get("lobby:support:invited") == f'["{messenger.address("alice")}"]'
    finally:
        await bob.close()


async def test_a_queue_removed_from_the_config_keeps_its_open_chats(
    make_bridge, agent: TestAgent, visitors
) -> None:
    both = [{"id": "support", "name": "Support", "agents": ["alice"]},
            {"id": "sales", "name": "Sales", "agents": ["alice"]}]
    bridge = await make_bridge(queues=both)
    visitor = await visitors(bridge.base_url)
    started = await visitor.start(topic="sales")
    room = await room_of(bridge, started["conversation"])
    await agent.join(room)
    await agent.say(room, "Sales here")
    await visitor.wait("message", lambda f: f["text"] == "Sales here")
    await bridge.stop()

    bridge = await make_bridge(queues=both[:1])  # "sales" is gone from the file
    returning = await visitors(bridge.base_url)
    await returning.send({"type": "resume", "token": started["token"], "after": 0})
    await returning.wait("resumed")
    await returning.say("Still there?")
    await agent.wait_text(room, "Still there?")
    await agent.say(room, "Yes")
    await returning.wait("message", lambda f: f["text"] == "Yes")
    await agent.say(room, "!end")
    await returning.wait("ended")
    records, tickets = bridge.store.report_records(None, None)
    rows = {row["key"]: row for row in build_report(records, tickets, "queue")["rows"]}
    assert rows["sales"]["chats"] == 1  # reported under the old id


async def test_a_declined_invitation_goes_to_the_next_agent(
    make_matrix_bridge, matrix_agent: TestAgent, visitors, matrix: Messenger
) -> None:
    bob = await matrix.agent("bob", "Bob")
    try:
        bridge = await make_matrix_bridge(queues=[{
            "id": "support", "name": "Support",
            "agents": [{"id": "alice", "priority": 10}, "bob"]}])
        visitor = await visitors(bridge.base_url)
        started = await visitor.start()
        room = await room_of(bridge, started["conversation"])
        await matrix_agent.until(lambda: room in matrix_agent.invites)
        await matrix_agent.leave(room)  # alice turns the chat down
        await bob.join(room)
        await visitor.wait("agent", lambda f: f["event"] == "joined")
        assert bridge.store.conversation(started["conversation"]).agent_id == "bob"
        assert [f for f in visitor.of("agent") if f["event"] == "left"] == []  # not news
    finally:
        await bob.close()


async def test_the_chat_stays_with_whoever_is_still_in_the_room(
    make_bridge, agent: TestAgent, visitors, messenger: Messenger
) -> None:
    bob = await messenger.agent("bob", "Bob")
    try:
        bridge = await make_bridge()
        visitor = await visitors(bridge.base_url)
        started = await visitor.start()
        room = await room_of(bridge, started["conversation"])
        await agent.join(room)
        await agent.say(room, "!invite bob")
        await bob.join(room)
        await visitor.wait("agent", lambda f: f["event"] == "joined" and f["name"] != "Alice")
        await agent.leave(room)
        await visitor.wait("agent", lambda f: f["event"] == "left")
        async with asyncio.timeout(5):
            while bridge.store.conversation(started["conversation"]).agent_id != "bob":
                await asyncio.sleep(0.05)
        assert bridge.store.conversation(started["conversation"]).status is Status.ACTIVE
        assert visitor.of("queue")[-1]["position"] == 1  # only the first one, at the start
        assert len(visitor.of("queue")) == 1
    finally:
        await bob.close()


async def test_a_freed_agent_gets_the_higher_priority_queue_first(
    make_bridge, agent: TestAgent, visitors
) -> None:
    bridge = await make_bridge(
        agents={"alice": {"max_chats": 1}},
        queues=[{"id": "support", "name": "Support", "agents": ["alice"]},
                {"id": "vip", "name": "VIP", "agents": ["alice"], "priority": 10}])
    await wait_available(bridge, "alice")
    first = await visitors(bridge.base_url)
    one = await first.start(name="One")
    room = await room_of(bridge, one["conversation"])
    await agent.join(room)
    await first.wait("agent", lambda f: f["event"] == "joined")
    plain = await visitors(bridge.base_url)
    waits_longer = await plain.start(name="Plain")  # waits first, in the plain queue
    vip = await visitors(bridge.base_url)
    important = await vip.start(name="Important", topic="vip")
    plain_room = await room_of(bridge, waits_longer["conversation"])
    vip_room = await room_of(bridge, important["conversation"])
    await asyncio.sleep(0.3)
    assert plain_room not in agent.invites and vip_room not in agent.invites

    await agent.say(room, "!end")
    await agent.join(vip_room)  # the VIP chat, though it came later
    await vip.wait("agent", lambda f: f["event"] == "joined")
    await asyncio.sleep(0.3)
    assert plain_room not in agent.invites  # alice is full again
