"""The contract between the hub and a messenger backend (Matrix, XMPP, ...).

A backend carries text and reports what agents do. It never decides routing, never touches
the database except through the small `BackendState` it is given, and never lets a library
type or exception cross this boundary.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bridge.core.models import RoomRef


class BackendError(Exception):
    """A request failed for good (forbidden, unknown room, bad request); retrying won't help."""

    status: int | None = None  # the server's status code, where the protocol has one


class BackendUnavailable(BackendError):
    """The server could not be reached or answered 5xx; the same request may work later."""


class RoomGone(BackendError):
    """The room no longer exists, or the bot was removed from it: the conversation needs a
    new room."""


class RateLimited(BackendUnavailable):
    """The server asked us to slow down; retry after `retry_after` seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limited, retry after {retry_after:.3f}s")
        self.retry_after = retry_after


class FileRefused(BackendError):
    """A file cannot be fetched: larger than allowed, gone from the server, or at an address
    the bridge does not fetch from. Retrying won't help; the agents are told."""


class HandlingDeferred(Exception):
    """Raised by the hub's inbound callback when it cannot take an event now (its store
    refuses writes). The backend delivers the same event again after a pause, and nothing
    that came after it before that: the hub sees every event once it can, in order."""


@dataclass(frozen=True)
class RoomSpec:
    """What the hub wants when it opens a room for a new conversation."""

    name: str  # "💬 Anna · Support"
    topic: str
    visitor_nick: str  # "Anna (visitor)"
    invite: tuple[str, ...]  # agent addresses
    key: str  # conversation id: lets a backend derive stable names or ids


@dataclass(frozen=True)
class AgentMessage:
    room: RoomRef
    sender: str  # agent address
    sender_name: str  # display name in that room
    text: str
    event_id: str
    ts: float
    edited: bool = False  # a correction of an earlier line (the hub decides how it shows)
    replaces: str | None = None  # for a correction: the event id of the line it corrects
    # Written in a thread (Matrix): a side conversation among agents, kept as a note and
    # never sent to the visitor.
    thread: bool = False
    # The line it answers, when the client marked it as a reply (XMPP XEP-0461; Matrix
    # m.in_reply_to): the event id of that line.
    reply_to: str | None = None


@dataclass(frozen=True)
class AgentFile:
    """An agent sent a file (an image, a document) into a conversation room. `url` is where
    this backend fetches it (`fetch_file`): only addresses of the agents' own server (the
    homeserver's media repository; the XMPP server's upload service); a link anywhere else
    arrives as an ordinary `AgentMessage`."""

    room: RoomRef
    sender: str
    sender_name: str
    name: str  # the file name the agent's client gave (untrusted: cleaned by the hub)
    url: str  # mxc://server/id on Matrix; the upload service's https URL on XMPP
    mimetype: str  # as claimed by the client (the hub stores the type found by content)
    size: int | None  # as claimed, if at all
    event_id: str
    ts: float


@dataclass(frozen=True)
class OutgoingFile:
    """A visitor's file, stored by the bridge, to be posted into a room."""

    name: str  # cleaned: no path separators or control characters
    mimetype: str  # found by content, one of `[files] types`
    size: int
    width: int | None  # raster images only
    height: int | None
    path: Path  # the stored file; read it in chunks, never whole
    link: str  # a bridge URL that serves it to anyone holding it (for a network
    #            without an upload service)


@dataclass(frozen=True)
class PostedLine:
    """A visitor line the bot posted: the event id the backend returned for it, and the key
    it was posted with (XMPP names a line to correct by the id its sender gave it)."""

    event_id: str
    key: str


@dataclass(frozen=True)
class AgentTyping:
    room: RoomRef
    sender: str
    sender_name: str
    active: bool


@dataclass(frozen=True)
class AgentRetracted:
    """An agent (or a moderator) took back the line `event_id` (Matrix redaction; XMPP
    retraction, XEP-0424, or moderation, XEP-0425)."""

    room: RoomRef
    sender: str
    event_id: str


@dataclass(frozen=True)
class AgentReaction:
    """An agent reacted to the line `event_id` with `key` (Matrix m.annotation, e.g. "✅").
    `reaction_id` is the reaction's own event id (a repeat of it is the same reaction)."""

    room: RoomRef
    sender: str
    event_id: str
    key: str
    reaction_id: str


@dataclass(frozen=True)
class AgentRead:
    """An agent's client marked the room read up to `event_id` (a line the bot posted, or
    an agent's line): every visitor line up to it counts as seen by the agents."""

    room: RoomRef
    sender: str
    event_id: str


@dataclass(frozen=True)
class MemberJoined:
    room: RoomRef
    member: str
    member_name: str
    event_id: str


@dataclass(frozen=True)
class MemberLeft:
    room: RoomRef
    member: str
    member_name: str
    event_id: str


@dataclass(frozen=True)
class AgentPresence:
    """Whether an agent can take new chats, from their messenger presence."""

    address: str
    available: bool


@dataclass(frozen=True)
class Connected:
    """The backend is (re)connected: anything that failed meanwhile can be retried now."""


InboundEvent = (
    AgentMessage | AgentFile | AgentTyping | AgentRead | AgentRetracted | AgentReaction
    | MemberJoined | MemberLeft | AgentPresence | Connected
)
InboundCallback = Callable[[InboundEvent], Awaitable[None]]
# From when a room's lines must be read again after the bridge was away from it (seconds
# since the epoch), or None when the room needs no catching up; the composition root
# answers it from the store.
CatchUpSince = Callable[[RoomRef], float | None]


class BackendState(Protocol):
    """Durable key-value state a backend keeps between restarts (sync token, device)."""

    def get(self, key: str) -> str | None: ...

    def set(self, key: str, value: str, *, durable: bool = True) -> None:
        """Store a value; `durable=False` for values that may roll back to an older one
        after a power loss (a sync position: events are then fetched again)."""


class Backend(Protocol):
    """A messenger network the agents sit on."""

    name: str
    # Whether an agent whose presence was never reported counts as available: Matrix
    # servers often run without presence; XMPP always reports a contact's presence.
    presence_default: bool

    async def start(self, inbound: InboundCallback) -> None:
        """Log in and start receiving; events go to `inbound` in the order they happened,
        each again after a pause (and nothing after it meanwhile) when `inbound` raises
        HandlingDeferred. Lines agents wrote while the bridge was away are delivered too.

        Returns once logged in. Raises BackendError when the credentials are refused.
        """

    async def stop(self) -> None:
        """Stop receiving and close connections; safe to call twice."""

    async def attach_rooms(self, rooms: dict[RoomRef, RoomSpec]) -> None:
        """Be present in these rooms of open conversations after a (re)start, so agents'
        lines reach the bridge even before anything is posted there. The specs say how to
        set a room up again should it have disappeared."""

    async def open_room(self, spec: RoomSpec) -> RoomRef:
        """Create the conversation's room, show the bot as the visitor there, invite agents."""

    async def invite(self, room: RoomRef, address: str) -> None:
        """Invite one more agent into the room."""

    async def remove(self, room: RoomRef, address: str) -> None:
        """Take an agent out of the room (after a transfer)."""

    async def post_text(self, room: RoomRef, text: str, *, key: str) -> str:
        """Post a visitor line. `key` is stored before the first attempt and makes a retry
        idempotent (the same key never shows twice). Returns the backend's event id."""

    async def post_notice(self, room: RoomRef, text: str, *, key: str) -> str:
        """Post a system notice (rendered distinctly from visitor lines); idempotent by key."""

    async def edit_line(self, room: RoomRef, line: PostedLine, text: str, *, key: str
                        ) -> None:
        """The visitor corrected a line the bot posted: agents' clients show the new text
        in its place, marked edited (Matrix: an m.replace edit; XMPP: a correction,
        XEP-0308). Idempotent by `key` like `post_text`, and raises like it."""

    async def retract_line(self, room: RoomRef, line: PostedLine, *, key: str) -> None:
        """The visitor took back a line the bot posted: agents' clients remove it (Matrix: a
        redaction; XMPP: a retraction, XEP-0424, with a fallback text for clients that know
        none). Idempotent by `key` like `post_text`, and raises like it."""

    async def post_file(self, room: RoomRef, file: OutgoingFile, *, key: str) -> str:
        """Post a visitor's file so the agents' clients show it inline (an image) or as a
        download; idempotent by key like `post_text`. Returns the backend's event id."""

    def fetch_file(self, url: str, max_bytes: int) -> AsyncIterator[bytes]:
        """The bytes of a file an agent sent (`AgentFile.url`), in chunks. Raises
        FileRefused (too large: more than `max_bytes`; gone; not an address of the agents'
        own server), BackendUnavailable when it may work later."""

    async def post_direct(self, address: str, text: str, *, key: str) -> str:
        """Send a notice to one agent in a direct chat with the bot (one found, or made and
        remembered); idempotent by key. Raises BackendError when that agent cannot be
        messaged, BackendUnavailable when it may work later."""

    async def set_typing(self, room: RoomRef, active: bool) -> None:
        """Show or clear "visitor is typing" in the room; best effort."""

    async def mark_read(self, room: RoomRef, event_id: str) -> None:
        """The visitor has seen every line up to the agent line `event_id`: move the bot's
        read marker there (Matrix: an m.read receipt; XMPP: a displayed chat marker);
        best effort, a refusal is only logged."""

    async def show_draft(self, room: RoomRef, text: str) -> None:
        """Show the visitor's unsent text in the room as one preview that is updated in
        place ("" removes it); best effort, never stored by the bridge."""
