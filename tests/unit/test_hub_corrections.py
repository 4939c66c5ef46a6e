"""Agents' corrections and retractions on the project's fakes: the visitor's line changes in
place, a line taken back disappears, commands never leak, and the agents' audit view keeps
what happened (the real-server tests prove the backends' side)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from bridge.backends.base import AgentMessage, AgentRetracted
from bridge.core.models import RoomRef
from tests.fakes.hub import ALICE, Chat, HubHarness
from tests.unit.conftest import MakeHub
from tests.unit.test_files import png
from tests.unit.test_hub_files import agent_file, files_in

STRANGER = "@eve:example.org"


def correction(ring: HubHarness, room: RoomRef, of: AgentMessage, text: str) -> AgentMessage:
    return replace(ring.message(room, text), edited=True, replaces=of.event_id)


async def answered(ring: HubHarness) -> tuple[Chat, RoomRef, AgentMessage, int]:
    chat = await ring.start_chat()
    room = await ring.room_of(chat)
    line = await ring.agent_says(room, "Your order ships on Mondya")
    return chat, room, line, chat.sink.of("message")[-1]["seq"]


async def test_a_correction_changes_the_line_in_place(ring: HubHarness) -> None:
    chat, room, line, seq = await answered(ring)
    await ring.backend.emit(correction(ring, room, line, "Your order ships on Monday"))
    edit = chat.sink.last("edit")
    assert (edit["seq"], edit["text"]) == (seq, "Your order ships on Monday")
    assert not [t for t in chat.sink.texts("agent") if t.startswith("✎")]
    replayed = (await ring.resume(chat)).of("message")[-1]
    assert (replayed["seq"], replayed["text"], replayed["edited"]) == (
        seq, "Your order ships on Monday", True)


async def test_a_retraction_takes_the_line_back(ring: HubHarness) -> None:
    chat, room, line, seq = await answered(ring)
    await ring.backend.emit(AgentRetracted(room, STRANGER, line.event_id))
    assert chat.sink.of("delete") == []  # only configured agents
    await ring.backend.emit(AgentRetracted(room, ALICE, line.event_id))
    await ring.backend.emit(AgentRetracted(room, ALICE, line.event_id))  # a repeat
    assert chat.sink.of("delete") == [{"type": "delete", "seq": seq}]
    replayed = (await ring.resume(chat)).of("message")[-1]
    assert (replayed["deleted"], replayed["text"]) == (True, "")
    assert "Mondya" not in (ring.hub.parts.aftercare.transcript_for_token(chat.token) or "")


async def test_commands_never_leak_through_a_correction(ring: HubHarness) -> None:
    chat = await ring.start_chat()
    room = await ring.room_of(chat)
    note = await ring.agent_says(room, "!note he is the one from last week")
    before = len(chat.sink.frames)
    await ring.backend.emit(correction(ring, room, note, "!note he was here last week"))
    await ring.backend.emit(replace(ring.message(room, "!note a corrected unknown line"),
                                    edited=True, replaces="$unknown"))
    assert chat.sink.frames[before:] == []
    await ring.backend.emit(replace(ring.message(room, "typo fixed"), edited=True,
                                    replaces="$unknown"))
    assert chat.sink.texts("agent")[-1] == "✎ typo fixed"  # a line the visitor never got


async def test_the_visitor_keeps_what_they_saw_once_the_chat_ended(ring: HubHarness) -> None:
    chat, room, line, _seq = await answered(ring)
    await ring.hub.visitor_end(chat.id)
    await ring.backend.emit(correction(ring, room, line, "Your order ships on Monday"))
    await ring.backend.emit(AgentRetracted(room, ALICE, line.event_id))
    assert chat.sink.of("edit") == [] and chat.sink.of("delete") == []


async def test_the_agents_history_shows_corrections_and_retractions(ring: HubHarness) -> None:
    chat, room, line, _seq = await answered(ring)
    await ring.backend.emit(correction(ring, room, line, "Your order ships on Monday"))
    slip = await ring.agent_says(room, "Meant for another chat")
    await ring.backend.emit(AgentRetracted(room, ALICE, slip.event_id))
    await ring.hub.visitor_end(chat.id)
    ring.clock.advance(60)
    second = await ring.start_chat()
    [history] = await ring.command(await ring.room_of(second), "!history 1")
    assert "Alice: Your order ships on Monday [edited " in history
    assert "by alice, was: 'Your order ships on Mondya']" in history
    assert "[taken back " in history and "was: 'Meant for another chat']" in history


@pytest.fixture
async def files_ring(make_hub: MakeHub, tmp_path: Path) -> HubHarness:
    return await make_hub(files_in(tmp_path))


async def test_a_file_taken_back_is_no_longer_served(files_ring: HubHarness) -> None:
    ring = files_ring
    chat = await ring.start_chat()
    room = await ring.room_of(chat)
    ring.backend.media["mxc://example.org/label"] = png(4, 4)
    event = agent_file(ring, room, "mxc://example.org/label")
    await ring.backend.emit(event)
    file_id = chat.sink.last("message")["file"]["id"]
    assert ring.hub.parts.files.served(file_id, token=chat.token) is not None
    await ring.backend.emit(AgentRetracted(room, ALICE, event.event_id))
    assert ring.hub.parts.files.served(file_id, token=chat.token) is None
    replayed = (await ring.resume(chat)).of("message")[-1]
    assert replayed["deleted"] is True and "file" not in replayed
