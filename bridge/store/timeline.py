"""The timeline of each conversation, its outbox, and agents' commands already run (SQLite)."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from typing import Any

from bridge.core.models import (
    ConversationId,
    FileInfo,
    Item,
    ItemChange,
    ItemKind,
    Sender,
    Status,
)
from bridge.store.conversations import SqliteConversations
from bridge.store.db import SqliteDatabase
from bridge.store.schema import StoreError


class SqliteTimeline:
    """`TimelineRepository` on SQLite."""

    def __init__(self, database: SqliteDatabase, conversations: SqliteConversations) -> None:
        self._db = database.db
        self._transaction = database.transaction
        self._rows = database.rows
        self._conversations = conversations
        # A stored line moves its conversation's last_seq on in the cached copy too.
        self._cached = conversations.cache.by_id

    # -- lines -----------------------------------------------------------------------------

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
        file: FileInfo | None = None,
    ) -> tuple[Item, bool]:
        """Append one item with the next seq, durably; returns (item, created).

        A repeated client_id (visitor retry) or event_id (backend redelivery) returns the
        item stored the first time and `created=False`: nothing is ever stored twice.
        With `wait_for_disk=False` the commit does not wait for the fsync: the item may go
        to the room at once, and the caller awaits `flush()` before acknowledging it.
        A `file` is recorded in the same transaction as its item.
        """
        # Lines that came from the backend can be fetched again (the backend saves its
        # position after they are stored, in the same ordered WAL), so they need not wait
        # for an fsync; visitor lines are acknowledged and must be on disk first.
        try:
            with self._transaction(durable=wait_for_disk and not delivered):
                if file is not None:
                    self._insert_file(conversation_id, file, sender, now)
                item = self._insert_item(conversation_id, kind, sender, name, text, now,
                                         client_id, sender_id, event_id, delivered, file)
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
        event_id: str | None, delivered: bool, file: FileInfo | None,
    ) -> Item:
        # One statement: the next seq comes from the conversation's last_seq, which the
        # trigger items_last_seq (m008) moves on. The transaction id is written before the
        # first send attempt, so a retry after a crash reuses it and the messenger drops
        # the duplicate.
        row = self._db.execute(
            "INSERT INTO items (conversation_id, seq, kind, sender, sender_id, name, text, ts,"
            " client_id, txn_id, event_id, delivered, file_id)"
            " SELECT id, last_seq + 1, ?, ?, ?, ?, ?, ?, ?,"
            " CASE WHEN ? THEN NULL ELSE 'lcb.' || id || '.' || (last_seq + 1) END, ?, ?, ?"
            " FROM conversations WHERE id = ? RETURNING seq, txn_id",
            (kind.value, sender.value, sender_id, name, text, now, client_id, int(delivered),
             event_id, int(delivered), file.id if file else None, conversation_id),
        ).fetchone()
        if row is None:
            raise StoreError(f"conversation {conversation_id} does not exist")
        seq, txn_id = row
        return Item(conversation_id=conversation_id, seq=seq, kind=kind, sender=sender,
                    name=name, text=text, ts=now, client_id=client_id, sender_id=sender_id,
                    txn_id=txn_id, event_id=event_id, delivered=delivered, file=file)

    def _insert_file(self, conversation_id: ConversationId, file: FileInfo, sender: Sender,
                     now: float) -> None:
        self._db.execute(
            "INSERT INTO files (id, conversation_id, sha256, name, mimetype, size, width,"
            " height, sender, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (file.id, conversation_id, file.sha256, file.name, file.mimetype, file.size,
             file.width, file.height, sender.value, now))

    def _existing(
        self, conversation_id: str, client_id: str | None, event_id: str | None
    ) -> Item | None:
        if client_id is not None:
            return self.item_by_client_id(conversation_id, client_id)
        if event_id is not None:
            return self.item_by_event_id(conversation_id, event_id)
        return None

    def item_by_client_id(self, conversation_id: str, client_id: str) -> Item | None:
        found = self._items("conversation_id = ? AND client_id = ?", conversation_id, client_id)
        return found[0] if found else None

    def item_by_event_id(self, conversation_id: str, event_id: str) -> Item | None:
        found = self._items("conversation_id = ? AND event_id = ?", conversation_id, event_id)
        return found[0] if found else None

    def items_after(self, conversation_id: str, after: int) -> list[Item]:
        return self._items("conversation_id = ? AND seq > ?", conversation_id, after)

    # -- read states -----------------------------------------------------------------------

    def mark_read(self, conversation_id: str, sender: Sender, up_to_seq: int, now: float
                  ) -> Item | None:
        """Mark `sender`'s lines and files up to `up_to_seq` as seen on the other side;
        the newest one newly marked, or None when nothing changed. Not waited for on disk:
        a mark a power cut takes back is made again by the next receipt."""
        with self._transaction(durable=False):
            rows = self._db.execute(
                "UPDATE items SET read_at = ? WHERE conversation_id = ? AND sender = ?"
                " AND kind IN (?, ?) AND seq <= ? AND read_at IS NULL RETURNING seq",
                (now, conversation_id, sender.value, ItemKind.TEXT.value, ItemKind.FILE.value,
                 up_to_seq)).fetchall()
        if not rows:
            return None
        newest = max(row[0] for row in rows)
        return self._items("conversation_id = ? AND seq = ?", conversation_id, newest)[0]

    def read_up_to(self, conversation_id: str, sender: Sender) -> int:
        """The newest of `sender`'s lines seen on the other side (0: none)."""
        row = self._db.execute(
            "SELECT max(seq) FROM items WHERE conversation_id = ? AND sender = ?"
            " AND read_at IS NOT NULL", (conversation_id, sender.value)).fetchone()
        return int(row[0] or 0)

    def unread_lines(self, conversation_id: str, sender: Sender) -> list[Item]:
        """`sender`'s lines and files not seen on the other side, in order."""
        return self._items("conversation_id = ? AND sender = ? AND kind IN (?, ?)"
                           " AND read_at IS NULL", conversation_id, sender.value,
                           ItemKind.TEXT.value, ItemKind.FILE.value)

    # -- corrections and retractions -------------------------------------------------------

    def change_item(self, item: Item, kind: str, text: str, by: str | None, now: float,
                    *, to_room: bool = False) -> Item:
        """An `edit` (the new text) or a `delete` of a line, with what it was before kept in
        `item_changes`; durable when it returns. `to_room`: the change is still to be made
        in the room (the visitor's own line): it waits in the outbox with a key of its
        own."""
        column = "edited_at" if kind == "edit" else "deleted_at"
        with self._transaction(durable=True):
            key = None
            if to_room:
                done = self._db.execute(
                    "SELECT count(*) FROM item_changes WHERE conversation_id = ? AND seq = ?",
                    (item.conversation_id, item.seq)).fetchone()[0]
                line_key = item.txn_id or f"lcb.{item.conversation_id}.{item.seq}"
                key = f"{line_key}.{kind}{done + 1}"
            self._db.execute(
                "INSERT INTO item_changes (conversation_id, seq, at, by, kind, previous, key,"
                " delivered) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (item.conversation_id, item.seq, now, by, kind, item.text, key,
                 int(not to_room)))
            self._db.execute(
                f"UPDATE items SET text = ?, {column} = ? WHERE conversation_id = ? AND seq = ?",
                (text, now, item.conversation_id, item.seq))
            if kind == "delete" and item.file is not None:  # no longer served to anyone
                self._db.execute("UPDATE items SET file_id = NULL WHERE conversation_id = ?"
                                 " AND seq = ?", (item.conversation_id, item.seq))
                self._db.execute("DELETE FROM files WHERE id = ?", (item.file.id,))
        return self._items("conversation_id = ? AND seq = ?", item.conversation_id,
                           item.seq)[0]

    def item_changes(self, conversation_id: str) -> list[ItemChange]:
        return self._changes("conversation_id = ? ORDER BY seq, at", conversation_id)

    def changes_to_send(self, conversation_id: str) -> list[ItemChange]:
        """The visitor's changes not made in the room yet, in the order they were made."""
        return self._changes("conversation_id = ? AND delivered = 0 ORDER BY rowid",
                             conversation_id)

    def change_sent(self, conversation_id: str, key: str) -> None:
        """Not waiting for the disk, like `mark_delivered`: a mark a power cut takes back
        only makes the change go out again with its key."""
        with self._transaction(durable=False):
            self._db.execute("UPDATE item_changes SET delivered = 1"
                             " WHERE conversation_id = ? AND key = ?", (conversation_id, key))

    def _changes(self, where: str, *args: Any) -> list[ItemChange]:
        rows = self._rows(f"SELECT * FROM item_changes WHERE {where}", args)
        return [ItemChange(row["seq"], row["at"], row["by"], row["kind"], row["previous"],
                           row["key"]) for row in rows]

    def item_at(self, conversation_id: str, seq: int) -> Item | None:
        found = self._items("conversation_id = ? AND seq = ?", conversation_id, seq)
        return found[0] if found else None

    def newest_line(self, conversation_id: str, sender: Sender) -> Item | None:
        """`sender`'s newest line or file (deleted or not)."""
        found = self._items("conversation_id = ? AND seq = (SELECT max(seq) FROM items"
                            " WHERE conversation_id = ? AND sender = ? AND kind IN (?, ?))",
                            conversation_id, conversation_id, sender.value,
                            ItemKind.TEXT.value, ItemKind.FILE.value)
        return found[0] if found else None

    def agent_present(self, conversation_id: str, agent_id: str) -> bool:
        """Whether the agent's last membership item in this timeline is a join."""
        row = self._db.execute(
            "SELECT kind FROM items WHERE conversation_id = ? AND sender_id = ?"
            " AND kind IN (?, ?) ORDER BY seq DESC LIMIT 1",
            (conversation_id, agent_id, ItemKind.JOINED.value, ItemKind.LEFT.value),
        ).fetchone()
        return row is not None and row[0] == ItemKind.JOINED.value

    def message_count(self, conversation_id: str) -> int:
        row = self._db.execute(
            "SELECT COUNT(*) FROM items WHERE conversation_id = ? AND kind = ?",
            (conversation_id, ItemKind.TEXT.value)).fetchone()
        return int(row[0])

    # -- the outbox ------------------------------------------------------------------------

    def undelivered(self, conversation_id: str) -> list[Item]:
        return self._items("conversation_id = ? AND delivered = 0", conversation_id)

    def conversations_with_outbox(self) -> list[ConversationId]:
        rows = self._db.execute("SELECT conversation_id FROM items WHERE delivered = 0 UNION"
                                " SELECT conversation_id FROM item_changes WHERE delivered = 0")
        return [ConversationId(row[0]) for row in rows]

    def mark_delivered(self, conversation_id: str, seq: int, event_id: str) -> None:
        # Not waiting for the disk: a mark that a power cut takes back only makes the courier
        # post the item again with its stored key, which the backend drops as a duplicate.
        with self._transaction(durable=False):
            self._db.execute(
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
        conversation = self._conversations.conversation_by_room(room)
        if conversation is None:
            row = self._db.execute("SELECT max(ts) FROM handled_commands WHERE room = ?",
                                   (room,)).fetchone()
            return row[0]
        if conversation.status is Status.ENDED:
            return None
        row = self._db.execute(
            "SELECT max(CASE WHEN sender = ? AND event_id IS NOT NULL THEN ts END),"
            " min(CASE WHEN delivered = 0 THEN ts END) FROM items WHERE conversation_id = ?",
            (Sender.AGENT.value, conversation.id)).fetchone()
        marks = [ts for ts in row if ts is not None]
        return min(marks) if marks else conversation.created_at

    # -- commands already run --------------------------------------------------------------

    def command_handled(self, event_id: str) -> bool:
        row = self._db.execute("SELECT 1 FROM handled_commands WHERE event_id = ?",
                               (event_id,)).fetchone()
        return row is not None

    def mark_command_handled(self, event_id: str, now: float, room: str) -> None:
        """Not waited for on disk: a mark a power cut takes back lets the command run once
        more, as it would have before this table existed."""
        with self._transaction(durable=False):
            self._db.execute("INSERT OR IGNORE INTO handled_commands (event_id, ts, room)"
                             " VALUES (?, ?, ?)", (event_id, now, room))

    def _items(self, where: str, *params: Any) -> list[Item]:
        sql = f"SELECT * FROM items WHERE {where} ORDER BY seq"
        rows = self._rows(sql, params)
        file_ids = [row["file_id"] for row in rows if row.get("file_id")]
        files = self._files(file_ids) if file_ids else {}  # mostly none: no second query
        return [item_from_row(row, files.get(row.get("file_id") or "")) for row in rows]

    def _files(self, file_ids: list[str]) -> dict[str, FileInfo]:
        found: dict[str, FileInfo] = {}
        for start in range(0, len(file_ids), 500):  # SQLite's limit on bound parameters
            chunk = file_ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self._rows(f"SELECT * FROM files WHERE id IN ({marks})", tuple(chunk)):
                found[row["id"]] = file_from_row(row)
        return found


def file_from_row(row: dict[str, Any]) -> FileInfo:
    return FileInfo(id=row["id"], name=row["name"], mimetype=row["mimetype"],
                    size=row["size"], sha256=row["sha256"], width=row["width"],
                    height=row["height"])


def item_from_row(row: dict[str, Any], file: FileInfo | None = None) -> Item:
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
        file=file,
        read_at=row.get("read_at"),
        edited_at=row.get("edited_at"),
        deleted_at=row.get("deleted_at"),
    )
