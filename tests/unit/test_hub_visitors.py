"""The visitors' side of the hub on the project's fakes: starting a chat, lines, acks,
typing, the end (the real-server tests prove the same rules through the wiring)."""

from __future__ import annotations

import pytest

from bridge.core.models import Status
from bridge.core.protocol import ProtocolError, SurveyFrame
from tests.fakes.hub import ALICE, BOB, HubHarness, eventually
from tests.unit.conftest import MakeHub


async def test_start_shows_the_welcome_and_opens_a_room_for_the_least_busy_agent(
        ring: HubHarness) -> None:
    chat = await ring.start_chat("Anna", "anna@example.com")
    assert chat.sink.types() == ["started", "message", "queue"]
    welcome = chat.sink.last("message")
    assert (welcome["from"], welcome["seq"]) == ("system", 1)
    assert welcome["text"] == "Hi Anna, an agent will be with you shortly."
    assert chat.sink.last("queue")["position"] == 1

    room = await ring.room_of(chat)
    spec = ring.backend.rooms[room]
    assert spec.invite == (ALICE,)  # least busy, first listed
    assert (spec.name, spec.visitor_nick, spec.key) == ("💬 Anna · Support", "Anna (visitor)",
                                                        chat.id)
    assert spec.topic == "anna@example.com · Pricing · https://shop.example.com/pricing"
    await ring.delivered(chat)
    assert ring.backend.notices_in(room) == [welcome["text"]]


async def test_the_second_chat_goes_to_the_agent_with_fewer_chats(ring: HubHarness) -> None:
    first = await ring.start_chat("Anna")
    second = await ring.start_chat("Ben", "ben@example.com")
    assert ring.backend.rooms[await ring.room_of(first)].invite == (ALICE,)
    # Alice's invitation counts as a chat on its way to her.
    assert ring.backend.rooms[await ring.room_of(second)].invite == (BOB,)


async def test_a_line_is_acked_with_its_seq_and_posted_with_its_key(ring: HubHarness) -> None:
    chat = await ring.start_chat()
    room = await ring.room_of(chat)
    seq = await ring.say(chat, "Where is my parcel?", client_id="line-1")
    assert seq == 2  # after the welcome
    await ring.delivered(chat)
    [post] = ring.backend.posts_in(room, "text")
    assert (post.text, post.key) == ("Where is my parcel?", f"lcb.{chat.id}.2")
    assert chat.sink.of("message")[-1]["seq"] == 1  # the writer's own tab gets the ack only


async def test_a_repeated_client_id_gets_the_first_seq_and_is_posted_once(
        ring: HubHarness) -> None:
    chat = await ring.start_chat()
    room = await ring.room_of(chat)
    first = await ring.say(chat, "Hello?", client_id="same")
    again = await ring.say(chat, "Hello?", client_id="same")
    assert again == first
    await ring.say(chat, "Anyone?", client_id="next")
    await ring.delivered(chat)
    assert ring.backend.texts_in(room, "text") == ["Hello?", "Anyone?"]
    assert [i.seq for i in ring.store.items_after(chat.id, 0)] == [1, 2, 3]


async def test_other_tabs_get_the_line_and_a_resume_replays_from_after(
        ring: HubHarness) -> None:
    chat = await ring.start_chat()
    other_tab = await ring.resume(chat, after=0)
    seq = await ring.say(chat, "From tab one")
    assert other_tab.types() == ["resumed", "message", "queue", "message"]
    assert other_tab.of("message")[-1]["seq"] == seq
    later = await ring.resume(chat, after=seq - 1)
    assert later.texts() == ["From tab one"]


async def test_visitor_typing_reaches_the_room(ring: HubHarness) -> None:
    chat = await ring.start_chat()
    room = await ring.room_of(chat)
    await ring.hub.visitor_typing(chat.id, True)
    await ring.hub.visitor_typing(chat.id, False)
    await eventually(lambda: len(ring.backend.typing) == 2)
    assert ring.backend.typing == [(room, True), (room, False)]


async def test_a_closed_queue_refuses_the_start(make_hub: MakeHub) -> None:
    def closed_on_tuesdays(raw: dict) -> None:
        raw["queues"][0]["hours"] = {"mon": "09:00-17:00"}

    ring = await make_hub(closed_on_tuesdays)
    with pytest.raises(ProtocolError) as refused:
        await ring.start_chat()
    assert refused.value.code == "queue_closed"


async def test_the_visitor_ends_an_unanswered_chat_and_it_becomes_a_ticket(
        ring: HubHarness) -> None:
    chat = await ring.start_chat("Anna")
    room = await ring.room_of(chat)
    await ring.say(chat, "Please call me back")
    await ring.hub.visitor_end(chat.id)

    ended = chat.sink.last("ended")
    assert ended["by"] == "visitor"
    assert ended["survey"]["scale"] == 5 and ended["survey"]["question"]
    ticket = chat.sink.last("ticket")["ticket"]
    assert chat.sink.types().index("ticket") < chat.sink.types().index("ended")
    assert ring.conversation(chat).status is Status.ENDED
    await ring.delivered(chat)
    notices = ring.backend.notices_in(room)
    assert any(ticket in n and "Nobody answered" in n for n in notices)
    assert notices[-1] == "Anna ended the chat."
    # The queue has no help desk: its agents get the ticket in a direct message.
    await eventually(lambda: {p.room for p in ring.backend.posts if p.kind == "direct"}
                     == {ALICE, BOB})


async def test_no_ticket_when_the_queue_says_so(make_hub: MakeHub) -> None:
    def no_tickets(raw: dict) -> None:
        raw["queues"][0]["unanswered_to_ticket"] = False

    ring = await make_hub(no_tickets)
    chat = await ring.start_chat()
    await ring.say(chat, "Hello?")
    await ring.hub.visitor_end(chat.id)
    assert chat.sink.of("ticket") == []
    assert chat.sink.last("ended")["by"] == "visitor"


async def test_the_survey_after_the_end_reaches_the_agents_once(ring: HubHarness) -> None:
    chat = await ring.start_chat("Anna")
    room = await ring.room_of(chat)
    with pytest.raises(ProtocolError):
        await ring.hub.visitor_survey(chat.id, SurveyFrame(5, "quick"))  # not ended yet
    await ring.hub.visitor_end(chat.id)
    await ring.hub.visitor_survey(chat.id, SurveyFrame(5, "quick"))
    with pytest.raises(ProtocolError) as again:
        await ring.hub.visitor_survey(chat.id, SurveyFrame(1, ""))
    assert again.value.code == "already_rated"
    assert "⭐ Anna rated the chat 5/5: quick" in ring.backend.notices_in(room)


async def test_lines_after_the_end_are_refused_but_a_retry_gets_its_seq(
        ring: HubHarness) -> None:
    chat = await ring.start_chat()
    seq = await ring.say(chat, "Bye", client_id="bye")
    await ring.hub.visitor_end(chat.id)
    assert await ring.say(chat, "Bye", client_id="bye") == seq
    with pytest.raises(ProtocolError) as refused:
        await ring.say(chat, "One more thing")
    assert refused.value.code == "ended"
