"""Matrix threads in a conversation room are the agents' side conversation: kept as notes,
never sent to the visitor, edits of them neither."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

from bridge.backends.matrix_wire import THREAD_MEMORY, Threads
from tests.fakes.hub import HubHarness


def event(event_id: str, relates: dict[str, str] | None = None) -> SimpleNamespace:
    content = {"body": "x", "m.relates_to": relates} if relates else {"body": "x"}
    return SimpleNamespace(event_id=event_id, source={"content": content})


def test_thread_replies_and_their_edits_are_known_as_such() -> None:
    threads = Threads()
    assert not threads.in_thread(event("$plain"))
    assert threads.in_thread(event("$t1", {"rel_type": "m.thread", "event_id": "$root"}))
    assert threads.in_thread(event("$e1", {"rel_type": "m.replace", "event_id": "$t1"}))
    assert not threads.in_thread(event("$e2", {"rel_type": "m.replace", "event_id": "$plain"}))


def test_the_memory_of_threads_is_bounded() -> None:
    threads = Threads()
    for n in range(THREAD_MEMORY + 1):
        threads.in_thread(event(f"$t{n}", {"rel_type": "m.thread", "event_id": "$root"}))
    assert not threads.in_thread(event("$e", {"rel_type": "m.replace", "event_id": "$t0"}))
    assert threads.in_thread(event("$e", {"rel_type": "m.replace", "event_id": "$t1"}))


async def test_a_thread_reply_is_a_note_and_never_reaches_the_visitor(ring: HubHarness) -> None:
    chat = await ring.start_chat()
    room = await ring.room_of(chat)
    before = len(chat.sink.of("message"))
    event_ = replace(ring.message(room, "He called yesterday too"), thread=True)
    await ring.backend.emit(event_)
    await ring.backend.emit(event_)  # delivered again: one note
    assert ring.backend.notices_in(room)[-1] == "📝 Note saved (agents only): He called " \
        "yesterday too"
    assert len(chat.sink.of("message")) == before
    notes = [e for e in ring.store.events(chat.id) if e["kind"] == "note"]
    assert [n["detail"] for n in notes] == ["He called yesterday too"]
    edited = replace(ring.message(room, "He called twice"), thread=True, edited=True)
    await ring.backend.emit(edited)
    assert len(chat.sink.of("message")) == before
