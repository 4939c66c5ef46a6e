"""Agents' corrections and deletions through the Matrix backend on a real Synapse, driven
directly (no hub): an edited line arrives as an AgentMessage naming the line it corrects, a
redacted one as AgentRetracted (in Synapse's default room version, where `redacts` moved
into content, and in an older one), the bot's own redactions (draft previews) as nothing,
a redaction of a line from before a first start breaks nothing, and a line said and
redacted while the bot was away never comes in."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from nio import RoomCreateResponse, RoomRedactResponse

from bridge.backends.base import AgentRetracted
from bridge.core.models import RoomRef
from tests.conftest import Homeserver
from tests.integration.conftest import TestAgent
from tests.integration.matrix_bot import Bot, StartBot, agent_client

pytestmark = pytest.mark.usefixtures("require_synapse")



async def redact(agent: TestAgent, room: RoomRef, event_id: str) -> str:
    """The agent deletes a line as Element does; the redaction's own event id."""
    response = await agent_client(agent).client.room_redact(room, event_id, "sent too soon")
    assert isinstance(response, RoomRedactResponse), response
    return response.event_id


async def room_version(agent: TestAgent, room: RoomRef) -> str:
    create = await agent_client(agent).client.room_get_state_event(room, "m.room.create")
    return str(create.content.get("room_version", "1"))


# -- corrections -----------------------------------------------------------------------------


async def test_an_agents_correction_names_the_line_it_corrects(
    bot: Bot, room: RoomRef, matrix_agent: TestAgent, homeserver: Homeserver
) -> None:
    first = await agent_client(matrix_agent).say(room, "It ships tomorow")
    original = await bot.line(first)
    assert (original.edited, original.replaces) == (False, None)

    await agent_client(matrix_agent).correct(room, first, "It ships tomorrow")

    edit = await bot.until(lambda: next((m for m in bot.messages() if m.edited), None))
    assert edit.replaces == first
    assert edit.text == "It ships tomorrow"
    assert edit.event_id != first  # the edit's own event; the hub finds the line by replaces
    assert (edit.sender, edit.room, edit.thread) == (homeserver.agent_id, room, False)


async def test_a_correction_in_a_thread_stays_a_note(
    bot: Bot, room: RoomRef, matrix_agent: TestAgent
) -> None:
    root = await agent_client(matrix_agent).say(room, "Anna's order")
    note = await agent_client(matrix_agent).say_in_thread(room, root, "He called yesterday")
    assert (await bot.line(note)).thread

    await agent_client(matrix_agent).correct(room, note, "He called twice")

    edit = await bot.until(lambda: next((m for m in bot.messages() if m.edited), None))
    assert (edit.thread, edit.replaces, edit.text) == (True, note, "He called twice")


# -- deletions -------------------------------------------------------------------------------


async def test_an_agents_redaction_arrives_as_a_retraction(
    bot: Bot, room: RoomRef, matrix_agent: TestAgent, homeserver: Homeserver
) -> None:
    # Synapse's default room version has `redacts` in content (Synapse copies it to the
    # top, where nio reads it; without the copy, see tests/unit/test_matrix_edits.py).
    assert int(await room_version(matrix_agent, room)) >= 11
    line = await agent_client(matrix_agent).say(room, "Your code is 1234")
    await bot.line(line)

    await redact(matrix_agent, room, line)

    retracted = await bot.until(lambda: bot.retractions())
    assert retracted == [AgentRetracted(room, homeserver.agent_id, line)]


async def test_a_redaction_in_an_older_room_version_arrives_too(
    bot: Bot, matrix_agent: TestAgent, homeserver: Homeserver
) -> None:
    """Room version 10: `redacts` at the top of the event, where nio reads it."""
    created = await bot.backend._require_client().room_create(
        room_version="10", invite=[homeserver.agent_id])
    assert isinstance(created, RoomCreateResponse), created
    room = RoomRef(created.room_id)
    await agent_client(matrix_agent).join(room)
    assert await room_version(matrix_agent, room) == "10"
    line = await agent_client(matrix_agent).say(room, "Wrong customer, sorry")
    await bot.line(line)

    await redact(matrix_agent, room, line)

    assert await bot.until(lambda: bot.retractions()) == [
        AgentRetracted(room, homeserver.agent_id, line)]


async def test_the_bots_own_redactions_are_no_retraction(
    bot: Bot, room: RoomRef, matrix_agent: TestAgent
) -> None:
    notice = await bot.backend.post_notice(room, "Anna is typing…", key="n1")
    redacted = await bot.backend._require_client().room_redact(room, notice, "gone")
    assert isinstance(redacted, RoomRedactResponse), redacted
    await bot.backend.show_draft(room, "Hello, I")  # a draft preview, then its redaction
    await bot.backend.show_draft(room, "")
    await agent_client(matrix_agent).wait_text(room, "✍ Hello, I", notice=True)

    # An agent's line after them: once it is in, the sync went past the bot's redactions.
    await bot.line(await agent_client(matrix_agent).say(room, "Hi Anna"))

    assert bot.retractions() == []
    assert [m.text for m in bot.messages()] == ["Hi Anna"]


async def test_redacting_a_line_from_before_a_first_start_breaks_nothing(
    start_bot: StartBot, bot: Bot, room: RoomRef, matrix_agent: TestAgent,
    homeserver: Homeserver, tmp_path: Path
) -> None:
    """The bridge starts afresh (no sync position: the first sync skips the history): an
    agent deletes a line from before. The id is passed on (the hub knows no such line and
    drops it), and the backend goes on."""
    old = await agent_client(matrix_agent).say(room, "Before the restart")
    await bot.line(old)
    await bot.stop()
    fresh = await start_bot(tmp_path / "fresh.sqlite3")

    await redact(matrix_agent, room, old)
    after = await agent_client(matrix_agent).say(room, "After the restart")

    await fresh.line(after)
    assert fresh.retractions() == [AgentRetracted(room, homeserver.agent_id, old)]
    assert [m.event_id for m in fresh.messages()] == [after]


async def test_a_line_said_and_redacted_while_the_bot_was_away_is_never_shown(
    start_bot: StartBot, bot: Bot, room: RoomRef, matrix_agent: TestAgent,
    homeserver: Homeserver, tmp_path: Path
) -> None:
    """Back from where it stopped, the bot syncs the line already redacted (nio: a
    RedactedEvent): no text of it comes in, only the retraction, of an id the hub never
    stored."""
    before = await agent_client(matrix_agent).say(room, "Before going away")
    await bot.line(before)
    await bot.stop()
    # The stopped bot's long poll is still open on Synapse, which keeps the answer it
    # computes for a while (sync_response_cache_duration, 2 minutes) and gives it to the
    # same request again: this line ends it, so that the next ones are read afresh.
    await agent_client(matrix_agent).say(room, "Still there?")
    await asyncio.sleep(0.5)
    gone = await agent_client(matrix_agent).say(room, "Your code is 1234")
    await redact(matrix_agent, room, gone)
    after = await agent_client(matrix_agent).say(room, "Anyone there?")

    back = await start_bot(tmp_path / "livechat.sqlite3")

    await back.line(after)
    assert gone not in [m.event_id for m in back.messages()]
    assert all("1234" not in m.text for m in back.messages())
    assert back.retractions() == [AgentRetracted(room, homeserver.agent_id, gone)]
