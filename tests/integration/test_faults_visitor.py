"""Faults on the visitor's side: a visitor away while the agent writes, two tabs on one
conversation, a line re-sent with the same `client_id`. Each test ends by comparing what the
visitor saw with what the agent's client shows in the room, line by line.

The visitor is away for 10 s in `make test` and for 5 minutes in `make soak`, the agent's 20
lines spread over the absence, on Matrix and XMPP at the same time (two bridges). The bridge
has nothing timed that a disconnected visitor would trip within 5 minutes (the keepalive only
watches open sockets; chats end after `idle_timeout_minutes` without a line from anyone, and
the agent keeps writing). What does run on a timer, the hub's sweep (idle chats, waiting
chats, offers; every 30 s by default), is made to run every 1.5 s here, so it runs several
times while the visitor is away however short the absence.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from bridge.app import Bridge
from tests.integration.conftest import TestAgent, chat_with_agent
from tests.integration.helpers import Visitor
from tests.integration.views import assert_same_lines, seen_by, settled_room

OFFLINE_S = 10.0
AWAY_LINES = 20
# The test config's queues, with a limit that makes the hub sweep every 1.5 s (a quarter of
# 0.1 min); the chat is an agent's from the start, so nothing is offered to it.
SWEEPING = [{"id": "support", "name": "Support", "agents": ["alice"],
             "welcome": "Hi {visitor}, {agent} will be with you shortly.",
             "offer_message_after_minutes": 0.1},
            {"id": "sales", "name": "Sales", "agents": ["bob"]}]


async def stored(bridge: Bridge, conversation: str, after: int, text: str) -> None:
    """Waits until the bridge has stored `text` (so it was taken in while nobody listened)."""
    async with asyncio.timeout(30):
        while not any(i.text == text for i in bridge.store.items_after(conversation, after)):
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("offline_s", [
    OFFLINE_S, pytest.param(300.0, marks=[pytest.mark.soak, pytest.mark.timeout(600)])])
async def test_visitor_away_while_the_agent_writes(make_matrix_bridge, make_xmpp_bridge,
                                                   matrix_agent: TestAgent,
                                                   xmpp_agent: TestAgent, visitors,
                                                   offline_s: float) -> None:
    """Both networks at once, each with its own bridge: the absence is waited out once."""
    await asyncio.gather(
        away_while_the_agent_writes(lambda: make_matrix_bridge(queues=SWEEPING), matrix_agent,
                                    visitors, offline_s),
        away_while_the_agent_writes(
            lambda: make_xmpp_bridge(queues=SWEEPING, db="xmpp.sqlite3"), xmpp_agent, visitors,
            offline_s))


async def away_while_the_agent_writes(make_bridge, agent: TestAgent, visitors,
                                      offline_s: float) -> None:
    bridge, visitor, started, room = await chat_with_agent(make_bridge, visitors, agent)
    sent = {"before-1": "before I go"}
    await visitor.say(sent["before-1"], client_id="before-1")
    await agent.wait_text(room, sent["before-1"])  # an ack means stored, not yet in the room
    await agent.say(room, "noted")
    await visitor.wait("message", lambda f: f["text"] == "noted")
    first_view = seen_by(visitor, sent)
    last_seq = max(f["seq"] for f in visitor.frames if "seq" in f)
    await visitor.close()  # the laptop lid shuts

    away = [f"while you were away {n}" for n in range(AWAY_LINES)]
    for text in away:  # spread over the whole absence
        await agent.say(room, text)
        await asyncio.sleep(offline_s / AWAY_LINES)
    await stored(bridge, started["conversation"], last_seq, away[-1])

    back = await visitors(bridge.base_url)
    await back.send({"type": "resume", "token": started["token"], "after": last_seq})
    await back.wait("resumed")
    await back.wait("message", lambda f: f["text"] == away[-1])
    room_lines = await settled_room(agent, room, away[-1])
    back_view = seen_by(back, sent)

    assert [text for _, text in back_view] == away  # all 20, once, in order, nothing older
    assert_same_lines(first_view + back_view, room_lines)


async def test_two_tabs_on_one_conversation(make_bridge, agent: TestAgent, visitors) -> None:
    bridge, first, started, room = await chat_with_agent(make_bridge, visitors, agent)
    tabs = [first, await visitors(bridge.base_url)]
    await tabs[1].send({"type": "resume", "token": started["token"], "after": 0})
    await tabs[1].wait("resumed")
    sent: dict[str, str] = {}

    async def type_in(tab: Visitor, name: str) -> None:
        # Sent without waiting for acks, so both tabs' lines reach the bridge interleaved.
        for n in range(10):
            client_id = f"{name}-{n}"
            sent[client_id] = f"tab {name} line {n}"
            await tab.send({"type": "message", "client_id": client_id, "text": sent[client_id]})
        await tab.wait("ack", lambda f: f["client_id"] == f"{name}-9", timeout=30)

    await asyncio.gather(type_in(tabs[0], "a"), type_in(tabs[1], "b"))
    for last in ("tab a line 9", "tab b line 9"):  # the agent answers what it has read
        await agent.wait_text(room, last, timeout=30)
    await agent.say(room, "got both tabs")
    room_lines = await settled_room(agent, room, "got both tabs")
    for tab in tabs:
        await tab.wait("message", lambda f: f["text"] == "got both tabs")

    for tab, own in zip(tabs, ("a", "b"), strict=True):
        acks = [f["client_id"] for f in tab.of("ack")]
        assert acks == [f"{own}-{n}" for n in range(10)]  # its own lines, as acks only
        other = [f for f in tab.of("message") if f.get("client_id") in sent]
        assert all(not f["client_id"].startswith(own) for f in other)
        live = [f["seq"] for f in tab.of("message")]
        assert live == sorted(live), "message frames out of seq order"
        assert_same_lines(seen_by(tab, sent), room_lines)


async def test_one_client_id_sent_five_times(make_bridge, agent: TestAgent, visitors) -> None:
    bridge, visitor, started, room = await chat_with_agent(make_bridge, visitors, agent)
    sent = {"dup": "the line the widget keeps resending"}
    frames: list[tuple[str, str]] = []
    for n in range(5):  # the resend interleaved with new lines, none waiting for its ack
        frames.append(("dup", sent["dup"]))
        client_id = uuid.uuid4().hex
        sent[client_id] = f"other line {n}"
        frames.append((client_id, sent[client_id]))
    for client_id, text in frames:
        await visitor.send({"type": "message", "client_id": client_id, "text": text})
    async with asyncio.timeout(30):
        while len(visitor.of("ack")) < len(frames):
            await visitor.wait("ack", start=len(visitor.frames))

    dup_acks = [f["seq"] for f in visitor.of("ack") if f["client_id"] == "dup"]
    assert len(dup_acks) == 5 and len(set(dup_acks)) == 1, dup_acks
    stored_dups = [i for i in bridge.store.items_after(started["conversation"], 0)
                   if i.text == sent["dup"]]
    assert len(stored_dups) == 1
    room_lines = await settled_room(agent, room, "other line 4")
    assert room_lines.count(sent["dup"]) == 1
    assert_same_lines(seen_by(visitor, sent), room_lines)
