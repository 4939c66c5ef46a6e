"""TicketRepository: tickets and the deliveries still to make of each."""

from __future__ import annotations

from bridge.core.models import Ticket
from bridge.store.contracts import StoreRepositories

from .conftest import open_chat


def ticket(tid: str, at: float, *, email: str = "ann@example.com", ip: str = "198.51.100.7",
           conversation_id: str | None = None) -> Ticket:
    return Ticket(id=tid, created_at=at, queue_id="support", name="Ann", email=email,
                  text="Call me", ip=ip, conversation_id=conversation_id)


def test_each_delivery_is_pending_until_done(repos: StoreRepositories) -> None:
    tickets = repos.tickets
    t1, t2, t3 = ticket("t1", 100.0), ticket("t2", 200.0), ticket("t3", 300.0)
    tickets.add_ticket(t2, mail=False, webhook=True, messenger=True)
    tickets.add_ticket(t1, mail=True, webhook=True)
    tickets.add_ticket(t3, mail=False, webhook=False)
    assert tickets.pending_tickets() == [(t1, True, True), (t2, False, True)]  # oldest first
    assert tickets.tickets_for_messenger() == [t2]

    tickets.ticket_delivered("t1", "mail")
    tickets.ticket_delivered("t2", "webhook")
    assert tickets.pending_tickets() == [(t1, False, True)]
    tickets.ticket_delivered("t1", "webhook")
    tickets.ticket_delivered("t2", "messenger")
    assert tickets.pending_tickets() == [] and tickets.tickets_for_messenger() == []


def test_a_ticket_made_from_a_chat_is_found_by_it(repos: StoreRepositories) -> None:
    open_chat(repos, "c1")
    made = ticket("t1", 100.0, conversation_id="c1")
    repos.tickets.add_ticket(made, mail=True, webhook=False)
    assert repos.tickets.ticket_of_conversation("c1") == made
    assert repos.tickets.ticket_of_conversation("c2") is None


def test_tickets_are_counted_by_email_or_address_since_a_time(repos: StoreRepositories) -> None:
    tickets = repos.tickets
    tickets.add_ticket(ticket("t1", 100.0, email="ann@example.com"), mail=True, webhook=False)
    tickets.add_ticket(ticket("t2", 200.0, email="ann@example.com", ip="203.0.113.9"),
                       mail=True, webhook=False)
    tickets.add_ticket(ticket("t3", 300.0, email="bea@example.com"), mail=True, webhook=False)
    assert tickets.count_tickets(email="ANN@example.com", since=0.0) == 2
    assert tickets.count_tickets(email="ann@example.com", since=150.0) == 1
    assert tickets.count_tickets(ip="198.51.100.7", since=0.0) == 2
    assert tickets.count_tickets(ip="192.0.2.1", since=0.0) == 0
