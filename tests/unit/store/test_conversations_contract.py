"""ConversationRepository: what every engine promises about conversations."""

from __future__ import annotations

from bridge.core.models import AgentId, ConversationId, ItemKind, QueueId, RoomRef, Sender, Status
from bridge.core.models import VisitorInfo as Visitor
from bridge.store.contracts import StoreRepositories

from .conftest import ANN, PAGE, open_chat

C1 = ConversationId("c1")


def test_a_new_conversation_waits_and_reads_back_whole(repos: StoreRepositories) -> None:
    created = open_chat(repos)
    assert (created.id, created.queue_id, created.status) == ("c1", "support", Status.WAITING)
    assert (created.visitor, created.page, created.created_at) == (ANN, PAGE, 100.0)
    assert (created.room, created.agent_id, created.last_seq) == (None, None, 0)
    assert repos.conversations.conversation(C1) == created
    assert repos.conversations.conversation_by_token("hash-c1") == created
    assert repos.conversations.conversation("nope") is None
    assert repos.conversations.conversation_by_token("nope") is None
    assert repos.conversations.conversation_by_room("!nope:hs") is None


def test_every_write_shows_in_the_next_read(repos: StoreRepositories) -> None:
    conversations = repos.conversations
    open_chat(repos)
    conversations.conversation(C1)  # a cached copy, if the engine keeps one
    conversations.set_room(C1, RoomRef("!r:hs"))
    conversations.set_agent(C1, AgentId("alice"))
    conversations.set_queue(C1, QueueId("sales"))
    conversations.set_status(C1, Status.ACTIVE)
    conversations.set_first_response(C1, 150.0)
    conversations.set_first_response(C1, 999.0)  # only the first answer counts
    conversations.set_rating(C1, 5, "quick")
    conversations.set_callback(C1, "+3612345678", "after 5")
    read = conversations.conversation(C1)
    assert read is not None
    assert (read.room, read.agent_id, read.queue_id, read.status) == (
        "!r:hs", "alice", "sales", Status.ACTIVE)
    assert (read.first_response_at, read.rating, read.comment) == (150.0, 5, "quick")
    assert (read.callback_phone, read.callback_time) == ("+3612345678", "after 5")
    assert conversations.conversation_by_room("!r:hs") == read

    conversations.clear_agent(C1)
    conversations.set_status(C1, Status.ENDED, ended_at=300.0)
    conversations.set_status(C1, Status.ACTIVE)  # a late event does not reopen it
    read = conversations.conversation(C1)
    assert read is not None
    assert (read.agent_id, read.status, read.ended_at) == (None, Status.ENDED, 300.0)


def test_a_room_lookup_follows_a_new_room(repos: StoreRepositories) -> None:
    open_chat(repos)
    repos.conversations.set_room(C1, RoomRef("!old:hs"))
    assert repos.conversations.conversation_by_room("!old:hs") is not None
    repos.conversations.set_room(C1, RoomRef("!new:hs"))
    assert repos.conversations.conversation_by_room("!old:hs") is None
    found = repos.conversations.conversation_by_room("!new:hs")
    assert found is not None and found.id == C1


def test_the_waiting_line_is_first_come_first(repos: StoreRepositories) -> None:
    conversations = repos.conversations
    for n, queue in enumerate(["support", "sales", "support", "support"]):
        open_chat(repos, f"w{n}", queue=queue, now=100.0 + n)
    conversations.set_status(ConversationId("w2"), Status.ACTIVE)  # answered: out of line
    line = list(conversations.waiting_conversations("support"))
    assert [c.id for c in line] == ["w0", "w3"]
    assert [conversations.waiting_position(c) for c in line] == [1, 2]
    assert conversations.count_waiting("support") == 2
    assert conversations.count_waiting("sales") == 1
    assert conversations.count_waiting("nobody") == 0


def test_open_conversations_leave_out_ended_ones(repos: StoreRepositories) -> None:
    conversations = repos.conversations
    for n in range(3):
        open_chat(repos, f"o{n}", now=100.0 + n)
    conversations.set_agent(ConversationId("o0"), AgentId("alice"))
    conversations.set_agent(ConversationId("o1"), AgentId("alice"))
    conversations.set_status(ConversationId("o1"), Status.ENDED, ended_at=200.0)
    assert [c.id for c in conversations.open_conversations()] == ["o0", "o2"]
    assert [c.id for c in conversations.each_open_conversation()] == ["o0", "o2"]
    assert conversations.open_chats_of("alice") == 1
    assert conversations.open_chats_of("bob") == 0


def test_last_activity_is_the_newest_text_line_or_the_start(repos: StoreRepositories) -> None:
    open_chat(repos, "a", now=100.0)
    open_chat(repos, "b", now=110.0)
    repos.timeline.append_item(ConversationId("a"), ItemKind.TEXT, Sender.VISITOR, "Ann",
                               "hi", 150.0)
    repos.timeline.append_item(ConversationId("b"), ItemKind.JOINED, Sender.AGENT, "Bob",
                               "", 170.0)  # not a text line
    assert sorted(repos.conversations.last_activity()) == [("a", 150.0), ("b", 110.0)]


def test_earlier_conversations_are_the_same_visitors_newest_first(
        repos: StoreRepositories) -> None:
    open_chat(repos, "old", now=50.0)
    open_chat(repos, "older", now=40.0)
    open_chat(repos, "other", now=60.0, visitor=Visitor(name="Bea", email="bea@example.com"))
    now = open_chat(repos, "now", now=100.0)
    assert [c.id for c in repos.conversations.earlier_conversations(now)] == ["old", "older"]

    verified = Visitor(name="Ann", email="x@example.com", identity_id="u1", verified=True)
    open_chat(repos, "v-old", now=70.0, visitor=verified)
    v_now = open_chat(repos, "v-now", now=120.0, visitor=verified)
    assert [c.id for c in repos.conversations.earlier_conversations(v_now)] == ["v-old"]
