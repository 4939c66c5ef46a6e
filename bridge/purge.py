"""`livechat-bridge purge`: retention and erasure (docs/retention.md).

Ended conversations go with everything that belongs to them, a batch at a time (the store's
`RetentionRepository`); after each batch is on disk, the stored contents of its files that
no file refers to any more are deleted from the files folder; then the tickets go. Safe
while the bridge runs on the same database: each batch is one short transaction, and a
content that an upload touched while the purge ran is left to the bridge's own sweep.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from bridge.blobs import Blobs
from bridge.core.files import human_size
from bridge.core.models import Conversation
from bridge.store.contracts import (
    EndedBefore,
    FileRepository,
    PurgeCounts,
    PurgeSelection,
    RetentionRepository,
    VisitorEmail,
)

log = logging.getLogger(__name__)

DAY_S = 86400.0
# Conversations (or tickets) per transaction: a running bridge's writes wait at most for one.
BATCH = 500
# A content whose file was touched less than this before the purge started may be wanted by
# an upload of the same bytes on its way (`Blobs.keep` touches it, then its row is written):
# such a one is left to the bridge's hourly sweep. The margin covers coarse file clocks.
TOUCH_MARGIN_S = 1.0


class PurgeStore(Protocol):
    @property
    def retention(self) -> RetentionRepository: ...

    @property
    def files(self) -> FileRepository: ...


@dataclass(frozen=True)
class DiskOutcome:
    """Stored contents deleted from the files folder, and those left for the sweep."""

    removed: int = 0
    removed_bytes: int = 0
    left: int = 0

    def __add__(self, other: DiskOutcome) -> DiskOutcome:
        return DiskOutcome(self.removed + other.removed,
                           self.removed_bytes + other.removed_bytes, self.left + other.left)


@dataclass(frozen=True)
class PurgeResult:
    selection: PurgeSelection
    dry_run: bool
    counts: PurgeCounts
    disk: DiskOutcome  # with dry_run: what would leave the disk
    open_conversations: tuple[Conversation, ...] = ()  # an erasure leaves these


def selection_for(*, days: int | None, email: str | None, now: float) -> PurgeSelection:
    """`--ended-before DAYS` (ended more than DAYS days before `now`) or `--email`."""
    if email is not None:
        return VisitorEmail(email)
    assert days is not None
    return EndedBefore(now - days * DAY_S)


def purge(store: PurgeStore, blobs: Blobs, selection: PurgeSelection, *, dry_run: bool,
          clock: Callable[[], float]) -> PurgeResult:
    """Delete (with `dry_run`: only count) what the selection takes. Raises
    StoreUnavailable when the database refuses a write; the batches before it stay done."""
    retention = store.retention
    open_now = (tuple(retention.open_conversations_of(selection.email))
                if isinstance(selection, VisitorEmail) else ())
    if dry_run:
        estimate = retention.estimate(selection)
        return PurgeResult(selection, True, estimate.counts,
                           DiskOutcome(estimate.contents, estimate.content_bytes), open_now)
    touched_before = clock() - TOUCH_MARGIN_S
    counts, disk = PurgeCounts(), DiskOutcome()
    while True:
        batch = retention.purge_conversations(selection, BATCH)
        if not batch.counts.conversations:
            break
        counts += batch.counts
        disk += remove_unreferenced(store.files, blobs, batch.contents, touched_before)
        log.debug("purge: %d conversations deleted so far", counts.conversations)
    while tickets := retention.purge_tickets(selection, BATCH):
        counts += PurgeCounts(tickets=tickets)
    return PurgeResult(selection, False, counts, disk, open_now)


def remove_unreferenced(files: FileRepository, blobs: Blobs, contents: Iterable[str],
                        touched_before: float) -> DiskOutcome:
    """Delete the stored contents among `contents` that no file refers to, unless touched
    since `touched_before` (those are left, for the sweep)."""
    candidates = set(contents)
    unused = candidates - files.in_use(candidates)
    outcome = DiskOutcome()
    for sha256 in sorted(unused):
        try:
            stat = blobs.path(sha256).stat()
        except FileNotFoundError:
            continue  # never stored here, or already gone
        if stat.st_mtime >= touched_before:
            outcome += DiskOutcome(left=1)
            continue
        try:
            blobs.remove(sha256)
        except OSError as exc:
            log.warning("purge: could not delete stored file %s (%s); the bridge's sweep "
                        "tries again", sha256, exc)
            outcome += DiskOutcome(left=1)
            continue
        outcome += DiskOutcome(removed=1, removed_bytes=stat.st_size)
    return outcome


# -- output ----------------------------------------------------------------------------------


def render(result: PurgeResult, fmt: str) -> str:
    return render_json(result) if fmt == "json" else render_text(result)


def render_text(result: PurgeResult) -> str:
    counts, disk = result.counts, result.disk
    lines = [f"purge: {_what(result.selection)}"]
    verb, disk_verb = (("would delete", "would leave the disk") if result.dry_run
                       else ("deleted", "removed from disk"))
    lines.append(
        f"{verb}: {_n(counts.conversations, 'conversation')}, {_n(counts.items, 'item')}, "
        f"{_n(counts.files, 'file')} ({human_size(counts.file_bytes)}), "
        f"{_n(counts.tickets, 'ticket')}")
    lines.append(f"{disk_verb}: {_n(disk.removed, 'stored file')} "
                 f"({human_size(disk.removed_bytes)})"
                 + ("" if result.dry_run else ", shared contents kept"))
    if disk.left:
        lines.append(f"left on disk for the bridge's hourly sweep: {_n(disk.left, 'file')} "
                     "(touched while the purge ran)")
    if result.dry_run:
        lines.append("nothing changed (--dry-run)")
    return "\n".join(lines) + "\n"


def render_json(result: PurgeResult) -> str:
    counts, disk = result.counts, result.disk
    selection: dict[str, str] = (
        {"email": result.selection.email} if isinstance(result.selection, VisitorEmail)
        else {"ended_before": _iso(result.selection.cutoff)})
    data = {
        "dry_run": result.dry_run,
        "selection": selection,
        "conversations": counts.conversations,
        "items": counts.items,
        "files": counts.files,
        "bytes": counts.file_bytes,
        "tickets": counts.tickets,
        "disk_files": disk.removed,
        "disk_bytes": disk.removed_bytes,
        "disk_left": disk.left,
        "open_conversations": [
            {"id": c.id, "status": c.status.value, "queue": c.queue_id,
             "created_at": _iso(c.created_at)} for c in result.open_conversations],
    }
    return json.dumps(data, indent=2) + "\n"


def open_notice(result: PurgeResult) -> str:
    """For stderr, when an erasure had to leave open conversations."""
    lines = [f"{_n(len(result.open_conversations), 'open conversation')} of this visitor "
             "kept (an erasure takes ended chats only):"]
    lines += [f"  {c.id}  {c.status.value}, queue {c.queue_id}, since {_iso(c.created_at)}"
              for c in result.open_conversations]
    lines.append("End them first (!end in their rooms), then run this again.")
    return "\n".join(lines) + "\n"


def _what(selection: PurgeSelection) -> str:
    if isinstance(selection, VisitorEmail):
        return f"ended conversations and tickets of {selection.email}"
    return f"conversations that ended before {_iso(selection.cutoff)}"


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")
