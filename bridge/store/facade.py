"""`Store`: every repository on one SQLite file, and the methods callers used before the split.

New code should take the narrow repository it needs (`store.timeline`, `store.agents`, ...,
typed by the protocols in `bridge.store.contracts`); the methods here only pass calls on,
one attribute lookup and one call each, so the hot path costs what it did.
"""

from __future__ import annotations

from collections.abc import Coroutine, Iterable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from sqlite_utils import Database

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
from bridge.report import ChatRecord
from bridge.store.agents import SqliteAgents
from bridge.store.conversations import ConversationCache, SqliteConversations
from bridge.store.db import SqliteDatabase
from bridge.store.events import SqliteEvents
from bridge.store.files import SqliteFiles
from bridge.store.kv import SqliteKeyValue
from bridge.store.offers import SqliteOffers
from bridge.store.reports import SqliteReports
from bridge.store.retention import SqliteRetention
from bridge.store.tickets import SqliteTickets
from bridge.store.timeline import SqliteTimeline


class Store:
    """Conversations, their timelines and the outbox, in one SQLite file."""

    def __init__(self, path: Path | str) -> None:
        self.database = SqliteDatabase(path)
        self.db: Database = self.database.db  # for tools and tests that read it directly
        self.conversations = SqliteConversations(self.database, ConversationCache())
        self.timeline = SqliteTimeline(self.database, self.conversations)
        self.agents = SqliteAgents(self.database)
        self.tickets = SqliteTickets(self.database)
        self.reports = SqliteReports(self.database)
        self.audit = SqliteEvents(self.database)
        self.kv = SqliteKeyValue(self.database)
        self.files = SqliteFiles(self.database)
        self.retention = SqliteRetention(self.database, self.conversations)
        self.offers = SqliteOffers(self.database)

    def close(self) -> None:
        self.database.close()

    def flush(self) -> Coroutine[Any, Any, None]:
        """Done once every commit so far is on disk, those made without waiting included;
        raises StoreUnavailable when the disk refused the fsync. (The database's coroutine
        itself: no second one per acknowledged line.)"""
        return self.database.flush()

    def _transaction(self, *, durable: bool) -> AbstractContextManager[None]:
        return self.database.transaction(durable=durable)

    # The conversation cache, for tests that check its bounds.
    @property
    def _cached(self) -> dict[ConversationId, Conversation]:
        return self.conversations.cache.by_id

    @property
    def _room_ids(self) -> dict[str, ConversationId]:
        return self.conversations.cache.room_ids

    # -- conversations ---------------------------------------------------------------------

    def create_conversation(self, conversation_id: ConversationId, queue_id: QueueId,
                            visitor: VisitorInfo, page: Page, token_hash: str,
                            now: float) -> Conversation:
        return self.conversations.create_conversation(conversation_id, queue_id, visitor,
                                                      page, token_hash, now)

    def conversation(self, conversation_id: str) -> Conversation | None:
        return self.conversations.conversation(conversation_id)

    def conversation_by_token(self, token_hash: str) -> Conversation | None:
        return self.conversations.conversation_by_token(token_hash)

    def conversation_by_room(self, room: str) -> Conversation | None:
        return self.conversations.conversation_by_room(room)

    def open_conversations(self) -> list[Conversation]:
        return self.conversations.open_conversations()

    def each_open_conversation(self) -> Iterator[Conversation]:
        return self.conversations.each_open_conversation()

    def waiting_conversations(self, queue_id: str) -> Iterator[Conversation]:
        return self.conversations.waiting_conversations(queue_id)

    def waiting_position(self, conversation: Conversation) -> int:
        return self.conversations.waiting_position(conversation)

    def count_waiting(self, queue_id: str) -> int:
        return self.conversations.count_waiting(queue_id)

    def open_chats_of(self, agent_id: str) -> int:
        return self.conversations.open_chats_of(agent_id)

    def last_activity(self) -> list[tuple[ConversationId, float]]:
        return self.conversations.last_activity()

    def earlier_conversations(self, conversation: Conversation) -> list[Conversation]:
        return self.conversations.earlier_conversations(conversation)

    def set_room(self, conversation_id: ConversationId, room: RoomRef) -> None:
        self.conversations.set_room(conversation_id, room)

    def set_status(self, conversation_id: ConversationId, status: Status, *,
                   ended_at: float | None = None) -> None:
        self.conversations.set_status(conversation_id, status, ended_at=ended_at)

    def set_agent(self, conversation_id: ConversationId, agent_id: AgentId) -> None:
        self.conversations.set_agent(conversation_id, agent_id)

    def clear_agent(self, conversation_id: ConversationId) -> None:
        self.conversations.clear_agent(conversation_id)

    def set_queue(self, conversation_id: ConversationId, queue_id: QueueId) -> None:
        self.conversations.set_queue(conversation_id, queue_id)

    def set_first_response(self, conversation_id: ConversationId, now: float) -> None:
        self.conversations.set_first_response(conversation_id, now)

    def set_rating(self, conversation_id: str, rating: int, comment: str) -> None:
        self.conversations.set_rating(conversation_id, rating, comment)

    def set_callback(self, conversation_id: str, phone: str, when: str) -> None:
        self.conversations.set_callback(conversation_id, phone, when)

    def extend(self, conversation_id: ConversationId, now: float) -> None:
        """The visitor keeps an idle chat open: its idle clock starts again from `now`."""
        self.conversations.extend(conversation_id, now)

    def _update(self, conversation_id: ConversationId, **values: Any) -> None:
        self.conversations.update(conversation_id, **values)

    # -- timeline and outbox ---------------------------------------------------------------

    def append_item(self, conversation_id: ConversationId, kind: ItemKind, sender: Sender,
                    name: str, text: str, now: float, *, client_id: str | None = None,
                    sender_id: str | None = None, event_id: str | None = None,
                    delivered: bool = False, wait_for_disk: bool = True,
                    file: FileInfo | None = None) -> tuple[Item, bool]:
        return self.timeline.append_item(
            conversation_id, kind, sender, name, text, now, client_id=client_id,
            sender_id=sender_id, event_id=event_id, delivered=delivered,
            wait_for_disk=wait_for_disk, file=file)

    def item_by_client_id(self, conversation_id: str, client_id: str) -> Item | None:
        return self.timeline.item_by_client_id(conversation_id, client_id)

    def item_by_event_id(self, conversation_id: str, event_id: str) -> Item | None:
        return self.timeline.item_by_event_id(conversation_id, event_id)

    def mark_read(self, conversation_id: str, sender: Sender, up_to_seq: int, now: float
                  ) -> Item | None:
        return self.timeline.mark_read(conversation_id, sender, up_to_seq, now)

    def read_up_to(self, conversation_id: str, sender: Sender) -> int:
        return self.timeline.read_up_to(conversation_id, sender)

    def change_item(self, item: Item, kind: str, text: str, by: str | None, now: float,
                    *, to_room: bool = False) -> Item:
        return self.timeline.change_item(item, kind, text, by, now, to_room=to_room)

    def item_changes(self, conversation_id: str) -> list[ItemChange]:
        return self.timeline.item_changes(conversation_id)

    def changes_to_send(self, conversation_id: str) -> list[ItemChange]:
        return self.timeline.changes_to_send(conversation_id)

    def change_sent(self, conversation_id: str, key: str) -> None:
        self.timeline.change_sent(conversation_id, key)

    def item_at(self, conversation_id: str, seq: int) -> Item | None:
        return self.timeline.item_at(conversation_id, seq)

    def newest_line(self, conversation_id: str, sender: Sender) -> Item | None:
        return self.timeline.newest_line(conversation_id, sender)

    def unread_lines(self, conversation_id: str, sender: Sender) -> list[Item]:
        return self.timeline.unread_lines(conversation_id, sender)

    # -- files -----------------------------------------------------------------------------

    def file(self, file_id: str) -> tuple[ConversationId, FileInfo] | None:
        return self.files.file(file_id)

    def visitor_files_since(self, conversation_id: str, since: float) -> int:
        return self.files.visitor_files_since(conversation_id, since)

    def in_use(self, hashes: Iterable[str]) -> set[str]:
        return self.files.in_use(hashes)

    def items_after(self, conversation_id: str, after: int) -> list[Item]:
        return self.timeline.items_after(conversation_id, after)

    def agent_present(self, conversation_id: str, agent_id: str) -> bool:
        return self.timeline.agent_present(conversation_id, agent_id)

    def message_count(self, conversation_id: str) -> int:
        return self.timeline.message_count(conversation_id)

    def undelivered(self, conversation_id: str) -> list[Item]:
        return self.timeline.undelivered(conversation_id)

    def conversations_with_outbox(self) -> list[ConversationId]:
        return self.timeline.conversations_with_outbox()

    def mark_delivered(self, conversation_id: str, seq: int, event_id: str) -> None:
        self.timeline.mark_delivered(conversation_id, seq, event_id)

    def catch_up_since(self, room: str) -> float | None:
        return self.timeline.catch_up_since(room)

    def command_handled(self, event_id: str) -> bool:
        return self.timeline.command_handled(event_id)

    def mark_command_handled(self, event_id: str, now: float, room: str) -> None:
        self.timeline.mark_command_handled(event_id, now, room)

    # -- agents ----------------------------------------------------------------------------

    def personal_canned(self, agent_id: str) -> dict[str, str]:
        return self.agents.personal_canned(agent_id)

    def set_canned(self, agent_id: str, name: str, text: str | None) -> bool:
        return self.agents.set_canned(agent_id, name, text)

    def set_break(self, agent_id: str, on_break: bool) -> None:
        self.agents.set_break(agent_id, on_break)

    def on_break(self, agent_id: str) -> bool:
        return self.agents.on_break(agent_id)

    def ban(self, email: str, agent_id: str, reason: str, now: float) -> None:
        self.agents.ban(email, agent_id, reason, now)

    def is_banned(self, email: str) -> bool:
        return self.agents.is_banned(email)

    def add_routing_marks(self, conversation_id: ConversationId, kind: str,
                          agent_ids: Iterable[str]) -> None:
        self.agents.add_routing_marks(conversation_id, kind, agent_ids)

    def clear_routing_marks(self, conversation_id: ConversationId, kind: str | None = None
                            ) -> None:
        self.agents.clear_routing_marks(conversation_id, kind)

    def routing_marks(self) -> list[tuple[ConversationId, str, str]]:
        return self.agents.routing_marks()

    # -- tickets ---------------------------------------------------------------------------

    def add_ticket(self, ticket: Ticket, *, mail: bool, webhook: bool,
                   messenger: bool = False) -> None:
        self.tickets.add_ticket(ticket, mail=mail, webhook=webhook, messenger=messenger)

    def ticket_of_conversation(self, conversation_id: str) -> Ticket | None:
        return self.tickets.ticket_of_conversation(conversation_id)

    def pending_tickets(self) -> list[tuple[Ticket, bool, bool]]:
        return self.tickets.pending_tickets()

    def tickets_for_messenger(self) -> list[Ticket]:
        return self.tickets.tickets_for_messenger()

    def ticket_delivered(self, ticket_id: str, what: str) -> None:
        self.tickets.ticket_delivered(ticket_id, what)

    def count_tickets(self, *, email: str | None = None, ip: str | None = None,
                      since: float) -> int:
        return self.tickets.count_tickets(email=email, ip=ip, since=since)

    # -- reports and events ----------------------------------------------------------------

    def day_figures(self, since: float, until: float) -> dict[str, Any]:
        return self.reports.day_figures(since, until)

    def recent_waits(self, queue_id: str, since: float, limit: int = 50) -> list[float]:
        return self.reports.recent_waits(queue_id, since, limit)

    def report_records(self, since: float | None, until: float | None
                       ) -> tuple[list[ChatRecord], list[tuple[str, float]]]:
        return self.reports.report_records(since, until)

    def add_event(self, conversation_id: str | None, agent_id: str | None, kind: str,
                  detail: str, now: float) -> None:
        self.audit.add_event(conversation_id, agent_id, kind, detail, now)

    def count_events(self, kind: str, detail: str, since: float) -> int:
        return self.audit.count_events(kind, detail, since)

    def events(self, conversation_id: str) -> list[dict[str, Any]]:
        return self.audit.events(conversation_id)

    # -- backend state ---------------------------------------------------------------------

    def kv_get(self, key: str) -> str | None:
        return self.kv.get(key)

    def kv_set(self, key: str, value: str, *, durable: bool = True) -> None:
        self.kv.set(key, value, durable=durable)
