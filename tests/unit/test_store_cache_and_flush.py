"""The store's conversation cache and its group commit, against a real database file."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge import wal_sync
from bridge.core.models import (
    AgentId,
    ConversationId,
    ItemKind,
    Page,
    QueueId,
    RoomRef,
    Sender,
    Status,
    VisitorInfo,
)
from bridge.store import Store, StoreUnavailable
from bridge.store import conversations as store_module

C1 = ConversationId("c1")
ANN = VisitorInfo(name="Ann", email="ann@example.com")


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "livechat.sqlite3"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    s = Store(db_path)
    yield s
    s.close()


def open_chat(store: Store, cid: ConversationId = C1) -> None:
    store.create_conversation(cid, QueueId("support"), ANN,
                              Page(url="https://shop.example.com/", title="", referrer=""),
                              f"hash-{cid}", 100.0)


def visitor_line(store: Store, text: str, client_id: str) -> int:
    item, _ = store.append_item(C1, ItemKind.TEXT, Sender.VISITOR, "Ann", text, 200.0,
                                client_id=client_id, wait_for_disk=False)
    return item.seq


def on_disk(db_path: Path, cid: ConversationId = C1) -> dict[str, object]:
    """The conversation's row as another connection reads it."""
    conn = sqlite3.connect(db_path)
    conn.row_factory = sqlite3.Row
    try:
        return dict(conn.execute("SELECT * FROM conversations WHERE id = ?", (cid,)).fetchone())
    finally:
        conn.close()


# -- the conversation cache ------------------------------------------------------------------


def test_every_write_shows_in_the_next_read(store: Store, db_path: Path) -> None:
    open_chat(store)
    assert store.conversation(C1) is store.conversation(C1)  # served from memory

    store.set_room(C1, RoomRef("!r1:hs"))
    store.set_agent(C1, AgentId("alice"))
    store.set_queue(C1, QueueId("sales"))
    store.set_status(C1, Status.ACTIVE)
    store.set_first_response(C1, 150.0)
    store.set_rating(C1, 5, "quick")
    store.set_callback(C1, "+3612345678", "after 5")
    assert store.conversation(C1).last_seq == 0  # type: ignore[union-attr]
    seq = visitor_line(store, "hello", "k1")
    conversation = store.conversation(C1)
    assert conversation is not None
    assert (conversation.room, conversation.agent_id, conversation.queue_id) == (
        "!r1:hs", "alice", "sales")
    assert (conversation.status, conversation.first_response_at) == (Status.ACTIVE, 150.0)
    assert (conversation.rating, conversation.comment) == (5, "quick")
    assert (conversation.callback_phone, conversation.last_seq) == ("+3612345678", seq)
    row = on_disk(db_path)
    assert (row["room"], row["agent_id"], row["queue_id"], row["last_seq"]) == (
        "!r1:hs", "alice", "sales", seq)

    store.clear_agent(C1)
    store.set_status(C1, Status.ENDED, ended_at=300.0)
    store.set_first_response(C1, 999.0)  # only the first answer counts
    conversation = store.conversation(C1)
    assert conversation is not None
    assert (conversation.agent_id, conversation.status, conversation.ended_at) == (
        None, Status.ENDED, 300.0)
    assert conversation.first_response_at == 150.0


def test_a_room_lookup_follows_a_new_room(store: Store) -> None:
    open_chat(store)
    store.set_room(C1, RoomRef("!old:hs"))
    assert store.conversation_by_room("!old:hs") is not None
    store.set_room(C1, RoomRef("!new:hs"))
    assert store.conversation_by_room("!old:hs") is None
    found = store.conversation_by_room("!new:hs")
    assert found is not None and found.id == C1


def test_a_failed_write_leaves_no_stale_copy(store: Store) -> None:
    open_chat(store)
    store.set_room(C1, RoomRef("!r:hs"))
    before = store.conversation(C1)
    with pytest.raises(sqlite3.IntegrityError):  # no such visitor row: a foreign key fails
        store._update(C1, visitor_id=12345)
    assert store.conversation(C1) == before


def test_the_cache_is_bounded(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "CONVERSATION_CACHE_SIZE", 3)
    for n in range(6):
        open_chat(store, ConversationId(f"c{n}"))
        store.set_room(ConversationId(f"c{n}"), RoomRef(f"!r{n}:hs"))
        store.conversation_by_room(f"!r{n}:hs")
    assert len(store._cached) <= 3 and len(store._room_ids) <= 3
    oldest = store.conversation(ConversationId("c0"))  # read back from the file
    assert oldest is not None and oldest.room == "!r0:hs"


# -- group commit ----------------------------------------------------------------------------


class CountingSync:
    """Wraps the real fdatasync: counts calls, and can hold them until released."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = threading.Event()
        self.release.set()
        self.entered = threading.Event()
        self._real = os.fdatasync

    def __call__(self, fd: int) -> None:
        self.calls += 1
        self.entered.set()
        self.release.wait(10)
        self._real(fd)


@pytest.fixture
def syncs(monkeypatch: pytest.MonkeyPatch) -> CountingSync:
    counting = CountingSync()
    monkeypatch.setattr(wal_sync.os, "fdatasync", counting)
    return counting


async def test_a_lazy_commit_is_durable_once_flush_returns(store: Store, db_path: Path,
                                                           syncs: CountingSync) -> None:
    open_chat(store)
    syncs.calls = 0
    syncs.entered.clear()  # set by the chat's own durable writes
    syncs.release.clear()
    seq = visitor_line(store, "hello", "k1")
    flushing = asyncio.create_task(store.flush())
    await asyncio.to_thread(syncs.entered.wait, 5)
    await asyncio.sleep(0.05)
    assert not flushing.done()  # the fsync has not returned: no acknowledgement yet
    conn = sqlite3.connect(db_path)  # yet the line is committed: a crash keeps it
    try:
        assert conn.execute("SELECT seq FROM items WHERE client_id = 'k1'").fetchone() == (seq,)
    finally:
        conn.close()
    syncs.release.set()
    await asyncio.wait_for(flushing, 5)
    assert syncs.calls == 1


async def test_lines_waiting_together_share_one_fsync(store: Store,
                                                      syncs: CountingSync) -> None:
    open_chat(store)
    syncs.calls = 0
    syncs.entered.clear()  # set by the chat's own durable writes
    syncs.release.clear()
    visitor_line(store, "first", "k0")
    first = asyncio.create_task(store.flush())
    await asyncio.to_thread(syncs.entered.wait, 5)  # the first fsync is under way
    waiting = []
    for n in range(1, 20):
        visitor_line(store, f"line {n}", f"k{n}")
        waiting.append(asyncio.create_task(store.flush()))
    await asyncio.sleep(0)
    syncs.release.set()
    await asyncio.wait_for(asyncio.gather(first, *waiting), 5)
    assert syncs.calls == 2  # one for the first line, one for the nineteen after it
    await store.flush()
    assert syncs.calls == 2  # nothing new to sync: no fsync at all


async def test_lines_within_the_gathering_window_share_the_first_fsync(
        store: Store, syncs: CountingSync) -> None:
    open_chat(store)
    syncs.calls = 0
    flushes = []
    started = time.perf_counter()
    for n in range(10):  # committed one after another while the disk is idle
        visitor_line(store, f"line {n}", f"g{n}")
        flushes.append(asyncio.create_task(store.flush()))
    await asyncio.wait_for(asyncio.gather(*flushes), 5)
    assert syncs.calls == 1
    assert time.perf_counter() - started >= wal_sync.GATHER_S


async def test_a_durable_write_syncs_before_it_returns_and_the_lines_before_it_too(
        store: Store, syncs: CountingSync) -> None:
    open_chat(store)
    assert syncs.calls == 1  # a new conversation is on disk when create_conversation returns
    visitor_line(store, "hello", "k1")
    assert syncs.calls == 1  # a visitor line is not
    store.set_room(C1, RoomRef("!r:hs"))  # synced on this thread, the line with it
    assert syncs.calls == 2
    await asyncio.wait_for(store.flush(), 5)
    assert syncs.calls == 2  # nothing left for the flush to do


async def test_a_refused_fsync_fails_the_waiters_and_the_next_flush_tries_again(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    open_chat(store)
    real = os.fdatasync
    failures = [OSError(5, "Input/output error")]

    def flaky(fd: int) -> None:
        if failures:
            raise failures.pop()
        real(fd)

    monkeypatch.setattr(wal_sync.os, "fdatasync", flaky)
    visitor_line(store, "hello", "k1")
    with pytest.raises(StoreUnavailable, match="Input/output"):
        await store.flush()
    visitor_line(store, "again", "k2")
    await asyncio.wait_for(store.flush(), 5)


async def test_a_caller_that_gives_up_does_not_stop_the_others(store: Store,
                                                               syncs: CountingSync) -> None:
    open_chat(store)
    syncs.release.clear()
    visitor_line(store, "hello", "k1")
    impatient = asyncio.create_task(store.flush())
    patient = asyncio.create_task(store.flush())
    await asyncio.to_thread(syncs.entered.wait, 5)
    impatient.cancel()
    syncs.release.set()
    await asyncio.wait_for(patient, 5)
    assert impatient.cancelled()


def write_and_close(db_path: Path) -> None:
    store = Store(db_path)
    try:
        open_chat(store)
        visitor_line(store, "hello", "k1")
    finally:
        store.close()  # the last connection checkpoints and removes the WAL file
    assert not Path(f"{db_path}-wal").exists()


async def test_a_missing_wal_file_syncs_the_database_file(db_path: Path) -> None:
    write_and_close(db_path)
    sync = wal_sync.WalSync(db_path)
    try:
        sync.committed()
        await asyncio.wait_for(sync.wait(), 5)
    finally:
        sync.close()


async def test_a_memory_store_has_nothing_to_flush() -> None:
    store = Store(":memory:")
    try:
        open_chat(store)
        visitor_line(store, "hello", "k1")
        await asyncio.wait_for(store.flush(), 1)
    finally:
        store.close()


# -- long lines read in batches --------------------------------------------------------------


def test_the_line_is_read_in_batches_in_arrival_order(store: Store,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "CONVERSATION_BATCH", 2)
    for n in range(7):
        open_chat(store, ConversationId(f"w{n}"))
    store.set_status(ConversationId("w3"), Status.ACTIVE)  # answered: out of the line
    line = store.waiting_conversations("support")
    assert [next(line).id for _ in range(2)] == ["w0", "w1"]  # the first batch
    store.set_status(ConversationId("w5"), Status.ENDED, ended_at=300.0)  # left meanwhile
    assert [c.id for c in line] == ["w2", "w4", "w6"]
    assert [c.id for c in store.each_open_conversation()] == ["w0", "w1", "w2", "w3", "w4",
                                                             "w6"]
