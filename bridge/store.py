"""SQLite storage: the only module that knows table names or SQL.

WAL mode. A write returns once its commit is on disk (an fdatasync of the WAL file right
after the commit, which is what synchronous=FULL does inside it), so the outbox (undelivered
items) survives a kill -9 and a power cut. Visitor lines are the exception: they commit
without waiting, go to the room, and their acknowledgement waits for an fsync shared with the
lines around them, in another thread (`flush`, `bridge.wal_sync`).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlite_utils import Database, Migrations

from bridge.core.models import (
    AgentId,
    Conversation,
    ConversationId,
    Item,
    ItemKind,
    Page,
    QueueId,
    RoomRef,
    Sender,
    Status,
    Ticket,
    VisitorInfo,
)
from bridge.report import ChatRecord
from bridge.wal_sync import WalSync

log = logging.getLogger(__name__)

migrations = Migrations("livechat")

# Conversations kept in memory (the newest read), so that each line does not read its
# conversation back from SQLite; every write to a conversation goes through this module.
CONVERSATION_CACHE_SIZE = 512
CONVERSATION_BATCH = 200  # rows per read when a pass walks many conversations


class StoreError(RuntimeError):
    pass


class StoreUnavailable(StoreError):
    """The database refused a write for now (disk full, I/O error, locked too long). The
    write was rolled back, or (when only the fsync after the commit failed) may be lost by
    a power cut; either way the same write may be made again later, and works once the
    disk does."""


@migrations()
def m001_initial(db: Database) -> None:
    db.executescript(
        """
        CREATE TABLE visitors (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            email TEXT NOT NULL,
            lang TEXT NOT NULL DEFAULT '',
            user_agent TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL
        );
        CREATE INDEX visitors_email ON visitors(email);
        CREATE TABLE conversations (
            id TEXT PRIMARY KEY,
            visitor_id INTEGER NOT NULL REFERENCES visitors(id),
            token_hash TEXT NOT NULL UNIQUE,
            queue_id TEXT NOT NULL,
            status TEXT NOT NULL,
            room TEXT UNIQUE,
            agent_id TEXT,
            page_url TEXT NOT NULL DEFAULT '',
            page_title TEXT NOT NULL DEFAULT '',
            referrer TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL,
            first_response_at REAL,
            ended_at REAL,
            last_seq INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX conversations_status ON conversations(status);
        CREATE TABLE items (
            conversation_id TEXT NOT NULL REFERENCES conversations(id),
            seq INTEGER NOT NULL,
            kind TEXT NOT NULL,
            sender TEXT NOT NULL,
            sender_id TEXT,
            name TEXT NOT NULL,
            text TEXT NOT NULL,
            ts REAL NOT NULL,
            client_id TEXT,
            txn_id TEXT,
            event_id TEXT,
            delivered INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (conversation_id, seq)
        ) WITHOUT ROWID;
        CREATE UNIQUE INDEX items_client_id ON items(conversation_id, client_id)
            WHERE client_id IS NOT NULL;
        CREATE UNIQUE INDEX items_event_id ON items(conversation_id, event_id)
            WHERE event_id IS NOT NULL;
        CREATE INDEX items_outbox ON items(conversation_id, seq) WHERE delivered = 0;
        CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        """
    )


@migrations()
def m002_commands(db: Database) -> None:
    db.executescript(
        """
        CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            conversation_id TEXT REFERENCES conversations(id),
            ts REAL NOT NULL,
            agent_id TEXT,
            kind TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX events_conversation ON events(conversation_id, ts);
        CREATE TABLE canned (
            agent_id TEXT NOT NULL,
            name TEXT NOT NULL,
            text TEXT NOT NULL,
            PRIMARY KEY (agent_id, name)
        );
        ALTER TABLE conversations ADD COLUMN rating INTEGER;
        ALTER TABLE conversations ADD COLUMN comment TEXT;
        """
    )


@migrations()
def m003_agent_tools(db: Database) -> None:
    db.executescript(
        """
        ALTER TABLE conversations ADD COLUMN callback_phone TEXT;
        ALTER TABLE conversations ADD COLUMN callback_time TEXT;
        CREATE TABLE bans (
            email TEXT PRIMARY KEY,
            agent_id TEXT NOT NULL,
            reason TEXT NOT NULL DEFAULT '',
            ts REAL NOT NULL
        );
        CREATE TABLE agent_state (
            agent_id TEXT PRIMARY KEY,
            on_break INTEGER NOT NULL DEFAULT 0
        );
        """
    )


@migrations()
def m004_tickets(db: Database) -> None:
    db.executescript(
        """
        CREATE TABLE tickets (
            id TEXT PRIMARY KEY,
            created_at REAL NOT NULL,
            queue_id TEXT NOT NULL,
            name TEXT NOT NULL,
            email TEXT NOT NULL,
            text TEXT NOT NULL,
            ip TEXT NOT NULL DEFAULT '',
            mail_pending INTEGER NOT NULL DEFAULT 0,
            webhook_pending INTEGER NOT NULL DEFAULT 0,
            webhook_attempts INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX tickets_email ON tickets(email, created_at);
        """
    )


@migrations()
def m005_identity(db: Database) -> None:
    db.executescript(
        """
        ALTER TABLE visitors ADD COLUMN identity_id TEXT;
        ALTER TABLE visitors ADD COLUMN verified INTEGER NOT NULL DEFAULT 0;
        CREATE INDEX visitors_identity ON visitors(identity_id) WHERE identity_id IS NOT NULL;
        """
    )


@migrations()
def m006_ticket_from_chat(db: Database) -> None:
    db.executescript(
        """
        ALTER TABLE tickets ADD COLUMN conversation_id TEXT;
        CREATE UNIQUE INDEX tickets_conversation ON tickets(conversation_id)
            WHERE conversation_id IS NOT NULL;
        CREATE INDEX conversations_answered ON conversations(queue_id, first_response_at);
        """
    )


@migrations()
def m007_routing_marks(db: Database) -> None:
    # Routing's memory of who was invited to a waiting chat and who turned it down or
    # walked out, so that a restart neither invites them again nor forgets their places.
    db.executescript(
        """
        CREATE TABLE routing_marks (
            conversation_id TEXT NOT NULL REFERENCES conversations(id),
            agent_id TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('invited', 'declined')),
            PRIMARY KEY (conversation_id, agent_id, kind)
        );
        """
    )


@migrations()
def m008_items_last_seq(db: Database) -> None:
    # A stored line takes the conversation's next seq in the statement that inserts it; this
    # keeps the conversation's last_seq with it, without a statement of its own per line.
    db.executescript(
        """
        CREATE TRIGGER items_last_seq AFTER INSERT ON items BEGIN
            UPDATE conversations SET last_seq = NEW.seq
                WHERE id = NEW.conversation_id AND last_seq < NEW.seq;
        END;
        """
    )


@migrations()
def m009_handled_commands(db: Database) -> None:
    # The event ids of agents' commands already run: a command the messenger delivers again
    # (a sync batch fetched again, a group chat archive read after a restart) runs once.
    db.executescript(
        """
        CREATE TABLE handled_commands (
            event_id TEXT PRIMARY KEY,
            ts REAL NOT NULL,
            room TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX handled_commands_room ON handled_commands(room, ts);
        """
    )


@migrations()
def m010_events_by_detail(db: Database) -> None:
    # Transcript mails are counted per recipient over all conversations on every request.
    db.executescript("CREATE INDEX events_by_detail ON events(kind, detail, ts);")


@migrations()
def m011_ticket_to_agents(db: Database) -> None:
    # Tickets are posted to the queue's agents in their messenger too, retried like mail.
    db.executescript(
        "ALTER TABLE tickets ADD COLUMN messenger_pending INTEGER NOT NULL DEFAULT 0;")


_CONVERSATION_COLUMNS = """
    c.id, c.queue_id, c.status, c.room, c.agent_id, c.page_url, c.page_title, c.referrer,
    c.created_at, c.first_response_at, c.ended_at, c.last_seq, c.rating, c.comment,
    c.callback_phone, c.callback_time,
    v.name AS visitor_name, v.email AS visitor_email, v.lang, v.user_agent, v.identity_id,
    v.verified
"""


class Store:
    """Conversations, their timelines and the outbox, in one SQLite file."""

    def __init__(self, path: Path | str) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.db = Database(str(path))
        self._wal_sync = None if str(path) == ":memory:" else WalSync(Path(path))
        self._cached: dict[ConversationId, Conversation] = {}  # oldest first
        self._room_ids: dict[str, ConversationId] = {}  # checked against the cached room
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.execute("PRAGMA busy_timeout=5000")
        self._refuse_newer_schema()
        migrations.apply(self.db)
        if self._wal_sync is not None:
            # Commits no longer fsync inside SQLite: `_transaction` syncs the WAL file itself
            # (at once, or for many commits together in `flush`).
            self.db.execute("PRAGMA synchronous=NORMAL")

    def _refuse_newer_schema(self) -> None:
        known = {m.name for m in migrations._migrations}
        unknown = [m.name for m in migrations.applied(self.db) if m.name not in known]
        if unknown:
            raise StoreError(
                f"database has migrations this version does not know ({', '.join(unknown)}): "
                "it was used by a newer livechat-bridge; upgrade instead of downgrading"
            )

    def close(self) -> None:
        if self._wal_sync is not None:
            self._wal_sync.close()
        self.db.conn.close()

    async def flush(self) -> None:
        """Return once every commit so far is on disk, those made without waiting included.

        Raises StoreUnavailable when the disk refused the fsync."""
        if self._wal_sync is not None:
            try:
                await self._wal_sync.wait()
            except OSError as exc:
                raise StoreUnavailable(f"the disk refused a sync: {exc}") from exc

    @contextmanager
    def _transaction(self, *, durable: bool) -> Iterator[None]:
        """A transaction, on disk when it returns; `durable=False` commits without waiting
        for the disk (WAL keeps commits in order, so a power cut may lose the newest ones but
        never reorders them; a crash of the process loses nothing) and `flush()` waits."""
        nested = self.db.conn.in_transaction
        try:
            with self.db.atomic():
                yield
            if nested or self._wal_sync is None:
                return  # the outer transaction's commit is the one that counts
            if durable:
                self._wal_sync.sync_now()
            else:
                self._wal_sync.committed()
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"the database refused a write: {exc}") from exc
        except OSError as exc:  # the fsync after the commit
            raise StoreUnavailable(f"the disk refused a sync: {exc}") from exc

    # -- conversations ------------------------------------------------------------------

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
            visitor_id = self.db.execute(
                "INSERT INTO visitors (name, email, lang, user_agent, created_at, identity_id,"
                " verified) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (visitor.name, visitor.email, visitor.lang, visitor.user_agent, now,
                 visitor.identity_id, int(visitor.verified)),
            ).lastrowid
            self.db.execute(
                "INSERT INTO conversations (id, visitor_id, token_hash, queue_id, status,"
                " page_url, page_title, referrer, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
                (conversation_id, visitor_id, token_hash, queue_id, Status.WAITING.value,
                 page.url, page.title, page.referrer, now),
            )
        conversation = self.conversation(conversation_id)
        assert conversation is not None
        return conversation

    def conversation(self, conversation_id: str) -> Conversation | None:
        cached = self._cached.get(ConversationId(conversation_id))
        if cached is not None:
            return cached
        return self._cache(self._one_conversation("c.id = ?", conversation_id))

    def conversation_by_token(self, token_hash: str) -> Conversation | None:
        return self._one_conversation("c.token_hash = ?", token_hash)

    def conversation_by_room(self, room: str) -> Conversation | None:
        conversation_id = self._room_ids.get(room)
        cached = self._cached.get(conversation_id) if conversation_id is not None else None
        if cached is not None and cached.room == room:
            return cached
        return self._cache(self._one_conversation("c.room = ?", room))

    def _cache(self, conversation: Conversation | None) -> Conversation | None:
        if conversation is None:
            return None
        self._cached.pop(conversation.id, None)
        self._cached[conversation.id] = conversation
        if len(self._cached) > CONVERSATION_CACHE_SIZE:
            del self._cached[next(iter(self._cached))]
        if conversation.room is not None:
            self._room_ids.pop(conversation.room, None)
            self._room_ids[conversation.room] = conversation.id
            if len(self._room_ids) > CONVERSATION_CACHE_SIZE:
                del self._room_ids[next(iter(self._room_ids))]
        return conversation

    def _forget(self, conversation_id: ConversationId) -> None:
        """Drop the cached copy after a write; call it after the commit, and on errors."""
        self._cached.pop(conversation_id, None)

    def open_conversations(self) -> list[Conversation]:
        return list(self.each_open_conversation())

    def last_activity(self) -> list[tuple[ConversationId, float]]:
        """Each open conversation with the time of its newest line (or its start)."""
        rows = self.db.execute(
            "SELECT c.id, MAX(c.created_at, COALESCE(MAX(i.ts), 0)) FROM conversations c"
            " LEFT JOIN items i ON i.conversation_id = c.id AND i.kind = ?"
            " WHERE c.status != ? GROUP BY c.id",
            (ItemKind.TEXT.value, Status.ENDED.value))
        return [(ConversationId(row[0]), float(row[1])) for row in rows]

    def waiting_conversations(self, queue_id: str) -> Iterator[Conversation]:
        """The queue's line, first come first: read a batch at a time (see `_batches`)."""
        return self._batches("c.queue_id = ? AND c.status = ?", queue_id,
                             Status.WAITING.value)

    def each_open_conversation(self) -> Iterator[Conversation]:
        """Every open conversation, oldest first, a batch at a time (see `_batches`)."""
        return self._batches("c.status != ?", Status.ENDED.value)

    def waiting_position(self, conversation: Conversation) -> int:
        """1-based place in its queue's line among conversations nobody answered yet."""
        row = self.db.execute(
            "SELECT COUNT(*) FROM conversations WHERE queue_id = ? AND status = ?"
            " AND rowid <= (SELECT rowid FROM conversations WHERE id = ?)",
            (conversation.queue_id, Status.WAITING.value, conversation.id),
        ).fetchone()
        return int(row[0])

    def count_waiting(self, queue_id: str) -> int:
        row = self.db.execute(
            "SELECT COUNT(*) FROM conversations WHERE queue_id = ? AND status = ?",
            (queue_id, Status.WAITING.value),
        ).fetchone()
        return int(row[0])

    def set_room(self, conversation_id: ConversationId, room: RoomRef) -> None:
        self._update(conversation_id, room=room)

    def set_status(
        self, conversation_id: ConversationId, status: Status, *, ended_at: float | None = None
    ) -> None:
        """Change the status; an ended conversation stays ended (a late event read the
        conversation before it ended must not reopen it)."""
        try:
            with self._transaction(durable=True):
                self.db.execute(
                    "UPDATE conversations SET status = ?, ended_at = COALESCE(?, ended_at)"
                    " WHERE id = ? AND status != ?",
                    (status.value, ended_at, conversation_id, Status.ENDED.value),
                )
        finally:
            self._forget(conversation_id)

    def set_agent(self, conversation_id: ConversationId, agent_id: AgentId) -> None:
        self._update(conversation_id, agent_id=agent_id)

    def clear_agent(self, conversation_id: ConversationId) -> None:
        """The chat has no owner again (its agent left it); routing finds another."""
        try:
            with self._transaction(durable=True):
                self.db.execute("UPDATE conversations SET agent_id = NULL WHERE id = ?",
                                (conversation_id,))
        finally:
            self._forget(conversation_id)

    def recent_waits(self, queue_id: str, since: float, limit: int = 50) -> list[float]:
        """How long the queue's latest chats answered since `since` waited for that answer."""
        rows = self.db.execute(
            "SELECT first_response_at - created_at FROM conversations WHERE queue_id = ?"
            " AND first_response_at >= ? ORDER BY first_response_at DESC LIMIT ?",
            (queue_id, since, limit))
        return [float(row[0]) for row in rows]

    def set_queue(self, conversation_id: ConversationId, queue_id: QueueId) -> None:
        self._update(conversation_id, queue_id=queue_id)

    def open_chats_of(self, agent_id: str) -> int:
        row = self.db.execute(
            "SELECT COUNT(*) FROM conversations WHERE agent_id = ? AND status != ?",
            (agent_id, Status.ENDED.value)).fetchone()
        return int(row[0])

    def set_first_response(self, conversation_id: ConversationId, now: float) -> None:
        cached = self._cached.get(conversation_id)
        if cached is not None and cached.first_response_at is not None:
            return  # the common case: every agent line after the first
        try:
            with self._transaction(durable=True):
                self.db.execute(
                    "UPDATE conversations SET first_response_at = ?"
                    " WHERE id = ? AND first_response_at IS NULL",
                    (now, conversation_id),
                )
        finally:
            self._forget(conversation_id)

    def _update(self, conversation_id: ConversationId, **values: Any) -> None:
        values = {k: v for k, v in values.items() if v is not None}
        assignments = ", ".join(f"{column} = ?" for column in values)
        try:
            with self._transaction(durable=True):
                self.db.execute(
                    f"UPDATE conversations SET {assignments} WHERE id = ?",
                    (*values.values(), conversation_id),
                )
        finally:
            self._forget(conversation_id)

    def _one_conversation(self, where: str, value: str) -> Conversation | None:
        return next(self._conversations(where, value), None)

    def _conversations(self, where: str, *params: Any) -> Iterator[Conversation]:
        sql = (
            f"SELECT {_CONVERSATION_COLUMNS} FROM conversations c"
            f" JOIN visitors v ON v.id = c.visitor_id WHERE {where} ORDER BY c.created_at"
        )
        for row in self._rows(sql, params):
            yield _conversation(row)

    def _batches(self, where: str, *params: Any) -> Iterator[Conversation]:
        """Matching conversations in arrival (rowid) order, CONVERSATION_BATCH rows per read.

        A pass over a line of thousands then never holds them all at once: built together,
        they raised the process's memory for good (freed objects leave the heap fragmented).
        Each batch is read when the previous one is used up, so a conversation that changed
        since the pass started is seen as it is now, or not at all if it left the line."""
        after = 0
        while True:
            rows = self._rows(
                f"SELECT c.rowid AS position, {_CONVERSATION_COLUMNS} FROM conversations c"
                f" JOIN visitors v ON v.id = c.visitor_id WHERE ({where}) AND c.rowid > ?"
                " ORDER BY c.rowid LIMIT ?", (*params, after, CONVERSATION_BATCH))
            for row in rows:
                yield _conversation(row)
            if len(rows) < CONVERSATION_BATCH:
                return
            after = rows[-1]["position"]
            del rows

    def _rows(self, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        """A SELECT's rows as dicts, straight from the connection. On the hot path (every
        visitor line reads its conversation and checks its client_id; every delivery reads
        the outbox): sqlite-utils' query() wraps each SELECT in a savepoint and scans the
        SQL first, which costs more than the read itself."""
        cursor = self.db.conn.execute(sql, params)
        keys = [column[0] for column in cursor.description]
        return [dict(zip(keys, row, strict=True)) for row in cursor.fetchall()]

    # -- timeline and outbox -----------------------------------------------------------

    def append_item(
        self,
        conversation_id: ConversationId,
        kind: ItemKind,
        sender: Sender,
        name: str,
        text: str,
        now: float,
        *,
        client_id: str | None = None,
        sender_id: str | None = None,
        event_id: str | None = None,
        delivered: bool = False,
        wait_for_disk: bool = True,
    ) -> tuple[Item, bool]:
        """Append one item with the next seq, durably; returns (item, created).

        A repeated client_id (visitor retry) or event_id (backend redelivery) returns the
        item stored the first time and `created=False`: nothing is ever stored twice.
        With `wait_for_disk=False` the commit does not wait for the fsync: the item may go
        to the room at once, and the caller awaits `flush()` before acknowledging it.
        """
        # Lines that came from the backend can be fetched again (the backend saves its
        # position after they are stored, in the same ordered WAL), so they need not wait
        # for an fsync; visitor lines are acknowledged and must be on disk first.
        try:
            with self._transaction(durable=wait_for_disk and not delivered):
                item = self._insert_item(conversation_id, kind, sender, name, text, now,
                                         client_id, sender_id, event_id, delivered)
        except sqlite3.IntegrityError:
            # A repeat is rare, so it is found by the unique index refusing it rather than
            # by a lookup before every insert; the transaction rolled back, seq included.
            existing = self._existing(conversation_id, client_id, event_id)
            if existing is None:
                raise
            return existing, False
        seq = item.seq
        cached = self._cached.get(conversation_id)
        if cached is not None:
            self._cached[conversation_id] = replace(cached, last_seq=seq)
        return item, True

    def _insert_item(
        self, conversation_id: ConversationId, kind: ItemKind, sender: Sender, name: str,
        text: str, now: float, client_id: str | None, sender_id: str | None,
        event_id: str | None, delivered: bool,
    ) -> Item:
        # One statement: the next seq comes from the conversation's last_seq, which the
        # trigger items_last_seq (m008) moves on. The transaction id is written before the
        # first send attempt, so a retry after a crash reuses it and the messenger drops
        # the duplicate.
        row = self.db.execute(
            "INSERT INTO items (conversation_id, seq, kind, sender, sender_id, name, text, ts,"
            " client_id, txn_id, event_id, delivered)"
            " SELECT id, last_seq + 1, ?, ?, ?, ?, ?, ?, ?,"
            " CASE WHEN ? THEN NULL ELSE 'lcb.' || id || '.' || (last_seq + 1) END, ?, ?"
            " FROM conversations WHERE id = ? RETURNING seq, txn_id",
            (kind.value, sender.value, sender_id, name, text, now, client_id, int(delivered),
             event_id, int(delivered), conversation_id),
        ).fetchone()
        if row is None:
            raise StoreError(f"conversation {conversation_id} does not exist")
        seq, txn_id = row
        return Item(conversation_id=conversation_id, seq=seq, kind=kind, sender=sender,
                    name=name, text=text, ts=now, client_id=client_id, sender_id=sender_id,
                    txn_id=txn_id, event_id=event_id, delivered=delivered)

    def _existing(
        self, conversation_id: str, client_id: str | None, event_id: str | None
    ) -> Item | None:
        if client_id is not None:
            return self.item_by_client_id(conversation_id, client_id)
        if event_id is not None:
            found = self._items("conversation_id = ? AND event_id = ?", conversation_id, event_id)
            return found[0] if found else None
        return None

    def item_by_client_id(self, conversation_id: str, client_id: str) -> Item | None:
        found = self._items("conversation_id = ? AND client_id = ?", conversation_id, client_id)
        return found[0] if found else None

    def agent_present(self, conversation_id: str, agent_id: str) -> bool:
        """Whether the agent's last membership item in this timeline is a join."""
        row = self.db.execute(
            "SELECT kind FROM items WHERE conversation_id = ? AND sender_id = ?"
            " AND kind IN (?, ?) ORDER BY seq DESC LIMIT 1",
            (conversation_id, agent_id, ItemKind.JOINED.value, ItemKind.LEFT.value),
        ).fetchone()
        return row is not None and row[0] == ItemKind.JOINED.value

    def items_after(self, conversation_id: str, after: int) -> list[Item]:
        return self._items("conversation_id = ? AND seq > ?", conversation_id, after)

    def undelivered(self, conversation_id: str) -> list[Item]:
        return self._items("conversation_id = ? AND delivered = 0", conversation_id)

    def conversations_with_outbox(self) -> list[ConversationId]:
        rows = self.db.execute("SELECT DISTINCT conversation_id FROM items WHERE delivered = 0")
        return [ConversationId(row[0]) for row in rows]

    def mark_delivered(self, conversation_id: str, seq: int, event_id: str) -> None:
        # Not waiting for the disk: a mark that a power cut takes back only makes the courier
        # post the item again with its stored key, which the backend drops as a duplicate.
        with self._transaction(durable=False):
            self.db.execute(
                "UPDATE items SET delivered = 1, event_id = ?"
                " WHERE conversation_id = ? AND seq = ?",
                (event_id, conversation_id, seq),
            )

    def catch_up_since(self, room: str) -> float | None:
        """From when a messenger should fetch a conversation room's lines again after the
        bridge was away: the last agent line stored, or the oldest line not yet confirmed
        in the room if that is earlier (its echo tells whether it arrived). In a room of
        commands only (a lobby), the last command run there. None for rooms of ended
        conversations and for rooms nothing was ever taken from."""
        conversation = self.conversation_by_room(room)
        if conversation is None:
            row = self.db.execute("SELECT max(ts) FROM handled_commands WHERE room = ?",
                                  (room,)).fetchone()
            return row[0]
        if conversation.status is Status.ENDED:
            return None
        row = self.db.execute(
            "SELECT max(CASE WHEN sender = ? AND event_id IS NOT NULL THEN ts END),"
            " min(CASE WHEN delivered = 0 THEN ts END) FROM items WHERE conversation_id = ?",
            (Sender.AGENT.value, conversation.id)).fetchone()
        marks = [ts for ts in row if ts is not None]
        return min(marks) if marks else conversation.created_at

    # -- routing's marks ------------------------------------------------------------------

    def add_routing_marks(self, conversation_id: ConversationId, kind: str,
                          agent_ids: Iterable[str]) -> None:
        """Remember agents `invited` to a chat or who `declined` it. Not waited for on disk:
        a mark a power cut takes back costs one invitation sent again."""
        with self._transaction(durable=False):
            self.db.conn.executemany(
                "INSERT OR IGNORE INTO routing_marks (conversation_id, agent_id, kind)"
                " VALUES (?, ?, ?)", [(conversation_id, agent_id, kind) for agent_id in agent_ids])

    def clear_routing_marks(self, conversation_id: ConversationId) -> None:
        with self._transaction(durable=False):
            self.db.execute("DELETE FROM routing_marks WHERE conversation_id = ?",
                            (conversation_id,))

    def routing_marks(self) -> list[tuple[ConversationId, str, str]]:
        """(conversation, agent, kind) of every open chat."""
        rows = self.db.execute(
            "SELECT m.conversation_id, m.agent_id, m.kind FROM routing_marks m"
            " JOIN conversations c ON c.id = m.conversation_id WHERE c.status != ?",
            (Status.ENDED.value,))
        return [(ConversationId(row[0]), str(row[1]), str(row[2])) for row in rows]

    def _items(self, where: str, *params: Any) -> list[Item]:
        sql = f"SELECT * FROM items WHERE {where} ORDER BY seq"
        return [_item(row) for row in self._rows(sql, params)]

    # -- agent actions -----------------------------------------------------------------

    def add_event(self, conversation_id: str | None, agent_id: str | None, kind: str,
                  detail: str, now: float) -> None:
        """Who did what, when: the audit trail that history and reports read."""
        with self._transaction(durable=True):
            self.db.execute(
                "INSERT INTO events (conversation_id, ts, agent_id, kind, detail)"
                " VALUES (?, ?, ?, ?, ?)",
                (conversation_id, now, agent_id, kind, detail),
            )

    def command_handled(self, event_id: str) -> bool:
        row = self.db.execute("SELECT 1 FROM handled_commands WHERE event_id = ?",
                              (event_id,)).fetchone()
        return row is not None

    def mark_command_handled(self, event_id: str, now: float, room: str) -> None:
        """Not waited for on disk: a mark a power cut takes back lets the command run once
        more, as it would have before this table existed."""
        with self._transaction(durable=False):
            self.db.execute("INSERT OR IGNORE INTO handled_commands (event_id, ts, room)"
                            " VALUES (?, ?, ?)", (event_id, now, room))

    def count_events(self, kind: str, detail: str, since: float) -> int:
        """How many `kind` events with this detail happened since then, in every
        conversation (e.g. transcript mails to one address)."""
        row = self.db.execute("SELECT COUNT(*) FROM events WHERE kind = ? AND detail = ?"
                              " AND ts >= ?", (kind, detail, since)).fetchone()
        return int(row[0])

    def events(self, conversation_id: str) -> list[dict[str, Any]]:
        return list(self.db.query(
            "SELECT ts, agent_id, kind, detail FROM events WHERE conversation_id = ?"
            " ORDER BY id", (conversation_id,)))

    def personal_canned(self, agent_id: str) -> dict[str, str]:
        rows = self.db.execute(
            "SELECT name, text FROM canned WHERE agent_id = ? ORDER BY name", (agent_id,))
        return {name: text for name, text in rows}

    def set_canned(self, agent_id: str, name: str, text: str | None) -> bool:
        """Save (or with text None delete) a personal canned reply; False if none to delete."""
        with self._transaction(durable=True):
            if text is None:
                return self.db.execute(
                    "DELETE FROM canned WHERE agent_id = ? AND name = ?", (agent_id, name)
                ).rowcount > 0
            self.db.execute(
                "INSERT INTO canned (agent_id, name, text) VALUES (?, ?, ?)"
                " ON CONFLICT(agent_id, name) DO UPDATE SET text = excluded.text",
                (agent_id, name, text),
            )
        return True

    def set_rating(self, conversation_id: str, rating: int, comment: str) -> None:
        self._update(ConversationId(conversation_id), rating=rating, comment=comment)

    def set_callback(self, conversation_id: str, phone: str, when: str) -> None:
        self._update(ConversationId(conversation_id), callback_phone=phone, callback_time=when)

    def ban(self, email: str, agent_id: str, reason: str, now: float) -> None:
        with self._transaction(durable=True):
            self.db.execute(
                "INSERT INTO bans (email, agent_id, reason, ts) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(email) DO UPDATE SET reason = excluded.reason, ts = excluded.ts",
                (email.lower(), agent_id, reason, now))

    def is_banned(self, email: str) -> bool:
        row = self.db.execute("SELECT 1 FROM bans WHERE email = ?", (email.lower(),)).fetchone()
        return row is not None

    def set_break(self, agent_id: str, on_break: bool) -> None:
        with self._transaction(durable=True):
            self.db.execute(
                "INSERT INTO agent_state (agent_id, on_break) VALUES (?, ?)"
                " ON CONFLICT(agent_id) DO UPDATE SET on_break = excluded.on_break",
                (agent_id, int(on_break)))

    def on_break(self, agent_id: str) -> bool:
        row = self.db.execute("SELECT on_break FROM agent_state WHERE agent_id = ?",
                              (agent_id,)).fetchone()
        return bool(row and row[0])

    def day_figures(self, since: float, until: float) -> dict[str, Any]:
        """Counts for !stats: chats started in [since, until) and how they went."""
        row = self.db.execute(
            "SELECT COUNT(*), SUM(first_response_at IS NOT NULL), SUM(status = ?),"
            " AVG(rating), COUNT(rating) FROM conversations"
            " WHERE created_at >= ? AND created_at < ?",
            (Status.WAITING.value, since, until)).fetchone()
        waits = [r[0] for r in self.db.execute(
            "SELECT first_response_at - created_at FROM conversations WHERE created_at >= ?"
            " AND created_at < ? AND first_response_at IS NOT NULL ORDER BY 1", (since, until))]
        return {"chats": row[0], "answered": row[1] or 0, "waiting": row[2] or 0,
                "rating_avg": row[3], "ratings": row[4], "first_response_s": waits}

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

    def message_count(self, conversation_id: str) -> int:
        row = self.db.execute(
            "SELECT COUNT(*) FROM items WHERE conversation_id = ? AND kind = ?",
            (conversation_id, ItemKind.TEXT.value)).fetchone()
        return int(row[0])

    # -- offline tickets ---------------------------------------------------------------

    def add_ticket(self, ticket: Ticket, *, mail: bool, webhook: bool,
                   messenger: bool = False) -> None:
        """Store a ticket with what is still to be delivered; durable before the answer."""
        with self._transaction(durable=True):
            self.db.execute(
                "INSERT INTO tickets (id, created_at, queue_id, name, email, text, ip,"
                " conversation_id, mail_pending, webhook_pending, messenger_pending)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (ticket.id, ticket.created_at, ticket.queue_id, ticket.name, ticket.email,
                 ticket.text, ticket.ip, ticket.conversation_id, int(mail), int(webhook),
                 int(messenger)))

    def ticket_of_conversation(self, conversation_id: str) -> Ticket | None:
        rows = list(self.db.query("SELECT * FROM tickets WHERE conversation_id = ?",
                                  [conversation_id]))
        return _ticket(rows[0]) if rows else None

    def pending_tickets(self) -> list[tuple[Ticket, bool, bool]]:
        """Tickets with mail or webhook still to deliver: (ticket, mail, webhook)."""
        rows = self.db.query(
            "SELECT * FROM tickets WHERE mail_pending = 1 OR webhook_pending = 1 ORDER BY 2")
        return [(_ticket(row), bool(row["mail_pending"]), bool(row["webhook_pending"]))
                for row in rows]

    def tickets_for_messenger(self) -> list[Ticket]:
        """Tickets still to be posted to their queue's agents, oldest first."""
        return [_ticket(row) for row in self.db.query(
            "SELECT * FROM tickets WHERE messenger_pending = 1 ORDER BY created_at")]

    def ticket_delivered(self, ticket_id: str, what: str) -> None:
        column = {"mail": "mail_pending", "webhook": "webhook_pending",
                  "messenger": "messenger_pending"}[what]
        with self._transaction(durable=True):
            self.db.execute(f"UPDATE tickets SET {column} = 0 WHERE id = ?", (ticket_id,))

    def count_tickets(self, *, email: str | None = None, ip: str | None = None,
                      since: float) -> int:
        column, value = ("email", email.lower()) if email is not None else ("ip", ip)
        row = self.db.execute(
            f"SELECT COUNT(*) FROM tickets WHERE {column} = ? AND created_at >= ?",
            (value, since)).fetchone()
        return int(row[0])

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
            for row in self.db.execute(
                "SELECT c.queue_id, c.agent_id, c.created_at, c.first_response_at, c.ended_at,"
                " c.status, c.rating, (SELECT COUNT(*) FROM items i"
                "  WHERE i.conversation_id = c.id AND i.kind = ?)"
                f" FROM conversations c WHERE {where}"
                " ORDER BY c.created_at, c.rowid",
                (ItemKind.TEXT.value, *params))
        ]
        tickets = [(str(row[0]), float(row[1])) for row in self.db.execute(
            f"SELECT queue_id, created_at FROM tickets WHERE {where} ORDER BY created_at, id",
            params)]
        return chats, tickets

    # -- backend state -----------------------------------------------------------------

    def kv_get(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def kv_set(self, key: str, value: str, *, durable: bool = True) -> None:
        with self._transaction(durable=durable):
            self.db.execute(
                "INSERT INTO kv (key, value) VALUES (?, ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )


class StoreBackendState:
    """The durable key-value slice a backend may use, namespaced per backend."""

    def __init__(self, store: Store, namespace: str) -> None:
        self._store = store
        self._prefix = namespace + ":"

    def get(self, key: str) -> str | None:
        return self._store.kv_get(self._prefix + key)

    def set(self, key: str, value: str, *, durable: bool = True) -> None:
        self._store.kv_set(self._prefix + key, value, durable=durable)


def _conversation(row: dict[str, Any]) -> Conversation:
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


def _item(row: dict[str, Any]) -> Item:
    return Item(
        conversation_id=ConversationId(row["conversation_id"]),
        seq=row["seq"],
        kind=ItemKind(row["kind"]),
        sender=Sender(row["sender"]),
        name=row["name"],
        text=row["text"],
        ts=row["ts"],
        client_id=row["client_id"],
        sender_id=row["sender_id"],
        txn_id=row["txn_id"],
        event_id=row["event_id"],
        delivered=bool(row["delivered"]),
    )


def _ticket(row: dict[str, Any]) -> Ticket:
    return Ticket(id=row["id"], created_at=row["created_at"], queue_id=row["queue_id"],
                  name=row["name"], email=row["email"], text=row["text"], ip=row["ip"],
                  conversation_id=row["conversation_id"])
