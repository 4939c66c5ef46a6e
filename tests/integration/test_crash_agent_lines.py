"""Agents' lines survive bridge crashes: every line an agent writes, while the bridge runs or
while it is down, reaches the visitor exactly once and in order after it is killed (SIGKILL)
and started again, repeatedly.

On XMPP the lines written while the bridge was away are read from the room's archive
(XEP-0313, Prosody's muc_mam); on Matrix from the sync position the store kept.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.devserver.bridge_process import BridgeProcess
from tests.integration.conftest import Messenger, TestAgent
from tests.integration.helpers import Visitor
from tests.integration.killable import killable_bridge, room_on_disk

KILLS = 6
LINES_PER_ROUND = 50  # half while the bridge runs, half while it is down


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


async def test_agent_lines_survive_repeated_kills(
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

    view = VisitorView()
    sent: list[str] = []
    for round_ in range(KILLS):
        # A burst while the bridge runs, killed at a random point in it.
        kill_after = rng.randrange(5, LINES_PER_ROUND // 2)
        for n in range(LINES_PER_ROUND // 2):
            text = f"r{round_} live {n}"
            await agent.say(room, text)
            sent.append(text)
            if n == kill_after:
                await bridge.kill()
        view.take(visitor)
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

    last = sent[-1]
    await visitor.wait("message", lambda f: f.get("text") == last, timeout=60)
    await asyncio.sleep(1)  # time for any double to show
    view.take(visitor)
    seen = view.lines()
    missing = [text for text in sent if text not in seen]
    assert missing == [], f"{len(missing)} of {len(sent)} agent lines never reached the visitor"
    assert view.doubles == []
    assert seen == sent  # each once, in the order written
