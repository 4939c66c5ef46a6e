"""Every engine's repositories declare the contracts they are tested against."""

from __future__ import annotations

import pytest

from bridge.store import contracts
from bridge.store.contracts import StoreRepositories

REPOSITORIES = [
    ("conversations", contracts.ConversationRepository),
    ("timeline", contracts.TimelineRepository),
    ("agents", contracts.AgentRepository),
    ("tickets", contracts.TicketRepository),
    ("reports", contracts.ReportRepository),
    ("audit", contracts.EventRepository),
    ("kv", contracts.KeyValueRepository),
    ("files", contracts.FileRepository),
    ("retention", contracts.RetentionRepository),
]


@pytest.mark.parametrize(("attribute", "protocol"), REPOSITORIES)
def test_each_repository_has_its_contracts_methods(repos: StoreRepositories, attribute: str,
                                                   protocol: type) -> None:
    assert isinstance(getattr(repos, attribute), protocol)


def test_a_fresh_store_is_empty(repos: StoreRepositories) -> None:
    assert repos.conversations.open_conversations() == []
    assert repos.timeline.conversations_with_outbox() == []
    assert repos.agents.routing_marks() == []
    assert repos.tickets.pending_tickets() == []
    assert repos.reports.report_records(None, None) == ([], [])
