"""The XMPP backend's fast paths: lines written past slixmpp's send queue and stanzas taken
before its handlers must keep every guarantee of the slow path."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bridge.app import Bridge
from bridge.config import parse_config
from bridge.devserver.ports import free_port
from tests.conftest import XmppServer
from tests.integration.conftest import room_of
from tests.integration.xmpp_agent import XmppAgent

AWKWARD = """<b>fish & "chips"</b> it's ]]> 5 > 3 ✓"""


def bridge_on(xmpp_server: XmppServer, tmp_path: Path) -> Bridge:
    port = free_port()
    return Bridge(parse_config({
        # The visitor sends more lines than the flood limit lets through by default.
        "server": {"listen": f"127.0.0.1:{port}", "public_url": f"http://127.0.0.1:{port}",
                   "frames_per_10s": 1000},
        "storage": {"path": str(tmp_path / "livechat.sqlite3")},
        "backend": {"type": "xmpp"},
        "xmpp": {"jid": "support@localhost",
                 "password": xmpp_server.passwords["support@localhost"],
                 "muc_service": "muc.localhost", "host": "127.0.0.1",
                 "port": xmpp_server.server.c2s_port, "plaintext": True},
        "agents": [{"id": "alice", "address": "alice@localhost", "name": "Alice"}],
        "queues": [{"id": "support", "name": "Support", "agents": ["alice"]}],
    }))


async def alice_on(xmpp_server: XmppServer) -> XmppAgent:
    return await XmppAgent("alice@localhost", xmpp_server.passwords["alice@localhost"],
                           xmpp_server.server.c2s_port, "support@localhost", "Alice").start()


def visitor_lines(alice: XmppAgent, room: str) -> list[str]:
    """The lines the bot posted in the room, as the agent saw them."""
    return [body for r, nick, notice, body in alice.messages
            if r == room and nick != alice.nick and not notice]


async def test_lines_stay_counted_for_stream_management(xmpp_server: XmppServer,
                                                        tmp_path: Path, visitors) -> None:
    bridge = bridge_on(xmpp_server, tmp_path)
    await bridge.start()
    alice = await alice_on(xmpp_server)
    try:
        visitor = await visitors(bridge.base_url)
        started = await visitor.start()
        room = await room_of(bridge, started["conversation"])
        await alice.join(room)
        client = bridge.backend._client
        sm = client.plugin["xep_0198"]
        # Every message, presence and iq that reaches the bot from now on must be counted
        # for the server, whether slixmpp or the fast path took it.
        arrived: list[str] = []
        counted_before = sm.handled
        spawn = client._spawn_event

        def note_and_spawn(xml) -> None:
            arrived.append(xml.tag.rpartition("}")[2])
            spawn(xml)

        client._spawn_event = note_and_spawn
        lines = [f"line {n}" for n in range(60)] + [AWKWARD]  # past one ack window
        for line in lines:
            await visitor.say(line)
        await alice.wait_text(room, AWKWARD)
        assert visitor_lines(alice, room) == lines

        await alice.set_typing(room, True)
        await visitor.wait("typing", lambda f: f.get("active") is True)
        for n in range(3):
            await alice.say(room, f"answer {n}")
        await alice.say(room, AWKWARD)
        answer = await visitor.wait("message", lambda f: f["text"] == AWKWARD)
        assert answer["from"] == "agent"
        assert [f["text"] for f in visitor.of("message") if f["from"] == "agent"] == [
            "answer 0", "answer 1", "answer 2", AWKWARD]
        stanzas = sum(tag in ("message", "presence", "iq") for tag in arrived)
        assert stanzas >= len(lines) + 5  # the reflections, the typing, the answers
        assert (sm.handled - counted_before) % 2**32 == stanzas

        # The server acknowledges exactly what the bot counted: nothing is left to resend.
        sm.request_ack()
        async with asyncio.timeout(10):
            while sm.unacked_queue or sm.last_ack != sm.seq:
                await asyncio.sleep(0.05)
        async with asyncio.timeout(10):
            while bridge.store.undelivered(started["conversation"]):
                await asyncio.sleep(0.05)
    finally:
        await alice.close()
        await bridge.stop()


async def test_a_dropped_connection_loses_and_doubles_nothing(xmpp_server: XmppServer,
                                                              tmp_path: Path,
                                                              visitors) -> None:
    bridge = bridge_on(xmpp_server, tmp_path)
    await bridge.start()
    alice = await alice_on(xmpp_server)
    try:
        visitor = await visitors(bridge.base_url)
        started = await visitor.start()
        room = await room_of(bridge, started["conversation"])
        await alice.join(room)
        await visitor.say("before the drop")
        await alice.wait_text(room, "before the drop")

        await visitor.say("as the line drops")
        bridge.backend._client.transport.abort()  # no goodbye: the stream may be resumed
        await alice.say(room, "while the bot was away")
        for n in range(3):
            await visitor.say(f"during the drop {n}")

        await alice.wait_text(room, "during the drop 2", timeout=30)
        await visitor.wait("message", lambda f: f["text"] == "while the bot was away",
                           timeout=30)
        await visitor.say("after the drop")
        await alice.wait_text(room, "after the drop", timeout=30)
        assert visitor_lines(alice, room) == ["before the drop", "as the line drops",
                                     *(f"during the drop {n}" for n in range(3)),
                                     "after the drop"]
        await asyncio.sleep(0.5)  # a doubled line would arrive by now
        agent_lines = [f["text"] for f in visitor.of("message") if f["from"] == "agent"]
        assert agent_lines == ["while the bot was away"]
        assert bridge.store.undelivered(started["conversation"]) == []
    finally:
        await alice.close()
        await bridge.stop()
