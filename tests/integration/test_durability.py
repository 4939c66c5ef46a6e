"""An acknowledged line is on disk; a bridge killed mid-stream loses and doubles nothing.

A visitor line goes to the room as soon as it is committed, while its fsync runs in another
thread; only the acknowledgement waits for the disk (`bridge.wal_sync`).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge import wal_sync
from bridge.devserver.bridge_process import BridgeProcess
from tests.integration.conftest import (
    Messenger,
    TestAgent,
    chat_with_agent,
)
from tests.integration.helpers import Frame, Visitor
from tests.integration.killable import killable_bridge, room_on_disk

LINES = 40


async def test_the_room_gets_a_line_while_its_ack_waits_for_the_disk(
        make_bridge, agent: TestAgent, visitors, monkeypatch: pytest.MonkeyPatch) -> None:
    bridge, visitor, started, room = await chat_with_agent(make_bridge, visitors, agent)

    held, entered, real_sync = threading.Event(), threading.Event(), os.fdatasync

    def slow_disk(fd: int) -> None:
        entered.set()
        held.wait(20)
        real_sync(fd)

    monkeypatch.setattr(wal_sync.os, "fdatasync", slow_disk)
    try:
        await visitor.send({"type": "message", "client_id": "slow-1", "text": "a slow disk"})
        await agent.wait_text(room, "a slow disk")
        # The fsync starts a moment after the line goes out (wal_sync.GATHER_S), and is held.
        assert await asyncio.to_thread(entered.wait, 5)
        await asyncio.sleep(0.2)
        assert [f for f in visitor.of("ack") if f["client_id"] == "slow-1"] == []
    finally:
        held.set()
    ack = await visitor.wait("ack", lambda f: f["client_id"] == "slow-1")
    line = bridge.store.item_by_client_id(started["conversation"], "slow-1")
    assert line is not None and line.seq == ack["seq"]


@pytest.fixture
async def bridge_process(messenger: Messenger, tmp_path: Path
                         ) -> AsyncIterator[tuple[BridgeProcess, Path]]:
    process, db = killable_bridge(messenger, tmp_path)
    try:
        yield process, db
    finally:
        await process.stop()


def stored_lines(db: Path, conversation_id: str) -> dict[str, int]:
    """client_id -> seq of the visitor lines on disk, as a fresh connection reads them."""
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT client_id, seq FROM items WHERE conversation_id = ?"
                            " AND client_id IS NOT NULL", (conversation_id,)).fetchall()
    finally:
        conn.close()
    return dict(rows)


def acks(visitor: Visitor) -> dict[str, int]:
    return {f["client_id"]: f["seq"] for f in visitor.of("ack")}


async def test_a_bridge_killed_mid_stream_loses_and_doubles_nothing(
        bridge_process: tuple[BridgeProcess, Path], agent: TestAgent, visitors) -> None:
    bridge, db = bridge_process
    await bridge.start()
    visitor = await visitors(bridge.base_url)
    started = await visitor.start()
    conversation_id = started["conversation"]
    room = await room_on_disk(db, conversation_id)
    await agent.join(room)
    await visitor.wait("agent", lambda f: f["event"] == "joined")

    # Every line sent at once, as a widget flushes its queue; killed halfway through.
    for n in range(LINES):
        await visitor.send({"type": "message", "client_id": f"line-{n}", "text": f"line {n}"})
    async with asyncio.timeout(15):
        while len(acks(visitor)) < LINES // 4:
            await asyncio.sleep(0.001)
    await bridge.kill()
    acked_before = acks(visitor)
    assert 0 < len(acked_before) < LINES, "kill came too late to test anything"
    on_disk = stored_lines(db, conversation_id)
    assert {cid: on_disk.get(cid) for cid in acked_before} == acked_before  # acked: on disk

    # The widget reconnects and sends again every line it has no ack for, in order.
    await bridge.start()
    again = await visitors(bridge.base_url)
    await again.send({"type": "resume", "token": started["token"], "after": 0})
    await again.wait("resumed")
    resent: dict[str, Frame] = {}
    for n in range(LINES):
        client_id = f"line-{n}"
        if client_id not in acked_before:
            resent[client_id] = await again.say(f"line {n}", client_id=client_id)
    repeat = await again.say("line 0", client_id="line-0")  # a line acked before the kill
    assert repeat["seq"] == on_disk["line-0"]

    for n in range(LINES):
        await agent.wait_text(room, f"line {n}", timeout=30)
    await asyncio.sleep(1)  # time for any double to show
    shown = [t for t in agent.texts(room) if t.startswith("line ")]
    assert shown == [f"line {n}" for n in range(LINES)]
    final = stored_lines(db, conversation_id)
    assert len(final) == LINES
    seqs = [final[f"line-{n}"] for n in range(LINES)]
    assert seqs == sorted(seqs) and len(set(seqs)) == LINES
    assert {cid: final[cid] for cid in acked_before} == acked_before
    assert {cid: final[cid] for cid in resent} == {cid: f["seq"] for cid, f in resent.items()}
