"""Conversations and their visitors, with the cache of the newest ones read (SQLite)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from bridge.core.models import (
    AgentId,
    Conversation,
    ConversationId,
    ItemKind,
    Page,
    QueueId,
    RoomRef,
    Status,
    VisitorInfo,
)
from bridge.store.db import SqliteDatabase

# Conversations kept in memory (the newest read), so that each line does not read its
# conversation back from SQLite; every write to a conversation goes through this package.
CONVERSATION_CACHE_SIZE = 512
CONVERSATION_BATCH = 200  # rows per read when a pass walks many conversations

_COLUMNS = """
    c.id, c.queue_id, c.status, c.room, c.agent_id, c.page_url, c.page_title, c.referrer,
    c.created_at, c.first_response_at, c.ended_at, c.last_seq, c.rating, c.comment,
    c.callback_phone, c.callback_time,
    v.name AS visitor_name, v.email AS visitor_email, v.lang, v.user_agent, v.identity_id,
    v.verified
"""


class ConversationCache:
    """The newest conversations read, by id and by room, oldest first (dicts keep order).

    The dicts are read directly on the hot path (a method call per line would cost more
    than the lookup); they are only ever mutated, never replaced, so holders may keep them."""

    def __init__(self) -> None:
        self.by_id: dict[ConversationId, Conversation] = {}
        self.room_ids: dict[str, ConversationId] = {}  # checked against the cached room

    def keep(self, conversation: Conversation | None) -> Conversation | None:
        if conversation is None:
            return None
        self.by_id.pop(conversation.id, None)
        self.by_id[conversation.id] = conversation
        if len(self.by_id) > CONVERSATION_CACHE_SIZE:
            del self.by_id[next(iter(self.by_id))]
        if conversation.room is not None:
            self.room_ids.pop(conversation.room, None)
            self.room_ids[conversation.room] = conversation.id
            if len(self.room_ids) > CONVERSATION_CACHE_SIZE:
                del self.room_ids[next(iter(self.room_ids))]
        return conversation

    def forget(self, conversation_id: ConversationId) -> None:
        """Drop the cached copy after a write; call it after the commit, and on errors."""
        self.by_id.pop(conversation_id, None)


class SqliteConversations:
    """`ConversationRepository` on SQLite."""

    def __init__(self, database: SqliteDatabase, cache: ConversationCache) -> None:
        self._db = database.db
        self._transaction = database.transaction
        self._rows = database.rows
        self.cache = cache
        self._cached = cache.by_id
        self._room_ids = cache.room_ids

    # -- reads ---------------------------------------------------------------------------

    def conversation(self, conversation_id: str) -> Conversation | None:
        cached = self._cached.get(ConversationId(conversation_id))
        if cached is not None:
            return cached
        return self.cache.keep(self._one("c.id = ?", conversation_id))

    def conversation_by_token(self, token_hash: str) -> Conversation | None:
        return self._one("c.token_hash = ?", token_hash)

    def conversation_by_room(self, room: str) -> Conversation | None:
        conversation_id = self._room_ids.get(room)
        cached = self._cached.get(conversation_id) if conversation_id is not None else None
        if cached is not None and cached.room == room:
            return cached
        return self.cache.keep(self._one("c.room = ?", room))

    def open_conversations(self) -> list[Conversation]:
        return list(self.each_open_conversation())

    def each_open_conversation(self) -> Iterator[Conversation]:
        """Every open conversation, oldest first, a batch at a time (see `_batches`)."""
        return self._batches("c.status != ?", Status.ENDED.value)

    def waiting_conversations(self, queue_id: str) -> Iterator[Conversation]:
        """The queue's line, first come first: read a batch at a time (see `_batches`)."""
        return self._batches("c.queue_id = ? AND c.status = ?", queue_id,
                             Status.WAITING.value)

    def waiting_position(self, conversation: Conversation) -> int:
        """1-based place in its queue's line among conversations nobody answered yet."""
        return self._count(
            "SELECT COUNT(*) FROM conversations WHERE queue_id = ? AND status = ?"
            " AND rowid <= (SELECT rowid FROM conversations WHERE id = ?)",
            conversation.queue_id, Status.WAITING.value, conversation.id)

    def count_waiting(self, queue_id: str) -> int:
        return self._count("SELECT COUNT(*) FROM conversations WHERE queue_id = ? AND status = ?",
                           queue_id, Status.WAITING.value)

    def open_chats_of(self, agent_id: str) -> int:
        return self._count("SELECT COUNT(*) FROM conversations WHERE agent_id = ? AND status != ?",
                           agent_id, Status.ENDED.value)

    def last_activity(self) -> list[tuple[ConversationId, float]]:
        """Each open conversation with the time of its newest line (or its start, or the
        visitor's last request to keep it open)."""
        rows = self._db.execute(
            "SELECT c.id, MAX(c.created_at, COALESCE(MAX(i.ts), 0), COALESCE(c.extended_at, 0))"
            " FROM conversations c"
            " LEFT JOIN items i ON i.conversation_id = c.id AND i.kind = ?"
            " WHERE c.status != ? GROUP BY c.id",
            (ItemKind.TEXT.value, Status.ENDED.value))
        return [(ConversationId(row[0]), float(row[1])) for row in rows]

    def earlier_conversations(self, conversation: Conversation) -> list[Conversation]:
        """The same visitor's other conversations, newest first: by the host site's verified
        identity when there is one, else by email."""
        if conversation.visitor.verified and conversation.visitor.identity_id:
            where, key = "v.verified = 1 AND v.identity_id = ?", conversation.visitor.identity_id
        else:
            where, key = "v.email = ?", conversation.visitor.email
        return list(reversed(list(self._conversations(
            f"{where} AND c.id != ? AND c.created_at < ?",
            key, conversation.id, conversation.created_at))))

    # -- writes --------------------------------------------------------------------------

    def create_conversation(
        self,
        conversation_id: ConversationId,
        queue_id: QueueId,
        visitor: VisitorInfo,
        page: Page,
        token_hash: str,
        now: float,
    ) -> Conversation:
        with self._transaction(durable=True):
            visitor_id = self._db.execute(
                "INSERT INTO visitors (name, email, lang, user_agent, created_at, identity_id,"
                " verified) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (visitor.name, visitor.email, visitor.lang, visitor.user_agent, now,
                 visitor.identity_id, int(visitor.verified)),
            ).lastrowid
            self._db.execute(
                "INSERT INTO conversations (id, visitor_id, token_hash, queue_id, status,"
                " page_url, page_title, referrer, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
                (conversation_id, visitor_id, token_hash, queue_id, Status.WAITING.value,
                 page.url, page.title, page.referrer, now),
            )
        conversation = self.conversation(conversation_id)
        assert conversation is not None
        return conversation

    def set_room(self, conversation_id: ConversationId, room: RoomRef) -> None:
        self.update(conversation_id, room=room)

    def set_agent(self, conversation_id: ConversationId, agent_id: AgentId) -> None:
        self.update(conversation_id, agent_id=agent_id)

    def set_queue(self, conversation_id: ConversationId, queue_id: QueueId) -> None:
        self.update(conversation_id, queue_id=queue_id)

    def set_rating(self, conversation_id: str, rating: int, comment: str) -> None:
        self.update(ConversationId(conversation_id), rating=rating, comment=comment)

    def set_callback(self, conversation_id: str, phone: str, when: str) -> None:
        self.update(ConversationId(conversation_id), callback_phone=phone, callback_time=when)

    def extend(self, conversation_id: ConversationId, now: float) -> None:
        self.update(conversation_id, extended_at=now)

    def set_status(
        self, conversation_id: ConversationId, status: Status, *, ended_at: float | None = None
    ) -> None:
        """Change the status; an ended conversation stays ended (a late event read the
        conversation before it ended must not reopen it)."""
        self._write(conversation_id,
                    "UPDATE conversations SET status = ?, ended_at = COALESCE(?, ended_at)"
                    " WHERE id = ? AND status != ?",
                    status.value, ended_at, conversation_id, Status.ENDED.value)

    def clear_agent(self, conversation_id: ConversationId) -> None:
        """The chat has no owner again (its agent left it); routing finds another."""
        self._write(conversation_id, "UPDATE conversations SET agent_id = NULL WHERE id = ?",
                    conversation_id)

    def set_first_response(self, conversation_id: ConversationId, now: float) -> None:
        cached = self._cached.get(conversation_id)
        if cached is not None and cached.first_response_at is not None:
            return  # the common case: every agent line after the first
        self._write(conversation_id,
                    "UPDATE conversations SET first_response_at = ?"
                    " WHERE id = ? AND first_response_at IS NULL", now, conversation_id)

    def update(self, conversation_id: ConversationId, **values: Any) -> None:
        """Set the given columns (None values are left alone). SQLite-only: the column names
        are this schema's."""
        values = {k: v for k, v in values.items() if v is not None}
        assignments = ", ".join(f"{column} = ?" for column in values)
        self._write(conversation_id, f"UPDATE conversations SET {assignments} WHERE id = ?",
                    *values.values(), conversation_id)

    def _write(self, conversation_id: ConversationId, sql: str, *params: Any) -> None:
        try:
            with self._transaction(durable=True):
                self._db.execute(sql, params)
        finally:
            self.cache.forget(conversation_id)

    # -- reading rows --------------------------------------------------------------------

    def _count(self, sql: str, *params: Any) -> int:
        return int(self._db.execute(sql, params).fetchone()[0])

    def _one(self, where: str, value: str) -> Conversation | None:
        return next(self._conversations(where, value), None)

    def _conversations(self, where: str, *params: Any) -> Iterator[Conversation]:
        sql = (f"SELECT {_COLUMNS} FROM conversations c"
               f" JOIN visitors v ON v.id = c.visitor_id WHERE {where} ORDER BY c.created_at")
        for row in self._rows(sql, params):
            yield conversation_from_row(row)

    def _batches(self, where: str, *params: Any) -> Iterator[Conversation]:
        """Matching conversations in arrival (rowid) order, CONVERSATION_BATCH rows per read.

        A pass over a line of thousands then never holds them all at once: built together,
        they raised the process's memory for good (freed objects leave the heap fragmented).
        Each batch is read when the previous one is used up, so a conversation that changed
        since the pass started is seen as it is now, or not at all if it left the line."""
        after = 0
        while True:
            rows = self._rows(
                f"SELECT c.rowid AS position, {_COLUMNS} FROM conversations c"
                f" JOIN visitors v ON v.id = c.visitor_id WHERE ({where}) AND c.rowid > ?"
                " ORDER BY c.rowid LIMIT ?", (*params, after, CONVERSATION_BATCH))
            for row in rows:
                yield conversation_from_row(row)
            if len(rows) < CONVERSATION_BATCH:
                return
            after = rows[-1]["position"]
            del rows


def conversation_from_row(row: dict[str, Any]) -> Conversation:
    return Conversation(
        id=ConversationId(row["id"]),
        queue_id=QueueId(row["queue_id"]),
        status=Status(row["status"]),
        visitor=VisitorInfo(
            name=row["visitor_name"],
            email=row["visitor_email"],
            lang=row["lang"],
            user_agent=row["user_agent"],
            identity_id=row["identity_id"],
            verified=bool(row["verified"]),
        ),
        page=Page(url=row["page_url"], title=row["page_title"], referrer=row["referrer"]),
        created_at=row["created_at"],
        room=RoomRef(row["room"]) if row["room"] else None,
        agent_id=AgentId(row["agent_id"]) if row["agent_id"] else None,
        first_response_at=row["first_response_at"],
        ended_at=row["ended_at"],
        last_seq=row["last_seq"],
        rating=row["rating"],
        comment=row["comment"] or "",
        callback_phone=row["callback_phone"],
        callback_time=row["callback_time"] or "",
    )
