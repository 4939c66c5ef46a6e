"""Files through the hub ring on the project's fakes: a visitor's upload is a line of the
timeline (seq, client_id, the room), an agent's file is fetched and passed on, and files are
served only to their conversation (the real-server tests prove the same through the wiring)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bridge.backends.base import AgentFile, BackendUnavailable, FileRefused, HandlingDeferred
from bridge.core.models import RoomRef, Status
from bridge.core.untrusted import ProtocolError
from bridge.files import Files
from tests.fakes.hub import ALICE, Chat, HubHarness, Tweak
from tests.unit.conftest import MakeHub
from tests.unit.test_files import png


def files_in(tmp_path: Path, **table: Any) -> Tweak:
    def tweak(raw: dict[str, Any]) -> None:
        raw["storage"] = {"files": str(tmp_path)}
        raw["files"] = table
    return tweak


@pytest.fixture
async def ring(make_hub: MakeHub, tmp_path: Path) -> HubHarness:
    return await make_hub(files_in(tmp_path))


def stored(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file()]


def files(ring: HubHarness) -> Files:
    return ring.hub.parts.files


async def body(content: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(content), 4096):
        yield content[start:start + 4096]


async def upload(ring: HubHarness, chat: Chat, content: bytes, name: str = "shot.png",
                 client_id: str = "up-1") -> int:
    item = await files(ring).visitor_file(ring.conversation(chat), client_id, name,
                                          body(content))
    return item.seq


def agent_file(ring: HubHarness, room: RoomRef, url: str, name: str = "label.png",
               event_id: str | None = None) -> AgentFile:
    return AgentFile(room=room, sender=ALICE, sender_name="Alice", name=name, url=url,
                     mimetype="image/png", size=None, event_id=event_id or ring.event_id(),
                     ts=ring.clock())


async def test_a_visitors_file_is_a_line_posted_to_the_room_with_its_bytes(
        ring: HubHarness) -> None:
    chat = await ring.start_chat()
    room = await ring.room_of(chat)
    content = png(40, 30)
    seq = await upload(ring, chat, content, "C:\\Users\\anna\\screen.png")
    frame = chat.sink.last("message")
    assert (frame["seq"], frame["from"], frame["text"], frame["client_id"]) == (
        seq, "visitor", "screen.png", "up-1")
    assert {k: frame["file"][k] for k in ("name", "size", "type", "width", "height")} == {
        "name": "screen.png", "size": len(content), "type": "image/png", "width": 40,
        "height": 30}
    await ring.delivered(chat)
    [(posted_room, file, posted, key)] = ring.backend.files
    assert (posted_room, posted, key) == (room, content, f"lcb.{chat.id}.{seq}")
    assert (file.name, file.mimetype, file.width, file.height) == ("screen.png", "image/png",
                                                                    40, 30)
    assert file.link.startswith(f"https://chat.example.com/v1/files/{frame['file']['id']}?key=")


async def test_a_retried_upload_gets_its_first_seq_and_is_posted_once(ring: HubHarness) -> None:
    chat = await ring.start_chat()
    first = await upload(ring, chat, png(4, 4), client_id="same")
    earlier = files(ring).earlier_upload(ring.conversation(chat), "same")
    assert earlier is not None and earlier.seq == first
    assert await upload(ring, chat, png(4, 4), client_id="same") == first
    await ring.delivered(chat)
    assert len(ring.backend.files) == 1


async def test_a_file_of_a_kind_not_allowed_changes_nothing(ring: HubHarness,
                                                            tmp_path: Path) -> None:
    chat = await ring.start_chat()
    before = ring.conversation(chat).last_seq
    with pytest.raises(ProtocolError) as refused:
        await upload(ring, chat, b"<html><script>alert(1)</script>", "cat.png")
    assert refused.value.code == "bad_type"
    with pytest.raises(ProtocolError) as empty:
        await upload(ring, chat, b"", "empty.txt")
    assert empty.value.code == "empty"
    assert ring.conversation(chat).last_seq == before
    assert stored(tmp_path) == []


async def test_uploads_are_refused_before_reading_when_ended_too_large_or_too_many(
        make_hub: MakeHub, tmp_path: Path) -> None:
    ring = await make_hub(files_in(tmp_path, max_bytes=1000, per_hour=2))
    chat = await ring.start_chat()
    conversation = ring.conversation(chat)
    refusal = files(ring).refusal
    assert refusal(conversation, 1001).code == "too_large"  # type: ignore[union-attr]
    assert refusal(conversation, 0).code == "empty"  # type: ignore[union-attr]
    assert refusal(conversation, 1000) is None
    with pytest.raises(ProtocolError) as too_large:  # a body that grows past what it said
        await upload(ring, chat, png(4, 4) + b"\x00" * 1000)
    assert too_large.value.code == "too_large"
    await upload(ring, chat, png(4, 4), client_id="a")
    await upload(ring, chat, png(5, 5), client_id="b")
    assert refusal(conversation, 10).code == "rate_limited"  # type: ignore[union-attr]
    ring.clock.advance(3601)
    assert refusal(conversation, 10) is None
    await ring.hub.visitor_end(chat.id)
    assert refusal(ring.conversation(chat), 10).code == "ended"  # type: ignore[union-attr]


async def test_an_agents_file_is_fetched_and_shown_to_the_visitor(ring: HubHarness) -> None:
    chat = await ring.start_chat()
    room = await ring.room_of(chat)
    content = png(8, 6)
    ring.backend.media["mxc://example.org/abc"] = content
    event = agent_file(ring, room, "mxc://example.org/abc", "label.png")
    await ring.backend.emit(event)
    await ring.backend.emit(event)  # delivered again (a sync replayed): fetched once
    frame = chat.sink.last("message")
    assert (frame["from"], frame["name"], frame["text"]) == ("agent", "Alice", "label.png")
    assert (frame["file"]["type"], frame["file"]["width"]) == ("image/png", 8)
    assert ring.backend.calls["fetch_file"] == 1
    assert ring.conversation(chat).status is Status.ACTIVE  # the chat is Alice's now
    served = files(ring).served(frame["file"]["id"], token=chat.token)
    assert served is not None and served.path.read_bytes() == content


async def test_a_file_is_served_only_to_its_conversation_or_its_links_key(
        ring: HubHarness) -> None:
    anna = await ring.start_chat("Anna")
    ben = await ring.start_chat("Ben", "ben@example.com")
    await upload(ring, anna, png(3, 3))
    file_id = anna.sink.last("message")["file"]["id"]
    service = files(ring)
    assert service.served(file_id, token=anna.token) is not None
    assert service.served(file_id, token=ben.token) is None
    assert service.served(file_id, token="") is None
    key = service.link(file_id).rsplit("key=", 1)[1]
    assert service.served(file_id, key=key) is not None
    assert service.served(file_id, key=key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    assert service.served(ben.sink.last("started")["conversation"].ljust(32, "0"),
                          token=anna.token) is None


async def test_the_transcript_lists_files_with_their_links(ring: HubHarness) -> None:
    chat = await ring.start_chat()
    await upload(ring, chat, png(3, 3), "receipt.png")
    file_id = chat.sink.last("message")["file"]["id"]
    text = ring.hub.parts.aftercare.transcript_for_token(chat.token)
    assert text is not None
    assert "Anna: [file] receipt.png (" in text
    assert f"https://chat.example.com/v1/files/{file_id}?key=" in text


async def test_an_agents_file_the_visitor_cannot_get_is_reported_to_the_agents(
        make_hub: MakeHub, tmp_path: Path) -> None:
    ring = await make_hub(files_in(tmp_path, max_bytes=100))
    chat = await ring.start_chat()
    room = await ring.room_of(chat)
    ring.backend.media["mxc://example.org/big"] = png(50, 50)
    before = len(chat.sink.of("message"))
    await ring.backend.emit(agent_file(ring, room, "mxc://example.org/big", "big.png"))
    await ring.backend.emit(agent_file(ring, room, "mxc://example.org/gone", "gone.pdf"))
    notices = ring.backend.notices_in(room)
    assert "The visitor did not get big.png: larger than 100 bytes." in notices
    assert any(n.startswith("The visitor did not get gone.pdf: ") for n in notices)
    assert len(chat.sink.of("message")) == before
    assert stored(tmp_path) == []


async def test_an_agents_file_waits_while_the_server_cannot_be_reached(
        ring: HubHarness) -> None:
    chat = await ring.start_chat()
    room = await ring.room_of(chat)
    ring.backend.media["mxc://example.org/later"] = png(2, 2)
    ring.backend.fail("fetch_file", BackendUnavailable("homeserver down"))
    event = agent_file(ring, room, "mxc://example.org/later")
    with pytest.raises(HandlingDeferred):
        await ring.backend.emit(event)
    await ring.backend.emit(event)  # offered again by the backend: now it goes through
    assert chat.sink.last("message")["file"]["width"] == 2


async def test_a_file_into_an_ended_chat_is_not_fetched(ring: HubHarness) -> None:
    chat = await ring.start_chat()
    room = await ring.room_of(chat)
    await ring.hub.visitor_end(chat.id)
    await ring.backend.emit(agent_file(ring, room, "mxc://example.org/x", "late.pdf"))
    assert "This chat has ended; the visitor did not get late.pdf." in \
        ring.backend.notices_in(room)
    assert ring.backend.calls["fetch_file"] == 0


async def test_a_file_the_messenger_refuses_becomes_a_link_and_holds_up_nothing(
        ring: HubHarness) -> None:
    chat = await ring.start_chat()
    room = await ring.room_of(chat)
    ring.backend.fail("post_file", FileRefused("the homeserver does not take files of 1 GB"))
    await upload(ring, chat, png(6, 6), "huge.png")
    await ring.say(chat, "Did you get it?")
    await ring.delivered(chat)
    [notice] = [n for n in ring.backend.notices_in(room) if "huge.png" in n]
    assert "which the server did not take (the homeserver does not take files" in notice
    assert "https://chat.example.com/v1/files/" in notice
    assert ring.backend.texts_in(room, "text") == ["Did you get it?"]
