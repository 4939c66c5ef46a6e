"""A visitor on a real WebSocket and an agent on a real Matrix client, through the bridge."""

from __future__ import annotations

import asyncio

from tests.integration.conftest import Messenger, TestAgent, chat_with_agent, room_of


async def test_visitor_and_agent_talk_both_ways(make_bridge, agent: TestAgent, visitors,
                                                messenger: Messenger) -> None:
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
    assert await agent.room_title(room) == "💬 Anna · Support"
    assert await agent.visitor_nick(room) == "Anna (visitor)"

    joined = await visitor.wait("agent", lambda f: f["event"] == "joined")
    assert joined["name"] == "Alice"
    await agent.say(room, "It ships today.")
    reply = await visitor.wait("message", lambda f: f["from"] == "agent")
    assert (reply["name"], reply["text"]) == ("Alice", "It ships today.")
    assert reply["seq"] > joined["seq"]


async def test_typing_shows_both_ways(make_bridge, agent: TestAgent, visitors) -> None:
    _, visitor, _, room = await chat_with_agent(make_bridge, visitors, agent)

    await visitor.send({"type": "typing", "active": True})
    await agent.until(lambda: agent.bot_typing(room)[-1:] == [True])
    await visitor.send({"type": "typing", "active": False})
    await agent.until(lambda: agent.bot_typing(room)[-1:] == [False])

    await agent.set_typing(room, True)
    typing = await visitor.wait("typing", lambda f: f["active"])
    assert typing["name"] == "Alice"
    await agent.set_typing(room, False)
    await visitor.wait("typing", lambda f: not f["active"])


async def test_resume_replays_the_gap_once(make_bridge, agent: TestAgent, visitors) -> None:
    bridge = await make_bridge()
    first = await visitors(bridge.base_url)
    started = await first.start()
    room = await room_of(bridge, started["conversation"])
    await agent.join(room)
    ack = await first.say("line one", client_id="c-one")
    await first.close()  # the page reloads

    await agent.wait_text(room, "line one")
    await agent.say(room, "answer while you were away")
    async with asyncio.timeout(10):
        while not any(i.text == "answer while you were away"
                      for i in bridge.store.items_after(started["conversation"], ack["seq"])):
            await asyncio.sleep(0.05)

    second = await visitors(bridge.base_url)
    await second.send({"type": "resume", "token": started["token"], "after": ack["seq"]})
    resumed = await second.wait("resumed")
    assert resumed["conversation"] == started["conversation"]
    answer = await second.wait("message", lambda f: f["from"] == "agent")
    assert answer["text"] == "answer while you were away"
    replayed = [f["seq"] for f in second.frames if "seq" in f and f["type"] != "resumed"]
    assert replayed == sorted(set(replayed)) and min(replayed) == ack["seq"] + 1

    # The widget re-sends a line it never saw acknowledged: same client_id, same seq, one copy.
    again = await second.say("line one", client_id="c-one")
    assert again["seq"] == ack["seq"]
    await second.say("line two")
    await agent.wait_text(room, "line two")
    assert agent.texts(room).count("line one") == 1


async def test_bridge_restart_continues_in_the_same_room(make_bridge, agent: TestAgent,
                                                         visitors) -> None:
    bridge = await make_bridge()
    visitor = await visitors(bridge.base_url)
    started = await visitor.start()
    room = await room_of(bridge, started["conversation"])
    await agent.join(room)
    await visitor.say("before restart")
    await agent.wait_text(room, "before restart")
    await bridge.stop()

    await agent.say(room, "sent while the bridge was down")
    bridge = await make_bridge()
    visitor = await visitors(bridge.base_url)
    await visitor.send({"type": "resume", "token": started["token"], "after": 0})
    late = await visitor.wait("message", lambda f: f["text"] == "sent while the bridge was down")
    assert late["from"] == "agent"
    await visitor.say("after restart")
    await agent.wait_text(room, "after restart")
    assert bridge.store.conversation(started["conversation"]).room == room
    texts = [f["text"] for f in visitor.of("message")]
    assert texts.count("before restart") == 1
    assert texts.count("sent while the bridge was down") == 1


async def test_outbox_delivers_after_the_server_comes_back(make_bridge, agent: TestAgent, visitors,
                                                           messenger: Messenger) -> None:
    bridge, visitor, started, room = await chat_with_agent(make_bridge, visitors, agent)

    await asyncio.to_thread(messenger.stop_server)
    try:
        for n in range(3):
            ack = await visitor.say(f"while down {n}")  # acked: durable with no server
            assert ack["seq"] > 0
        await bridge.stop()  # and the bridge restarts before the server is back
    finally:
        await asyncio.to_thread(messenger.start_server)
    bridge = await make_bridge()
    for n in range(3):
        await agent.wait_text(room, f"while down {n}", timeout=30)
    lines = [t for t in agent.texts(room) if t.startswith("while down")]
    assert lines == ["while down 0", "while down 1", "while down 2"]
    async with asyncio.timeout(10):  # marked once the bot's own copy came back, maybe later
        while bridge.store.undelivered(started["conversation"]):
            await asyncio.sleep(0.05)


async def test_agent_commands_never_reach_the_visitor(make_bridge, agent: TestAgent,
                                                      visitors) -> None:
    bridge = await make_bridge()
    visitor = await visitors(bridge.base_url)
    started = await visitor.start()
    room = await room_of(bridge, started["conversation"])
    await agent.join(room)
    await agent.say(room, "!nosuchcommand with args")
    await agent.until(lambda: any("No command '!nosuchcommand'" in t
                                  for t in agent.texts(room, notice=True)))
    await agent.say(room, "!!literal bang")
    literal = await visitor.wait("message", lambda f: f["from"] == "agent")
    assert literal["text"] == "!literal bang"
    assert all("nosuchcommand" not in f.get("text", "") for f in visitor.frames)

    before_end = await visitor.say("thanks, bye", client_id="bye-1")
    await agent.say(room, "!end")
    ended = await visitor.wait("ended")
    assert ended["by"] == "agent"
    await visitor.send({"type": "message", "client_id": "late", "text": "hello?"})
    error = await visitor.wait("error")
    assert (error["code"], error["client_id"]) == ("ended", "late")
    # A line stored before the end but never seen acknowledged still gets its ack on retry.
    before = len(visitor.frames)
    await visitor.send({"type": "message", "client_id": "bye-1", "text": "thanks, bye"})
    again = await visitor.wait("ack", start=before)
    assert again["seq"] == before_end["seq"]


async def test_waiting_visitors_learn_their_new_place(make_bridge, agent: TestAgent,
                                                      visitors) -> None:
    bridge = await make_bridge()
    first = await visitors(bridge.base_url)
    first_started = await first.start(name="First")
    second = await visitors(bridge.base_url)
    await second.start(name="Second")
    assert (await second.wait("queue"))["position"] == 2
    assert (await first.wait("queue"))["position"] == 1

    room = await room_of(bridge, first_started["conversation"])
    await agent.join(room)
    await first.wait("agent", lambda f: f["event"] == "joined")
    moved = await second.wait("queue", lambda f: f["position"] == 1)
    assert moved["wait_s"] is None


async def test_a_room_that_disappears_is_replaced(make_bridge, agent: TestAgent, visitors,
                                                  messenger: Messenger) -> None:
    bridge = await make_bridge()
    visitor = await visitors(bridge.base_url)
    started = await visitor.start()
    room = await room_of(bridge, started["conversation"])
    await agent.join(room)
    await visitor.say("before it vanished")
    await agent.wait_text(room, "before it vanished")

    await asyncio.to_thread(messenger.destroy_room, room)
    await visitor.say("after it vanished")  # the bridge opens a new room and invites again
    async with asyncio.timeout(20):
        while (new_room := bridge.store.conversation(started["conversation"]).room) == room:
            await asyncio.sleep(0.1)
    await agent.join(new_room)
    await agent.wait_text(new_room, "after it vanished")
    await agent.say(new_room, "still here")
    answer = await visitor.wait("message", lambda f: f["from"] == "agent")
    assert answer["text"] == "still here"
    assert await agent.room_title(new_room) == "💬 Anna · Support"


async def test_an_abandoned_chat_ends_by_itself(make_bridge, agent: TestAgent,
                                                visitors) -> None:
    bridge = await make_bridge(idle_timeout_minutes=0.03)
    visitor = await visitors(bridge.base_url)
    started = await visitor.start()
    room = await room_of(bridge, started["conversation"])
    await agent.join(room)
    await visitor.say("hello?")
    ended = await visitor.wait("ended", timeout=10)
    assert ended["by"] == "system" and ended["survey"]["scale"] == 5
    await agent.wait_text(room, "The chat ended: nobody wrote for a while.", notice=True)
    assert bridge.store.conversation(started["conversation"]).ended_at is not None


async def test_an_idle_chat_warns_first_and_can_be_kept_open(make_bridge, agent: TestAgent,
                                                              visitors) -> None:
    # 3 s; warned in the last 0.75 s, checked every 0.25 s (a quarter of the timeout and a
    # third of that: the bridge's own rule for short timeouts).
    bridge = await make_bridge(idle_timeout_minutes=0.05)
    visitor = await visitors(bridge.base_url)
    started = await visitor.start()
    room = await room_of(bridge, started["conversation"])
    await agent.join(room)
    await visitor.say("hello?")
    said = asyncio.get_running_loop().time()
    warning = await visitor.wait("idle", timeout=10)
    assert warning["ends_in_s"] == 1  # 0.75 s or less, said in whole seconds (at least 1)
    await visitor.send({"type": "extend"})
    assert (await visitor.wait("extended"))["ends_in_s"] == 3
    # 1 s past the end it would have had (3 s after the line): four of the bridge's checks,
    # and still before the new warning (0.75 s before 3 s after the extension).
    await asyncio.sleep(max(0.0, said + 4 - asyncio.get_running_loop().time()))
    assert visitor.of("ended") == []  # past the end it would have had
    await visitor.wait("idle", lambda f: f is not warning, timeout=10)  # warned again
    ended = await visitor.wait("ended", timeout=10)
    assert ended["by"] == "system"
