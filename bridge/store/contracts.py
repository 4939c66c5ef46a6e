"""What each part of the store promises, whatever database is under it.

The SQLite repositories (`bridge.store.conversations`, `.timeline`, ...) implement these;
a second engine (PostgreSQL is next) implements the same protocols and passes the same
contract tests (tests/unit/store/). The promises that hold across all of them:

- Every write is durable when it returns, unless it says otherwise (`durable=False`,
  `wait_for_disk=False`): such a write is committed, survives a crash of the process, and
  is durable once `StoreRepositories.flush()` returns. Writes keep their order.
- A write the database refuses for now (disk full, I/O error, locked) raises
  `StoreUnavailable` (bridge.store.schema) and changed nothing; it may be made again.
- Times are seconds since the epoch, as floats; a conversation's lines have seq 1, 2, 3...
"""

from __future__ import annotations

from collections.abc import Coroutine, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from bridge.core.models import (
    AgentId,
    Conversation,
    ConversationId,
    FileInfo,
    Item,
    ItemChange,
    ItemKind,
    Page,
    QueueId,
    RoomRef,
    Sender,
    Status,
    Ticket,
    VisitorInfo,
)
from bridge.core.offers import Offer
from bridge.report import ChatRecord


@runtime_checkable
class ConversationRepository(Protocol):
    """Conversations with their visitors. Reads by id and room are the hot path (every line):
    an implementation keeps recent ones in memory, and every write shows in the next read."""

    def create_conversation(self, conversation_id: ConversationId, queue_id: QueueId,
                            visitor: VisitorInfo, page: Page, token_hash: str,
                            now: float) -> Conversation: ...
    def conversation(self, conversation_id: str) -> Conversation | None: ...
    def conversation_by_token(self, token_hash: str) -> Conversation | None: ...
    def conversation_by_room(self, room: str) -> Conversation | None: ...
    def open_conversations(self) -> list[Conversation]: ...
    def each_open_conversation(self) -> Iterator[Conversation]:
        """Oldest first, read lazily: a conversation that changed meanwhile shows as it is
        now, one that ended meanwhile not at all."""
    def waiting_conversations(self, queue_id: str) -> Iterator[Conversation]:
        """The queue's line, first come first, read lazily like `each_open_conversation`."""
    def waiting_position(self, conversation: Conversation) -> int: ...
    def count_waiting(self, queue_id: str) -> int: ...
    def open_chats_of(self, agent_id: str) -> int: ...
    def last_activity(self) -> list[tuple[ConversationId, float]]: ...
    def earlier_conversations(self, conversation: Conversation) -> list[Conversation]: ...
    def set_room(self, conversation_id: ConversationId, room: RoomRef) -> None: ...
    def set_agent(self, conversation_id: ConversationId, agent_id: AgentId) -> None: ...
    def clear_agent(self, conversation_id: ConversationId) -> None: ...
    def set_queue(self, conversation_id: ConversationId, queue_id: QueueId) -> None: ...
    def set_rating(self, conversation_id: str, rating: int, comment: str) -> None: ...
    def set_callback(self, conversation_id: str, phone: str, when: str) -> None: ...
    def extend(self, conversation_id: ConversationId, now: float) -> None: ...
    def set_status(self, conversation_id: ConversationId, status: Status, *,
                   ended_at: float | None = None) -> None:
        """An ended conversation stays ended."""
    def set_first_response(self, conversation_id: ConversationId, now: float) -> None:
        """Only the first answer counts."""


@runtime_checkable
class TimelineRepository(Protocol):
    """Each conversation's lines in seq order, the outbox (lines not yet delivered to the
    messenger), and agents' commands already run."""

    def append_item(self, conversation_id: ConversationId, kind: ItemKind, sender: Sender,
                    name: str, text: str, now: float, *, client_id: str | None = None,
                    sender_id: str | None = None, event_id: str | None = None,
                    delivered: bool = False, wait_for_disk: bool = True,
                    file: FileInfo | None = None) -> tuple[Item, bool]:
        """(item, created): a repeated client_id or event_id returns the first item and
        False. An undelivered item gets a transaction id, kept for every retry. Raises
        StoreError for a conversation that does not exist."""
    def item_by_client_id(self, conversation_id: str, client_id: str) -> Item | None: ...
    def item_by_event_id(self, conversation_id: str, event_id: str) -> Item | None: ...
    def items_after(self, conversation_id: str, after: int) -> list[Item]: ...
    def agent_present(self, conversation_id: str, agent_id: str) -> bool: ...
    def mark_read(self, conversation_id: str, sender: Sender, up_to_seq: int, now: float
                  ) -> Item | None:
        """Marks `sender`'s lines and files up to the seq as seen on the other side (not
        waited for on disk); the newest newly marked, or None."""
    def read_up_to(self, conversation_id: str, sender: Sender) -> int: ...
    def change_item(self, item: Item, kind: str, text: str, by: str | None, now: float,
                    *, to_room: bool = False) -> Item:
        """An "edit" (new text) or a "delete" ("" as text) of a line, the text before kept;
        a deleted file is no longer served. Durable when it returns. `to_room`: the change
        waits to be made in the room (`changes_to_send`), with a key of its own."""
    def item_changes(self, conversation_id: str) -> list[ItemChange]: ...
    def changes_to_send(self, conversation_id: str) -> list[ItemChange]:
        """Changes made `to_room` and not marked sent, oldest first."""
    def change_sent(self, conversation_id: str, key: str) -> None:
        """Not durable until flushed: a lost mark only makes the change go out again."""
    def item_at(self, conversation_id: str, seq: int) -> Item | None: ...
    def newest_line(self, conversation_id: str, sender: Sender) -> Item | None:
        """`sender`'s newest line or file, deleted or not."""
    def unread_lines(self, conversation_id: str, sender: Sender) -> list[Item]: ...
    def message_count(self, conversation_id: str) -> int: ...
    def undelivered(self, conversation_id: str) -> list[Item]: ...
    def conversations_with_outbox(self) -> list[ConversationId]:
        """Those with undelivered items or changes to send."""
    def mark_delivered(self, conversation_id: str, seq: int, event_id: str) -> None:
        """Not durable until flushed: a lost mark only makes the line go out again."""
    def catch_up_since(self, room: str) -> float | None: ...
    def command_handled(self, event_id: str) -> bool: ...
    def mark_command_handled(self, event_id: str, now: float, room: str) -> None:
        """Not durable until flushed; marking twice is harmless."""


@runtime_checkable
class AgentRepository(Protocol):
    """Per agent: personal canned replies, breaks, banned visitors, routing's marks."""

    def personal_canned(self, agent_id: str) -> dict[str, str]: ...
    def set_canned(self, agent_id: str, name: str, text: str | None) -> bool: ...
    def set_break(self, agent_id: str, on_break: bool) -> None: ...
    def on_break(self, agent_id: str) -> bool: ...
    def ban(self, email: str, agent_id: str, reason: str, now: float) -> None:
        """Emails compare without case."""
    def is_banned(self, email: str) -> bool: ...
    def add_routing_marks(self, conversation_id: ConversationId, kind: str,
                          agent_ids: Iterable[str]) -> None:
        """`kind` is "invited" or "declined"; not durable until flushed."""
    def clear_routing_marks(self, conversation_id: ConversationId, kind: str | None = None
                            ) -> None: ...
    def routing_marks(self) -> list[tuple[ConversationId, str, str]]:
        """(conversation, agent, kind) of every conversation not ended."""


@runtime_checkable
class TicketRepository(Protocol):
    """Offline tickets and which deliveries (mail, webhook, messenger) are still to do."""

    def add_ticket(self, ticket: Ticket, *, mail: bool, webhook: bool,
                   messenger: bool = False) -> None: ...
    def ticket_of_conversation(self, conversation_id: str) -> Ticket | None: ...
    def pending_tickets(self) -> list[tuple[Ticket, bool, bool]]: ...
    def tickets_for_messenger(self) -> list[Ticket]: ...
    def ticket_delivered(self, ticket_id: str, what: str) -> None: ...
    def count_tickets(self, *, email: str | None = None, ip: str | None = None,
                      since: float) -> int: ...


@runtime_checkable
class ReportRepository(Protocol):
    """Figures over many conversations."""

    def day_figures(self, since: float, until: float) -> dict[str, Any]: ...
    def recent_waits(self, queue_id: str, since: float, limit: int = 50) -> list[float]: ...
    def report_records(self, since: float | None, until: float | None
                       ) -> tuple[list[ChatRecord], list[tuple[str, float]]]: ...


@runtime_checkable
class EventRepository(Protocol):
    """The audit trail, in the order things happened."""

    def add_event(self, conversation_id: str | None, agent_id: str | None, kind: str,
                  detail: str, now: float) -> None: ...
    def count_events(self, kind: str, detail: str, since: float) -> int: ...
    def events(self, conversation_id: str) -> list[dict[str, Any]]: ...


@runtime_checkable
class KeyValueRepository(Protocol):
    """Durable strings by key, for the backends' state."""

    def get(self, key: str) -> str | None: ...
    def set(self, key: str, value: str, *, durable: bool = True) -> None: ...


@runtime_checkable
class FileRepository(Protocol):
    """The files of timelines (their rows are written with their items)."""

    def file(self, file_id: str) -> tuple[ConversationId, FileInfo] | None: ...
    def visitor_files_since(self, conversation_id: str, since: float) -> int: ...
    def in_use(self, hashes: Iterable[str]) -> set[str]:
        """Which of these contents (SHA-256 hex) some file still refers to."""


@dataclass(frozen=True)
class EndedBefore:
    """Retention: the conversations that ended before `cutoff`, and the tickets created
    before it whose deliveries are all done."""

    cutoff: float


@dataclass(frozen=True)
class VisitorEmail:
    """Erasure: the ended conversations of visitors with this email, and the tickets with
    it (compared without letter case)."""

    email: str


PurgeSelection = EndedBefore | VisitorEmail


@dataclass(frozen=True)
class PurgeCounts:
    """What a purge took, or would take."""

    conversations: int = 0
    items: int = 0
    files: int = 0  # files in the timelines (rows)
    file_bytes: int = 0  # their sizes added up
    tickets: int = 0

    def __add__(self, other: PurgeCounts) -> PurgeCounts:
        return PurgeCounts(self.conversations + other.conversations, self.items + other.items,
                           self.files + other.files, self.file_bytes + other.file_bytes,
                           self.tickets + other.tickets)


@dataclass(frozen=True)
class PurgedBatch:
    counts: PurgeCounts
    contents: frozenset[str]  # SHA-256 of the deleted files: those no file refers to may go


@dataclass(frozen=True)
class PurgeEstimate:
    counts: PurgeCounts
    contents: int  # stored contents no kept file shares: what would leave the disk
    content_bytes: int


@runtime_checkable
class RetentionRepository(Protocol):
    """Retention and erasure: ended conversations deleted with everything that belongs to
    them, and tickets. Never an open conversation, never a ban. Safe beside a running
    bridge on the same database: each batch is one short transaction that waits for the
    write lock like any writer."""

    def estimate(self, selection: PurgeSelection) -> PurgeEstimate:
        """What `purge_conversations` and then `purge_tickets` would take now; changes
        nothing."""
    def purge_conversations(self, selection: PurgeSelection, limit: int) -> PurgedBatch:
        """Delete up to `limit` selected conversations (fewer when the engine caps a batch),
        first created first, with their items, files, audit events, routing marks, the
        commands run in their rooms and what the backends remember of their posted files,
        and each one's visitor unless another conversation has it: one durable transaction.
        No conversations in the batch: none are left. The files' contents stay on disk: the
        caller removes those no file refers to any more (`FileRepository.in_use`)."""
    def purge_tickets(self, selection: PurgeSelection, limit: int) -> int:
        """Delete up to `limit` selected tickets whose chat, if they come from one, is gone
        (call it after `purge_conversations`); durable. 0: none are left."""
    def open_conversations_of(self, email: str) -> list[Conversation]:
        """The visitor's conversations not ended yet, which an erasure leaves alone."""


class OfferRepository(Protocol):
    """Chats offered to a colleague who has not answered yet (`!transfer`)."""

    def put_offer(self, offer: Offer) -> None: ...
    def drop_offer(self, conversation_id: str) -> None: ...
    def offer(self, conversation_id: str) -> Offer | None: ...
    def open_offers(self) -> list[Offer]: ...


class StoreRepositories(Protocol):
    """A whole store: what a second engine provides, and what contract tests are given."""

    @property
    def conversations(self) -> ConversationRepository: ...
    @property
    def timeline(self) -> TimelineRepository: ...
    @property
    def agents(self) -> AgentRepository: ...
    @property
    def tickets(self) -> TicketRepository: ...
    @property
    def reports(self) -> ReportRepository: ...
    @property
    def audit(self) -> EventRepository: ...
    @property
    def kv(self) -> KeyValueRepository: ...
    @property
    def files(self) -> FileRepository: ...
    @property
    def retention(self) -> RetentionRepository: ...
    @property
    def offers(self) -> OfferRepository: ...
    def flush(self) -> Coroutine[Any, Any, None]:
        """Done once every write made so far is durable; StoreUnavailable if the disk
        refused."""
    def close(self) -> None: ...
