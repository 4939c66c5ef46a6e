"""What the bridge keeps per agent: canned replies, breaks, bans, routing's marks (SQLite)."""

from __future__ import annotations

from collections.abc import Iterable

from bridge.core.models import ConversationId, Status
from bridge.store.db import SqliteDatabase


class SqliteAgents:
    """`AgentRepository` on SQLite."""

    def __init__(self, database: SqliteDatabase) -> None:
        self._db = database.db
        self._transaction = database.transaction

    # -- canned replies --------------------------------------------------------------------

    def personal_canned(self, agent_id: str) -> dict[str, str]:
        rows = self._db.execute(
            "SELECT name, text FROM canned WHERE agent_id = ? ORDER BY name", (agent_id,))
        return {name: text for name, text in rows}

    def set_canned(self, agent_id: str, name: str, text: str | None) -> bool:
        """Save (or with text None delete) a personal canned reply; False if none to delete."""
        with self._transaction(durable=True):
            if text is None:
                return self._db.execute(
                    "DELETE FROM canned WHERE agent_id = ? AND name = ?", (agent_id, name)
                ).rowcount > 0
            self._db.execute(
                "INSERT INTO canned (agent_id, name, text) VALUES (?, ?, ?)"
                " ON CONFLICT(agent_id, name) DO UPDATE SET text = excluded.text",
                (agent_id, name, text),
            )
        return True

    # -- breaks and bans -------------------------------------------------------------------

    def set_break(self, agent_id: str, on_break: bool) -> None:
        with self._transaction(durable=True):
            self._db.execute(
                "INSERT INTO agent_state (agent_id, on_break) VALUES (?, ?)"
                " ON CONFLICT(agent_id) DO UPDATE SET on_break = excluded.on_break",
                (agent_id, int(on_break)))

    def on_break(self, agent_id: str) -> bool:
        row = self._db.execute("SELECT on_break FROM agent_state WHERE agent_id = ?",
                               (agent_id,)).fetchone()
        return bool(row and row[0])

    def ban(self, email: str, agent_id: str, reason: str, now: float) -> None:
        with self._transaction(durable=True):
            self._db.execute(
                "INSERT INTO bans (email, agent_id, reason, ts) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(email) DO UPDATE SET reason = excluded.reason, ts = excluded.ts",
                (email.lower(), agent_id, reason, now))

    def is_banned(self, email: str) -> bool:
        row = self._db.execute("SELECT 1 FROM bans WHERE email = ?",
                               (email.lower(),)).fetchone()
        return row is not None

    # -- routing's marks -------------------------------------------------------------------

    def add_routing_marks(self, conversation_id: ConversationId, kind: str,
                          agent_ids: Iterable[str]) -> None:
        """Remember agents `invited` to a chat or who `declined` it. Not waited for on disk:
        a mark a power cut takes back costs one invitation sent again."""
        with self._transaction(durable=False):
            self._db.conn.executemany(
                "INSERT OR IGNORE INTO routing_marks (conversation_id, agent_id, kind)"
                " VALUES (?, ?, ?)", [(conversation_id, agent_id, kind) for agent_id in agent_ids])

    def clear_routing_marks(self, conversation_id: ConversationId, kind: str | None = None
                            ) -> None:
        """Forget a chat's marks, or only those of one kind."""
        with self._transaction(durable=False):
            if kind is None:
                self._db.execute("DELETE FROM routing_marks WHERE conversation_id = ?",
                                 (conversation_id,))
            else:
                self._db.execute("DELETE FROM routing_marks WHERE conversation_id = ?"
                                 " AND kind = ?", (conversation_id, kind))

    def routing_marks(self) -> list[tuple[ConversationId, str, str]]:
        """(conversation, agent, kind) of every open chat."""
        rows = self._db.execute(
            "SELECT m.conversation_id, m.agent_id, m.kind FROM routing_marks m"
            " JOIN conversations c ON c.id = m.conversation_id WHERE c.status != ?",
            (Status.ENDED.value,))
        return [(ConversationId(row[0]), str(row[1]), str(row[2])) for row in rows]
