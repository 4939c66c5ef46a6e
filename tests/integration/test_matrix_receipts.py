"""Read states through the Matrix backend on a real Synapse, driven directly (no hub): an
agent's read receipt on a visitor line arrives as AgentRead, the bot's read marker on an
agent line is what an independent client of the agent sees, it never moves back, a refused
one is only logged, and a private receipt tells nothing."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from nio import ReceiptType

from bridge.backends.base import AgentMessage, AgentRead
from bridge.core.models import RoomRef
from tests.conftest import Homeserver
from tests.integration.conftest import TestAgent
from tests.integration.matrix_bot import Bot, agent_client

pytestmark = pytest.mark.usefixtures("require_synapse")



async def receipts_seen(homeserver: Homeserver, room: RoomRef) -> dict[str, Any]:
    """The room's receipts as a fresh client of the agent gets them (an initial sync with
    the HTTP API, no nio): {event id: {receipt type: {user: {"ts": ..., ...}}}}."""
    sync_filter = {"presence": {"not_types": ["*"]}, "account_data": {"not_types": ["*"]},
                   "room": {"rooms": [room], "timeline": {"limit": 0},
                            "state": {"not_types": ["*"]},
                            "ephemeral": {"types": ["m.receipt"]}}}
    url = (f"{homeserver.url}/_matrix/client/v3/sync?timeout=0"
           f"&filter={quote(json.dumps(sync_filter))}")
    headers = {"Authorization": f"Bearer {homeserver.agent_token}"}
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as response:
        assert response.status == 200, await response.text()
        body = await response.json()
    joined = body.get("rooms", {}).get("join", {}).get(room, {})  # absent: nothing to tell
    seen: dict[str, Any] = {}
    for event in joined.get("ephemeral", {}).get("events", []):
        if event["type"] == "m.receipt":
            for event_id, kinds in event["content"].items():
                for kind, users in kinds.items():
                    seen.setdefault(event_id, {}).setdefault(kind, {}).update(users)
    return seen


async def bots_read_receipt(homeserver: Homeserver, room: RoomRef) -> list[tuple[str, Any]]:
    """(event id, receipt data) of the bot's public receipts in the room."""
    return [(event_id, kinds["m.read"][homeserver.bot_id])
            for event_id, kinds in (await receipts_seen(homeserver, room)).items()
            if homeserver.bot_id in kinds.get("m.read", {})]


async def agent_reads_up_to(agent: TestAgent, room: RoomRef, event_id: str,
                            kind: ReceiptType = ReceiptType.read) -> None:
    """The agent's client marks the room read there, as Element does (thread "main")."""
    response = await agent_client(agent).client.update_receipt_marker(room, event_id, kind)
    assert not hasattr(response, "status_code"), response


# -- agents' receipts in ---------------------------------------------------------------------


async def test_an_agents_read_receipt_on_a_visitor_line_arrives_as_agent_read(
    bot: Bot, room: RoomRef, matrix_agent: TestAgent, homeserver: Homeserver
) -> None:
    first = await bot.backend.post_text(room, "Hello, my order is late", key="r1")
    second = await bot.backend.post_text(room, "Order 4711", key="r2")
    await agent_client(matrix_agent).wait_text(room, "Order 4711")

    await agent_reads_up_to(matrix_agent, room, second)

    read = await bot.until(lambda: next(iter(bot.reads()), None))
    assert read == AgentRead(room, homeserver.agent_id, second)
    assert first not in [r.event_id for r in bot.reads()]


async def test_an_unthreaded_receipt_counts_too(
    bot: Bot, room: RoomRef, matrix_agent: TestAgent, homeserver: Homeserver
) -> None:
    """Clients without threads send a receipt without thread_id (here with read_markers)."""
    line = await bot.backend.post_text(room, "Are you there?", key="u1")
    response = await agent_client(matrix_agent).client.room_read_markers(room, line, line)
    assert not hasattr(response, "status_code"), response

    assert await bot.until(lambda: bot.reads()) == [AgentRead(room, homeserver.agent_id, line)]


async def test_a_private_receipt_tells_nothing(
    bot: Bot, room: RoomRef, matrix_agent: TestAgent, homeserver: Homeserver
) -> None:
    privately = await bot.backend.post_text(room, "First", key="p1")
    publicly = await bot.backend.post_text(room, "Second", key="p2")

    await agent_reads_up_to(matrix_agent, room, privately, ReceiptType.read_private)
    await agent_reads_up_to(matrix_agent, room, publicly)  # a later sync to wait for

    await bot.until(lambda: any(r.event_id == publicly for r in bot.reads()))
    assert bot.reads() == [AgentRead(room, homeserver.agent_id, publicly)]


# -- the bot's read marker out ---------------------------------------------------------------


async def agent_line(bot: Bot, agent: TestAgent, room: RoomRef, text: str) -> str:
    event_id = await agent_client(agent).say(room, text)
    await bot.until(lambda: any(isinstance(e, AgentMessage) and e.event_id == event_id
                                for e in bot.events))
    return event_id


async def test_mark_read_shows_the_bots_public_receipt_to_the_agent(
    bot: Bot, room: RoomRef, matrix_agent: TestAgent, homeserver: Homeserver
) -> None:
    line = await agent_line(bot, matrix_agent, room, "Let me check that for you")

    await bot.backend.mark_read(room, line)

    [(event_id, receipt)] = await bots_read_receipt(homeserver, room)
    assert event_id == line
    assert "thread_id" not in receipt  # unthreaded: the whole room is read up to there
    # The bot's own receipt comes back in its sync but is no AgentRead; the agent's receipt
    # after it is (and shows the sync went past the bot's).
    await agent_reads_up_to(matrix_agent, room, line)
    await bot.until(lambda: bot.reads())
    assert bot.reads() == [AgentRead(room, homeserver.agent_id, line)]


async def test_the_read_marker_never_moves_back(
    bot: Bot, room: RoomRef, matrix_agent: TestAgent, homeserver: Homeserver
) -> None:
    older = await agent_line(bot, matrix_agent, room, "One moment")
    newer = await agent_line(bot, matrix_agent, room, "Found it: it ships today")

    await bot.backend.mark_read(room, newer)
    await bot.backend.mark_read(room, older)  # a late report of an earlier line
    await bot.backend.mark_read(room, newer)

    assert [e for e, _ in await bots_read_receipt(homeserver, room)] == [newer]


async def test_a_refused_read_marker_is_only_logged(
    bot: Bot, room: RoomRef, caplog: pytest.LogCaptureFixture, homeserver: Homeserver
) -> None:
    await bot.backend.mark_read(room, "$NoSuchEventHere")

    assert "read marker in" in caplog.text and "$NoSuchEventHere" in caplog.text
    assert await bots_read_receipt(homeserver, room) == []
