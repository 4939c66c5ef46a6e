"""Figures over many conversations: !stats, the report page, routing's wait estimate (SQLite)."""

from __future__ import annotations

from typing import Any

from bridge.core.models import ItemKind, Status
from bridge.report import ChatRecord
from bridge.store.db import SqliteDatabase


class SqliteReports:
    """`ReportRepository` on SQLite."""

    def __init__(self, database: SqliteDatabase) -> None:
        self._db = database.db

    def day_figures(self, since: float, until: float) -> dict[str, Any]:
        """Counts for !stats: chats started in [since, until) and how they went."""
        row = self._db.execute(
            "SELECT COUNT(*), SUM(first_response_at IS NOT NULL), SUM(status = ?),"
            " AVG(rating), COUNT(rating) FROM conversations"
            " WHERE created_at >= ? AND created_at < ?",
            (Status.WAITING.value, since, until)).fetchone()
        waits = [r[0] for r in self._db.execute(
            "SELECT first_response_at - created_at FROM conversations WHERE created_at >= ?"
            " AND created_at < ? AND first_response_at IS NOT NULL ORDER BY 1", (since, until))]
        return {"chats": row[0], "answered": row[1] or 0, "waiting": row[2] or 0,
                "rating_avg": row[3], "ratings": row[4], "first_response_s": waits}

    def recent_waits(self, queue_id: str, since: float, limit: int = 50) -> list[float]:
        """How long the queue's latest chats answered since `since` waited for that answer."""
        rows = self._db.execute(
            "SELECT first_response_at - created_at FROM conversations WHERE queue_id = ?"
            " AND first_response_at >= ? ORDER BY first_response_at DESC LIMIT ?",
            (queue_id, since, limit))
        return [float(row[0]) for row in rows]

    def report_records(
        self, since: float | None, until: float | None
    ) -> tuple[list[ChatRecord], list[tuple[str, float]]]:
        """Conversations and tickets created in [since, until) (None: unbounded), in time
        order, for `bridge.report`: each conversation with its number of text lines."""
        where = "(? IS NULL OR created_at >= ?) AND (? IS NULL OR created_at < ?)"
        params = (since, since, until, until)
        chats = [
            ChatRecord(queue_id=row[0], agent_id=row[1], created_at=row[2],
                       first_response_at=row[3], ended_at=row[4], status=row[5],
                       rating=row[6], messages=int(row[7]))
            for row in self._db.execute(
                "SELECT c.queue_id, c.agent_id, c.created_at, c.first_response_at, c.ended_at,"
                " c.status, c.rating, (SELECT COUNT(*) FROM items i"
                "  WHERE i.conversation_id = c.id AND i.kind = ?)"
                f" FROM conversations c WHERE {where}"
                " ORDER BY c.created_at, c.rowid",
                (ItemKind.TEXT.value, *params))
        ]
        tickets = [(str(row[0]), float(row[1])) for row in self._db.execute(
            f"SELECT queue_id, created_at FROM tickets WHERE {where} ORDER BY created_at, id",
            params)]
        return chats, tickets
