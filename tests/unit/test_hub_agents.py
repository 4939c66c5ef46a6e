"""What agents do, through the backend's one callback: lines, typing, joins and leaves,
the waiting line, and events held back while the store refuses writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.backends.base import AgentTyping, HandlingDeferred
from bridge.core.models import RoomRef, Status
from bridge.core.protocol import ProtocolError
from bridge.store import Store, StoreUnavailable
from tests.fakes.hub import ALICE, BOB, HubHarness, eventually
from tests.unit.conftest import MakeHub


async def test_an_agent_line_reaches_the_visitor_once_even_when_delivered_twice(
        ring: HubHarness) -> None:
    chat = await ring.start_chat()
    room = await ring.room_of(chat)
    event = ring.message(room, "Hi Anna, how can I help?")
    await ring.backend.emit(event)
    await ring.backend.emit(event)  # a sync batch fetched again after a crash
    assert chat.sink.texts("agent") == ["Hi Anna, how can I help?"]
    line = chat.sink.of("message")[-1]
    assert (line["name"], line["seq"]) == ("Alice", 2)
    conversation = ring.conversation(chat)
    assert (conversation.status, conversation.agent_id) == (Status.ACTIVE, "alice")
    assert conversation.first_response_at == ring.clock()


async def test_lines_from_someone_who_is_not_an_agent_are_not_relayed(
        ring: HubHarness) -> None:
    chat = await ring.start_chat()
    room = await ring.room_of(chat)
    await ring.agent_says(room, "I am not staff", sender="@eve:example.org")
    await ring.agent_says(room, "!end", sender="@eve:example.org")
    assert chat.sink.texts("agent") == []
    assert ring.conversation(chat).status is Status.WAITING


async def test_a_correction_comes_as_a_new_marked_line_and_a_double_bang_as_a_literal(
        ring: HubHarness) -> None:
    chat = await ring.start_chat()
    room = await ring.room_of(chat)
    await ring.agent_says(room, "!!important: read this")
    edit = ring.message(room, "fixed typo")
    await ring.backend.emit(type(edit)(**{**edit.__dict__, "edited": True}))
    assert chat.sink.texts("agent") == ["!important: read this", "✎ fixed typo"]


async def test_agent_typing_reaches_the_visitor(ring: HubHarness) -> None:
    chat = await ring.start_chat()
    room = await ring.room_of(chat)
    await ring.backend.emit(AgentTyping(room, ALICE, "Alice", True))
    await ring.backend.emit(AgentTyping(room, ALICE, "Alice", False))
    assert chat.sink.of("typing") == [{"type": "typing", "name": "Alice", "active": True},
                                      {"type": "typing", "name": "Alice", "active": False}]


async def test_joins_and_leaves_show_as_agent_frames_once(ring: HubHarness) -> None:
    chat = await ring.start_chat()
    room = await ring.room_of(chat)
    await ring.join(room, ALICE)
    await ring.join(room, ALICE)  # a rejoin after a reconnect is not news
    assert [(f["event"], f["name"]) for f in chat.sink.of("agent")] == [("joined", "Alice")]
    assert ring.conversation(chat).status is Status.ACTIVE
    await ring.join(room, BOB)
    await ring.leave(room, BOB)
    assert [f["event"] for f in chat.sink.of("agent")] == ["joined", "joined", "left"]
    assert ring.conversation(chat).agent_id == "alice"


def one_seat(raw: dict) -> None:
    """One agent with room for one chat: the second visitor waits."""
    raw["agents"][0]["max_chats"] = 1
    raw["queues"][0]["agents"] = ["alice"]


async def test_a_full_agent_makes_the_next_visitor_wait_and_keeps_their_place(
        make_hub: MakeHub) -> None:
    ring = await make_hub(one_seat)
    first = await ring.start_chat("Anna")
    second = await ring.start_chat("Ben", "ben@example.com")
    assert second.sink.last("queue")["position"] == 2
    room = await ring.room_of(second)
    assert ring.backend.rooms[room].invite == ()  # nobody can take it yet
    await ring.say(second, "I'll wait")
    later_tab = await ring.resume(second)
    assert later_tab.last("queue")["position"] == 2

    # Alice answers Anna: Ben moves up, and is told so.
    await ring.join(await ring.room_of(first), ALICE)
    assert second.sink.last("queue")["position"] == 1
    assert ring.conversation(second).status is Status.WAITING


async def test_an_agent_walking_out_puts_the_chat_back_in_line_with_a_notice(
        make_hub: MakeHub) -> None:
    ring = await make_hub(one_seat)
    chat = await ring.start_chat("Anna")
    room = await ring.room_of(chat)
    await ring.join(room, ALICE)
    await ring.agent_says(room, "Hello!")
    queue_frames = len(chat.sink.of("queue"))
    await ring.leave(room, ALICE)

    conversation = ring.conversation(chat)
    assert (conversation.status, conversation.agent_id) == (Status.WAITING, None)
    assert chat.sink.of("agent")[-1]["event"] == "left"
    assert len(chat.sink.of("queue")) == queue_frames + 1
    assert chat.sink.last("queue")["position"] == 1
    assert "Alice left; the chat is back in the waiting line." in ring.backend.notices_in(room)


async def test_an_event_is_held_back_while_the_store_refuses_writes(
        ring: HubHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    chat = await ring.start_chat()
    room = await ring.room_of(chat)
    event = ring.message(room, "Sorry for the wait")

    def disk_full(*args: object, **kwargs: object) -> None:
        raise StoreUnavailable("database or disk is full")

    with monkeypatch.context() as patched:
        patched.setattr(ring.store, "append_item", disk_full)
        with pytest.raises(HandlingDeferred):
            await ring.backend.emit(event)
    assert chat.sink.texts("agent") == []
    await ring.backend.emit(event)  # the backend offers it again once the disk takes writes
    assert chat.sink.texts("agent") == ["Sorry for the wait"]


async def test_a_line_in_an_ended_chat_gets_a_notice_not_a_relay(ring: HubHarness) -> None:
    chat = await ring.start_chat()
    room = await ring.room_of(chat)
    await ring.hub.visitor_end(chat.id)
    notices = await ring.command(room, "Are you still there?")
    assert notices == ["This chat has ended; the visitor no longer sees new messages."]
    assert chat.sink.texts("agent") == []


def fill_disk(store: Store) -> int:
    """Let the database file grow no more (SQLITE_FULL on the next new page), as a full
    disk would; returns the limit to lift it again."""
    pages = int(store.db.execute("PRAGMA page_count").fetchone()[0])
    store.db.execute(f"PRAGMA max_page_count = {pages}")
    return pages


async def test_a_full_disk_holds_agent_lines_back_and_refuses_visitor_lines(
        make_hub: MakeHub, tmp_path: Path) -> None:
    ring = await make_hub(store=Store(tmp_path / "livechat.sqlite3"))
    chat = await ring.start_chat()
    room = await ring.room_of(chat)
    await ring.delivered(chat)
    long_line = " ".join(["Here is the whole answer."] * 200)  # needs new pages
    event = ring.message(room, long_line)
    pages = fill_disk(ring.store)
    with pytest.raises(HandlingDeferred):
        await ring.backend.emit(event)
    with pytest.raises(ProtocolError) as refused:
        await ring.say(chat, long_line)
    assert refused.value.code == "try_again"

    ring.store.db.execute(f"PRAGMA max_page_count = {pages * 100}")  # space freed
    await ring.backend.emit(event)
    assert chat.sink.texts("agent") == [long_line]


async def test_what_an_agent_does_while_the_room_is_being_opened_is_not_lost(
        ring: HubHarness) -> None:
    """The invitation goes out while the room is made: the agent's join and first line can
    come before the room is stored (seen at scale on Synapse). They wait, then count."""
    events = []

    async def agent_is_quick(room: RoomRef) -> None:
        ring.backend.while_opening = None
        await ring.join(room)
        await ring.agent_says(room, "Hi Anna, I'm here")
        events.append(room)

    ring.backend.while_opening = agent_is_quick
    chat = await ring.start_chat()
    room = await ring.room_of(chat)
    await eventually(lambda: chat.sink.of("agent") and chat.sink.texts("agent"))
    assert events == [room]
    assert [f["event"] for f in chat.sink.of("agent")] == ["joined"]
    assert chat.sink.texts("agent") == ["Hi Anna, I'm here"]
    assert ring.conversation(chat).status is Status.ACTIVE
    assert ring.conversation(chat).agent_id == "alice"
    assert "Only commands work here; try !help." not in ring.backend.notices_in(room)


async def test_a_held_event_the_store_cannot_take_yet_waits_for_the_next_turn(
        ring: HubHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    """The room is stored, but the disk refuses the agent's held line: the room's opening
    goes on, and the line comes through before the next event once the disk takes it."""
    def disk_full(*args: object, **kwargs: object) -> None:
        raise StoreUnavailable("database or disk is full")

    async def agent_is_quick(room: RoomRef) -> None:
        ring.backend.while_opening = None
        await ring.agent_says(room, "Hi Anna")
        monkeypatch.setattr(ring.store, "append_item", disk_full)

    ring.backend.while_opening = agent_is_quick
    chat = await ring.start_chat()
    room = await ring.room_of(chat)
    assert chat.sink.texts("agent") == []
    monkeypatch.undo()
    await ring.agent_says(room, "Are you there?")
    assert chat.sink.texts("agent") == ["Hi Anna", "Are you there?"]
