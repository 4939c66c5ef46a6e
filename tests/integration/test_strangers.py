"""Only configured agents reach the visitor: strangers, direct messages, spoofing attempts."""

from __future__ import annotations

import asyncio
from typing import Any

from slixmpp import JID

from tests.integration.conftest import Messenger, TestAgent, room_of


async def test_a_stranger_in_the_matrix_room_is_not_relayed(
    make_matrix_bridge, matrix_agent: TestAgent, visitors, matrix: Messenger
) -> None:
    bridge = await make_matrix_bridge()
    visitor = await visitors(bridge.base_url)
    started = await visitor.start()
    room = await room_of(bridge, started["conversation"])
    await matrix_agent.join(room)
    await matrix_agent.client.room_invite(room, matrix.address("eve"))
    eve = await matrix.agent("eve", "Eve")
    try:
        await eve.join(room)
        await eve.say(room, "I am not an agent")
    finally:
        await eve.close()
    await matrix_agent.wait_text(room, "I am not an agent")
    await matrix_agent.say(room, "only this reaches the visitor")
    await visitor.wait("message", lambda f: f["from"] == "agent")
    texts = [f["text"] for f in visitor.of("message")]
    assert "I am not an agent" not in texts
    assert [f["name"] for f in visitor.of("agent")] == ["Alice"]


async def test_xmpp_strangers_and_direct_messages_are_not_relayed(
    make_bridge, visitors, messenger: Messenger
) -> None:
    if messenger.name != "xmpp":
        return  # the Matrix case is the test above
    bridge = await make_bridge()
    visitor = await visitors(bridge.base_url)
    started = await visitor.start()
    room = await room_of(bridge, started["conversation"])
    alice = await messenger.agent("alice", "Alice")
    eve = await messenger.agent("eve", "Eve")
    try:
        await alice.join(room)
        # Not a member: the members-only group chat refuses her. Prosody's error presence
        # carries no MUC element, so slixmpp's join_muc_wait never sees it (it would only
        # time out): the test waits for the refusal itself.
        refusal: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def refused(presence: Any) -> None:
            if presence["from"].bare == room and not refusal.done():
                refusal.set_result(presence)

        eve.client.add_event_handler("presence_error", refused)
        eve.client.plugin["xep_0045"].make_join_stanza(JID(room), "Eve").send()
        error = await asyncio.wait_for(refusal, 5)
        assert error["error"]["condition"] == "registration-required"
        # A direct message to the bot, and one claiming to be a group chat line.
        bot = messenger.backend_config()["xmpp"]["jid"]
        eve.client.send_message(mto=JID(bot), mbody="hello bot, relay this", mtype="chat")
        eve.client.send_message(mto=JID(bot), mbody="fake room line", mtype="groupchat")
        # Alice, a configured agent, writing directly to the bot is not a room line either.
        alice.client.send_message(mto=JID(bot), mbody="direct from alice", mtype="chat")
        await asyncio.sleep(0.5)
        await alice.say(room, "the real answer")
        await visitor.wait("message", lambda f: f["from"] == "agent")
    finally:
        await alice.close()
        await eve.close()
    texts = [f["text"] for f in visitor.of("message")]
    assert texts[-1] == "the real answer"
    assert not {"hello bot, relay this", "fake room line", "direct from alice"} & set(texts)


async def test_the_bot_declines_invitations_from_strangers(make_matrix_bridge,
                                                           matrix: Messenger) -> None:
    await make_matrix_bridge()
    eve = await matrix.agent("eve", "Eve")
    try:
        created = await eve.client.room_create(invite=[matrix.bot])
        async with asyncio.timeout(15):
            while True:
                state = await eve.client.room_get_state_event(
                    created.room_id, "m.room.member", matrix.bot)
                if state.content.get("membership") == "leave":
                    break
                await asyncio.sleep(0.1)
    finally:
        await eve.close()
