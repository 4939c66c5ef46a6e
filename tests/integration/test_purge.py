"""`livechat-bridge purge` end to end: the real command (a subprocess, or `main`) on a
database and files folder seeded through the Store and `Blobs` as the bridge writes them.

Old ended chats go with their files (and the files' bytes leave the disk unless a kept chat
shares them); recent and open chats stay; an erasure takes one visitor's ended chats and
tickets and leaves the open ones with exit 3; a dry run changes nothing; a purge beside a
writing bridge costs the bridge no write; bad arguments get argparse's exit 2.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bridge.blobs import GRACE_S, Blobs
from bridge.cli import main
from bridge.core.models import (
    ConversationId,
    FileInfo,
    ItemKind,
    Page,
    QueueId,
    Sender,
    Status,
    Ticket,
    VisitorInfo,
)
from bridge.store import Store

ROOT = Path(__file__).resolve().parents[2]
DAY = 86400.0
SHARED = b"the same photo, sent in two chats"

CONFIG = """\
[storage]
path = "state/live.sqlite3"

[backend]
type = "matrix"

[matrix]
homeserver = "https://matrix.invalid"
user_id = "@support:matrix.invalid"
password = "bot-pw-1"

[[agents]]
id = "alice"
address = "@alice:matrix.invalid"
name = "Alice"

[[queues]]
id = "support"
name = "Support"
agents = ["alice"]
"""


@dataclass
class Site:
    """What a seeded bridge holds: its config, and the contents of each chat's file."""

    config: Path
    db: Path
    blobs: Blobs
    contents: dict[str, str] = field(default_factory=dict)  # chat -> sha256 of its file

    def store(self) -> Store:
        return Store(self.db)

    def on_disk(self, chat: str) -> bool:
        return self.blobs.path(self.contents[chat]).is_file()


async def _one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def stored_file(blobs: Blobs, data: bytes, written_at: float) -> FileInfo:
    """A file kept as the bridge keeps an upload, its bytes last touched at `written_at`."""
    received = await blobs.receive(_one_chunk(data), 1_000_000)
    path = await blobs.keep(received)
    os.utime(path, (written_at, written_at))
    return FileInfo(id=secrets.token_hex(16), name="photo.png", mimetype="image/png",
                    size=received.size, sha256=received.sha256)


async def add_chat(site: Site, store: Store, cid: str, *, created: float,
                   ended: float | None, email: str = "ann@example.com",
                   data: bytes | None = None) -> None:
    conversation_id = ConversationId(cid)
    store.create_conversation(conversation_id, QueueId("support"),
                              VisitorInfo(name="Ann", email=email), Page(), f"hash-{cid}",
                              created)
    store.append_item(conversation_id, ItemKind.TEXT, Sender.VISITOR, "Ann", "hello",
                      created + 1, client_id=f"{cid}-1")
    file = await stored_file(site.blobs, data or f"photo of {cid}".encode(), created + 2)
    store.append_item(conversation_id, ItemKind.FILE, Sender.VISITOR, "Ann", file.name,
                      created + 2, client_id=f"{cid}-2", file=file)
    store.append_item(conversation_id, ItemKind.TEXT, Sender.AGENT, "Alice", "hi",
                      created + 3, event_id=f"$e-{cid}", delivered=True)
    store.add_event(cid, "alice", "note", "seen before", created + 4)
    if ended is not None:
        store.set_status(conversation_id, Status.ENDED, ended_at=ended)
    site.contents[cid] = file.sha256


def add_ticket(store: Store, tid: str, created: float, *, email: str = "ann@example.com",
               pending: bool = False) -> None:
    store.add_ticket(Ticket(id=tid, created_at=created, queue_id="support", name="Ann",
                            email=email, text="please call"), mail=pending, webhook=False)


@pytest.fixture
async def site(tmp_path: Path) -> Site:
    """A bridge's state: two old ended chats (one shares its photo with a recent chat),
    a recent ended chat, an old chat never ended, Bea's chats (one still open), tickets
    and a ban."""
    config = tmp_path / "config.toml"
    config.write_text(CONFIG, encoding="utf-8")
    made = Site(config, tmp_path / "state" / "live.sqlite3", Blobs(tmp_path / "state" / "files"))
    now = time.time()
    store = made.store()
    try:
        await add_chat(made, store, "old1", created=now - 41 * DAY, ended=now - 40 * DAY)
        await add_chat(made, store, "old2", created=now - 36 * DAY, ended=now - 35 * DAY,
                       data=SHARED)
        await add_chat(made, store, "recent", created=now - 6 * DAY, ended=now - 5 * DAY,
                       data=SHARED)
        await add_chat(made, store, "open", created=now - 50 * DAY, ended=None)
        await add_chat(made, store, "bea1", created=now - 3 * DAY, ended=now - 2 * DAY,
                       email="Bea@Example.com")
        await add_chat(made, store, "bea-open", created=now - 600, ended=None,
                       email="bea@example.com")
        add_ticket(store, "T-old", now - 45 * DAY)
        add_ticket(store, "T-old-pending", now - 45 * DAY, pending=True)
        add_ticket(store, "T-new", now - DAY)
        add_ticket(store, "T-bea", now - 300 * DAY, email="bea@example.com", pending=True)
        store.ban("bea@example.com", "alice", "insults", now - 2 * DAY)
    finally:
        store.close()
    return made


def purge(site: Site, *args: str) -> subprocess.CompletedProcess[str]:
    """The installed command as an admin (or cron) runs it."""
    return subprocess.run(
        [sys.executable, "-m", "bridge", "purge", "-c", str(site.config), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)


def chats(site: Site) -> set[str]:
    store = site.store()
    try:
        return {row["id"] for row in store.db.query("SELECT id FROM conversations")}
    finally:
        store.close()


def tickets(site: Site) -> set[str]:
    store = site.store()
    try:
        return {row["id"] for row in store.db.query("SELECT id FROM tickets")}
    finally:
        store.close()


def snapshot(site: Site) -> tuple[list[str], dict[str, float]]:
    store = site.store()
    try:
        dump = list(store.db.conn.iterdump())
    finally:
        store.close()
    files = {str(p): p.stat().st_mtime for p in site.blobs.root.rglob("*") if p.is_file()}
    return dump, files


# -- retention ----------------------------------------------------------------------------------


def test_old_ended_chats_go_with_their_files_and_the_rest_stays(site: Site) -> None:
    done = purge(site, "--ended-before", "30")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    file_bytes = len(b"photo of old1") + len(SHARED)
    header, *summary = done.stdout.splitlines()
    assert re.fullmatch(r"purge: conversations that ended before \d{4}-\d\d-\d\dT[\d:]{8}Z",
                        header)
    assert summary == [
        f"deleted: 2 conversations, 6 items, 2 files ({file_bytes} bytes), 1 ticket",
        "removed from disk: 1 stored file (13 bytes), shared contents kept",
    ]
    assert chats(site) == {"recent", "open", "bea1", "bea-open"}
    assert tickets(site) == {"T-old-pending", "T-new", "T-bea"}
    assert not site.on_disk("old1")
    assert site.on_disk("old2") and site.on_disk("recent")  # one content, still in use
    assert site.on_disk("open") and site.on_disk("bea1")

    again = purge(site, "--ended-before", "30", "--format", "json")
    assert again.returncode == 0
    report = json.loads(again.stdout)
    assert (report["conversations"], report["tickets"], report["disk_files"]) == (0, 0, 0)


def test_a_dry_run_reports_the_same_and_changes_nothing(site: Site) -> None:
    before = snapshot(site)
    dry = purge(site, "--ended-before", "30", "--dry-run", "--format", "json")
    assert dry.returncode == 0, dry.stderr
    report: dict[str, Any] = json.loads(dry.stdout)
    assert snapshot(site) == before

    assert report["dry_run"] is True
    assert set(report["selection"]) == {"ended_before"}
    assert {key: report[key] for key in ("conversations", "items", "files", "tickets",
                                         "disk_files", "disk_bytes")} == {
        "conversations": 2, "items": 6, "files": 2, "tickets": 1, "disk_files": 1,
        "disk_bytes": len(b"photo of old1")}
    text = purge(site, "--ended-before", "30", "--dry-run")
    assert text.stdout.splitlines()[-1] == "nothing changed (--dry-run)"
    assert "would delete: 2 conversations" in text.stdout

    real = json.loads(purge(site, "--ended-before", "30", "--format", "json").stdout)
    assert {k: real[k] for k in ("conversations", "items", "files", "bytes", "tickets",
                                 "disk_files", "disk_bytes")} == {
        k: report[k] for k in ("conversations", "items", "files", "bytes", "tickets",
                               "disk_files", "disk_bytes")}


def test_a_file_touched_while_the_purge_runs_is_left_to_the_sweep(site: Site) -> None:
    # As if an upload of the same bytes had just called Blobs.keep, its row not yet written.
    path = site.blobs.path(site.contents["old1"])
    later = time.time() + 60
    os.utime(path, (later, later))
    done = purge(site, "--ended-before", "30", "--format", "json")
    assert json.loads(done.stdout)["disk_left"] == 1
    assert path.is_file() and "old1" not in chats(site)

    store = site.store()  # no row came for it: the bridge's sweep takes it an hour on
    try:
        assert site.blobs.sweep(store.in_use, now=later + GRACE_S + 1) >= 1
    finally:
        store.close()
    assert not path.is_file()
    assert site.on_disk("recent") and site.on_disk("open")


# -- erasure ------------------------------------------------------------------------------------


def test_an_erasure_takes_a_visitors_ended_chats_and_tickets_and_names_the_open_ones(
        site: Site) -> None:
    first = purge(site, "--email", "BEA@example.COM", "--format", "json")
    assert first.returncode == 3, first.stderr
    report = json.loads(first.stdout)
    assert (report["conversations"], report["tickets"], report["disk_files"]) == (1, 1, 1)
    assert [c["id"] for c in report["open_conversations"]] == ["bea-open"]
    assert "bea-open" in first.stderr
    assert "End them first (!end in their rooms), then run this again." in first.stderr
    assert chats(site) == {"old1", "old2", "recent", "open", "bea-open"}
    assert "T-bea" not in tickets(site)  # undelivered, and erased all the same
    assert not site.on_disk("bea1") and site.on_disk("bea-open")

    store = site.store()
    try:
        assert store.is_banned("bea@example.com")  # the site's protection stays
        store.set_status(ConversationId("bea-open"), Status.ENDED, ended_at=time.time())
    finally:
        store.close()
    second = purge(site, "--email", "bea@example.com")
    assert second.returncode == 0, second.stderr
    assert "deleted: 1 conversation," in second.stdout
    assert "bea-open" not in chats(site) and not site.on_disk("bea-open")
    assert chats(site) == {"old1", "old2", "recent", "open"}


# -- beside a running bridge ---------------------------------------------------------------------


def test_a_purge_beside_a_writing_bridge_costs_it_no_write(site: Site) -> None:
    """The bridge's connection keeps storing visitor lines (each durable, as the hub does)
    while the purge deletes over a thousand old chats in several batches."""
    store = site.store()
    now = time.time()
    try:
        with store.database.transaction(durable=True):
            for n in range(1200):
                cid = ConversationId(f"bulk{n:04d}")
                store.create_conversation(cid, QueueId("support"),
                                          VisitorInfo(name="V", email=f"v{n}@example.com"),
                                          Page(), f"hash-{cid}", now - 60 * DAY)
                for seq in range(3):
                    store.append_item(cid, ItemKind.TEXT, Sender.VISITOR, "V", f"line {seq}",
                                      now - 60 * DAY + seq)
                store.set_status(cid, Status.ENDED, ended_at=now - 59 * DAY)
    finally:
        store.close()

    stop = threading.Event()
    failures: list[BaseException] = []
    written: list[int] = []

    def bridge() -> None:
        own = site.store()  # a connection of its own, as the bridge's process has
        try:
            while not stop.is_set():
                item, _ = own.append_item(ConversationId("open"), ItemKind.TEXT,
                                          Sender.VISITOR, "Ann", "still here", time.time(),
                                          client_id=f"w{len(written)}")
                written.append(item.seq)
        except BaseException as exc:
            failures.append(exc)
        finally:
            own.close()

    writer = threading.Thread(target=bridge)
    writer.start()
    try:
        time.sleep(0.2)
        done = purge(site, "--ended-before", "30", "--format", "json")
    finally:
        stop.set()
        writer.join(timeout=30)
    assert failures == []
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["conversations"] == 1202
    assert len(written) > 10 and written == sorted(written)
    assert chats(site) == {"recent", "open", "bea1", "bea-open"}


# -- bad arguments -------------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "said"), [
    (["--ended-before", "0"], "expected a whole number, at least 1"),
    (["--ended-before", "-3"], "expected a whole number, at least 1"),
    (["--ended-before", "7.5"], "expected a whole number, at least 1"),
    (["--ended-before", "a week"], "expected a whole number, at least 1"),
    (["--email", "ann at example.com"], "expected name@example.com"),
    ([], "one of the arguments --ended-before --email is required"),
    (["--ended-before", "30", "--email", "ann@example.com"], "not allowed with"),
    (["--ended-before", "30", "--format", "xml"], "invalid choice: 'xml'"),
])
def test_bad_arguments_get_a_clear_error_and_change_nothing(
        site: Site, capsys: pytest.CaptureFixture[str], args: list[str], said: str) -> None:
    before = snapshot(site)
    with pytest.raises(SystemExit) as exited:
        main(["purge", "-c", str(site.config), *args])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "livechat-bridge purge: error:" in err and said in err
    assert snapshot(site) == before


def test_a_missing_database_or_a_bad_config_is_said_plainly(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.toml"
    config.write_text(CONFIG, encoding="utf-8")
    assert main(["purge", "-c", str(config), "--ended-before", "30"]) == 1
    assert "no database here" in capsys.readouterr().err
    assert not (tmp_path / "state").exists()  # nothing created

    config.write_text(CONFIG.replace("[storage]", "[storage]\nretention = 30"),
                      encoding="utf-8")
    assert main(["purge", "-c", str(config), "--ended-before", "30"]) == 2
    assert "storage" in capsys.readouterr().err
