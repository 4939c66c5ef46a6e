"""AgentRepository: canned replies, breaks, bans and routing's marks."""

from __future__ import annotations

from bridge.core.models import ConversationId, Status
from bridge.store.contracts import StoreRepositories

from .conftest import open_chat


def test_personal_canned_replies_are_saved_replaced_and_deleted(
        repos: StoreRepositories) -> None:
    agents = repos.agents
    assert agents.personal_canned("alice") == {}
    assert agents.set_canned("alice", "hi", "Hello!")
    assert agents.set_canned("alice", "bye", "Bye!")
    assert agents.set_canned("alice", "hi", "Hello there!")
    assert agents.set_canned("bob", "hi", "Yo")
    assert agents.personal_canned("alice") == {"bye": "Bye!", "hi": "Hello there!"}
    assert list(agents.personal_canned("alice")) == ["bye", "hi"]  # by name
    assert agents.set_canned("alice", "bye", None) is True
    assert agents.set_canned("alice", "bye", None) is False  # nothing left to delete
    assert agents.personal_canned("alice") == {"hi": "Hello there!"}


def test_a_break_is_on_until_taken_off(repos: StoreRepositories) -> None:
    agents = repos.agents
    assert not agents.on_break("alice")
    agents.set_break("alice", True)
    assert agents.on_break("alice") and not agents.on_break("bob")
    agents.set_break("alice", False)
    assert not agents.on_break("alice")


def test_a_ban_matches_the_email_in_any_case(repos: StoreRepositories) -> None:
    agents = repos.agents
    assert not agents.is_banned("troll@example.com")
    agents.ban("Troll@Example.com", "alice", "spam", 100.0)
    agents.ban("troll@example.com", "bob", "spam again", 200.0)  # twice: still one ban
    assert agents.is_banned("TROLL@example.COM")
    assert not agents.is_banned("ann@example.com")


def test_routing_marks_are_kept_per_open_chat(repos: StoreRepositories) -> None:
    agents = repos.agents
    c1, c2 = ConversationId("c1"), ConversationId("c2")
    open_chat(repos, c1)
    open_chat(repos, c2)
    agents.add_routing_marks(c1, "invited", ["alice", "bob"])
    agents.add_routing_marks(c1, "invited", ["alice"])  # again: no second mark
    agents.add_routing_marks(c1, "declined", ["bob"])
    agents.add_routing_marks(c2, "invited", ["carol"])
    agents.add_routing_marks(c2, "invited", [])
    assert sorted(agents.routing_marks()) == [
        ("c1", "alice", "invited"), ("c1", "bob", "declined"), ("c1", "bob", "invited"),
        ("c2", "carol", "invited")]
    repos.conversations.set_status(c2, Status.ENDED, ended_at=300.0)
    assert all(mark[0] == c1 for mark in agents.routing_marks())  # ended chats: none
    agents.clear_routing_marks(c1)
    assert agents.routing_marks() == []
