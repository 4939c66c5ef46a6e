"""Read states through the hub ring on the project's fakes: the visitor's `read` moves the
bot's marker in the room, agents' receipts reach the widget, a chat that ends with lines
the visitor never saw says so (the real-server tests prove the backends' side)."""

from __future__ import annotations

from bridge.backends.base import AgentRead
from bridge.store import Store
from tests.fakes.hub import ALICE, HubHarness, eventually
from tests.unit.conftest import MakeHub

STRANGER = "@eve:example.org"


async def test_the_visitors_read_moves_the_bots_marker_to_the_newest_agent_line_seen(
        ring: HubHarness) -> None:
    chat = await ring.start_chat()
    room = await ring.room_of(chat)
    first = await ring.agent_says(room, "Hello Anna")
    second = await ring.agent_says(room, "How can I help?")
    seqs = [f["seq"] for f in chat.sink.of("message") if f["from"] == "agent"]
    await ring.hub.visitor_read(chat.id, seqs[0])
    await eventually(lambda: ring.backend.read_marks)
    assert ring.backend.read_marks == [(room, first.event_id)]
    await ring.hub.visitor_read(chat.id, seqs[0])  # again: nothing new, no second marker
    await ring.hub.visitor_read(chat.id, 10_000)  # past the end: up to the last line
    await eventually(lambda: len(ring.backend.read_marks) == 2)
    assert ring.backend.read_marks[-1] == (room, second.event_id)
    assert [i.read_at is not None for i in ring.store.items_after(chat.id, 0)
            if i.sender.value == "agent" and i.kind.value == "text"] == [True, True]


async def test_an_agents_receipt_shows_the_visitor_their_lines_were_seen(
        ring: HubHarness) -> None:
    chat = await ring.start_chat()
    room = await ring.room_of(chat)
    await ring.say(chat, "My parcel is late")
    await ring.say(chat, "Order 1234")
    await ring.delivered(chat)
    first_post = ring.backend.posts_in(room, "text")[0]
    await ring.backend.emit(AgentRead(room, STRANGER, first_post.event_id))
    assert chat.sink.of("read") == []  # only configured agents count
    await ring.backend.emit(AgentRead(room, ALICE, first_post.event_id))
    await ring.backend.emit(AgentRead(room, ALICE, first_post.event_id))  # a repeat
    assert chat.sink.of("read") == [{"type": "read", "seq": 2}]
    reply = await ring.agent_says(room, "Looking into it")
    await ring.backend.emit(AgentRead(room, ALICE, reply.event_id))  # read past both lines
    assert chat.sink.of("read")[-1] == {"type": "read", "seq": 3}
    tab = await ring.resume(chat)
    assert tab.last("resumed")["read"] == 3


async def test_read_states_survive_a_restart(make_hub: MakeHub) -> None:
    store = Store(":memory:")
    ring = await make_hub(store=store)
    chat = await ring.start_chat()
    room = await ring.room_of(chat)
    await ring.say(chat, "Hello?")
    await ring.delivered(chat)
    await ring.backend.emit(AgentRead(room, ALICE, ring.backend.posts_in(room, "text")[0].event_id))
    await ring.hub.stop()
    again = await make_hub(store=store)
    tab = await again.resume(chat)
    assert tab.last("resumed")["read"] == 2


async def test_lines_the_visitor_never_saw_are_named_when_the_chat_ends(
        ring: HubHarness) -> None:
    chat = await ring.start_chat()
    room = await ring.room_of(chat)
    await ring.agent_says(room, "Seen line")
    seen = chat.sink.of("message")[-1]["seq"]
    await ring.hub.visitor_read(chat.id, seen)
    await ring.agent_says(room, "Your refund is on its way, it takes three to five working days "
                          "to show on your statement")
    await ring.agent_says(room, "Anything else?")
    await ring.hub.visitor_end(chat.id)
    [notice] = [n for n in ring.backend.notices_in(room) if n.startswith("The visitor did not")]
    assert notice == (
        "The visitor did not see 2 lines before the chat ended: “Your refund is on its way, it "
        "takes three to five working da…”, “Anything else?”. They reach the visitor "
        "only in an emailed transcript (!transcript).")


async def test_a_chat_whose_lines_were_all_seen_ends_without_that_notice(
        ring: HubHarness) -> None:
    chat = await ring.start_chat()
    room = await ring.room_of(chat)
    await ring.agent_says(room, "Bye!")
    await ring.hub.visitor_read(chat.id, chat.sink.of("message")[-1]["seq"])
    await ring.hub.visitor_end(chat.id)
    assert not [n for n in ring.backend.notices_in(room) if n.startswith("The visitor did not")]


async def test_the_agents_history_shows_when_each_line_was_seen(ring: HubHarness) -> None:
    first = await ring.start_chat()
    room = await ring.room_of(first)
    await ring.say(first, "Is the blue one in stock?")
    await ring.delivered(first)
    await ring.agent_says(room, "Yes, two left")
    await ring.backend.emit(AgentRead(room, ALICE, ring.backend.posts_in(room, "text")[0].event_id))
    await ring.hub.visitor_read(first.id, 10_000)
    await ring.agent_says(room, "Anything else?")  # never seen
    await ring.hub.visitor_end(first.id)
    ring.clock.advance(60)
    second = await ring.start_chat()
    second_room = await ring.room_of(second)
    [history] = await ring.command(second_room, "!history 1")
    lines = history.splitlines()
    assert [line.endswith("]") and "[seen " in line for line in lines
            if "Anna:" in line or "Alice:" in line] == [True, True, False]
