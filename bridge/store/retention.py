"""Retention and erasure: ended conversations deleted with everything that belongs to them,
and tickets (SQLite).

A purge runs beside a live bridge on the same database (another process, another
connection), so each transaction here writes before it reads: in WAL mode a transaction that
read first and then wants to write, after the bridge committed meanwhile, fails at once
(SQLITE_BUSY_SNAPSHOT) instead of waiting its turn like any writer. What to delete is
therefore chosen before the transaction, which is sound because nothing chosen can change:
an ended conversation stays ended with its end time (`ConversationRepository.set_status`), a
visitor's email never changes, a ticket's deliveries only go from pending to done, and a
conversation once deleted does not come back.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from bridge.core.models import Conversation, ConversationId, Status
from bridge.store.contracts import (
    EndedBefore,
    PurgeCounts,
    PurgedBatch,
    PurgeEstimate,
    PurgeSelection,
)
from bridge.store.conversations import SqliteConversations
from bridge.store.db import SqliteDatabase

# An email as the bridge compares them: Python's lower(), as offline tickets are stored.
# SQLite's own lower() folds ASCII letters only.
_FOLD = "lcb_fold_email"
_CHUNK = 500  # bound parameters per statement, well under SQLite's limit


def fold_email(address: str) -> str:
    return address.lower()


class SqliteRetention:
    """`RetentionRepository` on SQLite."""

    def __init__(self, database: SqliteDatabase, conversations: SqliteConversations) -> None:
        self._conn = database.db.conn
        self._transaction = database.transaction
        self._conversations = conversations
        self._conn.create_function(_FOLD, 1, _fold_or_none, deterministic=True)

    # -- reads -----------------------------------------------------------------------------

    def estimate(self, selection: PurgeSelection) -> PurgeEstimate:
        chosen, params = _chosen(selection)
        cte = f"WITH chosen AS (SELECT c.id FROM conversations c WHERE {chosen}) "
        conversations, items, files, file_bytes = self._conn.execute(
            cte + "SELECT (SELECT COUNT(*) FROM chosen),"
            " (SELECT COUNT(*) FROM items WHERE conversation_id IN chosen),"
            " (SELECT COUNT(*) FROM files WHERE conversation_id IN chosen),"
            " (SELECT COALESCE(SUM(size), 0) FROM files WHERE conversation_id IN chosen)",
            params).fetchone()
        # Contents that leave the disk: those no file of a kept conversation shares.
        contents, content_bytes = self._conn.execute(
            cte + "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM ("
            " SELECT f.sha256, MAX(f.size) AS size FROM files f"
            " WHERE f.conversation_id IN chosen AND NOT EXISTS (SELECT 1 FROM files g"
            "  WHERE g.sha256 = f.sha256 AND g.conversation_id NOT IN chosen)"
            " GROUP BY f.sha256)", params).fetchone()
        # A ticket made from a chat goes with its chat: never while the chat is kept.
        ticket_where, ticket_params = _tickets_chosen(selection)
        tickets = self._conn.execute(
            f"SELECT COUNT(*) FROM tickets t WHERE {ticket_where} AND NOT EXISTS ("
            f" SELECT 1 FROM conversations c WHERE c.id = t.conversation_id AND NOT ({chosen}))",
            (*ticket_params, *params)).fetchone()[0]
        counts = PurgeCounts(conversations=conversations, items=items, files=files,
                             file_bytes=file_bytes, tickets=tickets)
        return PurgeEstimate(counts=counts, contents=contents, content_bytes=content_bytes)

    def open_conversations_of(self, email: str) -> list[Conversation]:
        rows = self._conn.execute(
            "SELECT c.id FROM conversations c WHERE c.status != ? AND c.visitor_id IN"
            f" (SELECT id FROM visitors WHERE {_FOLD}(email) = ?) ORDER BY c.created_at",
            (Status.ENDED.value, fold_email(email))).fetchall()
        found = (self._conversations.conversation(row[0]) for row in rows)
        return [conversation for conversation in found if conversation is not None]

    # -- deletes ---------------------------------------------------------------------------

    def purge_conversations(self, selection: PurgeSelection, limit: int) -> PurgedBatch:
        chosen, params = _chosen(selection)
        ids = [row[0] for row in self._conn.execute(
            f"SELECT c.id FROM conversations c WHERE {chosen} ORDER BY c.rowid LIMIT ?",
            (*params, min(limit, _CHUNK)))]
        if not ids:
            return PurgedBatch(PurgeCounts(), frozenset())
        marks = _marks(ids)
        try:
            with self._purge_pragmas(), self._transaction(durable=True):
                # Children before parents. The first statement writes (see the module's
                # docstring); the write lock is waited for like any writer's.
                items = self._conn.execute(
                    f"DELETE FROM items WHERE conversation_id IN ({marks})"
                    " RETURNING file_id, txn_id", ids).fetchall()
                files = self._conn.execute(
                    f"DELETE FROM files WHERE conversation_id IN ({marks})"
                    " RETURNING sha256, size", ids).fetchall()
                self._conn.execute(f"DELETE FROM events WHERE conversation_id IN ({marks})", ids)
                self._conn.execute(
                    f"DELETE FROM item_changes WHERE conversation_id IN ({marks})", ids)
                self._conn.execute(
                    f"DELETE FROM routing_marks WHERE conversation_id IN ({marks})", ids)
                self._conn.execute(
                    f"DELETE FROM transfer_offers WHERE conversation_id IN ({marks})", ids)
                gone = self._conn.execute(
                    f"DELETE FROM conversations WHERE id IN ({marks})"
                    " RETURNING visitor_id, room", ids).fetchall()
                rooms = [room for _, room in gone if room]
                if rooms:
                    self._conn.execute(
                        f"DELETE FROM handled_commands WHERE room IN ({_marks(rooms)})", rooms)
                self._forget_posted_files([txn for file_id, txn in items if file_id and txn])
                self._delete_lone_visitors(sorted({visitor_id for visitor_id, _ in gone}))
        finally:
            for conversation_id in ids:
                self._conversations.cache.forget(ConversationId(conversation_id))
        counts = PurgeCounts(conversations=len(gone), items=len(items), files=len(files),
                             file_bytes=sum(size for _, size in files))
        return PurgedBatch(counts, frozenset(sha256 for sha256, _ in files))

    def purge_tickets(self, selection: PurgeSelection, limit: int) -> int:
        where, params = _tickets_chosen(selection)
        ids = [row[0] for row in self._conn.execute(
            f"SELECT t.id FROM tickets t WHERE {where} AND (t.conversation_id IS NULL OR"
            " NOT EXISTS (SELECT 1 FROM conversations c WHERE c.id = t.conversation_id))"
            " ORDER BY t.created_at LIMIT ?", (*params, min(limit, _CHUNK)))]
        if not ids:
            return 0
        with self._transaction(durable=True):
            return int(self._conn.execute(
                f"DELETE FROM tickets WHERE id IN ({_marks(ids)})", ids).rowcount)

    def _forget_posted_files(self, txn_ids: Sequence[str]) -> None:
        """What the backends remember of each visitor file they posted (the address of its
        copy on the messenger's server), kept under `<backend>:upload:<transaction id>`
        (`StoreBackendState` namespaces, the backends' upload keys)."""
        for start in range(0, len(txn_ids), _CHUNK):
            chunk = txn_ids[start:start + _CHUNK]
            self._conn.execute(
                "DELETE FROM kv WHERE key GLOB '*:upload:lcb.*' AND"
                f" substr(key, instr(key, ':upload:') + 8) IN ({_marks(chunk)})", chunk)

    def _delete_lone_visitors(self, visitor_ids: Sequence[int]) -> None:
        """The visitors no conversation refers to any more. (No index on
        conversations.visitor_id: this reads the table once per batch.)"""
        if not visitor_ids:
            return
        marks = _marks(visitor_ids)
        self._conn.execute(
            f"DELETE FROM visitors WHERE id IN ({marks}) AND id NOT IN"
            f" (SELECT visitor_id FROM conversations WHERE visitor_id IN ({marks}))",
            (*visitor_ids, *visitor_ids))

    @contextmanager
    def _purge_pragmas(self) -> Iterator[None]:
        """For a purge's transaction, on this connection, put back after it:

        - Foreign-key checks off: the purge deletes every child row before its parent, and
          with the checks on each deleted file row would read the whole items table and each
          deleted visitor the whole conversations table (`items.file_id` and
          `conversations.visitor_id` have no index): seconds per batch on a big database,
          while the bridge waits for the write lock.
        - secure_delete on: deleted rows are overwritten with zeros in the database file
          rather than left readable in free pages (an erasure should not leave the text
          behind); many builds have it on already.

        Both pragmas work only outside a transaction: inside one they stay as they are."""
        if self._conn.in_transaction:
            yield
            return
        before = {name: int(self._conn.execute(f"PRAGMA {name}").fetchone()[0])
                  for name in ("foreign_keys", "secure_delete")}
        self._conn.execute("PRAGMA foreign_keys=OFF")
        self._conn.execute("PRAGMA secure_delete=ON")
        try:
            yield
        finally:
            for name, value in before.items():
                self._conn.execute(f"PRAGMA {name}={value}")


def _chosen(selection: PurgeSelection) -> tuple[str, tuple[Any, ...]]:
    """SQL over `conversations c`: the conversations a selection takes (ended ones only)."""
    if isinstance(selection, EndedBefore):
        # Every end sets ended_at; a row without one would count from its start.
        return ("c.status = ? AND COALESCE(c.ended_at, c.created_at) < ?",
                (Status.ENDED.value, selection.cutoff))
    return ("c.status = ? AND c.visitor_id IN"
            f" (SELECT id FROM visitors WHERE {_FOLD}(email) = ?)",
            (Status.ENDED.value, fold_email(selection.email)))


def _tickets_chosen(selection: PurgeSelection) -> tuple[str, tuple[Any, ...]]:
    """SQL over `tickets t`: the tickets a selection takes, their chats aside. Retention
    keeps a ticket still to be delivered: deleting it would lose a visitor's message."""
    if isinstance(selection, EndedBefore):
        return ("t.created_at < ? AND t.mail_pending = 0 AND t.webhook_pending = 0"
                " AND t.messenger_pending = 0", (selection.cutoff,))
    return f"{_FOLD}(t.email) = ?", (fold_email(selection.email),)


def _marks(values: Sequence[Any]) -> str:
    return ",".join("?" * len(values))


def _fold_or_none(value: str | None) -> str | None:
    return None if value is None else fold_email(value)
