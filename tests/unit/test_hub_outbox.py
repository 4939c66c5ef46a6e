"""The outbox on the recording backend: each retry class, and a room that disappears."""

from __future__ import annotations

import asyncio

from bridge.backends.base import (
    BackendError,
    BackendUnavailable,
    Connected,
    RateLimited,
    RoomGone,
)
from tests.fakes.hub import ALICE, HubHarness, eventually
from tests.unit.conftest import MakeHub


async def test_an_unavailable_server_gets_the_same_key_again_after_a_reconnect(
        ring: HubHarness) -> None:
    chat = await ring.start_chat()
    room = await ring.room_of(chat)
    await ring.delivered(chat)
    ring.backend.fail("post_text", BackendUnavailable("502 from the proxy"), times=2)
    await ring.say(chat, "Are you there?")
    posts = ring.backend.attempts_of
    # Each backoff (0.5 s, then 1 s) is cut short when the backend is connected again.
    await eventually(lambda: len(posts("post_text")) == 1)
    await ring.backend.emit(Connected())
    await eventually(lambda: len(posts("post_text")) == 2)
    await ring.backend.emit(Connected())
    await ring.delivered(chat)
    attempts = ring.backend.attempts_of("post_text")
    assert [a.error for a in attempts] == ["BackendUnavailable", "BackendUnavailable", ""]
    assert {a.key for a in attempts} == {f"lcb.{chat.id}.2"}
    assert ring.backend.texts_in(room, "text") == ["Are you there?"]


async def test_a_rate_limit_is_waited_out_for_as_long_as_the_server_asked(
        ring: HubHarness) -> None:
    chat = await ring.start_chat()
    await ring.delivered(chat)
    ring.backend.fail("post_text", RateLimited(0.15))
    loop = asyncio.get_running_loop()
    asked_at = loop.time()
    await ring.say(chat, "Slowly")
    await ring.delivered(chat)
    first, second = ring.backend.attempts_of("post_text")
    assert first.error == "RateLimited" and second.error == ""
    assert first.key == second.key
    assert loop.time() - asked_at >= 0.15


async def test_a_refused_post_is_kept_and_posted_once_the_server_takes_it(
        ring: HubHarness) -> None:
    chat = await ring.start_chat()
    room = await ring.room_of(chat)
    await ring.delivered(chat)
    ring.backend.fail("post_text", BackendError("403 forbidden"))
    await ring.say(chat, "Still here")
    await eventually(lambda: len(ring.backend.attempts_of("post_text")) == 1)
    assert ring.store.undelivered(chat.id)  # not dropped: retried after 5 s or a reconnect
    await ring.backend.emit(Connected())
    await ring.delivered(chat)
    assert ring.backend.texts_in(room, "text") == ["Still here"]


async def test_a_room_that_disappeared_is_replaced_with_the_same_lines(
        ring: HubHarness) -> None:
    chat = await ring.start_chat("Anna")
    old_room = await ring.room_of(chat)
    await ring.delivered(chat)
    ring.backend.fail("post_text", RoomGone("the room was deleted"))
    await ring.say(chat, "First")
    await ring.say(chat, "Second")
    await ring.delivered(chat)

    new_room = ring.conversation(chat).room
    assert new_room is not None and new_room != old_room
    spec = ring.backend.rooms[new_room]
    # A new key: the old room's address may stay taken (XMPP tombstones).
    assert spec.key.startswith(f"{chat.id}-") and spec.name == "💬 Anna · Support"
    assert ring.backend.texts_in(new_room, "text") == ["First", "Second"]
    assert ring.backend.texts_in(old_room, "text") == []
    keys = [p.key for p in ring.backend.posts_in(new_room, "text")]
    assert keys == [f"lcb.{chat.id}.2", f"lcb.{chat.id}.3"]


async def test_opening_the_room_is_retried_until_the_server_is_back(
        ring: HubHarness) -> None:
    ring.backend.fail("open_room", BackendUnavailable("connection refused"))
    chat = await ring.start_chat()
    await ring.say(chat, "Hello")
    await eventually(lambda: len(ring.backend.attempts_of("open_room")) == 1)
    assert ring.conversation(chat).room is None
    await ring.backend.emit(Connected())
    room = await ring.room_of(chat)
    await ring.delivered(chat)
    assert len(ring.backend.rooms) == 1
    assert ring.backend.texts_in(room) == ["Hi Anna, an agent will be with you shortly.",
                                           "Hello"]


async def test_a_restart_delivers_what_the_last_run_left_undelivered(
        ring: HubHarness, make_hub: MakeHub) -> None:
    chat = await ring.start_chat()
    room = await ring.room_of(chat)
    await ring.delivered(chat)
    ring.backend.fail("post_text", BackendUnavailable("down"), times=100)
    await ring.say(chat, "Kept across a restart")
    await eventually(lambda: ring.backend.attempts_of("post_text"))
    await ring.hub.stop()

    ring.backend.clear_failures()  # the server is back when the bridge starts again
    await make_hub(store=ring.store, backend=ring.backend)
    await ring.delivered(chat)
    assert ring.backend.texts_in(room, "text") == ["Kept across a restart"]


async def test_a_replaced_room_invites_the_agent_the_gone_room_had(ring: HubHarness) -> None:
    chat = await ring.start_chat()
    old_room = await ring.room_of(chat)
    await ring.delivered(chat)
    ring.backend.fail("post_text", RoomGone("the room was deleted"))
    await ring.say(chat, "Hello")
    await ring.delivered(chat)
    new_room = ring.conversation(chat).room
    assert new_room is not None
    assert ring.backend.rooms[old_room].invite == (ALICE,)
    # Alice's invitation was to this very chat: it does not make her busier than Bob.
    assert ring.backend.rooms[new_room].invite == (ALICE,)
    pending = ring.hub.parts.availability.open_chats
    assert [pending(a) for a in ring.config.agents[:2]] == [1, 0]
