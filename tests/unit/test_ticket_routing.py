"""Where tickets go, and what the visitor and the agents are told about it."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.config_queues import QueueConfig
from bridge.core.models import Ticket
from bridge.i18n import built_in
from bridge.ticket_routing import AGENT_TEXT_MAX, Routes, agent_text, routes_for

PANEL = Path(__file__).parents[2] / "bridge" / "web" / "static" / "panel.js"
TICKET = Ticket(id="T-1A2B3C4D", created_at=0.0, queue_id="support", name="Anna",
                email="anna@example.com", text="Where is my order?")


def queue(**keys: object) -> QueueConfig:
    return QueueConfig(**{"id": "support", "name": "Support", "agents": ("alice",), **keys})


@pytest.mark.parametrize(("keys", "mail_ready", "names", "helpdesk"), [
    ({}, True, ["messenger"], False),
    ({"helpdesk_email": "desk@example.com"}, True, ["mail", "messenger"], True),
    ({"helpdesk_email": "desk@example.com"}, False, ["messenger"], False),  # no [smtp]
    ({"webhook_url": "https://desk.example.com/hook"}, False, ["webhook", "messenger"], True),
    ({"agents": ()}, True, [], False),
])
def test_routes_and_whether_a_help_desk_answers(keys: dict[str, object], mail_ready: bool,
                                                names: list[str], helpdesk: bool) -> None:
    routes = routes_for(queue(**keys), mail_ready=mail_ready)
    assert (routes.names(), routes.helpdesk) == (names, helpdesk)


def test_the_visitor_is_promised_email_only_from_a_help_desk() -> None:
    english = built_in("en")
    assert "by email" in english["ticket"]
    team = english["ticket_team"]
    assert "by email" not in team and "{ticket}" in team and "{email}" in team
    assert "by email" not in english["offline"]  # shown before anyone knows the route
    panel = PANEL.read_text(encoding="utf-8")
    assert "helpdesk === false ? 'ticket_team' : 'ticket'" in panel


def test_agents_read_who_wrote_how_to_answer_and_who_else_has_it() -> None:
    alone = agent_text(TICKET, queue(), Routes(mail=False, webhook=False, messenger=True))
    assert alone.startswith("🎫 Offline message T-1A2B3C4D for Support from Anna "
                            "<anna@example.com>. Nobody else got it. Please answer by email.")
    assert alone.endswith("\n\nWhere is my order?")
    shared = agent_text(TICKET, queue(), Routes(mail=True, webhook=False, messenger=True))
    assert "The help desk has it too." in shared
    long = Ticket(**{**TICKET.__dict__, "text": "x" * (AGENT_TEXT_MAX + 50),
                     "conversation_id": "c1"})
    text = agent_text(long, queue(), Routes(False, False, True))
    assert text.startswith("🎫 Unanswered chat") and len(text) < AGENT_TEXT_MAX + 300
