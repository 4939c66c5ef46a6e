"""RetentionRepository: old ended chats go with everything that belongs to them, files and
shared contents included; an erasure takes one visitor's ended chats and tickets; open
chats, bans and what others share stay."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.core.models import (
    ConversationId,
    FileInfo,
    ItemKind,
    RoomRef,
    Sender,
    Status,
    Ticket,
    VisitorInfo,
)
from bridge.store import Store
from bridge.store.contracts import (
    EndedBefore,
    PurgeCounts,
    RetentionRepository,
    StoreRepositories,
    VisitorEmail,
)

from .conftest import ENGINES, open_chat

DAY = 86400.0
NOW = 400 * DAY
CUTOFF = NOW - 30 * DAY
OLD = EndedBefore(CUTOFF)
ANN = "ann@example.com"


def sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def chat(repos: StoreRepositories, cid: str, *, created: float, ended: float | None,
         email: str = ANN, content: bytes | None = None) -> ConversationId:
    """A conversation with one of everything that belongs to it: a visitor line, a file
    (posted to the room: the backend remembers its upload), an agent line, an audit event,
    a routing mark, a room and a command run there."""
    conversation_id = ConversationId(cid)
    open_chat(repos, cid, now=created, visitor=VisitorInfo(name="Ann", email=email))
    timeline = repos.timeline
    timeline.append_item(conversation_id, ItemKind.TEXT, Sender.VISITOR, "Ann", "hello",
                         created + 1, client_id=f"{cid}-1")
    data = content if content is not None else f"bytes of {cid}".encode()
    file = FileInfo(id=file_id(cid), name="photo.png", mimetype="image/png", size=len(data),
                    sha256=sha(data))
    item, _ = timeline.append_item(conversation_id, ItemKind.FILE, Sender.VISITOR, "Ann",
                                   "photo.png", created + 2, client_id=f"{cid}-2", file=file)
    repos.kv.set(f"matrix:upload:{item.txn_id}", f"mxc://hs.example/{cid}")
    timeline.append_item(conversation_id, ItemKind.TEXT, Sender.AGENT, "Alice", "hi",
                         created + 3, event_id=f"$line-{cid}", delivered=True)
    repos.audit.add_event(cid, "alice", "note", "regular customer", created + 4)
    repos.agents.add_routing_marks(conversation_id, "invited", ["alice"])
    repos.conversations.set_room(conversation_id, RoomRef(f"!room-{cid}:hs.example"))
    timeline.mark_command_handled(f"$cmd-{cid}", created + 5, f"!room-{cid}:hs.example")
    if ended is not None:
        repos.conversations.set_status(conversation_id, Status.ENDED, ended_at=ended)
    return conversation_id


def file_id(cid: str) -> str:
    return cid.encode().hex().ljust(32, "0")[:32]


def gone(repos: StoreRepositories, cid: str) -> bool:
    """Nothing of the chat can be read any more; False when all of it still can."""
    left = [
        repos.conversations.conversation(cid) is not None,
        bool(repos.timeline.items_after(cid, 0)),
        repos.files.file(file_id(cid)) is not None,
        bool(repos.audit.events(cid)),
        repos.timeline.command_handled(f"$cmd-{cid}"),
        repos.kv.get(f"matrix:upload:lcb.{cid}.2") is not None,
    ]
    if all(left):
        return False
    assert not any(left), f"{cid} is partly gone: {left}"
    return True


def purge_all(repos: StoreRepositories, selection: EndedBefore | VisitorEmail,
              limit: int = 500) -> tuple[PurgeCounts, set[str]]:
    counts, contents = PurgeCounts(), set[str]()
    while (batch := repos.retention.purge_conversations(selection, limit)).counts.conversations:
        counts += batch.counts
        contents |= batch.contents
    while tickets := repos.retention.purge_tickets(selection, limit):
        counts += PurgeCounts(tickets=tickets)
    return counts, contents


def ticket(tid: str, at: float, *, email: str = ANN, conversation_id: str | None = None
           ) -> Ticket:
    return Ticket(id=tid, created_at=at, queue_id="support", name="Ann", email=email,
                  text="call me", conversation_id=conversation_id)


# -- retention --------------------------------------------------------------------------------


def test_the_store_offers_the_retention_contract(repos: StoreRepositories) -> None:
    assert isinstance(repos.retention, RetentionRepository)


def test_an_old_ended_chat_goes_with_all_that_belongs_to_it(repos: StoreRepositories) -> None:
    chat(repos, "old", created=NOW - 41 * DAY, ended=NOW - 40 * DAY)
    chat(repos, "recent", created=NOW - 6 * DAY, ended=NOW - 5 * DAY)
    chat(repos, "open", created=NOW - 50 * DAY, ended=None)  # old but never ended
    old_content = sha(b"bytes of old")

    batch = repos.retention.purge_conversations(OLD, 500)
    assert batch.counts == PurgeCounts(conversations=1, items=3, files=1,
                                       file_bytes=len(b"bytes of old"))
    assert batch.contents == {old_content}
    assert gone(repos, "old")
    assert not gone(repos, "recent") and not gone(repos, "open")
    assert repos.files.in_use({old_content}) == set()
    assert [c.id for c in repos.conversations.open_conversations()] == ["open"]
    assert repos.agents.routing_marks() == [("open", "alice", "invited")]
    again = repos.retention.purge_conversations(OLD, 500)
    assert again.counts == PurgeCounts() and again.contents == frozenset()


def test_a_content_shared_with_a_kept_chat_is_still_referred_to(
        repos: StoreRepositories) -> None:
    shared = b"the same photo, sent twice"
    chat(repos, "old", created=NOW - 41 * DAY, ended=NOW - 40 * DAY, content=shared)
    chat(repos, "kept", created=NOW - 2 * DAY, ended=NOW - DAY, content=shared)

    _, contents = purge_all(repos, OLD)
    assert contents == {sha(shared)}
    assert repos.files.in_use(contents) == {sha(shared)}  # the kept chat's file has it
    kept = repos.files.file(file_id("kept"))
    assert kept is not None and kept[1].sha256 == sha(shared)


def test_an_estimate_is_what_the_purge_then_takes_and_changes_nothing(
        repos: StoreRepositories) -> None:
    shared = b"shared content"
    chat(repos, "a", created=NOW - 41 * DAY, ended=NOW - 40 * DAY, content=shared)
    chat(repos, "b", created=NOW - 39 * DAY, ended=NOW - 38 * DAY, content=b"own content")
    chat(repos, "c", created=NOW - 3 * DAY, ended=NOW - 2 * DAY, content=shared)
    repos.tickets.add_ticket(ticket("T-old", NOW - 60 * DAY), mail=False, webhook=False)
    repos.tickets.add_ticket(ticket("T-b", NOW - 38 * DAY, conversation_id="b"), mail=False,
                             webhook=False)

    estimate = repos.retention.estimate(OLD)
    assert estimate.counts == PurgeCounts(
        conversations=2, items=6, files=2, file_bytes=len(shared) + len(b"own content"),
        tickets=2)
    assert (estimate.contents, estimate.content_bytes) == (1, len(b"own content"))
    assert repos.retention.estimate(OLD) == estimate
    assert not gone(repos, "a") and not gone(repos, "b")
    assert repos.tickets.ticket_of_conversation("b") is not None

    counts, contents = purge_all(repos, OLD)
    assert counts == estimate.counts
    assert contents - repos.files.in_use(contents) == {sha(b"own content")}
    assert repos.retention.estimate(OLD).counts == PurgeCounts()


def test_batches_take_the_first_created_first_until_none_are_left(
        repos: StoreRepositories) -> None:
    for n in range(5):
        chat(repos, f"c{n}", created=NOW - 60 * DAY + n, ended=NOW - 40 * DAY - n)
    sizes = []
    while (batch := repos.retention.purge_conversations(OLD, 2)).counts.conversations:
        sizes.append(batch.counts.conversations)
        if len(sizes) == 1:
            assert [gone(repos, f"c{n}") for n in range(5)] == [True, True, False, False,
                                                                False]
    assert sizes == [2, 2, 1]


def test_the_cutoff_is_exclusive_and_counts_from_the_end(repos: StoreRepositories) -> None:
    chat(repos, "long", created=NOW - 90 * DAY, ended=CUTOFF)  # ended exactly at the cutoff
    chat(repos, "short", created=CUTOFF - 2, ended=CUTOFF - 1)
    purge_all(repos, OLD)
    assert not gone(repos, "long") and gone(repos, "short")


def test_retention_takes_delivered_tickets_from_before_the_cutoff_once_their_chat_is_gone(
        repos: StoreRepositories) -> None:
    chat(repos, "old", created=NOW - 41 * DAY, ended=NOW - 40 * DAY)
    chat(repos, "kept", created=NOW - 35 * DAY, ended=NOW - 5 * DAY)  # long, ended lately
    tickets = repos.tickets
    tickets.add_ticket(ticket("T-offline", NOW - 50 * DAY), mail=False, webhook=False)
    tickets.add_ticket(ticket("T-pending", NOW - 50 * DAY), mail=True, webhook=False)
    tickets.add_ticket(ticket("T-messenger", NOW - 50 * DAY), mail=False, webhook=False,
                       messenger=True)
    tickets.add_ticket(ticket("T-new", NOW - DAY), mail=False, webhook=False)
    tickets.add_ticket(ticket("T-old-chat", NOW - 40 * DAY, conversation_id="old"),
                       mail=False, webhook=False)
    tickets.add_ticket(ticket("T-kept-chat", NOW - 34 * DAY, conversation_id="kept"),
                       mail=False, webhook=False)

    counts, _ = purge_all(repos, OLD)
    assert counts.tickets == 2  # T-offline and T-old-chat
    assert tickets.ticket_of_conversation("old") is None
    assert tickets.ticket_of_conversation("kept") is not None  # goes with its chat, later
    assert [t.id for t, _, _ in tickets.pending_tickets()] == ["T-pending"]
    assert [t.id for t in tickets.tickets_for_messenger()] == ["T-messenger"]
    assert tickets.count_tickets(email=ANN, since=0.0) == 4


# -- erasure ----------------------------------------------------------------------------------


def test_an_erasure_takes_the_visitors_ended_chats_in_any_letter_case(
        repos: StoreRepositories) -> None:
    chat(repos, "ann1", created=NOW - 2 * DAY, ended=NOW - DAY, email="Ann@Example.COM")
    chat(repos, "ann2", created=NOW - 400, ended=NOW - 300, email=ANN)  # minutes ago
    chat(repos, "ann-open", created=NOW - 100, ended=None, email="ANN@example.com")
    chat(repos, "bob", created=NOW - 2 * DAY, ended=NOW - DAY, email="bob@example.com")
    chat(repos, "anne", created=NOW - 2 * DAY, ended=NOW - DAY, email="annE@example.com")

    erase = VisitorEmail("aNN@example.com")
    assert [c.id for c in repos.retention.open_conversations_of(erase.email)] == ["ann-open"]
    assert repos.retention.estimate(erase).counts.conversations == 2
    counts, _ = purge_all(repos, erase)
    assert counts.conversations == 2
    assert gone(repos, "ann1") and gone(repos, "ann2")
    assert not gone(repos, "ann-open") and not gone(repos, "bob") and not gone(repos, "anne")


def test_an_erasure_folds_letters_beyond_ascii(repos: StoreRepositories) -> None:
    chat(repos, "u", created=NOW - 2 * DAY, ended=NOW - DAY, email="ÄNNE@Bücher.example")
    purge_all(repos, VisitorEmail("änne@bücher.example"))
    assert gone(repos, "u")


def test_an_erasure_takes_the_visitors_tickets_even_undelivered_but_keeps_the_ban(
        repos: StoreRepositories) -> None:
    chat(repos, "ann", created=NOW - 2 * DAY, ended=NOW - DAY, email="Ann@Example.com")
    chat(repos, "ann-open", created=NOW - 100, ended=None, email=ANN)
    tickets = repos.tickets
    tickets.add_ticket(ticket("T-1", NOW - 500 * DAY), mail=False, webhook=False)
    tickets.add_ticket(ticket("T-2", NOW - DAY, email="Ann@Example.com"), mail=True,
                       webhook=True)
    tickets.add_ticket(ticket("T-chat", NOW - DAY, email="Ann@Example.com",
                              conversation_id="ann"), mail=False, webhook=False)
    tickets.add_ticket(ticket("T-open", NOW - 50, conversation_id="ann-open"), mail=False,
                       webhook=False)
    tickets.add_ticket(ticket("T-bob", NOW - DAY, email="bob@example.com"), mail=False,
                       webhook=False)
    repos.agents.ban("ann@example.com", "alice", "abuse", NOW - DAY)

    erase = VisitorEmail(ANN)
    assert repos.retention.estimate(erase).counts.tickets == 3
    counts, _ = purge_all(repos, erase)
    assert counts.tickets == 3
    assert tickets.pending_tickets() == []
    assert tickets.ticket_of_conversation("ann-open") is not None  # with its open chat
    assert tickets.count_tickets(email="bob@example.com", since=0.0) == 1
    assert repos.agents.is_banned(ANN)  # the site's protection stays


def test_a_cached_conversation_is_forgotten_with_its_rows(repos: StoreRepositories) -> None:
    chat(repos, "old", created=NOW - 41 * DAY, ended=NOW - 40 * DAY)
    assert repos.conversations.conversation("old") is not None  # now in the cache
    assert repos.conversations.conversation_by_room("!room-old:hs.example") is not None
    purge_all(repos, OLD)
    assert repos.conversations.conversation("old") is None
    assert repos.conversations.conversation_by_room("!room-old:hs.example") is None


# -- SQLite: every row, every reference -------------------------------------------------------

TABLES_BY_CONVERSATION = ["conversations WHERE id = ?", "items WHERE conversation_id = ?",
                          "files WHERE conversation_id = ?", "events WHERE conversation_id = ?",
                          "routing_marks WHERE conversation_id = ?",
                          "tickets WHERE conversation_id = ?"]


@pytest.fixture(params=sorted(ENGINES))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    made = ENGINES[request.param](tmp_path)
    assert isinstance(made, Store)
    yield made
    made.close()


def rows(store: Store, sql: str, *params: object) -> int:
    return int(store.db.execute(f"SELECT COUNT(*) FROM {sql}", params).fetchone()[0])


def test_no_row_of_a_purged_chat_is_left_and_no_reference_dangles(store: Store) -> None:
    chat(store, "old", created=NOW - 41 * DAY, ended=NOW - 40 * DAY)
    chat(store, "kept", created=NOW - 2 * DAY, ended=NOW - DAY)
    store.tickets.add_ticket(ticket("T", NOW - 40 * DAY, conversation_id="old"), mail=False,
                             webhook=False)
    for cid in ("old", "kept"):  # a corrected line: its text before is kept for agents
        line = store.timeline.items_after(cid, 0)[0]
        store.timeline.change_item(line, "edit", "corrected", "alice", NOW - DAY)
    assert rows(store, "visitors") == 2

    purge_all(store, OLD)
    assert [rows(store, table, "old") for table in TABLES_BY_CONVERSATION] == [0] * 6
    # Every table that names a conversation, whether listed above or added since.
    tables = [name for (name,) in store.db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'")
        if "conversation_id" in {row[1] for row in store.db.execute(
            f"PRAGMA table_info({name})")}]
    assert "item_changes" in tables
    assert {t: rows(store, f"{t} WHERE conversation_id = ?", "old") for t in tables} == \
        dict.fromkeys(tables, 0)
    assert rows(store, "item_changes WHERE conversation_id = ?", "kept") == 1
    assert [rows(store, table, "kept") for table in TABLES_BY_CONVERSATION] == [1, 3, 1, 1, 1, 0]
    assert rows(store, "visitors") == 1
    assert rows(store, "handled_commands WHERE room = ?", "!room-old:hs.example") == 0
    assert rows(store, "kv WHERE key LIKE ?", "%lcb.old.%") == 0
    assert rows(store, "kv WHERE key LIKE ?", "%lcb.kept.%") == 1
    assert store.db.execute("PRAGMA foreign_key_check").fetchall() == []
    assert store.db.execute("PRAGMA foreign_keys").fetchone()[0] == 1  # back on


def test_a_visitor_another_conversation_refers_to_stays(store: Store) -> None:
    chat(store, "old", created=NOW - 41 * DAY, ended=NOW - 40 * DAY)
    chat(store, "kept", created=NOW - 2 * DAY, ended=None)
    store.db.execute("UPDATE conversations SET visitor_id ="
                     " (SELECT visitor_id FROM conversations WHERE id = 'old') WHERE id = 'kept'")
    store.db.conn.commit()
    store.conversations.cache.forget(ConversationId("kept"))

    purge_all(store, OLD)
    # The shared one stays; so does the one "kept" had before (no purged chat's).
    assert rows(store, "visitors") == 2
    kept = store.conversations.conversation("kept")
    assert kept is not None and kept.visitor.email == ANN
    assert store.db.execute("PRAGMA foreign_key_check").fetchall() == []


def test_an_erased_chats_text_does_not_linger_in_the_database_file(tmp_path: Path) -> None:
    path = tmp_path / "state" / "livechat.sqlite3"
    store = Store(path)
    try:
        store.db.execute("PRAGMA secure_delete=OFF")  # as some builds have it
        chat(store, "ann", created=NOW - 2 * DAY, ended=NOW - DAY)
        store.append_item(ConversationId("ann"), ItemKind.TEXT, Sender.VISITOR, "Ann",
                          "my card is 4111-SECRET-MARKER", NOW - DAY - 5)
        store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        assert b"SECRET-MARKER" in path.read_bytes()

        purge_all(store, VisitorEmail(ANN))
        store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        assert b"SECRET-MARKER" not in path.read_bytes()
        assert store.db.execute("PRAGMA secure_delete").fetchone()[0] == 0  # put back
    finally:
        store.close()
