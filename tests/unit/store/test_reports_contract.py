"""ReportRepository: figures over many conversations."""

from __future__ import annotations

from bridge.core.models import AgentId, ConversationId, ItemKind, Sender, Status, Ticket
from bridge.report import ChatRecord
from bridge.store.contracts import StoreRepositories

from .conftest import open_chat


def answered(repos: StoreRepositories, cid: str, created: float, wait: float, *,
             queue: str = "support") -> ConversationId:
    open_chat(repos, cid, queue=queue, now=created)
    conversation_id = ConversationId(cid)
    repos.conversations.set_status(conversation_id, Status.ACTIVE)
    repos.conversations.set_first_response(conversation_id, created + wait)
    return conversation_id


def test_day_figures_count_the_chats_started_in_the_span(repos: StoreRepositories) -> None:
    answered(repos, "a", 1000.0, 30.0)
    rated = answered(repos, "b", 1100.0, 10.0)
    repos.conversations.set_rating(rated, 4, "")
    open_chat(repos, "waiting", now=1200.0)
    open_chat(repos, "yesterday", now=10.0)
    figures = repos.reports.day_figures(1000.0, 2000.0)
    assert figures == {"chats": 3, "answered": 2, "waiting": 1, "rating_avg": 4.0,
                       "ratings": 1, "first_response_s": [10.0, 30.0]}
    empty = repos.reports.day_figures(5000.0, 6000.0)
    assert (empty["chats"], empty["answered"], empty["waiting"]) == (0, 0, 0)
    assert (empty["rating_avg"], empty["first_response_s"]) == (None, [])


def test_recent_waits_are_the_latest_answers_first(repos: StoreRepositories) -> None:
    answered(repos, "a", 1000.0, 30.0)
    answered(repos, "b", 1100.0, 10.0)
    answered(repos, "c", 1200.0, 20.0)
    answered(repos, "s", 1300.0, 99.0, queue="sales")
    assert repos.reports.recent_waits("support", 0.0) == [20.0, 10.0, 30.0]
    assert repos.reports.recent_waits("support", 0.0, limit=2) == [20.0, 10.0]
    assert repos.reports.recent_waits("support", 1111.0) == [20.0]


def test_report_records_are_the_span_in_time_order(repos: StoreRepositories) -> None:
    first = answered(repos, "a", 1000.0, 30.0)
    repos.conversations.set_agent(first, AgentId("alice"))
    repos.conversations.set_status(first, Status.ENDED, ended_at=1500.0)
    for text in ("hi", "bye"):
        repos.timeline.append_item(first, ItemKind.TEXT, Sender.VISITOR, "Ann", text, 1010.0)
    repos.timeline.append_item(first, ItemKind.ENDED, Sender.SYSTEM, "", "", 1500.0)
    open_chat(repos, "b", now=2000.0)
    repos.tickets.add_ticket(Ticket(id="t1", created_at=1200.0, queue_id="sales", name="Ann",
                                    email="ann@example.com", text="?"), mail=True, webhook=False)
    chats, tickets = repos.reports.report_records(None, None)
    assert chats == [
        ChatRecord(queue_id="support", agent_id="alice", created_at=1000.0,
                   first_response_at=1030.0, ended_at=1500.0, status="ended", rating=None,
                   messages=2),
        ChatRecord(queue_id="support", agent_id=None, created_at=2000.0,
                   first_response_at=None, ended_at=None, status="waiting", rating=None,
                   messages=0)]
    assert tickets == [("sales", 1200.0)]
    chats, tickets = repos.reports.report_records(1100.0, 3000.0)
    assert [c.created_at for c in chats] == [2000.0] and tickets == [("sales", 1200.0)]
    chats, tickets = repos.reports.report_records(None, 1100.0)
    assert [c.created_at for c in chats] == [1000.0] and tickets == []
