"""Transfers as offers, and claims by a ✅ or a "yes" in the lobby, on the fakes: who is
invited and told what, when the chat changes hands, and what the visitor sees."""

from __future__ import annotations

import pytest

from bridge.backends.base import AgentReaction, MemberJoined
from bridge.core.models import RoomRef
from bridge.core.offers import answer, claims
from tests.fakes.clock import FakeClock
from tests.fakes.hub import ALICE, BOB, CAROL, Chat, HubHarness, eventually
from tests.unit.conftest import MakeHub

BOB_DIRECT = RoomRef("!dm-bob:recording")  # Bob's direct chat with the bot


def short_offers(raw: dict) -> None:
    raw["chats"] = {"transfer_offer_seconds": 60}


async def offered_to_bob(ring: HubHarness, note: str = "") -> tuple[Chat, RoomRef]:
    """A chat Alice answered and offered to Bob."""
    chat = await ring.start_chat("Anna")
    room = await ring.room_of(chat)
    await ring.join(room, ALICE)
    await ring.agent_says(room, "Hello!")
    [reply] = await ring.command(room, f"!transfer bob {note}".strip())
    assert reply.startswith("Offered to Bob"), reply
    return chat, room


async def test_an_offer_invites_and_tells_bob_but_the_chat_stays_with_alice(
        make_hub: MakeHub) -> None:
    ring = await make_hub(short_offers)
    chat, room = await offered_to_bob(ring, "billing question")
    assert (room, BOB) in ring.backend.invites
    [told] = ring.backend.texts_in(BOB, "direct")
    assert told == ('Alice offers you the chat with Anna (Support). Note: "billing question". '
                    "Join the room to take it, or answer no (or turn the invitation down) to "
                    "decline; the offer stands for 60 seconds.")
    assert ring.backend.notices_in(room)[-1] == (
        "Offered to Bob (note: billing question). The chat stays with you until they join; "
        "it comes back to you if they decline or do not answer within 60 seconds.")
    assert ring.conversation(chat).agent_id == "alice"
    assert chat.sink.of("agent")[-1]["event"] != "transferred"  # the visitor hears nothing
    assert ring.store.offers.offer(chat.id) is not None


async def test_bob_turning_the_invitation_down_gives_the_chat_back(ring: HubHarness) -> None:
    chat, room = await offered_to_bob(ring)
    await ring.leave(room, BOB)  # a rejected invitation reads as leaving
    assert ring.backend.notices_in(room)[-1] == "Bob declined the chat; the chat stays with Alice."
    assert ring.conversation(chat).agent_id == "alice"
    assert ring.store.offers.offer(chat.id) is None
    assert [f["event"] for f in chat.sink.of("agent")].count("transferred") == 0


async def test_no_to_the_bot_declines_and_yes_points_to_the_room(ring: HubHarness) -> None:
    chat, room = await offered_to_bob(ring)
    [yes] = await ring.command(BOB_DIRECT, "Yes!", sender=BOB)
    assert yes == (f"Join the room {room} (your invitation is waiting) to take the chat "
                   "with Anna.")
    assert ring.store.offers.offer(chat.id) is not None  # a yes is no hand-over yet
    assert await ring.command(BOB_DIRECT, "no", sender=BOB) == [
        "Declined: the chat with Anna stays where it was."]
    assert (room, BOB) in ring.backend.removals  # the invitation is withdrawn
    assert ring.backend.notices_in(room)[-1] == "Bob declined the chat; the chat stays with Alice."
    assert ring.conversation(chat).agent_id == "alice"
    # Nothing offered any more: a "no" is just a line.
    assert await ring.command(BOB_DIRECT, "no", sender=BOB) == [
        "Only commands work here; try !help."]


async def test_an_unanswered_offer_times_out(make_hub: MakeHub, clock: FakeClock) -> None:
    ring = await make_hub(short_offers)
    chat, room = await offered_to_bob(ring)
    clock.advance(59)
    await ring.hub.parts.offers.expire()
    assert ring.store.offers.offer(chat.id) is not None
    clock.advance(1)
    await ring.hub.parts.offers.expire()
    assert ring.store.offers.offer(chat.id) is None
    assert (room, BOB) in ring.backend.removals
    assert ring.backend.notices_in(room)[-1] == (
        "Bob did not answer within 60 seconds; the chat stays with Alice.")
    assert ring.backend.texts_in(BOB, "direct")[-1] == (
        "The offer of the chat with Anna was withdrawn: it was not taken in time.")
    await ring.join(room, BOB)  # too late: joining is no taking over now
    assert ring.conversation(chat).agent_id == "alice"


async def test_an_offer_survives_a_restart(make_hub: MakeHub) -> None:
    first = await make_hub()
    chat, room = await offered_to_bob(first)
    await first.hub.stop()  # the store stays open: the next ring starts on it
    second = await make_hub(store=first.store, backend=first.backend)
    await second.backend.emit(MemberJoined(room, BOB, "Bob", "$bob-joins-after-the-restart"))
    assert second.conversation(chat).agent_id == "bob"
    assert (room, ALICE) in second.backend.removals
    tab = await second.resume(chat)  # the visitor's page, back on the restarted bridge
    assert [f["event"] for f in tab.of("agent")][-2:] == ["joined", "transferred"]


async def test_a_colleague_already_in_the_room_gets_the_chat_at_once(ring: HubHarness) -> None:
    chat = await ring.start_chat("Anna")
    room = await ring.room_of(chat)
    await ring.join(room, ALICE)
    await ring.join(room, BOB)
    await ring.agent_says(room, "Hello!")
    assert await ring.command(room, "!transfer bob --stay") == ["Transferred to Bob."]
    assert ring.conversation(chat).agent_id == "bob"
    assert chat.sink.last("agent")["event"] == "transferred"


async def test_a_new_offer_withdraws_the_earlier_one(ring: HubHarness) -> None:
    chat, room = await offered_to_bob(ring)
    [reply] = await ring.command(room, "!transfer carol")
    assert reply.startswith("Offered to Carol.")
    assert (room, BOB) in ring.backend.removals
    assert ring.backend.texts_in(BOB, "direct")[-1] == (
        "The offer of the chat with Anna was withdrawn: the chat was offered to someone else.")
    await ring.join(room, BOB)
    assert ring.conversation(chat).agent_id == "alice"
    await ring.join(room, CAROL)
    assert ring.conversation(chat).agent_id == "carol"


async def test_a_chat_that_ends_while_offered_withdraws_the_offer(ring: HubHarness) -> None:
    chat, room = await offered_to_bob(ring)
    await ring.hub.visitor_read(chat.id, 10_000)
    await ring.command(room, "!end")
    assert (room, BOB) in ring.backend.removals
    assert ring.backend.texts_in(BOB, "direct")[-1] == (
        "The offer of the chat with Anna was withdrawn: the chat has ended.")
    assert ring.store.offers.offer(chat.id) is None
    await ring.join(room, BOB)  # a late join of an ended chat takes nothing
    assert ring.conversation(chat).agent_id == "alice"


# -- the lobby ---------------------------------------------------------------------------


def lobby(raw: dict) -> None:
    raw["queues"][0]["lobby"] = True


async def waiting_in_lobby(ring: HubHarness, *names: str) -> tuple[RoomRef, list[Chat]]:
    """Both agents on a break, so the chats wait and are announced in the lobby."""
    lobby_room = RoomRef(ring.store.kv_get("lobby:support:room") or "")
    await ring.command(lobby_room, "!break")
    await ring.command(lobby_room, "!break", sender=BOB)
    chats = []
    for name in names:
        chat = await ring.start_chat(name)
        await ring.room_of(chat)
        await eventually(lambda n=name: any(p.text.startswith(f"⏳ {n} ")
                                            for p in ring.backend.posts_in(lobby_room)))
        chats.append(chat)
    return lobby_room, chats


def waiting_line(ring: HubHarness, lobby_room: RoomRef, name: str) -> str:
    return next(p.event_id for p in ring.backend.posts_in(lobby_room)
                if p.text.startswith(f"⏳ {name} "))


async def test_a_check_mark_on_a_waiting_line_claims_the_chat_once(make_hub: MakeHub) -> None:
    ring = await make_hub(lobby)
    lobby_room, [anna, ben] = await waiting_in_lobby(ring, "Anna", "Ben")
    line = waiting_line(ring, lobby_room, "Ben")
    await ring.backend.emit(AgentReaction(lobby_room, BOB, line, "👀", "$r1"))
    assert ring.conversation(ben).agent_id is None  # not a claiming reaction
    reaction = AgentReaction(lobby_room, BOB, line, "✅\ufe0f", "$r2")
    await ring.backend.emit(reaction)
    await ring.backend.emit(reaction)  # a sync fetched again
    assert ring.conversation(ben).agent_id == "bob"
    assert ring.conversation(anna).agent_id is None
    room = ring.conversation(ben).room
    assert (room, BOB) in ring.backend.invites
    notices = ring.backend.notices_in(lobby_room)
    assert notices.count("Invited you to the chat with Ben.") == 1
    assert "✅ Bob took the chat with Ben." in notices
    await ring.backend.emit(AgentReaction(lobby_room, ALICE, line, "✅", "$r3"))
    assert ring.backend.notices_in(lobby_room)[-1] == (
        "The chat with Ben is no longer waiting; bob has it.")


async def test_yes_in_the_lobby_claims_the_one_waiting_or_the_one_replied_to(
        make_hub: MakeHub) -> None:
    ring = await make_hub(lobby)
    lobby_room, [anna] = await waiting_in_lobby(ring, "Anna")
    lobby_room, [ben] = await waiting_in_lobby(ring, "Ben")
    assert await ring.command(lobby_room, "yes") == [
        "Several chats are waiting: answer yes in reply to one's line, or !claim N "
        "(!queue lists them)."]
    line = waiting_line(ring, lobby_room, "Ben")
    reply = ring.message(lobby_room, "> ⏳ Ben is waiting\n\nyes")
    await ring.backend.emit(type(reply)(**{**reply.__dict__, "reply_to": line}))
    assert ring.conversation(ben).agent_id == "alice"
    assert ring.backend.notices_in(lobby_room)[-1] == "Invited you to the chat with Ben."
    assert await ring.command(lobby_room, "ok", sender=BOB) == [
        "✅ Bob took the chat with Anna.", "Invited you to the chat with Anna."]
    assert ring.conversation(anna).agent_id == "bob"
    assert await ring.command(lobby_room, "yes") == ["Nobody is waiting in this queue now."]


# -- the pure parts ----------------------------------------------------------------------


@pytest.mark.parametrize(("text", "meant"), [
    ("yes", True), ("Yes!", True), ("ok.", True), ("✅️", True), ("igen", True), ("tak", True),
    ("evet", True), ("no", False), ("Nope", False), ("hayır", False), ("nē", False),
    ("> quoted line\nyes", True), ("yes please take it", None), ("", None), ("maybe", None),
])
def test_short_answers(text: str, meant: bool | None) -> None:
    assert answer(text) is meant


def test_claiming_reactions() -> None:
    assert claims("✅") and claims("✅\ufe0f") and claims("✔️") and claims("👍")
    assert not claims("❌") and not claims("👀") and not claims("")
