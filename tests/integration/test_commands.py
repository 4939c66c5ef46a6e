"""Agent commands typed in the conversation room, on both backends."""

from __future__ import annotations

import asyncio

import aiohttp

from tests.integration.conftest import Messenger, TestAgent, chat_with_agent, room_of


async def notice(agent: TestAgent, room: str, fragment: str) -> str:
    return await agent.until(lambda: next(
        (t for t in agent.texts(room, notice=True) if fragment in t), None))


async def test_help_and_usage_lines_stay_with_the_agents(make_bridge, agent: TestAgent,
                                                         visitors) -> None:
    _, visitor, _, room = await chat_with_agent(make_bridge, visitors, agent)
    await agent.say(room, "!help")
    listing = await notice(agent, room, "!transfer AGENT|QUEUE")
    assert "!c NAME" in listing and "!!text" in listing
    await agent.say(room, "!help transfer")
    await notice(agent, room, "Usage: !transfer AGENT|QUEUE [note] [--stay]")
    await agent.say(room, "!c")
    await notice(agent, room, "Usage: !c NAME")
    await agent.say(room, "!note don't promise \"next day")  # a lone quote is text
    await notice(agent, room, "Note saved (agents only): don't promise \"next day")
    await agent.say(room, "!trasnfer bob")
    await notice(agent, room, "Did you mean: !transfer")
    await agent.say(room, "visible line")
    await visitor.wait("message", lambda f: f["text"] == "visible line")
    assert all("!" not in f.get("text", "")[:1] for f in visitor.of("message"))
    assert not any("Usage" in f.get("text", "") for f in visitor.frames)


async def test_canned_replies_shared_and_personal(make_bridge, agent: TestAgent,
                                                  visitors) -> None:
    bridge, visitor, started, room = await chat_with_agent(make_bridge, visitors, agent, name="Zoë")
    await agent.say(room, "!c greeting")
    line = await visitor.wait("message", lambda f: f["from"] == "agent")
    assert line["text"] == "Hello Zoë, I'm Alice from Support."
    await notice(agent, room, "Alice → visitor: Hello Zoë")

    await agent.say(room, '!canned add bye Thanks {visitor}, have a "great" day!')
    await notice(agent, room, "Saved your canned reply 'bye'")
    await agent.say(room, "!canned")
    await notice(agent, room, "bye (yours)")
    await agent.say(room, "!c bye")
    bye = await visitor.wait("message", lambda f: f["text"].startswith("Thanks"))
    assert bye["text"] == 'Thanks Zoë, have a "great" day!'
    await agent.say(room, '!canned add quoted "One moment, {visitor}."')
    await notice(agent, room, "Saved your canned reply 'quoted'")
    await agent.say(room, "!c quoted")
    quoted = await visitor.wait("message", lambda f: f["text"].startswith("One moment"))
    assert quoted["text"] == "One moment, Zoë."  # the quotes only grouped the text
    await agent.say(room, '!canned add where "You are on {site}."')
    await notice(agent, room, "Saved your canned reply 'where'")
    await agent.say(room, "!c where")
    where = await visitor.wait("message", lambda f: f["text"].startswith("You are on"))
    assert where["text"] == "You are on shop.example.com."  # the page's site, not the title
    await agent.say(room, "!c gretting")
    await notice(agent, room, "Did you mean: greeting")
    await agent.say(room, "!canned add broken Hi {nobody}")
    await notice(agent, room, "unknown placeholder {nobody}")
    await agent.say(room, "!canned del bye")
    await notice(agent, room, "Deleted your canned reply 'bye'")
    kinds = [e["kind"] for e in bridge.store.events(started["conversation"])]
    assert kinds == ["canned_add", "canned_add", "canned_add", "canned_del"]


async def test_notes_info_and_history(make_bridge, agent: TestAgent, visitors) -> None:
    bridge, first, _started, room = await chat_with_agent(make_bridge, visitors, agent,
                                                          email="repeat@example.com")
    await first.say("my first question")
    await agent.say(room, "!end")
    await first.wait("ended")

    second = await visitors(bridge.base_url)
    again = await second.start(email="repeat@example.com", name="Anna")
    room2 = await room_of(bridge, again["conversation"])
    await agent.join(room2)
    await agent.say(room2, "!note VIP customer, ordered twice")
    await notice(agent, room2, "Note saved (agents only): VIP customer")
    await agent.say(room2, "!info")
    info = await notice(agent, room2, "Earlier chats: 1")
    assert "repeat@example.com" in info and "Pricing" in info
    await agent.say(room2, "!history")
    listing = await notice(agent, room2, "Earlier chats with repeat@example.com")
    assert "my first question" in listing
    await agent.say(room2, "!history 1")
    await notice(agent, room2, "Anna: my first question")
    await agent.say(room2, "plain line")
    await second.wait("message", lambda f: f["text"] == "plain line")
    assert not any("VIP" in f.get("text", "") for f in second.frames)
    notes = [e for e in bridge.store.events(again["conversation"]) if e["kind"] == "note"]
    assert notes[0]["detail"] == "VIP customer, ordered twice"


async def test_transfer_to_an_agent_and_to_a_queue(make_bridge, agent: TestAgent, visitors,
                                                   messenger: Messenger) -> None:
    bob = await messenger.agent("bob", "Bob")
    try:
        await bob.set_away(False)
        bridge, visitor, started, room = await chat_with_agent(make_bridge, visitors, agent)
        await asyncio.sleep(0.3)  # presence settles (XMPP reports it after subscription)
        await agent.say(room, "!transfer sales please check the refund --stay")
        await notice(agent, room, "Offered to bob (note: please check the refund).")
        assert not [f for f in visitor.of("agent") if f["event"] == "transferred"]
        await bob.join(room)  # taking the offer (tests/integration/test_offers.py: the rest)
        await notice(agent, room, "bob took over the chat from Alice. Note: please check")
        moved = await visitor.wait("agent", lambda f: f["event"] == "transferred")
        assert moved["name"] == "bob"
        await bob.say(room, "Bob here")
        answer = await visitor.wait("message", lambda f: f["text"] == "Bob here")
        assert answer["seq"] > moved["seq"]
        conversation = bridge.store.conversation(started["conversation"])
        assert (conversation.agent_id, conversation.queue_id) == ("bob", "sales")
        await agent.say(room, "!transfer bob")
        await notice(agent, room, "bob already has this chat; nothing changed.")
        transfers = [e for e in bridge.store.events(started["conversation"])
                     if e["kind"] == "transfer"]
        assert [(e["agent_id"], e["detail"]) for e in transfers] == [
            ("alice", "bob please check the refund")]
    finally:
        await bob.close()


async def test_a_transfer_that_cannot_happen_changes_nothing(make_bridge, agent: TestAgent,
                                                             visitors) -> None:
    bridge, visitor, started, room = await chat_with_agent(make_bridge, visitors, agent)
    await agent.say(room, "!transfer nobody")
    await notice(agent, room, "No agent or queue 'nobody'")
    await agent.set_away(True)
    await agent.say(room, "!transfer support")
    await notice(agent, room, "Nobody in Support can take a chat now; nothing changed.")
    conversation = bridge.store.conversation(started["conversation"])
    assert conversation.agent_id == "alice" and conversation.queue_id == "support"
    assert not visitor.of("agent")[1:]


async def test_end_gives_a_summary(make_bridge, agent: TestAgent, visitors) -> None:
    _bridge, visitor, _started, room = await chat_with_agent(make_bridge, visitors, agent)
    await visitor.say("thanks!")
    await agent.say(room, "!end")
    ended = await visitor.wait("ended")
    assert ended["by"] == "agent"
    summary = await notice(agent, room, "Chat ended after")
    assert "messages; rating: not rated yet." in summary
    await agent.say(room, "!end")
    await notice(agent, room, "This chat has ended.")


async def test_callback_number_reaches_the_agents(make_bridge, agent: TestAgent,
                                                  visitors) -> None:
    bridge, visitor, started, room = await chat_with_agent(make_bridge, visitors, agent)
    await visitor.send({"type": "callback", "phone": "+36 1 234 5678"})
    assert (await visitor.wait("error"))["code"] == "not_requested"
    await agent.say(room, "!callback")
    asked = await visitor.wait("callback")
    assert asked["name"] == "Alice" and asked["seq"] > 0
    before = len(visitor.frames)
    await visitor.send({"type": "callback", "phone": "call me maybe", "time": "now"})
    assert (await visitor.wait("error", start=before))["code"] == "bad_phone"
    await visitor.send({"type": "callback", "phone": "+36 1 234 5678", "time": "after 5pm"})
    assert (await visitor.wait("callback_saved"))["phone"] == "+36 1 234 5678"
    await notice(agent, room, "📞 Anna asks to be called at +36 1 234 5678 (after 5pm)")
    await agent.say(room, "!info")
    await notice(agent, room, "Call back: +36 1 234 5678 after 5pm")
    conversation = bridge.store.conversation(started["conversation"])
    assert (conversation.callback_phone, conversation.callback_time) == (
        "+36 1 234 5678", "after 5pm")


async def test_break_queue_claim_and_stats(make_bridge, agent: TestAgent, visitors) -> None:
    bridge, _visitor, _started, room = await chat_with_agent(make_bridge, visitors, agent)
    second = await visitors(bridge.base_url)
    waiting = await second.start(name="Bea")
    await agent.say(room, "!queue")
    await notice(agent, room, "1. Bea · support · waiting")
    await agent.say(room, "!stats")
    await notice(agent, room, "Today (UTC): 2 chats, 0 answered, 1 waiting now")
    await agent.say(room, "!break")
    await notice(agent, room, "You are on a break")
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{bridge.base_url}/v1/status") as response:
            assert (await response.json())["queues"][0]["available"] is False
    await agent.say(room, "!back")
    await notice(agent, room, "Welcome back")
    await agent.say(room, "!claim 1")
    await notice(agent, room, "Invited you to the chat with Bea")
    room2 = await room_of(bridge, waiting["conversation"])
    await agent.join(room2)
    await second.wait("agent", lambda f: f["event"] == "joined")
    assert bridge.store.conversation(waiting["conversation"]).agent_id == "alice"
    await agent.say(room, "!claim 5")
    await notice(agent, room, "No waiting chat number 5")


async def test_ban_ends_the_chat_and_refuses_the_email(make_bridge, agent: TestAgent,
                                                       visitors) -> None:
    bridge, visitor, _started, room = await chat_with_agent(make_bridge, visitors, agent,
                                                            email="troll@example.com")
    await agent.say(room, "!ban abusive language")
    await notice(agent, room, "troll@example.com cannot start new chats")
    await visitor.wait("ended")
    again = await visitors(bridge.base_url)
    await again.send({"type": "start", "visitor": {"name": "T", "email": "Troll@Example.com"}})
    error = await again.wait("error")
    assert error["code"] == "unavailable" and "ban" not in error["message"]


async def test_commands_in_a_direct_chat_with_the_bot(make_bridge, agent: TestAgent,
                                                      messenger: Messenger) -> None:
    bridge = await make_bridge()
    direct = await agent.open_direct(messenger.bot)

    async def reply_to(line: str, fragment: str) -> None:
        await agent.say_direct(direct, line)
        await agent.until(lambda: any(fragment in t for t in agent.direct_texts(direct)))

    await reply_to("!break", "You are on a break")
    assert bridge.store.on_break("alice") is True
    await reply_to("!queue", "Nobody is waiting in your queues.")
    await reply_to("!c greeting", "!c works in a chat's room")
    await reply_to("hello bot", "Only commands work here; try !help.")
    await reply_to("!back", "Welcome back")
    assert bridge.store.on_break("alice") is False


async def test_canned_replies_in_the_visitors_language(make_bridge, agent: TestAgent,
                                                       visitors) -> None:
    _, visitor, _, room = await chat_with_agent(make_bridge, visitors, agent, name="Jörg",
                                                lang="de-AT")
    await agent.say(room, "!c greeting")
    line = await visitor.wait("message", lambda f: f["from"] == "agent")
    assert line["text"] == "Hallo Jörg, hier ist Alice."
