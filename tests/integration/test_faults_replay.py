"""Side effects happen once per conversation, not once per delivery: a bridge killed
(SIGKILL) and restarted replays its backlog (undelivered items, the sync position or the
room archive, the visitor's resume from seq 0) without a second welcome, a second `ended`
frame with its survey, a second transcript mail, or a command run twice."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bridge.devserver.bridge_process import BridgeProcess
from tests.integration.conftest import Messenger, TestAgent
from tests.integration.helpers import Visitor
from tests.integration.killable import killable_bridge, room_on_disk
from tests.integration.smtp_server import SmtpServer, StartServer
from tests.integration.test_after_end import smtp_settings
from tests.integration.test_commands import notice

WELCOME = "Hi Anna, an agent will be with you shortly."
SETTLE_S = 1.0  # time for a double to show after the replay


@dataclass
class Crashable:
    bridge: BridgeProcess
    db: Path
    smtp: SmtpServer


@pytest.fixture
async def crashable(messenger: Messenger, tmp_path: Path, start_server: StartServer
                    ) -> AsyncIterator[Crashable]:
    """A bridge in its own process (so it can be SIGKILLed) with a real SMTP server."""
    smtp = start_server()
    process, db = killable_bridge(messenger, tmp_path, smtp_settings(smtp.port))
    try:
        yield Crashable(process, db, smtp)
    finally:
        await process.stop()


async def restart_and_resume(crash: Crashable, visitors, token: str) -> Visitor:
    """Start the killed bridge again; a widget reconnects asking for everything (seq 0)."""
    await crash.bridge.start()
    visitor = await visitors(crash.bridge.base_url)
    await visitor.send({"type": "resume", "token": token, "after": 0})
    await visitor.wait("resumed")
    return visitor


async def start_chat(crash: Crashable, visitors) -> tuple[Visitor, dict[str, Any], str]:
    """Start the bridge and a chat: (the visitor, its `started` frame, the room on disk)."""
    await crash.bridge.start()
    visitor = await visitors(crash.bridge.base_url)
    started = await visitor.start()
    return visitor, started, await room_on_disk(crash.db, started["conversation"])


def welcomes(visitor: Visitor) -> list[dict[str, Any]]:
    return [f for f in visitor.of("message") if f["from"] == "system" and f["text"] == WELCOME]


def note_events(db: Path, conversation_id: str) -> list[str]:
    """The `!note` events on disk, as a fresh connection reads them."""
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT detail FROM events WHERE conversation_id = ? AND kind = ?",
                            (conversation_id, "note")).fetchall()
    finally:
        conn.close()
    return [detail for (detail,) in rows]


async def test_welcome_survey_and_mail_happen_once_across_kills(
        crashable: Crashable, agent: TestAgent, visitors) -> None:
    crash = crashable
    # Killed as soon as the room is on disk: the welcome is on its way to it, or just
    # posted without being marked delivered. (A kill before the room is on disk can strand
    # the chat: see test_a_chat_killed_before_its_room_opened_is_still_offered.)
    visitor, started, room = await start_chat(crash, visitors)
    token = started["token"]
    await crash.bridge.kill()
    await visitor.close()

    visitor = await restart_and_resume(crash, visitors, token)
    await agent.join(room)
    await visitor.wait("agent", lambda f: f["event"] == "joined")
    await agent.wait_text(room, WELCOME, notice=True, timeout=30)
    assert len(welcomes(visitor)) == 1

    await agent.say(room, "!end")
    await visitor.wait("ended")
    await visitor.send({"type": "transcript"})
    assert (await visitor.wait("transcript"))["sent"] is True
    await crash.bridge.kill()
    await visitor.close()

    visitor = await restart_and_resume(crash, visitors, token)
    await visitor.wait("ended")
    await asyncio.sleep(SETTLE_S)
    assert len(welcomes(visitor)) == 1
    [ended] = visitor.of("ended")
    assert ended["survey"] == {"question": "How was this chat?", "scale": 5}
    assert agent.texts(room, notice=True).count(WELCOME) == 1
    assert len([t for t in agent.texts(room, notice=True) if t.startswith("Chat ended")]) == 1
    assert [m.envelope.rcpt_tos for m in crash.smtp.handler.received] == [
        ["anna@example.com"]]


async def test_a_command_replayed_after_a_restart_runs_once(
        crashable: Crashable, agent: TestAgent, visitors) -> None:
    crash = crashable
    visitor, started, room = await start_chat(crash, visitors)
    conversation_id = started["conversation"]
    await agent.join(room)
    await visitor.wait("agent", lambda f: f["event"] == "joined")
    await crash.bridge.kill()

    # Written while the bridge is down: it reads it on catching up (sync position, archive).
    await agent.say(room, "!note hello")
    await crash.bridge.start()
    await notice(agent, room, "Note saved")
    # Killed again at once: the catch-up may be delivered a second time.
    await crash.bridge.kill()
    await crash.bridge.start()
    await asyncio.sleep(SETTLE_S)
    assert note_events(crash.db, conversation_id) == ["hello"]
    assert len([t for t in agent.texts(room, notice=True) if "Note saved" in t]) == 1


def forget_room(db: Path, conversation_id: str) -> list[tuple[str, str]]:
    """Make the disk what a kill between routing's mark and the room's opening leaves: the
    agent marked invited, no room stored. Returns the conversation's routing marks."""
    conn = sqlite3.connect(db)
    try:
        with conn:
            conn.execute("UPDATE conversations SET room = NULL WHERE id = ?", (conversation_id,))
        return conn.execute("SELECT agent_id, kind FROM routing_marks WHERE conversation_id = ?",
                            (conversation_id,)).fetchall()
    finally:
        conn.close()


# XMPP only: there the restarted bridge opens the room before the agent's presence arrives,
# so nobody is chosen for it and the stale mark is all routing has. On Matrix the presence
# is known by then and the agent is invited again with the room.
@pytest.mark.parametrize("messenger", ["xmpp"], indirect=True)
async def test_a_chat_killed_before_its_room_opened_is_still_offered(
        crashable: Crashable, agent: TestAgent, visitors) -> None:
    crash = crashable
    _visitor, started, room = await start_chat(crash, visitors)
    conversation_id = started["conversation"]
    await crash.bridge.kill()
    assert forget_room(crash.db, conversation_id) == [("alice", "invited")]

    agent.invites.clear()  # only an invitation from the restarted bridge counts
    await crash.bridge.start()
    await agent.until(lambda: room in agent.invites, timeout=15)


def sync_position(db: Path, value: str | None = None) -> str:
    """The Matrix backend's stored sync position; with `value`, set to it first."""
    conn = sqlite3.connect(db)
    try:
        if value is not None:
            conn.execute("UPDATE kv SET value = ? WHERE key = 'matrix:sync_token'", (value,))
            conn.commit()
        [(position,)] = conn.execute(
            "SELECT value FROM kv WHERE key = 'matrix:sync_token'").fetchall()
    finally:
        conn.close()
    return str(position)


@pytest.mark.parametrize("messenger", ["matrix"], indirect=True)
async def test_a_sync_batch_replayed_from_an_old_position_changes_nothing(
        crashable: Crashable, agent: TestAgent, visitors) -> None:
    """Matrix only (on XMPP the same is an archive read twice, in the kill tests): the bot's
    sync position put back to before a whole exchange, as a restored backup or a position
    saved late would leave it; every event of the exchange is delivered again."""
    crash = crashable
    visitor, started, room = await start_chat(crash, visitors)
    conversation_id = started["conversation"]
    await agent.join(room)
    await visitor.wait("agent", lambda f: f["event"] == "joined")
    early = sync_position(crash.db)
    agent_lines = [f"answer {n}" for n in range(5)]
    for n, text in enumerate(agent_lines):
        await agent.say(room, text)
        await visitor.say(f"question {n}")
    await agent.say(room, "!note replayed once")
    await notice(agent, room, "Note saved")
    await visitor.wait("message", lambda f: f["text"] == agent_lines[-1])
    await crash.bridge.kill()
    await visitor.close()
    assert sync_position(crash.db) != early  # the bridge had moved on: this is a replay
    sync_position(crash.db, early)

    visitor = await restart_and_resume(crash, visitors, started["token"])
    await agent.say(room, "after the replay")
    await visitor.wait("message", lambda f: f["text"] == "after the replay", timeout=30)
    await asyncio.sleep(SETTLE_S)
    seen = [f["text"] for f in visitor.of("message") if f["from"] == "agent"]
    assert seen == [*agent_lines, "after the replay"]  # each once, in order
    assert note_events(crash.db, conversation_id) == ["replayed once"]
    assert len([t for t in agent.texts(room, notice=True) if "Note saved" in t]) == 1
    questions = [t for t in agent.texts(room) if t.startswith("question")]
    assert questions == [f"question {n}" for n in range(5)]
