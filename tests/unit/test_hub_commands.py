"""Every agent command through the hub ring on the fakes: what the visitor sees, what the
room gets, what changes in the store."""

from __future__ import annotations

import pytest

from bridge.core.models import RoomRef, Status
from bridge.core.protocol import CallbackFrame, ProtocolError
from tests.fakes.hub import ALICE, BOB, CAROL, Chat, HubHarness, eventually

DIRECT = RoomRef("!dm-alice:recording")  # a direct chat between Alice and the bot


async def answered_chat(ring: HubHarness, name: str = "Anna",
                        email: str = "anna@example.com") -> tuple[Chat, RoomRef]:
    """A chat Alice joined and answered."""
    chat = await ring.start_chat(name, email)
    room = await ring.room_of(chat)
    await ring.join(room, ALICE)
    await ring.agent_says(room, "Hello!")
    return chat, room


async def test_a_command_delivered_twice_runs_once(ring: HubHarness) -> None:
    chat, room = await answered_chat(ring)
    event = ring.message(room, "!c greeting")
    await ring.backend.emit(event)
    await ring.backend.emit(event)
    assert chat.sink.texts("agent") == ["Hello!", "Hello Anna, I'm Alice from Support. How "
                                        "can I help?"]
    assert ring.backend.notices_in(room).count(
        "Alice → visitor: Hello Anna, I'm Alice from Support. How can I help?") == 1


async def test_a_canned_reply_fills_in_the_placeholders(ring: HubHarness) -> None:
    chat = await ring.start_chat("Ben", "ben@example.com")
    room = await ring.room_of(chat)
    notices = await ring.command(room, "!c greeting")
    text = "Hello Ben, I'm Alice from Support. How can I help?"
    assert chat.sink.texts("agent") == [text]
    assert notices == [f"Alice → visitor: {text}"]
    assert ring.conversation(chat).agent_id == "alice"  # the first word makes it hers
    unknown = await ring.command(room, "!c greting")
    assert unknown == ["No canned reply 'greting'. Did you mean: greeting?"]


async def test_personal_canned_replies_are_added_used_and_deleted(ring: HubHarness) -> None:
    chat, room = await answered_chat(ring)
    added = await ring.command(DIRECT, '!canned add bye "Bye {visitor}, thanks for asking!"')
    assert added == ["Saved your canned reply 'bye'; send it with !c bye"]
    await ring.command(room, "!c bye")
    assert chat.sink.texts("agent")[-1] == "Bye Anna, thanks for asking!"
    listing = await ring.command(DIRECT, "!canned")
    assert "  bye (yours): Bye {visitor}, thanks for asking!" in listing[0].splitlines()
    assert await ring.command(DIRECT, "!canned del bye") == ["Deleted your canned reply 'bye'."]
    assert ring.store.personal_canned("alice") == {}
    refused = await ring.command(DIRECT, "!canned add bad {nope}")
    assert refused[0].startswith("Not saved:")


async def test_a_note_stays_with_the_agents(ring: HubHarness) -> None:
    chat, room = await answered_chat(ring)
    frames = len(chat.sink.frames)
    notices = await ring.command(room, "!note VIP customer, be nice")
    assert notices == ["📝 Note saved (agents only): VIP customer, be nice"]
    assert len(chat.sink.frames) == frames
    assert [e["detail"] for e in ring.store.events(chat.id) if e["kind"] == "note"] == [
        "VIP customer, be nice"]


async def test_info_says_who_the_visitor_is(ring: HubHarness) -> None:
    _, room = await answered_chat(ring)
    [info] = await ring.command(room, "!info")
    lines = info.splitlines()
    assert lines[0] == "Visitor: Anna <anna@example.com> (unverified)"
    assert lines[1] == "Page: Pricing https://shop.example.com/pricing"
    assert "Queue: support; status active" in lines
    assert "Earlier chats: 0 (see !history)" in lines


async def test_history_lists_earlier_chats_and_shows_one(ring: HubHarness) -> None:
    earlier, earlier_room = await answered_chat(ring)
    await ring.say(earlier, "My order 1234 is late")
    await ring.command(earlier_room, "!end")
    ring.clock.advance(3600)
    _, room = await answered_chat(ring)
    [listing] = await ring.command(room, "!history")
    assert listing.splitlines()[0] == "Earlier chats with anna@example.com (newest first):"
    assert "alice" in listing and "My order 1234 is late" in listing
    [transcript] = await ring.command(room, "!history 1")
    assert "My order 1234 is late" in transcript and "Hello!" in transcript
    assert await ring.command(room, "!history 7") == ["No earlier chat number 7; there are 1."]


async def test_invite_brings_another_agent_into_the_room(ring: HubHarness) -> None:
    _, room = await answered_chat(ring)
    assert await ring.command(room, "!invite bob") == ["Invited Bob."]
    assert (room, BOB) in ring.backend.invites
    assert (await ring.command(room, "!invite nobody"))[0].startswith("No agent or queue")


async def test_transfer_hands_the_chat_over_and_tells_the_visitor(ring: HubHarness) -> None:
    """The offer is the first half (tests/unit/test_hub_offers.py); Bob joining completes it."""
    chat, room = await answered_chat(ring)
    [offered] = await ring.command(room, "!transfer bob billing question")
    assert offered.startswith("Offered to Bob (note: billing question).")
    assert (room, BOB) in ring.backend.invites
    assert ring.conversation(chat).agent_id == "alice"  # still hers until Bob is in
    await ring.join(room, BOB)
    assert (room, ALICE) in ring.backend.removals
    assert ring.conversation(chat).agent_id == "bob"
    frame = chat.sink.last("agent")
    assert (frame["event"], frame["name"]) == ("transferred", "Bob")
    assert ring.backend.notices_in(room)[-1] == (
        "Bob took over the chat from Alice. Note: billing question")


async def test_transfer_to_a_queue_picks_its_free_agent_and_moves_the_chat(
        ring: HubHarness) -> None:
    chat, room = await answered_chat(ring)
    [offered] = await ring.command(room, "!transfer sales --stay")
    assert offered.startswith("Offered to Carol.")
    assert (room, CAROL) in ring.backend.invites
    await ring.join(room, CAROL)
    conversation = ring.conversation(chat)
    assert (conversation.agent_id, conversation.queue_id) == ("carol", "sales")
    assert ring.backend.removals == []  # --stay
    assert await ring.command(room, "!transfer carol", sender=CAROL) == [
        "Carol already has this chat; nothing changed."]


async def test_the_agent_ends_the_chat_and_the_visitor_gets_the_survey(
        ring: HubHarness) -> None:
    chat, room = await answered_chat(ring)
    await ring.hub.visitor_read(chat.id, 10_000)  # saw the answer (else the agents are told)
    [summary] = await ring.command(room, "!end")
    assert summary.startswith("Chat ended after 0.0 min, 2 messages; rating: not rated yet")
    ended = chat.sink.last("ended")
    assert ended["by"] == "agent" and ended["survey"]["scale"] == 5
    assert chat.sink.of("ticket") == []  # answered: no ticket
    assert ring.conversation(chat).status is Status.ENDED
    assert await ring.command(room, "!end") == ["This chat has ended."]


async def test_an_unanswered_chat_ended_by_the_agent_makes_no_ticket(ring: HubHarness) -> None:
    chat = await ring.start_chat()
    room = await ring.room_of(chat)
    await ring.say(chat, "Hello?")
    await ring.command(room, "!end")
    assert chat.sink.last("ended")["by"] == "agent"
    assert chat.sink.of("ticket") == []


async def test_callback_asks_the_visitor_and_the_number_reaches_the_room(
        ring: HubHarness) -> None:
    chat, room = await answered_chat(ring)
    with pytest.raises(ProtocolError):
        await ring.hub.visitor_callback(chat.id, CallbackFrame("+36 1 234 5678", ""))
    notices = await ring.command(room, "!callback")
    assert notices[0].startswith("Asked Anna for a phone number")
    assert chat.sink.last("callback")["name"] == "Alice"
    await ring.hub.visitor_callback(chat.id, CallbackFrame("+36 1 234 5678", "after 5 pm"))
    assert ring.backend.notices_in(room)[-1] == ("📞 Anna asks to be called at +36 1 234 5678 "
                                                 "(after 5 pm)")
    [info] = await ring.command(room, "!info")
    assert "Call back: +36 1 234 5678 after 5 pm" in info.splitlines()


async def test_ban_ends_the_chat_and_refuses_the_visitor_from_then_on(
        ring: HubHarness) -> None:
    chat, room = await answered_chat(ring)
    await ring.hub.visitor_read(chat.id, 10_000)
    notices = await ring.command(room, "!ban abusive")
    assert notices == ["Chat ended; anna@example.com cannot start new chats."]
    assert chat.sink.last("ended")["by"] == "agent"
    with pytest.raises(ProtocolError) as refused:
        await ring.start_chat("Anna", "anna@example.com")
    assert refused.value.code == "unavailable"


async def test_claim_in_the_room_takes_the_chat(ring: HubHarness) -> None:
    chat = await ring.start_chat()
    room = await ring.room_of(chat)
    assert await ring.command(room, "!claim", sender=BOB) == ["This chat is yours, Bob."]
    assert ring.conversation(chat).agent_id == "bob"
    assert (room, ALICE) in ring.backend.removals  # routing had invited Alice
    assert await ring.command(room, "!claim") == [
        "bob already has this chat; ask them to !transfer it."]


async def test_break_back_queue_and_claim_from_a_direct_chat(ring: HubHarness) -> None:
    assert (await ring.command(DIRECT, "!break"))[0].startswith("You are on a break")
    await ring.command(DIRECT, "!break", sender=BOB)
    chat = await ring.start_chat("Anna")
    room = await ring.room_of(chat)
    assert ring.backend.rooms[room].invite == ()  # both on a break: the chat waits
    [line] = await ring.command(DIRECT, "!queue")
    assert line.splitlines() == ["Waiting (take one with !claim N):",
                                 "1. Anna · support · waiting 0 s"]

    assert await ring.command(DIRECT, "!back") == ["Welcome back: you take new chats again."]
    await eventually(lambda: (room, ALICE) in ring.backend.invites)  # routed to her at once
    assert await ring.command(DIRECT, "!claim 1") == ["Invited you to the chat with Anna."]
    assert ring.conversation(chat).agent_id == "alice"
    assert await ring.command(DIRECT, "!claim 2") == ["No waiting chat number 2; see !queue."]


async def test_claim_n_does_not_take_a_chat_another_agent_claimed(ring: HubHarness) -> None:
    bob_direct = RoomRef("!dm-bob:recording")
    await ring.command(DIRECT, "!break")
    await ring.command(bob_direct, "!break", sender=BOB)
    chat = await ring.start_chat("Anna")
    await ring.room_of(chat)
    assert await ring.command(DIRECT, "!claim 1") == ["Invited you to the chat with Anna."]
    # Alice is on her way to the room; Bob must not take the chat from under her.
    assert await ring.command(bob_direct, "!queue", sender=BOB) == [
        "Nobody is waiting in your queues."]
    assert await ring.command(bob_direct, "!claim 1", sender=BOB) == [
        "No waiting chat number 1; see !queue."]
    assert ring.conversation(chat).agent_id == "alice"


async def test_stats_counts_todays_chats(ring: HubHarness) -> None:
    await answered_chat(ring)
    await ring.start_chat("Ben", "ben@example.com")
    [stats] = await ring.command(DIRECT, "!stats")
    assert stats.startswith("Today (UTC): 2 chats, 1 answered, 1 waiting now;")
    assert stats.endswith("no ratings yet.")


async def test_help_lists_every_command(ring: HubHarness) -> None:
    [text] = await ring.command(DIRECT, "!help")
    for name in ("help", "c", "canned", "note", "info", "history", "invite", "transfer", "end",
                 "transcript", "callback", "queue", "claim", "break", "back", "stats", "ban"):
        assert any(line.startswith(f"!{name} ") for line in text.splitlines()), name
    assert await ring.command(DIRECT, "!help note") == [
        "Usage: !note TEXT — an internal note; the visitor never sees it"]


@pytest.mark.parametrize(("line", "reply"), [
    ("!transfer", "Usage: !transfer AGENT|QUEUE [note] [--stay] — offer the chat; it is "
                  "theirs once they join (--stay: you stay in)"),
    ("!note", "Usage: !note TEXT — an internal note; the visitor never sees it"),
    ("!c", "Usage: !c NAME — send a canned reply to the visitor"),
    ("!invite a b", "Usage: !invite AGENT — bring another agent into this chat"),
    ("!tranfser bob", "No command '!tranfser'. Did you mean: !transfer, !transcript, !canned?"),
], ids=["transfer", "note", "c", "invite", "typo"])
async def test_a_malformed_command_gets_its_usage_in_the_room_only(
        ring: HubHarness, line: str, reply: str) -> None:
    chat, room = await answered_chat(ring)
    frames = len(chat.sink.frames)
    assert await ring.command(room, line) == [reply]
    assert len(chat.sink.frames) == frames  # nothing reaches the visitor


async def test_a_note_may_hold_an_apostrophe_or_a_lone_quote(ring: HubHarness) -> None:
    chat, room = await answered_chat(ring)
    assert await ring.command(room, "!note don't promise \"next day") == [
        "📝 Note saved (agents only): don't promise \"next day"]
    assert ring.store.events(chat.id)[-1]["detail"] == "don't promise \"next day"


async def test_chat_commands_need_a_chat_and_strangers_get_nothing(ring: HubHarness) -> None:
    assert await ring.command(DIRECT, "!end") == ["!end works in a chat's room"]
    assert await ring.command(DIRECT, "!help", sender="@eve:example.org") == []
    assert await ring.command(DIRECT, "hello") == ["Only commands work here; try !help."]
