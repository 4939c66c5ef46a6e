"""EventRepository: the audit trail."""

from __future__ import annotations

from bridge.store.contracts import StoreRepositories

from .conftest import open_chat


def test_events_read_back_in_the_order_they_happened(repos: StoreRepositories) -> None:
    open_chat(repos, "c1")
    open_chat(repos, "c2")
    repos.audit.add_event("c1", "alice", "note", "called back", 200.0)
    repos.audit.add_event("c1", None, "transfer", "sales", 150.0)  # an older time, added later
    repos.audit.add_event("c2", "bob", "note", "other chat", 210.0)
    repos.audit.add_event(None, None, "transcript_mail", "ann@example.com", 220.0)
    assert repos.audit.events("c1") == [
        {"ts": 200.0, "agent_id": "alice", "kind": "note", "detail": "called back"},
        {"ts": 150.0, "agent_id": None, "kind": "transfer", "detail": "sales"}]
    assert repos.audit.events("nope") == []


def test_events_are_counted_by_kind_and_detail_across_conversations(
        repos: StoreRepositories) -> None:
    open_chat(repos, "c1")
    for ts, cid in [(100.0, "c1"), (200.0, None), (300.0, "c1")]:
        repos.audit.add_event(cid, None, "transcript_mail", "ann@example.com", ts)
    repos.audit.add_event("c1", None, "transcript_mail", "bea@example.com", 300.0)
    repos.audit.add_event("c1", None, "note", "ann@example.com", 300.0)
    assert repos.audit.count_events("transcript_mail", "ann@example.com", 0.0) == 3
    assert repos.audit.count_events("transcript_mail", "ann@example.com", 200.0) == 2
    assert repos.audit.count_events("transcript_mail", "nobody@example.com", 0.0) == 0
