"""The SQLite store, against a real database file in tmp_path."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

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
    VisitorInfo,
)
from bridge.store import Store, StoreBackendState, StoreError

C1 = ConversationId("c1")
C2 = ConversationId("c2")
ANN = VisitorInfo(name="Ann", email="ann@example.com", lang="en", user_agent="UA/1")


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "livechat.sqlite3"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    s = Store(db_path)
    yield s
    s.close()


def new_conversation(
    store: Store,
    cid: ConversationId = C1,
    *,
    queue: str = "support",
    now: float = 100.0,
    token_hash: str | None = None,
    visitor: VisitorInfo = ANN,
) -> Conversation:
    return store.create_conversation(
        cid,
        QueueId(queue),
        visitor,
        Page(url="https://www.example.com/p", title="Shop", referrer="https://ref.example/"),
        token_hash or f"hash-{cid}",
        now,
    )


def say(
    store: Store, cid: ConversationId, text: str, *, client_id: str | None = None
) -> tuple[Item, bool]:
    """A visitor line, as the hub stores it: undelivered until the backend confirms."""
    return store.append_item(
        cid, ItemKind.TEXT, Sender.VISITOR, "Ann", text, 200.0, client_id=client_id
    )


def row_count(path: Path, table: str = "items") -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
    finally:
        conn.close()


# -- opening -------------------------------------------------------------------------------


def test_creates_parent_folder_and_uses_wal(db_path: Path, store: Store) -> None:
    assert db_path.is_file()
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # NORMAL: the store syncs the WAL file itself after each durable commit (bridge.wal_sync).
    assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 1
    assert store.db.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_in_memory_store_works() -> None:
    s = Store(":memory:")
    try:
        new_conversation(s)
        assert s.conversation(C1) is not None
    finally:
        s.close()


def test_migrations_are_recorded_once(db_path: Path) -> None:
    Store(db_path).close()
    Store(db_path).close()
    conn = sqlite3.connect(db_path)
    try:
        rows = conn.execute(
            "SELECT name FROM _sqlite_migrations WHERE migration_set = 'livechat'"
        ).fetchall()
    finally:
        conn.close()
    assert rows == [("m001_initial",), ("m002_commands",), ("m003_agent_tools",), ("m004_tickets",),
                    ("m005_identity",), ("m006_ticket_from_chat",), ("m007_routing_marks",),
                    ("m008_items_last_seq",), ("m009_handled_commands",),
                    ("m010_events_by_detail",), ("m011_ticket_to_agents",),
                    ("m012_extended_at",), ("m013_files",), ("m014_read_at",),
                    ("m015_purge_indexes",), ("m016_item_changes",),
                    ("m017_transfer_offers",), ("m018_visitor_line_changes",)]


def _add_migration_row(path: Path, migration_set: str, name: str) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS _sqlite_migrations (id INTEGER PRIMARY KEY,"
            " migration_set TEXT, name TEXT, applied_at TEXT)"
        )
        conn.execute(
            "INSERT INTO _sqlite_migrations (migration_set, name, applied_at) VALUES (?, ?, ?)",
            (migration_set, name, "2030-01-01 00:00:00+00:00"),
        )
        conn.commit()
    finally:
        conn.close()


def test_database_from_a_newer_version_is_refused(db_path: Path) -> None:
    s = Store(db_path)
    new_conversation(s)
    s.close()
    _add_migration_row(db_path, "livechat", "m999_from_the_future")
    with pytest.raises(StoreError, match="m999_from_the_future"):
        Store(db_path)


def test_refusal_happens_before_any_migration_is_applied(tmp_path: Path) -> None:
    path = tmp_path / "future.sqlite3"
    _add_migration_row(path, "livechat", "m002_newer")
    with pytest.raises(StoreError, match="newer"):
        Store(path)
    conn = sqlite3.connect(path)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        conn.close()
    assert "items" not in tables
    assert "conversations" not in tables


def test_migrations_of_another_set_are_not_ours_to_refuse(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    _add_migration_row(path, "some_plugin", "m999_plugin")
    Store(path).close()


def test_store_error_is_a_runtime_error() -> None:
    assert issubclass(StoreError, RuntimeError)


# -- conversations -------------------------------------------------------------------------


def test_create_conversation(store: Store) -> None:
    conv = new_conversation(store, now=123.5)
    assert conv.id == C1
    assert conv.queue_id == "support"
    assert conv.status is Status.WAITING
    assert conv.visitor == ANN
    assert conv.page == Page(
        url="https://www.example.com/p", title="Shop", referrer="https://ref.example/"
    )
    assert conv.created_at == 123.5
    assert conv.room is None
    assert conv.agent_id is None
    assert conv.first_response_at is None
    assert conv.ended_at is None
    assert conv.last_seq == 0
    assert store.conversation(C1) == conv


def test_unicode_visitor_round_trips(store: Store) -> None:
    visitor = VisitorInfo(name="Árvíztűrő Şükrü", email="łukasz@example.pl", lang="hu")
    new_conversation(store, visitor=visitor)
    found = store.conversation(C1)
    assert found is not None
    assert found.visitor == visitor


def test_unknown_conversation(store: Store) -> None:
    assert store.conversation("nope") is None
    assert store.conversation_by_token("nope") is None
    assert store.conversation_by_room("!nope:example.com") is None


def test_token_hash_is_unique(store: Store) -> None:
    new_conversation(store, C1, token_hash="same")
    with pytest.raises(sqlite3.IntegrityError):
        new_conversation(store, C2, token_hash="same")


def test_conversation_by_token(store: Store) -> None:
    new_conversation(store, C1, token_hash="h1")
    new_conversation(store, C2, token_hash="h2")
    found = store.conversation_by_token("h2")
    assert found is not None and found.id == C2
    assert store.conversation_by_token("h3") is None


def test_conversation_by_room(store: Store) -> None:
    new_conversation(store, C1)
    new_conversation(store, C2)
    assert store.conversation_by_room("!r2:example.com") is None
    store.set_room(C2, RoomRef("!r2:example.com"))
    found = store.conversation_by_room("!r2:example.com")
    assert found is not None
    assert found.id == C2
    assert found.room == "!r2:example.com"
    assert store.conversation(C1).room is None  # type: ignore[union-attr]


def test_status_agent_and_first_response(store: Store) -> None:
    new_conversation(store)
    store.set_agent(C1, AgentId("alice"))
    store.set_status(C1, Status.ACTIVE)
    store.set_first_response(C1, 150.0)
    store.set_first_response(C1, 999.0)  # only the first one counts
    conv = store.conversation(C1)
    assert conv is not None
    assert (conv.agent_id, conv.status, conv.first_response_at) == ("alice", Status.ACTIVE, 150.0)
    store.set_status(C1, Status.ENDED, ended_at=300.0)
    conv = store.conversation(C1)
    assert conv is not None
    assert (conv.status, conv.ended_at) == (Status.ENDED, 300.0)


def test_open_conversations(store: Store) -> None:
    new_conversation(store, C1, now=1.0)
    new_conversation(store, C2, now=2.0)
    new_conversation(store, ConversationId("c3"), now=3.0)
    store.set_status(C2, Status.ENDED, ended_at=5.0)
    store.set_status(ConversationId("c3"), Status.ACTIVE)
    assert [c.id for c in store.open_conversations()] == ["c1", "c3"]


def test_waiting_position_and_count(store: Store) -> None:
    ids = [ConversationId(f"w{i}") for i in range(3)]
    for i, cid in enumerate(ids):
        new_conversation(store, cid, now=10.0 + i)
    new_conversation(store, ConversationId("other"), queue="sales", now=5.0)
    positions = [store.waiting_position(store.conversation(cid)) for cid in ids]  # type: ignore[arg-type]
    assert positions == [1, 2, 3]
    assert store.count_waiting("support") == 3
    assert store.count_waiting("sales") == 1
    assert store.count_waiting("nobody") == 0

    store.set_status(ids[0], Status.ACTIVE)
    assert store.waiting_position(store.conversation(ids[1])) == 1  # type: ignore[arg-type]
    assert store.waiting_position(store.conversation(ids[2])) == 2  # type: ignore[arg-type]
    assert store.count_waiting("support") == 2

    store.set_status(ids[1], Status.ENDED, ended_at=20.0)
    assert store.waiting_position(store.conversation(ids[2])) == 1  # type: ignore[arg-type]


def test_waiting_positions_are_distinct_for_simultaneous_starts(store: Store) -> None:
    # Two visitors starting within the same clock tick must not both be told "position 2".
    a, b = ConversationId("a"), ConversationId("b")
    new_conversation(store, a, now=50.0)
    new_conversation(store, b, now=50.0)
    positions = {
        store.waiting_position(store.conversation(a)),  # type: ignore[arg-type]
        store.waiting_position(store.conversation(b)),  # type: ignore[arg-type]
    }
    assert positions == {1, 2}


# -- timeline ------------------------------------------------------------------------------


def test_append_item_increments_seq_per_conversation(store: Store) -> None:
    new_conversation(store, C1)
    new_conversation(store, C2)
    seqs = [
        store.append_item(C1, ItemKind.TEXT, Sender.VISITOR, "Ann", f"m{i}", 200.0 + i)[0].seq
        for i in range(3)
    ]
    assert seqs == [1, 2, 3]
    other, created = store.append_item(C2, ItemKind.TEXT, Sender.VISITOR, "Bo", "x", 1.0)
    assert (other.seq, created) == (1, True)
    assert store.conversation(C1).last_seq == 3  # type: ignore[union-attr]
    assert store.conversation(C2).last_seq == 1  # type: ignore[union-attr]


def test_last_seq_on_disk_follows_the_items(db_path: Path) -> None:
    store = Store(db_path)
    new_conversation(store, C1)
    for i in range(3):
        store.append_item(C1, ItemKind.TEXT, Sender.VISITOR, "Ann", f"m{i}", 200.0 + i)
    store.close()
    reopened = Store(db_path)  # nothing cached: read from the database
    try:
        assert reopened.conversation(C1).last_seq == 3  # type: ignore[union-attr]
    finally:
        reopened.close()


def test_a_database_from_before_m008_keeps_counting(db_path: Path) -> None:
    store = Store(db_path)
    new_conversation(store, C1)
    store.append_item(C1, ItemKind.TEXT, Sender.VISITOR, "Ann", "before", 200.0)
    store.close()
    conn = sqlite3.connect(db_path)  # the database as the version before m008 left it
    conn.execute("DROP TRIGGER items_last_seq")
    conn.execute("DELETE FROM _sqlite_migrations WHERE name = 'm008_items_last_seq'")
    conn.commit()
    conn.close()
    upgraded = Store(db_path)
    try:
        item, created = upgraded.append_item(C1, ItemKind.TEXT, Sender.VISITOR, "Ann", "after",
                                             201.0)
        assert (item.seq, created, item.txn_id) == (2, True, "lcb.c1.2")
    finally:
        upgraded.close()
    again = Store(db_path)
    try:
        assert again.conversation(C1).last_seq == 2  # type: ignore[union-attr]
        again.append_item(C1, ItemKind.TEXT, Sender.VISITOR, "Ann", "later", 202.0)
        assert [i.text for i in again.items_after(C1, 0)] == ["before", "after", "later"]
    finally:
        again.close()


def test_an_unknown_conversation_gets_no_item(store: Store) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        store.append_item(C1, ItemKind.TEXT, Sender.VISITOR, "Ann", "lost", 1.0)
    assert store.items_after(C1, 0) == []


def test_append_item_fields_round_trip(store: Store) -> None:
    new_conversation(store)
    item, created = store.append_item(
        C1,
        ItemKind.TEXT,
        Sender.AGENT,
        "Alice",
        "Szia! 👩\u200d💻 <b>",
        201.5,
        sender_id="@alice:example.com",
        event_id="$ev1",
        delivered=True,
    )
    assert created
    (stored,) = store.items_after(C1, 0)
    assert stored == item
    assert stored.kind is ItemKind.TEXT
    assert stored.sender is Sender.AGENT
    assert stored.text == "Szia! 👩\u200d💻 <b>"
    assert stored.ts == 201.5
    assert stored.sender_id == "@alice:example.com"
    assert stored.event_id == "$ev1"
    assert stored.delivered is True
    assert stored.txn_id is None


def test_every_item_kind_takes_a_seq(store: Store) -> None:
    new_conversation(store)
    kinds = [ItemKind.JOINED, ItemKind.TEXT, ItemKind.LEFT, ItemKind.ENDED]
    for kind in kinds:
        store.append_item(C1, kind, Sender.SYSTEM, "Alice", "", 1.0, delivered=True)
    assert [(i.seq, i.kind) for i in store.items_after(C1, 0)] == list(
        zip([1, 2, 3, 4], kinds, strict=True)
    )


def test_items_after(store: Store) -> None:
    new_conversation(store)
    for i in range(5):
        say(store, C1, f"m{i}")
    assert [i.seq for i in store.items_after(C1, 0)] == [1, 2, 3, 4, 5]
    assert [i.text for i in store.items_after(C1, 3)] == ["m3", "m4"]
    assert store.items_after(C1, 5) == []
    assert store.items_after(C2, 0) == []


def test_repeated_client_id_returns_first_item_and_stores_nothing(
    store: Store, db_path: Path
) -> None:
    new_conversation(store)
    first, created = say(store, C1, "hello", client_id="k1")
    assert created is True
    again, created_again = say(store, C1, "hello (retry, different text)", client_id="k1")
    assert created_again is False
    assert again == first
    assert row_count(db_path) == 1
    assert store.conversation(C1).last_seq == 1  # type: ignore[union-attr]
    nxt, _ = say(store, C1, "next", client_id="k2")
    assert nxt.seq == 2  # no gap left by the duplicate


def test_same_client_id_in_another_conversation_is_a_new_item(store: Store) -> None:
    new_conversation(store, C1)
    new_conversation(store, C2)
    a, _ = say(store, C1, "a", client_id="k1")
    b, created = say(store, C2, "b", client_id="k1")
    assert created
    assert (b.conversation_id, b.seq, b.text) == (C2, 1, "b")
    assert a.conversation_id == C1


def test_items_without_client_id_are_never_deduplicated(store: Store, db_path: Path) -> None:
    new_conversation(store)
    assert say(store, C1, "same")[1]
    assert say(store, C1, "same")[1]
    assert row_count(db_path) == 2


def test_repeated_event_id_returns_first_item(store: Store, db_path: Path) -> None:
    new_conversation(store)
    first, created = store.append_item(
        C1, ItemKind.TEXT, Sender.AGENT, "Alice", "hi", 1.0, event_id="$e1", delivered=True
    )
    assert created
    again, created_again = store.append_item(
        C1, ItemKind.TEXT, Sender.AGENT, "Alice", "hi", 2.0, event_id="$e1", delivered=True
    )
    assert created_again is False
    assert again == first
    assert row_count(db_path) == 1
    assert store.conversation(C1).last_seq == 1  # type: ignore[union-attr]


def test_echo_of_a_delivered_visitor_line_is_not_stored_again(store: Store) -> None:
    # The backend echoes the bot's own post back with the event id it got on delivery.
    new_conversation(store)
    item, _ = say(store, C1, "hello", client_id="k1")
    store.mark_delivered(C1, item.seq, "$posted")
    echo, created = store.append_item(
        C1,
        ItemKind.TEXT,
        Sender.AGENT,
        "support",
        "hello",
        3.0,
        event_id="$posted",
        delivered=True,
    )
    assert created is False
    assert echo.seq == item.seq
    assert echo.sender is Sender.VISITOR


# -- outbox --------------------------------------------------------------------------------


def test_txn_id_is_written_at_insert_for_undelivered_items(store: Store, db_path: Path) -> None:
    new_conversation(store)
    item, _ = say(store, C1, "hello", client_id="k1")
    assert item.txn_id == "lcb.c1.1"
    conn = sqlite3.connect(db_path)
    try:
        row = conn.execute(
            "SELECT txn_id, delivered FROM items WHERE conversation_id = 'c1' AND seq = 1"
        ).fetchone()
    finally:
        conn.close()
    assert row == ("lcb.c1.1", 0)
    delivered, _ = store.append_item(
        C1, ItemKind.TEXT, Sender.AGENT, "Alice", "hi", 1.0, event_id="$e", delivered=True
    )
    assert delivered.txn_id is None


def test_txn_ids_are_unique_across_conversations(store: Store) -> None:
    new_conversation(store, C1)
    new_conversation(store, C2)
    a, _ = say(store, C1, "a")
    b, _ = say(store, C2, "b")
    assert a.seq == b.seq == 1
    assert a.txn_id != b.txn_id


def test_undelivered_and_mark_delivered(store: Store) -> None:
    new_conversation(store)
    one, _ = say(store, C1, "one")
    store.append_item(
        C1, ItemKind.TEXT, Sender.AGENT, "Alice", "reply", 1.0, event_id="$a", delivered=True
    )
    three, _ = say(store, C1, "three")
    assert [i.seq for i in store.undelivered(C1)] == [1, 3]
    assert all(not i.delivered for i in store.undelivered(C1))

    store.mark_delivered(C1, one.seq, "$one")
    assert [i.seq for i in store.undelivered(C1)] == [3]
    (stored_one,) = [i for i in store.items_after(C1, 0) if i.seq == 1]
    assert stored_one.delivered is True
    assert stored_one.event_id == "$one"
    assert stored_one.txn_id == one.txn_id  # the idempotency key is kept

    store.mark_delivered(C1, three.seq, "$three")
    assert store.undelivered(C1) == []


def test_conversations_with_outbox(store: Store) -> None:
    c3 = ConversationId("c3")
    for cid in (C1, C2, c3):
        new_conversation(store, cid)
    assert store.conversations_with_outbox() == []
    a, _ = say(store, C1, "a")
    b1, _ = say(store, C2, "b1")
    b2, _ = say(store, C2, "b2")
    store.append_item(
        c3, ItemKind.TEXT, Sender.AGENT, "Alice", "x", 1.0, event_id="$x", delivered=True
    )
    outbox = store.conversations_with_outbox()
    assert sorted(outbox) == ["c1", "c2"]
    assert len(outbox) == 2  # one entry per conversation, not per item
    store.mark_delivered(C2, b1.seq, "$b1")
    assert sorted(store.conversations_with_outbox()) == ["c1", "c2"]
    store.mark_delivered(C2, b2.seq, "$b2")
    store.mark_delivered(C1, a.seq, "$a")
    assert store.conversations_with_outbox() == []


# -- durability ----------------------------------------------------------------------------


def test_data_survives_close_and_reopen(db_path: Path) -> None:
    s = Store(db_path)
    new_conversation(s, C1, token_hash="tok")
    s.set_room(C1, RoomRef("!room:example.com"))
    s.set_status(C1, Status.ACTIVE)
    first, _ = say(s, C1, "kept", client_id="k1")
    s.append_item(
        C1, ItemKind.TEXT, Sender.AGENT, "Alice", "reply", 1.0, event_id="$r", delivered=True
    )
    pending, _ = say(s, C1, "pending")
    s.kv_set("matrix:device_id", "DEV1")
    before = s.conversation(C1)
    s.close()

    s2 = Store(db_path)
    try:
        assert s2.conversation(C1) == before
        assert s2.conversation_by_token("tok") == before
        assert s2.conversation_by_room("!room:example.com") == before
        assert [i.text for i in s2.items_after(C1, 0)] == ["kept", "reply", "pending"]
        assert s2.undelivered(C1) == [first, pending]
        assert s2.conversations_with_outbox() == ["c1"]
        assert s2.kv_get("matrix:device_id") == "DEV1"
        # idempotency survives the restart too
        again, created = say(s2, C1, "kept", client_id="k1")
        assert (again, created) == (first, False)
        nxt, _ = say(s2, C1, "after restart")
        assert nxt.seq == 4
    finally:
        s2.close()


def test_kv_and_backend_state(store: Store) -> None:
    assert store.kv_get("k") is None
    store.kv_set("k", "v1")
    store.kv_set("k", "v2")
    assert store.kv_get("k") == "v2"
    matrix = StoreBackendState(store, "matrix")
    xmpp = StoreBackendState(store, "xmpp")
    matrix.set("since", "s123")
    assert matrix.get("since") == "s123"
    assert xmpp.get("since") is None
    assert store.kv_get("matrix:since") == "s123"
    assert store.kv_get("since") is None
