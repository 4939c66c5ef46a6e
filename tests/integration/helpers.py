"""Test-side parts: a visitor on a real WebSocket, an agent on a real Matrix client, and
seeds for the bridge's database."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import aiohttp
from nio import (
    AsyncClient,
    AsyncClientConfig,
    DownloadResponse,
    InviteMemberEvent,
    MessageDirection,
    RoomMessageMedia,
    RoomMessageNotice,
    RoomMessagesResponse,
    RoomMessageText,
    SyncResponse,
    TypingNoticeEvent,
    UploadResponse,
)

from bridge.app import Bridge
from bridge.core.models import ConversationId, Page, QueueId, Status, VisitorInfo

Frame = dict[str, Any]


class Visitor:
    """A widget stand-in speaking the visitor protocol over a real WebSocket."""

    def __init__(self, base_url: str, origin: str | None = None) -> None:
        self.base_url = base_url
        self.origin = origin
        self.session: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.frames: list[Frame] = []
        self._new = asyncio.Condition()
        self._reader: asyncio.Task[None] | None = None

    async def connect(self) -> Visitor:
        self.session = aiohttp.ClientSession()
        headers = {"Origin": self.origin} if self.origin else {}
        try:
            self.ws = await self.session.ws_connect(f"{self.base_url}/v1/ws", headers=headers)
        except aiohttp.ClientError:
            await self.session.close()
            raise
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self.ws is not None
        async for msg in self.ws:
            if msg.type is aiohttp.WSMsgType.TEXT:
                async with self._new:
                    self.frames.append(json.loads(msg.data))
                    self._new.notify_all()
        async with self._new:
            self._new.notify_all()

    async def send(self, frame: Frame) -> None:
        assert self.ws is not None
        await self.ws.send_str(json.dumps(frame))

    async def send_raw(self, data: str) -> None:
        assert self.ws is not None
        await self.ws.send_str(data)

    async def start(self, name: str = "Anna", email: str = "anna@example.com", **extra: Any
                    ) -> Frame:
        await self.send({"type": "start", "visitor": {"name": name, "email": email},
                         "page": {"url": "https://shop.example.com/pricing", "title": "Pricing"},
                         "lang": "en", **extra})
        return await self.wait("started")

    async def say(self, text: str, client_id: str | None = None) -> Frame:
        client_id = client_id or uuid.uuid4().hex
        await self.send({"type": "message", "client_id": client_id, "text": text})
        return await self.wait("ack", lambda f: f["client_id"] == client_id)

    async def wait(self, kind: str, match: Callable[[Frame], bool] = lambda f: True,
                   timeout: float = 15.0, start: int = 0) -> Frame:
        """The first frame of `kind` (from index `start`) that matches."""

        def find() -> Frame | None:
            for frame in self.frames[start:]:
                if frame.get("type") == kind and match(frame):
                    return frame
            return None

        async with asyncio.timeout(timeout), self._new:
            while (found := find()) is None:
                if self.ws is not None and self.ws.closed and self._reader and self._reader.done():
                    raise AssertionError(f"socket closed while waiting for {kind}: {self.frames}")
                await self._new.wait()
            return found

    async def closed(self, timeout: float = 10.0) -> None:
        assert self._reader is not None
        await asyncio.wait_for(asyncio.shield(self._reader), timeout)

    def of(self, kind: str) -> list[Frame]:
        return [f for f in self.frames if f.get("type") == kind]

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
        if self.session is not None:
            await self.session.close()


class MatrixAgent:
    """A Matrix user playing the agent: syncs in the background and records what it sees."""

    def __init__(self, homeserver: str, user_id: str, token: str, bot_id: str) -> None:
        self.client = AsyncClient(homeserver, user_id,
                                  config=AsyncClientConfig(encryption_enabled=False))
        self.client.restore_login(user_id, "TESTDEVICE", token)
        self.address = user_id
        self.bot_id = bot_id
        self.messages: list[tuple[str, str, bool, str]] = []  # room, sender, notice, body
        self.invites: set[str] = set()
        self.removed: set[str] = set()  # rooms the agent was taken out of (or uninvited from)
        self.typing: dict[str, list[str]] = {}
        self.files: list[tuple[str, str, str, dict[str, Any]]] = []  # room, name, url, content
        self.presence = "online"
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._last_event: dict[str, str] = {}  # room -> the newest timeline event recorded

    async def start(self) -> MatrixAgent:
        first = await self.client.sync(timeout=0)
        assert isinstance(first, SyncResponse), first
        self._record(first)
        self._task = asyncio.create_task(self._loop())
        return self

    async def _loop(self) -> None:
        while True:
            # Each sync sets the user's presence (like a real client, which says "online"
            # unless the user chose otherwise).
            response = await self.client.sync(timeout=30_000, set_presence=self.presence)
            if not isinstance(response, SyncResponse):
                await asyncio.sleep(0.2)
                continue
            await self._fill_gaps(response)
            async with self._changed:
                self._record(response)
                self._changed.notify_all()

    async def _fill_gaps(self, response: SyncResponse) -> None:
        """What Element does with a `limited` timeline (more new events than a sync gives,
        10 on Synapse: after the server restarted, or a burst while the client was slow):
        the gap back to the newest event already shown is read from /messages. Only rooms
        the client has shown events of: a room just joined shows what the sync gives."""
        for room_id, joined in response.rooms.join.items():
            last = self._last_event.get(room_id)
            if not joined.timeline.limited or last is None:
                continue
            missing: list[Any] = []
            start = joined.timeline.prev_batch
            for _ in range(5):
                page = await self.client.room_messages(room_id, start=start,
                                                       direction=MessageDirection.back,
                                                       limit=100)
                if not isinstance(page, RoomMessagesResponse):
                    break
                ids = [getattr(event, "event_id", None) for event in page.chunk]
                if last in ids:
                    missing.extend(page.chunk[:ids.index(last)])
                    break
                missing.extend(page.chunk)
                if not page.chunk or not page.end:
                    break
                start = page.end
            joined.timeline.events[:0] = list(reversed(missing))

    def _record(self, response: SyncResponse) -> None:
        for room_id, invited in response.rooms.invite.items():
            for event in invited.invite_state:
                if isinstance(event, InviteMemberEvent) and event.state_key == self.address:
                    self.invites.add(room_id)
        self.removed.update(response.rooms.leave)
        for room_id, joined in response.rooms.join.items():
            if joined.timeline.events:
                self._last_event[room_id] = joined.timeline.events[-1].event_id
            for event in joined.timeline.events:
                if isinstance(event, RoomMessageText | RoomMessageNotice):
                    notice = isinstance(event, RoomMessageNotice)
                    self.messages.append((room_id, event.sender, notice, event.body))
                elif isinstance(event, RoomMessageMedia):
                    content = event.source["content"]
                    self.files.append((room_id, content.get("body", ""), event.url, content))
            for event in joined.ephemeral:
                if isinstance(event, TypingNoticeEvent):
                    self.typing.setdefault(room_id, []).append(",".join(sorted(event.users)))

    async def until(self, check: Callable[[], Any], timeout: float = 15.0) -> Any:
        async with asyncio.timeout(timeout), self._changed:
            while not (result := check()):
                await self._changed.wait()
            return result

    async def wait_text(self, room: str, body: str, *, notice: bool = False,
                        timeout: float = 15.0) -> None:
        await self.until(lambda: body in self.texts(room, notice=notice), timeout)

    def texts(self, room: str, *, notice: bool = False) -> list[str]:
        return [b for r, _s, n, b in self.messages if r == room and n == notice]

    async def join(self, room: str) -> None:
        await self.until(lambda: room in self.invites)
        response = await self.client.join(room)
        assert not hasattr(response, "status_code"), response

    async def leave(self, room: str) -> None:
        response = await self.client.room_leave(room)
        assert not hasattr(response, "status_code"), response

    async def say(self, room: str, text: str) -> str:
        response = await self.client.room_send(
            room, "m.room.message", {"msgtype": "m.text", "body": text})
        return response.event_id

    async def say_in_thread(self, room: str, root: str, text: str) -> str:
        """A reply in a thread (Element's "Reply in thread")."""
        response = await self.client.room_send(room, "m.room.message", {
            "msgtype": "m.text", "body": text,
            "m.relates_to": {"rel_type": "m.thread", "event_id": root, "is_falling_back": True,
                             "m.in_reply_to": {"event_id": root}}})
        return response.event_id

    async def send_file(self, room: str, name: str, content: bytes, mimetype: str) -> str:
        """What Element does: the bytes to the media repository, then an m.image/m.file."""
        uploaded, _keys = await self.client.upload(
            lambda *_: content, content_type=mimetype, filename=name, filesize=len(content))
        assert isinstance(uploaded, UploadResponse), uploaded
        msgtype = "m.image" if mimetype.startswith("image/") else "m.file"
        response = await self.client.room_send(room, "m.room.message", {
            "msgtype": msgtype, "body": name, "url": uploaded.content_uri,
            "info": {"mimetype": mimetype, "size": len(content)}})
        return response.event_id

    async def download(self, url: str) -> bytes:
        """A file another member sent, through the homeserver (authenticated media)."""
        response = await self.client.download(mxc=url)
        assert isinstance(response, DownloadResponse), response
        return response.body if isinstance(response.body, bytes) else b""

    def file_names(self, room: str) -> list[str]:
        return [name for r, name, _url, _content in self.files if r == room]

    async def correct(self, room: str, event_id: str, text: str) -> None:
        await self.client.room_send(room, "m.room.message", {
            "msgtype": "m.text", "body": f"* {text}",
            "m.new_content": {"msgtype": "m.text", "body": text},
            "m.relates_to": {"rel_type": "m.replace", "event_id": event_id},
        })

    async def retract(self, room: str, event_id: str, body: str) -> None:
        """Take a line back (Element's "Remove"): a redaction."""
        response = await self.client.room_redact(room, event_id, "sent by mistake")
        assert not hasattr(response, "status_code"), response

    async def set_typing(self, room: str, active: bool) -> None:
        await self.client.room_typing(room, active, timeout=10_000)

    def bot_typing(self, room: str) -> list[bool]:
        return [self.bot_id in users.split(",") for users in self.typing.get(room, [])]

    async def room_title(self, room: str) -> str:
        return (await self.client.room_get_state_event(room, "m.room.name")).content["name"]

    async def visitor_nick(self, room: str) -> str:
        member = await self.client.room_get_state_event(room, "m.room.member", self.bot_id)
        return member.content["displayname"]

    async def set_away(self, away: bool) -> None:
        self.presence = "unavailable" if away else "online"
        await self.client.set_presence(self.presence)

    async def open_direct(self, bot: str) -> str:
        """A direct chat with the bot, once the bot has joined it."""
        created = await self.client.room_create(invite=[bot], is_direct=True)
        room = created.room_id
        async with asyncio.timeout(15):
            while bot not in [m.user_id for m in (await self.client.joined_members(room)).members]:
                await asyncio.sleep(0.1)
        return room

    async def say_direct(self, room: str, text: str) -> None:
        await self.say(room, text)

    def direct_texts(self, room: str) -> list[str]:
        return self.texts(room, notice=True)

    async def go_offline(self) -> None:
        """The client stops syncing (a laptop asleep); on Matrix the rooms stay joined."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def come_back(self) -> None:
        """Syncs again from where it stopped, like a client waking up."""
        self._task = asyncio.create_task(self._loop())

    async def close(self) -> None:
        await self.go_offline()
        await self.client.close()


def seed_answered(bridge: Bridge, queue: str, waits: list[float]) -> None:
    """Earlier chats of the queue, answered after these waits (they make the estimate)."""
    now = time.time()
    for n, wait in enumerate(waits):
        conversation_id = ConversationId(f"seed{n}")
        bridge.store.create_conversation(conversation_id, QueueId(queue),
                                         VisitorInfo("Seed", "seed@example.com"), Page(),
                                         f"hash{n}", now - 1000)
        bridge.store.set_first_response(conversation_id, now - 1000 + wait)
        bridge.store.set_status(conversation_id, Status.ENDED, ended_at=now - 500)


def toml_text(settings: dict[str, Any]) -> str:
    """A config file for `livechat-bridge run -c`: tables, arrays of tables and plain values
    (strings JSON-quoted, which TOML reads as basic strings)."""
    lines: list[str] = []

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return json.dumps(v)

    def table(name: str, content: dict[str, Any], header: str) -> None:
        lines.append(header)
        nested = {k: v for k, v in content.items() if isinstance(v, dict)}
        lines.extend(f"{json.dumps(k)} = {value(v)}" for k, v in content.items()
                     if k not in nested)
        for key, sub in nested.items():
            table(f"{name}.{json.dumps(key)}", sub, f"[{name}.{json.dumps(key)}]")

    for name, content in settings.items():
        if isinstance(content, list):
            for entry in content:
                table(name, entry, f"[[{name}]]")
        else:
            table(name, content, f"[{name}]")
    return "\n".join(lines) + "\n"
