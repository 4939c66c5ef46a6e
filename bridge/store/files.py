"""The files of conversations' timelines: which conversation each belongs to, how many a
visitor sent lately, which stored contents are still referred to (SQLite)."""

from __future__ import annotations

from collections.abc import Iterable

from bridge.core.models import ConversationId, FileInfo, Sender
from bridge.store.db import SqliteDatabase
from bridge.store.timeline import file_from_row


class SqliteFiles:
    """`FileRepository` on SQLite."""

    def __init__(self, database: SqliteDatabase) -> None:
        self._db = database.db
        self._rows = database.rows

    def file(self, file_id: str) -> tuple[ConversationId, FileInfo] | None:
        rows = self._rows("SELECT * FROM files WHERE id = ?", (file_id,))
        if not rows:
            return None
        return ConversationId(rows[0]["conversation_id"]), file_from_row(rows[0])

    def visitor_files_since(self, conversation_id: str, since: float) -> int:
        row = self._db.execute(
            "SELECT COUNT(*) FROM files WHERE conversation_id = ? AND sender = ?"
            " AND created_at >= ?", (conversation_id, Sender.VISITOR.value, since)).fetchone()
        return int(row[0])

    def in_use(self, hashes: Iterable[str]) -> set[str]:
        """Which of these contents some file row still refers to."""
        names = list(hashes)
        used: set[str] = set()
        for start in range(0, len(names), 500):
            chunk = tuple(names[start:start + 500])
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT DISTINCT sha256 FROM files WHERE sha256 IN ({marks})", chunk)
            used.update(row[0] for row in rows)
        return used
