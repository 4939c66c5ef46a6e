"""The audit trail: who did what to which conversation, when (SQLite)."""

from __future__ import annotations

from typing import Any

from bridge.store.db import SqliteDatabase


class SqliteEvents:
    """`EventRepository` on SQLite."""

    def __init__(self, database: SqliteDatabase) -> None:
        self._db = database.db
        self._transaction = database.transaction

    def add_event(self, conversation_id: str | None, agent_id: str | None, kind: str,
                  detail: str, now: float) -> None:
        """Who did what, when: the audit trail that history and reports read."""
        with self._transaction(durable=True):
            self._db.execute(
                "INSERT INTO events (conversation_id, ts, agent_id, kind, detail)"
                " VALUES (?, ?, ?, ?, ?)",
                (conversation_id, now, agent_id, kind, detail),
            )

    def count_events(self, kind: str, detail: str, since: float) -> int:
        """How many `kind` events with this detail happened since then, in every
        conversation (e.g. transcript mails to one address)."""
        row = self._db.execute("SELECT COUNT(*) FROM events WHERE kind = ? AND detail = ?"
                               " AND ts >= ?", (kind, detail, since)).fetchone()
        return int(row[0])

    def events(self, conversation_id: str) -> list[dict[str, Any]]:
        """The conversation's events in the order they happened: ts, agent_id, kind, detail."""
        return list(self._db.query(
            "SELECT ts, agent_id, kind, detail FROM events WHERE conversation_id = ?"
            " ORDER BY id", (conversation_id,)))
