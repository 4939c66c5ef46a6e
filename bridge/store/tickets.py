"""Offline tickets and what is still to be delivered of each (SQLite)."""

from __future__ import annotations

from typing import Any

from bridge.core.models import Ticket
from bridge.store.db import SqliteDatabase

# The ways a ticket is delivered, each with its own "still to do" column.
_PENDING_COLUMNS = {"mail": "mail_pending", "webhook": "webhook_pending",
                    "messenger": "messenger_pending"}


class SqliteTickets:
    """`TicketRepository` on SQLite."""

    def __init__(self, database: SqliteDatabase) -> None:
        self._db = database.db
        self._transaction = database.transaction

    def add_ticket(self, ticket: Ticket, *, mail: bool, webhook: bool,
                   messenger: bool = False) -> None:
        """Store a ticket with what is still to be delivered; durable before the answer."""
        with self._transaction(durable=True):
            self._db.execute(
                "INSERT INTO tickets (id, created_at, queue_id, name, email, text, ip,"
                " conversation_id, mail_pending, webhook_pending, messenger_pending)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (ticket.id, ticket.created_at, ticket.queue_id, ticket.name, ticket.email,
                 ticket.text, ticket.ip, ticket.conversation_id, int(mail), int(webhook),
                 int(messenger)))

    def ticket_of_conversation(self, conversation_id: str) -> Ticket | None:
        rows = list(self._db.query("SELECT * FROM tickets WHERE conversation_id = ?",
                                   [conversation_id]))
        return ticket_from_row(rows[0]) if rows else None

    def pending_tickets(self) -> list[tuple[Ticket, bool, bool]]:
        """Tickets with mail or webhook still to deliver: (ticket, mail, webhook)."""
        rows = self._db.query(
            "SELECT * FROM tickets WHERE mail_pending = 1 OR webhook_pending = 1 ORDER BY 2")
        return [(ticket_from_row(row), bool(row["mail_pending"]), bool(row["webhook_pending"]))
                for row in rows]

    def tickets_for_messenger(self) -> list[Ticket]:
        """Tickets still to be posted to their queue's agents, oldest first."""
        return [ticket_from_row(row) for row in self._db.query(
            "SELECT * FROM tickets WHERE messenger_pending = 1 ORDER BY created_at")]

    def ticket_delivered(self, ticket_id: str, what: str) -> None:
        """`what` is "mail", "webhook" or "messenger"."""
        column = _PENDING_COLUMNS[what]
        with self._transaction(durable=True):
            self._db.execute(f"UPDATE tickets SET {column} = 0 WHERE id = ?", (ticket_id,))

    def count_tickets(self, *, email: str | None = None, ip: str | None = None,
                      since: float) -> int:
        column, value = ("email", email.lower()) if email is not None else ("ip", ip)
        row = self._db.execute(
            f"SELECT COUNT(*) FROM tickets WHERE {column} = ? AND created_at >= ?",
            (value, since)).fetchone()
        return int(row[0])


def ticket_from_row(row: dict[str, Any]) -> Ticket:
    return Ticket(id=row["id"], created_at=row["created_at"], queue_id=row["queue_id"],
                  name=row["name"], email=row["email"], text=row["text"], ip=row["ip"],
                  conversation_id=row["conversation_id"])
