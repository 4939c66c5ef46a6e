"""The visitor edits or deletes their last line, on the project's fakes: every connection of
the chat sees the change, the room gets it after the line (retried, never doubled, across a
restart), the store keeps what the line was, and every refusal changes nothing (the
real-server tests prove the backends' side)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.backends.base import (
    BackendError,
    BackendUnavailable,
    Connected,
    PostedLine,
    RoomGone,
)
from bridge.core.line_edits import DeleteFrame, EditFrame
from bridge.core.models import ItemChange
from bridge.core.protocol import ProtocolError
from bridge.store import Store
from tests.fakes.backend import LineChange, RecordingBackend
from tests.fakes.hub import Chat, HubHarness, eventually
from tests.unit.conftest import MakeHub
from tests.unit.test_files import png
from tests.unit.test_hub_files import files_in, upload


async def edit(ring: HubHarness, chat: Chat, seq: int, text: str) -> None:
    await ring.hub.visitor_change(chat.id, EditFrame(seq, text), chat.sink)


async def delete(ring: HubHarness, chat: Chat, seq: int) -> None:
    await ring.hub.visitor_change(chat.id, DeleteFrame(seq), chat.sink)


async def sent(ring: HubHarness, chat: Chat) -> None:
    """Wait until the outbox made every change of the chat in the room."""
    await eventually(lambda: not ring.store.changes_to_send(chat.id))


async def written(ring: HubHarness, text: str = "Helo, where is my order?"
                  ) -> tuple[Chat, int, PostedLine]:
    """A chat whose visitor line reached the room; with the line as the room has it."""
    chat = await ring.start_chat()
    seq = await ring.say(chat, text, client_id="m1")
    await ring.delivered(chat)
    item = ring.store.item_at(chat.id, seq)
    assert item is not None and item.event_id and item.txn_id
    return chat, seq, PostedLine(item.event_id, item.txn_id)


async def test_an_edit_reaches_every_tab_and_the_room(ring: HubHarness) -> None:
    chat, seq, posted = await written(ring)
    other_tab = await ring.resume(chat)
    ring.clock.advance(30)
    await edit(ring, chat, seq, "Hello, where is my order?")
    frame = {"type": "edit", "seq": seq, "text": "Hello, where is my order?",
             "ts": ring.clock()}
    assert chat.sink.of("edit") == [frame] and other_tab.of("edit") == [frame]
    await sent(ring, chat)
    [change] = ring.backend.line_changes
    room = await ring.room_of(chat)
    assert change == LineChange(room, "edit", posted, "Hello, where is my order?",
                                f"{posted.key}.edit1")
    replayed = (await ring.resume(chat)).of("message")[-1]
    assert (replayed["seq"], replayed["text"], replayed["edited"]) == (
        seq, "Hello, where is my order?", True)
    assert ring.store.item_changes(chat.id) == [ItemChange(
        seq, ring.clock(), "visitor", "edit", "Helo, where is my order?", change.key)]


async def test_a_delete_takes_the_line_back_everywhere(ring: HubHarness) -> None:
    chat, seq, posted = await written(ring, "My card number is 4111")
    other_tab = await ring.resume(chat)
    await delete(ring, chat, seq)
    assert chat.sink.of("delete") == other_tab.of("delete") == [{"type": "delete", "seq": seq}]
    await sent(ring, chat)
    assert [(c.kind, c.line) for c in ring.backend.line_changes] == [("retract", posted)]
    replayed = (await ring.resume(chat)).of("message")[-1]
    assert (replayed["deleted"], replayed["text"]) == (True, "")
    transcript = ring.hub.parts.aftercare.transcript_for_token(chat.token) or ""
    assert "4111" not in transcript and "Anna:" not in transcript


async def test_repeats_are_answered_and_change_nothing_more(ring: HubHarness) -> None:
    chat, seq, _posted = await written(ring)
    other_tab = await ring.resume(chat)
    await edit(ring, chat, seq, "Helo, where is my order?")  # what it says already
    assert chat.sink.last("message")["seq"] == seq and "edited" not in chat.sink.last("message")
    await edit(ring, chat, seq, "Hello")
    await edit(ring, chat, seq, "Hello")
    assert [f["text"] for f in chat.sink.of("edit")] == ["Hello", "Hello"]
    assert len(other_tab.of("edit")) == 1  # the repeat went to its sender only
    await delete(ring, chat, seq)
    ring.clock.advance(3600)
    await ring.hub.visitor_end(chat.id)
    await delete(ring, chat, seq)  # after the window and the end: still fine
    assert len(chat.sink.of("delete")) == 2 and len(other_tab.of("delete")) == 1
    await sent(ring, chat)
    assert [c.kind for c in ring.store.item_changes(chat.id)] == ["edit", "delete"]
    assert len(ring.backend.attempts_of("retract_line")) == 1


@pytest.mark.parametrize("case", ["too_late", "not_last", "agent_line", "other_chat",
                                  "ended", "deleted_edit", "no_line"])
async def test_refusals_change_nothing(ring: HubHarness, case: str) -> None:
    chat, seq, _posted = await written(ring)
    other = await ring.start_chat(name="Bea", email="bea@example.com")
    await ring.say(other, "Bea's line")
    other_seq = await ring.say(other, "Bea's last line")  # no seq of this chat
    code, target = "not_editable", seq
    if case == "too_late":
        ring.clock.advance(121)
        code = "too_late"
    elif case == "not_last":
        await ring.say(chat, "and another thing")
    elif case == "agent_line":
        await ring.agent_says(await ring.room_of(chat), "Let me check")
        target = chat.sink.last("message")["seq"]
    elif case == "other_chat":
        target = other_seq
    elif case == "ended":
        await ring.hub.visitor_end(chat.id)
        code = "ended"
    elif case == "deleted_edit":
        await delete(ring, chat, seq)
    elif case == "no_line":
        chat = await ring.start_chat(name="Cy", email="cy@example.com")
        target = 1
    await ring.delivered(chat)
    before = (list(chat.sink.frames), ring.store.item_changes(chat.id),
              list(ring.backend.attempts))
    for change in (EditFrame(target, "changed"), DeleteFrame(target)):
        if case == "deleted_edit" and isinstance(change, DeleteFrame):
            continue  # a repeat: answered as made
        with pytest.raises(ProtocolError) as refused:
            await ring.hub.visitor_change(chat.id, change, chat.sink)
        assert refused.value.code == code
    assert (chat.sink.frames, ring.store.item_changes(chat.id),
            ring.backend.attempts) == before
    untouched = ring.store.item_at(other.id, other_seq)
    assert untouched is not None and untouched.edited_at is None


async def test_a_file_can_be_deleted_not_edited(make_hub: MakeHub, tmp_path: Path) -> None:
    ring = await make_hub(files_in(tmp_path))
    chat, line_seq, _posted = await written(ring)
    seq = await upload(ring, chat, png(4, 4))
    await ring.delivered(chat)
    with pytest.raises(ProtocolError) as refused:
        await edit(ring, chat, seq, "shot.png")
    assert refused.value.code == "not_editable"
    with pytest.raises(ProtocolError):
        await delete(ring, chat, line_seq)  # the file came after it
    file_id = chat.sink.last("message")["file"]["id"]
    await delete(ring, chat, seq)
    assert chat.sink.last("delete") == {"type": "delete", "seq": seq}
    assert ring.hub.parts.files.served(file_id, token=chat.token) is None
    await sent(ring, chat)
    assert [c.kind for c in ring.backend.line_changes] == ["retract"]


async def test_changes_off_refuse_everything(make_hub: MakeHub) -> None:
    ring = await make_hub(lambda raw: raw.update(chats={"visitor_edit_seconds": 0}))
    chat, seq, _posted = await written(ring)
    for change in (EditFrame(seq, "x"), DeleteFrame(seq)):
        with pytest.raises(ProtocolError) as refused:
            await ring.hub.visitor_change(chat.id, change, chat.sink)
        assert refused.value.code == "not_editable"


async def test_a_change_waits_for_its_line_and_goes_after_it(ring: HubHarness) -> None:
    chat = await ring.start_chat()
    await ring.delivered(chat)
    ring.backend.fail("post_text", BackendUnavailable("down"), times=1)
    seq = await ring.say(chat, "Helo")
    await eventually(lambda: ring.backend.attempts_of("post_text"))
    await edit(ring, chat, seq, "Hallo")
    await edit(ring, chat, seq, "Hello")  # two while down: only the last goes out
    await ring.backend.emit(Connected())
    await ring.delivered(chat)
    await sent(ring, chat)
    methods = [a.method for a in ring.backend.attempts if not a.error]
    assert methods[-2:] == ["post_text", "edit_line"]
    [change] = ring.backend.line_changes
    assert change.text == "Hello" and change.key.endswith(".edit2")


async def test_a_change_the_messenger_refuses_for_now_is_retried_once_through(
        ring: HubHarness) -> None:
    chat, seq, _posted = await written(ring)
    ring.backend.fail("retract_line", BackendUnavailable("502"), times=1)
    await delete(ring, chat, seq)
    await eventually(lambda: ring.backend.attempts_of("retract_line"))
    await ring.backend.emit(Connected())
    await sent(ring, chat)
    attempts = ring.backend.attempts_of("retract_line")
    assert [a.error for a in attempts] == ["BackendUnavailable", ""]
    assert len({a.key for a in attempts}) == 1
    assert len(ring.backend.line_changes) == 1


async def test_a_change_refused_for_good_does_not_hold_up_later_lines(
        ring: HubHarness) -> None:
    chat, seq, _posted = await written(ring)
    ring.backend.fail("edit_line", BackendError("400 bad event"))
    await edit(ring, chat, seq, "Hello")
    await ring.say(chat, "next")
    await ring.delivered(chat)
    await sent(ring, chat)
    assert ring.backend.texts_in(await ring.room_of(chat), "text")[-1] == "next"


async def test_a_line_deleted_before_the_room_had_it_never_shows_its_text(
        ring: HubHarness) -> None:
    chat = await ring.start_chat()
    room = await ring.room_of(chat)
    await ring.delivered(chat)
    ring.backend.fail("post_text", BackendUnavailable("down"), times=1)
    seq = await ring.say(chat, "My password is hunter2")
    await eventually(lambda: ring.backend.attempts_of("post_text"))
    await delete(ring, chat, seq)
    await ring.backend.emit(Connected())
    await ring.delivered(chat)
    await sent(ring, chat)
    [post] = ring.backend.posts_in(room, "text")
    assert "hunter2" not in post.text
    [change] = ring.backend.line_changes
    assert (change.kind, change.line.event_id) == ("retract", post.event_id)


async def test_a_change_not_sent_before_a_restart_goes_after_it(
        make_hub: MakeHub, tmp_path: Path) -> None:
    store = Store(tmp_path / "bridge.sqlite3")
    first = await make_hub(store=store)
    chat, seq, posted = await written(first)
    first.backend.fail("edit_line", BackendUnavailable("down"), times=100)
    await edit(first, chat, seq, "Hello")
    await eventually(lambda: first.backend.attempts_of("edit_line"))
    await first.hub.stop()
    backend = RecordingBackend()
    second = await make_hub(store=store, backend=backend)
    await sent(second, chat)
    [change] = backend.line_changes
    assert (change.line, change.text) == (posted, "Hello")


async def test_the_agents_history_shows_what_the_visitor_changed(ring: HubHarness) -> None:
    chat, seq, _posted = await written(ring)
    await edit(ring, chat, seq, "Hello, where is my order?")
    await ring.hub.visitor_end(chat.id)
    ring.clock.advance(60)
    second = await ring.start_chat()
    [history] = await ring.command(await ring.room_of(second), "!history 1")
    assert "Anna: Hello, where is my order? [edited " in history
    assert "by the visitor, was: 'Helo, where is my order?']" in history


async def test_a_change_in_a_room_that_is_gone_is_let_go(ring: HubHarness) -> None:
    chat, seq, _posted = await written(ring)
    ring.backend.fail("retract_line", RoomGone("the room was destroyed"))
    await delete(ring, chat, seq)
    await sent(ring, chat)  # the line went with its room: nothing left to take back
    assert ring.backend.line_changes == []
    assert chat.sink.last("delete") == {"type": "delete", "seq": seq}
