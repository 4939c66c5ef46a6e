"""A messenger backend without a network, for the fast tests and the benchmarks.

`RecordingBackend` implements the `Backend` protocol: a room is a made-up id, every request
the hub makes is recorded and answered at once. Tests script failures per call
(`fail("post_text", BackendUnavailable("down"), times=2)`) and play the agents' side by
emitting inbound events into the hub (`await backend.emit(AgentMessage(...))`).

Nothing is de-duplicated by key, unlike a homeserver: a line posted twice shows twice in
`posts`, so a test or a benchmark sees doubles.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

from bridge.backends.base import (
    FileRefused,
    InboundCallback,
    InboundEvent,
    OutgoingFile,
    PostedLine,
    RoomSpec,
)
from bridge.core.models import RoomRef

# The calls a test can make fail; the others (start, stop, attach_rooms) never do.
FAILABLE = ("open_room", "invite", "remove", "post_text", "post_notice", "post_direct",
            "post_file", "fetch_file", "mark_read",
            "set_typing", "edit_line", "retract_line")


@dataclass(frozen=True)
class Post:
    """One line the bridge posted (to a room, or to an agent directly)."""

    room: str  # the room, or the agent's address for a direct message
    kind: str  # "text" (a visitor line), "notice", "direct" or "file" (text: its name)
    text: str
    key: str  # the idempotency key the bridge gave
    event_id: str
    at: float  # time.monotonic() when the backend got it


@dataclass(frozen=True)
class LineChange:
    """A visitor line the bridge edited ("edit", with its new text) or took back
    ("retract") in a room."""

    room: str
    kind: str
    line: PostedLine
    text: str
    key: str


@dataclass(frozen=True)
class Attempt:
    """One call the hub made, whether it went through or failed as scripted."""

    method: str
    target: str  # the room, the agent's address, or the new room's key for open_room
    key: str  # the post's key ("" for calls without one)
    error: str  # the scripted exception's class name, "" when the call went through


class RecordingBackend:
    """A `Backend` that records what the hub asks of it and answers at once.

    `keep=False` only counts calls (`calls`), so a memory benchmark measures the bridge,
    not the recording; event ids then derive from the key.
    """

    name = "recording"
    presence_default = True  # agents count as available: routing runs as on Matrix

    def __init__(self, *, keep: bool = True) -> None:
        self.keep = keep
        self.calls: Counter[str] = Counter()
        self.rooms: dict[RoomRef, RoomSpec] = {}
        self.opened_at: list[float] = []
        self.posts: list[Post] = []
        self.attempts: list[Attempt] = []
        self.invites: list[tuple[RoomRef, str]] = []
        self.removals: list[tuple[RoomRef, str]] = []
        self.typing: list[tuple[RoomRef, bool]] = []
        self.drafts: list[tuple[RoomRef, str]] = []
        self.read_marks: list[tuple[RoomRef, str]] = []  # (room, event id) the bot marked read
        self.line_changes: list[LineChange] = []  # visitor lines edited or taken back
        # Files the hub posted, as (room, the file, its bytes read at posting, key).
        self.files: list[tuple[RoomRef, OutgoingFile, bytes, str]] = []
        # What agents "uploaded": fetch_file serves these by URL.
        self.media: dict[str, bytes] = {}
        self.inbound: InboundCallback | None = None
        # Runs inside open_room once the room exists, before it returns: a test's events of
        # a room the hub has not stored yet.
        self.while_opening: Callable[[RoomRef], Awaitable[None]] | None = None
        self._failures: defaultdict[str, deque[BaseException]] = defaultdict(deque)
        self._waiters: list[tuple[Callable[[], float | None], asyncio.Future[float]]] = []

    # -- scripting, for tests ------------------------------------------------------------

    def fail(self, method: str, error: BaseException, *, times: int = 1) -> None:
        """Make the next `times` calls of `method` raise `error` (after earlier scripts)."""
        if method not in FAILABLE:
            raise ValueError(f"{method!r} cannot fail here (one of {FAILABLE})")
        self._failures[method].extend([error] * times)

    def clear_failures(self) -> None:
        """Drop the failures scripted and not yet raised: every call goes through again."""
        self._failures.clear()

    async def emit(self, event: InboundEvent) -> None:
        """Hand an event to the hub as the real backend would; what the hub's callback
        raises (HandlingDeferred) reaches the caller."""
        if self.inbound is None:
            raise RuntimeError("the backend is not started: nothing receives events")
        await self.inbound(event)

    def posts_in(self, room: str, kind: str | None = None) -> list[Post]:
        return [p for p in self.posts if p.room == room and kind in (None, p.kind)]

    def texts_in(self, room: str, kind: str | None = None) -> list[str]:
        return [p.text for p in self.posts_in(room, kind)]

    def notices_in(self, room: str) -> list[str]:
        return self.texts_in(room, "notice")

    def attempts_of(self, method: str) -> list[Attempt]:
        return [a for a in self.attempts if a.method == method]

    # -- the Backend protocol ------------------------------------------------------------

    async def start(self, inbound: InboundCallback) -> None:
        self.inbound = inbound

    async def stop(self) -> None:
        self.inbound = None

    async def attach_rooms(self, rooms: dict[RoomRef, RoomSpec]) -> None:
        self.calls["attach_rooms"] += len(rooms)
        if self.keep:
            self.rooms.update(rooms)

    async def open_room(self, spec: RoomSpec) -> RoomRef:
        self._call("open_room", spec.key)
        if not self.keep:
            return RoomRef(f"!{spec.key}:recording")
        room = RoomRef(f"!room{len(self.rooms) + 1}:recording")
        self.rooms[room] = spec
        self.opened_at.append(time.monotonic())
        self._wake()
        if self.while_opening is not None:  # what the network reports before we return
            await self.while_opening(room)
        return room

    async def invite(self, room: RoomRef, address: str) -> None:
        self._call("invite", room)
        if self.keep:
            self.invites.append((room, address))

    async def remove(self, room: RoomRef, address: str) -> None:
        self._call("remove", room)
        if self.keep:
            self.removals.append((room, address))

    async def post_text(self, room: RoomRef, text: str, *, key: str) -> str:
        self._call("post_text", room, key)
        return self._record(room, "text", text, key)

    async def post_notice(self, room: RoomRef, text: str, *, key: str) -> str:
        self._call("post_notice", room, key)
        return self._record(room, "notice", text, key)

    async def edit_line(self, room: RoomRef, line: PostedLine, text: str, *, key: str
                        ) -> None:
        self._call("edit_line", room, key)
        if self.keep:
            self.line_changes.append(LineChange(room, "edit", line, text, key))
            self._wake()

    async def retract_line(self, room: RoomRef, line: PostedLine, *, key: str) -> None:
        self._call("retract_line", room, key)
        if self.keep:
            self.line_changes.append(LineChange(room, "retract", line, "", key))
            self._wake()

    async def post_file(self, room: RoomRef, file: OutgoingFile, *, key: str) -> str:
        self._call("post_file", room, key)
        if self.keep:
            self.files.append((room, file, file.path.read_bytes(), key))
        return self._record(room, "file", file.name, key)

    async def fetch_file(self, url: str, max_bytes: int) -> AsyncIterator[bytes]:
        self._call("fetch_file", url)
        content = self.media.get(url)
        if content is None:
            raise FileRefused(f"no such file: {url}")
        for start in range(0, len(content), 65536):
            yield content[start:start + 65536]

    async def post_direct(self, address: str, text: str, *, key: str) -> str:
        self._call("post_direct", address, key)
        return self._record(address, "direct", text, key)

    async def mark_read(self, room: RoomRef, event_id: str) -> None:
        self._call("mark_read", room)
        if self.keep:
            self.read_marks.append((room, event_id))
            self._wake()

    async def show_draft(self, room: RoomRef, text: str) -> None:
        self._call("show_draft", room)
        if self.keep:
            self.drafts.append((room, text))
            self._wake()

    async def set_typing(self, room: RoomRef, active: bool) -> None:
        self._call("set_typing", room)
        if self.keep:
            self.typing.append((room, active))

    def _call(self, method: str, target: str, key: str = "") -> None:
        """Count the call, note the attempt, and raise the failure scripted for it."""
        self.calls[method] += 1
        scripted = self._failures.get(method)
        error = scripted.popleft() if scripted else None
        if self.keep:
            name = type(error).__name__ if error is not None else ""
            self.attempts.append(Attempt(method, target, key, name))
        if error is not None:
            raise error

    def _record(self, room: str, kind: str, text: str, key: str) -> str:
        if not self.keep:
            return f"${kind}-{key}"
        event_id = f"$rec{len(self.posts) + 1}"
        self.posts.append(Post(room, kind, text, key, event_id, time.monotonic()))
        self._wake()
        return event_id

    # -- for the benchmarks --------------------------------------------------------------

    async def wait_posts(self, count: int) -> float:
        """Wait until `count` posts arrived; returns when the `count`-th one did."""
        return await self._wait(lambda: self.posts[count - 1].at
                                if len(self.posts) >= count else None)

    async def wait_rooms(self, count: int) -> float:
        """Wait until `count` rooms were opened; returns when the `count`-th one was."""
        return await self._wait(lambda: self.opened_at[count - 1]
                                if len(self.opened_at) >= count else None)

    async def _wait(self, reached: Callable[[], float | None]) -> float:
        at = reached()
        if at is not None:
            return at
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._waiters.append((reached, future))
        try:
            return await future
        finally:
            self._waiters = [(r, f) for r, f in self._waiters if f is not future]

    def _wake(self) -> None:
        for reached, future in self._waiters:
            at = reached()
            if at is not None and not future.done():
                future.set_result(at)

    def recording(self) -> dict[str, Any]:
        """What the backend saw, as JSON: rooms (with the conversation each was opened for)
        and every post in arrival order."""
        return {
            "rooms": {room: spec.key for room, spec in self.rooms.items()},
            "posts": [asdict(post) for post in self.posts],
            "invites": len(self.invites),
        }
