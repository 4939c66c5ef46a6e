"""The SQLite schema: the numbered migrations, applied in order at start, and the errors.

The migration names are recorded in each database (table `_sqlite_migrations`, set
"livechat"): they must never be renamed or reordered, or an existing database would run a
migration twice. A new table or column is a new migration at the end.
"""

from __future__ import annotations

from sqlite_utils import Database, Migrations

migrations = Migrations("livechat")


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


@migrations()
def m012_extended_at(db: Database) -> None:
    # A visitor who keeps an idle chat open (WCAG 2.2.1) restarts its idle clock.
    db.executescript("ALTER TABLE conversations ADD COLUMN extended_at REAL;")


@migrations()
def m013_files(db: Database) -> None:
    # A file is a line of the timeline (items.file_id); its bytes lie on disk under their
    # sha256, so the same content sent twice is stored once.
    db.executescript(
        """
        CREATE TABLE files (
            id TEXT PRIMARY KEY,
            conversation_id TEXT NOT NULL REFERENCES conversations(id),
            sha256 TEXT NOT NULL,
            name TEXT NOT NULL,
            mimetype TEXT NOT NULL,
            size INTEGER NOT NULL,
            width INTEGER,
            height INTEGER,
            sender TEXT NOT NULL,
            created_at REAL NOT NULL
        );
        CREATE INDEX files_conversation ON files(conversation_id, created_at);
        CREATE INDEX files_sha256 ON files(sha256);
        ALTER TABLE items ADD COLUMN file_id TEXT REFERENCES files(id);
        """
    )


@migrations()
def m014_read_at(db: Database) -> None:
    # When a line was seen on the other side: a visitor's line by an agent (their client's
    # receipt or marker), an agent's line by the visitor (the widget's `read`).
    db.executescript("ALTER TABLE items ADD COLUMN read_at REAL;")


@migrations()
def m015_purge_indexes(db: Database) -> None:
    # What a purge looks up for every conversation it deletes: the files of its items, and
    # whether its visitor has another conversation.
    db.executescript(
        """
        CREATE INDEX items_file_id ON items(file_id) WHERE file_id IS NOT NULL;
        CREATE INDEX conversations_visitor ON conversations(visitor_id);
        """
    )


@migrations()
def m016_item_changes(db: Database) -> None:
    # An agent's line corrected or taken back: the visitor sees the final state, the agents'
    # audit view what happened (who, when, the text before).
    db.executescript(
        """
        ALTER TABLE items ADD COLUMN edited_at REAL;
        ALTER TABLE items ADD COLUMN deleted_at REAL;
        CREATE TABLE item_changes (
            conversation_id TEXT NOT NULL REFERENCES conversations(id),
            seq INTEGER NOT NULL,
            at REAL NOT NULL,
            by TEXT,
            kind TEXT NOT NULL,
            previous TEXT NOT NULL
        );
        CREATE INDEX item_changes_item ON item_changes(conversation_id, seq);
        """
    )


@migrations()
def m017_transfer_offers(db: Database) -> None:
    # A chat offered to a colleague who has not joined yet: kept so that a restart still
    # hands it over when they join, or gives it back when they decline or time runs out.
    db.executescript(
        """
        CREATE TABLE transfer_offers (
            conversation_id TEXT PRIMARY KEY REFERENCES conversations(id),
            from_agent TEXT NOT NULL,
            to_agent TEXT NOT NULL,
            queue_id TEXT,
            note TEXT NOT NULL,
            stay INTEGER NOT NULL,
            made_at REAL NOT NULL
        );
        """
    )


@migrations()
def m018_visitor_line_changes(db: Database) -> None:
    # The visitor edits or deletes their last line: the change goes to the room after the
    # line, by the outbox, with a key of its own (`delivered` 0 until it went; agents'
    # changes came from the room and have nothing to send).
    db.executescript(
        """
        ALTER TABLE item_changes ADD COLUMN key TEXT;
        ALTER TABLE item_changes ADD COLUMN delivered INTEGER NOT NULL DEFAULT 1;
        CREATE INDEX item_changes_outbox ON item_changes(conversation_id) WHERE delivered = 0;
        """
    )


def refuse_newer_schema(db: Database) -> None:
    """Refuse a database touched by a newer version rather than damage it."""
    known = {m.name for m in migrations._migrations}
    unknown = [m.name for m in migrations.applied(db) if m.name not in known]
    if unknown:
        raise StoreError(
            f"database has migrations this version does not know ({', '.join(unknown)}): "
            "it was used by a newer livechat-bridge; upgrade instead of downgrading"
        )


def migrate(db: Database) -> None:
    refuse_newer_schema(db)
    migrations.apply(db)
