"""Routing's effects on the fakes: presence, the broadcast strategy, the queue's lobby."""

from __future__ import annotations

from bridge.backends.base import AgentPresence
from bridge.core.models import RoomRef
from tests.fakes.hub import ALICE, BOB, HubHarness, eventually
from tests.unit.conftest import MakeHub


async def test_an_away_agent_gets_no_chat_until_they_are_back(ring: HubHarness) -> None:
    await ring.backend.emit(AgentPresence(ALICE, False))
    await ring.backend.emit(AgentPresence(BOB, False))
    chat = await ring.start_chat()
    room = await ring.room_of(chat)
    assert ring.backend.rooms[room].invite == ()
    await ring.backend.emit(AgentPresence(BOB, True))
    await eventually(lambda: (room, BOB) in ring.backend.invites)
    assert (room, ALICE) not in ring.backend.invites


async def test_broadcast_invites_everyone_and_the_first_word_owns_the_chat(
        make_hub: MakeHub) -> None:
    def broadcast(raw: dict) -> None:
        raw["queues"][0]["strategy"] = "broadcast"

    ring = await make_hub(broadcast)
    chat = await ring.start_chat()
    room = await ring.room_of(chat)
    assert ring.backend.rooms[room].invite == (ALICE, BOB)
    await ring.join(room, ALICE)
    await ring.join(room, BOB)
    assert ring.conversation(chat).agent_id is None  # joining is not answering
    await ring.agent_says(room, "I'll take this one", sender=BOB)
    assert ring.conversation(chat).agent_id == "bob"
    assert (room, ALICE) in ring.backend.removals


async def test_a_chat_nobody_can_take_is_announced_in_the_lobby_and_claimed_there(
        make_hub: MakeHub) -> None:
    def lobby(raw: dict) -> None:
        raw["queues"][0]["lobby"] = True

    ring = await make_hub(lobby)
    lobby_room = RoomRef(ring.store.kv_get("lobby:support:room") or "")
    assert lobby_room and ring.backend.rooms[lobby_room].invite == (ALICE, BOB)
    await ring.command(lobby_room, "!break")
    await ring.command(lobby_room, "!break", sender=BOB)
    chat = await ring.start_chat("Anna")
    await ring.room_of(chat)
    announced = ("⏳ Anna <anna@example.com> is waiting, number 1 in line. !queue lists the "
                 "line; !claim 1, a ✅ reaction or a \"yes\" in reply to this line takes this "
                 "chat.")
    await eventually(lambda: announced in ring.backend.notices_in(lobby_room))
    assert await ring.command(lobby_room, "!claim 1") == [
        "✅ Alice took the chat with Anna.", "Invited you to the chat with Anna."]
    assert ring.conversation(chat).agent_id == "alice"
