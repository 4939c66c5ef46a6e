"""Domain records shared by the hub, the store and the web layer."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import NewType

ConversationId = NewType("ConversationId", str)
RoomRef = NewType("RoomRef", str)
AgentId = NewType("AgentId", str)
QueueId = NewType("QueueId", str)


class Status(StrEnum):
    WAITING = "waiting"
    ACTIVE = "active"
    ENDED = "ended"


class Sender(StrEnum):
    VISITOR = "visitor"
    AGENT = "agent"
    SYSTEM = "system"


class ItemKind(StrEnum):
    """What a timeline item is; every kind takes a `seq` and replays on resume."""

    TEXT = "text"
    JOINED = "joined"
    LEFT = "left"
    TRANSFERRED = "transferred"
    CALLBACK = "callback"  # an agent asked for a phone number
    ENDED = "ended"
    FILE = "file"  # a file a visitor or an agent sent; `Item.file` describes it


@dataclass(frozen=True)
class Page:
    url: str = ""
    title: str = ""
    referrer: str = ""


@dataclass(frozen=True)
class VisitorInfo:
    name: str
    email: str
    lang: str = ""
    user_agent: str = ""
    identity_id: str | None = None  # the host site's user id, when it vouched for one
    verified: bool = False  # the identity's HMAC matched


@dataclass(frozen=True)
class Conversation:
    id: ConversationId
    queue_id: QueueId
    status: Status
    visitor: VisitorInfo
    page: Page
    created_at: float
    room: RoomRef | None = None
    agent_id: AgentId | None = None
    first_response_at: float | None = None
    ended_at: float | None = None
    last_seq: int = 0
    rating: int | None = None
    comment: str = ""
    callback_phone: str | None = None
    callback_time: str = ""


@dataclass(frozen=True)
class FileInfo:
    """A stored file: its content lies under its `sha256` in the state directory."""

    id: str  # 32 random hex characters; names the file in URLs
    name: str
    mimetype: str  # found by content
    size: int
    sha256: str
    width: int | None = None
    height: int | None = None


@dataclass(frozen=True)
class Item:
    """One line of a conversation's timeline, in `seq` order."""

    conversation_id: ConversationId
    seq: int
    kind: ItemKind
    sender: Sender
    name: str
    text: str
    ts: float
    client_id: str | None = None
    sender_id: str | None = None
    txn_id: str | None = None
    event_id: str | None = None
    delivered: bool = False
    file: FileInfo | None = None  # for ItemKind.FILE
    read_at: float | None = None  # seen on the other side (by an agent, or by the visitor)
    edited_at: float | None = None  # corrected by its author (the text is the final one)
    deleted_at: float | None = None  # taken back: the visitor no longer sees it

    @property
    def goes_to_room(self) -> bool:
        """Visitor and system lines (and visitors' files) are posted into the agents' room;
        agent lines come from it."""
        return self.kind in (ItemKind.TEXT, ItemKind.FILE) and self.sender is not Sender.AGENT


@dataclass(frozen=True)
class ItemChange:
    """What happened to a line after it was written, for the agents' audit view."""

    seq: int
    at: float
    by: str | None  # the agent's id, or "visitor" for the visitor's own line
    kind: str  # "edit" or "delete"
    previous: str  # the text before
    # The visitor's changes go to the room with this key (idempotent), after the line
    # itself; None for agents' changes, which came from the room.
    key: str | None = None


@dataclass(frozen=True)
class Ticket:
    """An offline message: the visitor is answered by email, from the help desk."""

    id: str
    created_at: float
    queue_id: str
    name: str
    email: str
    text: str
    ip: str = ""
    conversation_id: str | None = None  # the unanswered chat it was made from
