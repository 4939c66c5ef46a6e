"""Lines both ways survive bridge crashes: every line an agent writes, while the bridge runs or
while it is down, reaches the visitor exactly once and in order after it is killed (SIGKILL)
and started again, repeatedly; every line the visitor writes meanwhile (some into a socket
the kill has closed, resent after the reconnect with the same client_id, as the widget does)
shows in the room exactly once and in order.

On XMPP the lines written while the bridge was away are read from the room's archive
(XEP-0313, Prosody's muc_mam); on Matrix from the sync position the store kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bridge.devserver.bridge_process import BridgeProcess
from tests.integration.conftest import Messenger, TestAgent
from tests.integration.helpers import Visitor
from tests.integration.killable import killable_bridge, room_on_disk

KILLS = 6
LINES_PER_ROUND = 50  # the agent's: half while the bridge runs, half while it is down
VISITOR_LINES_PER_ROUND = 15  # sent while the agent writes, some cut off by the kill


@pytest.fixture
async def crashing_bridge(messenger: Messenger, tmp_path: Path
                          ) -> AsyncIterator[tuple[BridgeProcess, Path]]:
    process, db = killable_bridge(messenger, tmp_path)
    try:
        yield process, db
    finally:
        await process.stop()


class VisitorView:
    """What the visitor has seen across reconnections: agent lines by seq."""

    def __init__(self) -> None:
        self.by_seq: dict[int, str] = {}
        self.last_seq = 0
        self.doubles: list[str] = []

    def take(self, visitor: Visitor) -> None:
        for frame in visitor.of("message"):
            seq = frame["seq"]
            self.last_seq = max(self.last_seq, seq)
            if frame["from"] != "agent":
                continue
            known = self.by_seq.get(seq)
            if known is None:
                if frame["text"] in self.by_seq.values():
                    self.doubles.append(frame["text"])  # the same line under a new seq
                self.by_seq[seq] = frame["text"]

    def lines(self) -> list[str]:
        return [self.by_seq[seq] for seq in sorted(self.by_seq)]


class VisitorLines:
    """The visitor's own lines across reconnections, as a widget keeps them: each sent once
    with its client_id, and sent again (same id) after a reconnect until acked."""

    def __init__(self) -> None:
        self.texts: dict[str, str] = {}  # client_id -> text, in the order written
        self.acked: set[str] = set()

    async def burst(self, visitor: Visitor, round_: int, count: int) -> None:
        for n in range(count):
            client_id = f"r{round_}-v{n}"
            self.texts[client_id] = f"r{round_} visitor {n}"
            await self.send(visitor, client_id)
            await asyncio.sleep(0.02)

    async def send(self, visitor: Visitor, client_id: str) -> None:
        # Into a socket the kill has closed, a frame goes nowhere: it stays unacked.
        with contextlib.suppress(ConnectionError, aiohttp.ClientError):
            await visitor.send({"type": "message", "client_id": client_id,
                                "text": self.texts[client_id]})

    def take(self, visitor: Visitor) -> None:
        self.acked.update(frame["client_id"] for frame in visitor.of("ack"))

    def unacked(self, visitor: Visitor) -> list[str]:
        self.take(visitor)
        return [client_id for client_id in self.texts if client_id not in self.acked]

    async def resend(self, visitor: Visitor) -> None:
        for client_id in [c for c in self.texts if c not in self.acked]:
            await self.send(visitor, client_id)


async def test_lines_both_ways_survive_repeated_kills(
        crashing_bridge: tuple[BridgeProcess, Path], agent: TestAgent, visitors) -> None:
    bridge, db = crashing_bridge
    rng = random.Random(17)
    await bridge.start()
    visitor = await visitors(bridge.base_url)
    started = await visitor.start()
    conversation_id = started["conversation"]
    room = await room_on_disk(db, conversation_id)
    await agent.join(room)
    await visitor.wait("agent", lambda f: f["event"] == "joined")

    view, own = VisitorView(), VisitorLines()
    sent: list[str] = []

    async def agent_burst(round_: int, kill_after: int) -> None:
        for n in range(LINES_PER_ROUND // 2):
            text = f"r{round_} live {n}"
            await agent.say(room, text)
            sent.append(text)
            if n == kill_after:
                await bridge.kill()

    for round_ in range(KILLS):
        # Bursts both ways while the bridge runs, killed at a random point in them.
        await asyncio.gather(agent_burst(round_, rng.randrange(5, LINES_PER_ROUND // 2)),
                             own.burst(visitor, round_, VISITOR_LINES_PER_ROUND))
        view.take(visitor)
        own.take(visitor)
        await visitor.close()
        # A burst while the bridge is down.
        for n in range(LINES_PER_ROUND // 2):
            text = f"r{round_} away {n}"
            await agent.say(room, text)
            sent.append(text)
        await bridge.start()
        visitor = await visitors(bridge.base_url)
        await visitor.send({"type": "resume", "token": started["token"],
                            "after": view.last_seq})
        await visitor.wait("resumed")
        await own.resend(visitor)  # what the widget does after `resumed`

    last = sent[-1]
    await visitor.wait("message", lambda f: f.get("text") == last, timeout=60)
    async with asyncio.timeout(60):  # the resent lines' acks come to the last socket
        while own.unacked(visitor):
            await asyncio.sleep(0.1)
    await agent.wait_text(room, list(own.texts.values())[-1], timeout=60)
    await asyncio.sleep(1)  # time for any double to show
    view.take(visitor)
    own.take(visitor)
    seen = view.lines()
    missing = [text for text in sent if text not in seen]
    assert missing == [], f"{len(missing)} of {len(sent)} agent lines never reached the visitor"
    assert view.doubles == []
    assert seen == sent  # each once, in the order written
    assert own.acked == set(own.texts)
    in_room = [text for text in agent.texts(room) if " visitor " in text]
    assert in_room == list(own.texts.values())  # each visitor line once, in the order written
