"""The visitor WebSocket endpoint `/v1/ws` (protocol in docs/protocol.md)."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable
from weakref import WeakSet

from aiohttp import WSCloseCode, WSMsgType, web

from bridge.config import ServerConfig, normalize_origin
from bridge.core import frames
from bridge.core.models import Conversation, ConversationId
from bridge.core.protocol import (
    CallbackFrame,
    DeleteFrame,
    DraftFrame,
    EditFrame,
    EndFrame,
    ExtendFrame,
    LeaveMessageFrame,
    MessageFrame,
    PingFrame,
    ProtocolError,
    ReadFrame,
    ResumeFrame,
    StartFrame,
    SurveyFrame,
    TranscriptFrame,
    TypingFrame,
    parse_frame,
)
from bridge.core.ratelimit import TokenBucket
from bridge.store import StoreUnavailable
from bridge.web.client_address import AddressLimits, limits_of
from bridge.web.desk import VisitorDesk

log = logging.getLogger(__name__)

MAX_FRAME_BYTES = 64 * 1024
# A visitor socket this many frames behind is closed rather than buffered without end.
MAX_QUEUED_FRAMES = 500
# A frame up to this size (in characters, so at most 16 KiB) written into an empty socket
# buffer stays well below the transport's high-water mark (64 KiB): the write cannot pause.
AT_ONCE_MAX_CHARS = 4096
# A socket closed for being too slow gets this long to take the close frame (after what is
# already on its way) before its connection is cut.
SLOW_CLOSE_GRACE_S = 30.0
CLOSE_POLL_S = 0.25
# A client that keeps flooding after being told is closed: it is not a widget.
MAX_REFUSED_FRAMES = 50


class SocketSink:
    """A visitor connection as the hub sees it.

    `send` never waits on the network: frames queue per socket and one short-lived writer
    task drains them, so a visitor whose connection stalls cannot hold up the hub (and with
    it every other conversation). A socket that falls too far behind is closed; the widget
    reconnects and resumes from its last seq.

    The queue and the writer exist only while frames are on their way: an idle socket holds
    neither (0.8 KB a socket, 1.6 KB in a conversation: bench/idle_sockets.py). A frame for
    an idle socket whose kernel buffer has room is written at once, without either.
    """

    def __init__(self, ws: web.WebSocketResponse, transport: asyncio.BaseTransport | None
                 ) -> None:
        self.ws = ws
        self._transport = transport
        self.last_seq = 0  # of the conversation it follows: where to pick up again
        self._queue: deque[str] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._closing: asyncio.Task[None] | None = None

    async def send(self, frame: frames.Frame) -> None:
        if self.ws.closed or self._closing is not None:
            return
        seq = frame.get("seq")
        if isinstance(seq, int) and frame["type"] != "resumed":
            self.last_seq = max(self.last_seq, seq)
        data = json.dumps(frame, ensure_ascii=False)
        if self._queue is None and self._writes_at_once(data):
            try:
                await self.ws.send_str(data)
            except (ConnectionError, RuntimeError) as exc:
                log.debug("visitor socket gone while sending: %s", exc)
            return
        if self._queue is None:
            self._queue = deque()
        if len(self._queue) >= MAX_QUEUED_FRAMES:
            self._close_too_slow()
            return
        self._queue.append(data)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write(self._queue))

    def _writes_at_once(self, data: str) -> bool:
        """Whether writing `data` now cannot wait on the network: nothing is waiting to be
        sent, so the socket is not paused, and the frame is too small to pause it."""
        transport = self._transport
        return (isinstance(transport, asyncio.WriteTransport) and not transport.is_closing()
                and transport.get_write_buffer_size() == 0 and len(data) <= AT_ONCE_MAX_CHARS)

    def _close_too_slow(self) -> None:
        """Close at once with 1013, not after the queue: the writer waits on a peer that
        does not read, and would never reach the end. Frames already handed to the
        connection still come first; the queued ones are dropped (a resume replays them)."""
        log.info("visitor socket too slow (%d frames queued); closing it with 1013",
                 len(self._queue or ()))
        self._queue = None
        if self._writer is not None:
            self._writer.cancel()  # waiting for the peer to drain; its frame is written
            self._writer = None
        self._closing = asyncio.get_running_loop().create_task(self._close_slow_socket())

    async def _close_slow_socket(self) -> None:
        transport = self._transport
        try:
            async with asyncio.timeout(SLOW_CLOSE_GRACE_S):
                await self.ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"too slow",
                                    drain=False)
                # What was written before the close frame, and the frame itself, still
                # reach a peer that reads again within the grace (a closing transport
                # tells no one when its buffer empties: it is looked at).
                while isinstance(transport, asyncio.WriteTransport) \
                        and transport.get_write_buffer_size() > 0:  # noqa: ASYNC110
                    await asyncio.sleep(CLOSE_POLL_S)
                return
        except (TimeoutError, ConnectionError, RuntimeError) as exc:
            log.debug("slow visitor socket not closed cleanly: %r", exc)
        if isinstance(transport, asyncio.WriteTransport):
            transport.abort()  # a peer that never reads holds no buffers with us

    async def _write(self, queue: deque[str]) -> None:
        while queue:
            data = queue.popleft()
            try:
                await self.ws.send_str(data)
            except (ConnectionError, RuntimeError) as exc:
                log.debug("visitor socket gone while sending: %s", exc)
                break
        # Written (or the socket is gone), with no await since the last look at the queue:
        # the socket goes idle without its queue and without this finished task.
        if self._queue is queue:
            self._queue = None
        if self._writer is asyncio.current_task():
            self._writer = None

    async def drain(self) -> None:
        """Wait until everything queued was written (tests, orderly shutdown)."""
        if self._writer is not None:
            await asyncio.shield(self._writer)


def origin_allowed(request: web.Request, server: ServerConfig) -> bool:
    """Browsers always send Origin on a WebSocket; only listed sites (and our own) may connect.

    A request without Origin is not from a browser page, so it cannot ride on a visitor's
    session; it is let through like any other HTTP client.
    """
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    return normalize_origin(origin) in server.origins


class VisitorConnection:
    """Reads one socket's frames in order and hands them to the hub."""

    def __init__(self, hub: VisitorDesk, server: ServerConfig, ws: web.WebSocketResponse,
                 transport: asyncio.BaseTransport | None, user_agent: str,
                 limits: AddressLimits | None = None, address: str = "") -> None:
        self.hub = hub
        self.limits = limits or AddressLimits()
        self.address = address  # the [limits] key of the client (see client_address)
        self.server = server
        self.ws = ws
        self.sink = SocketSink(ws, transport)
        self.user_agent = user_agent
        self.conversation_id: ConversationId | None = None
        self.bucket = TokenBucket(rate=server.frames_per_10s / 10, burst=server.frames_per_10s)
        self.refused = 0

    async def run(self) -> None:
        try:
            async for msg in self.ws:
                if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    continue
                keep_open = await self.handle(msg.data if msg.type is WSMsgType.TEXT else None)
                del msg  # not held while the socket idles until the next frame
                if not keep_open:
                    break
        finally:
            if self.conversation_id is not None:
                self.hub.detach(self.conversation_id, self.sink)

    async def handle(self, raw: str | None) -> bool:
        """Handle one frame (None: a binary frame); False closes the connection."""
        if not self.bucket.allow(time.monotonic()):
            self.refused += 1
            if self.refused > MAX_REFUSED_FRAMES:
                await self.ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"flooding")
                return False
            if self.refused == 1:  # one error per burst, not one per dropped frame
                await self.sink.send(
                    frames.error_frame("rate_limited", "too many frames; slow down")
                )
            return True
        self.refused = 0
        try:
            if raw is None:
                raise ProtocolError("bad_frame", "send JSON text frames")
            frame = parse_frame(raw, max_text=self.server.max_text, user_agent=self.user_agent)
            await self.dispatch(frame)
        except ProtocolError as exc:
            await self.sink.send(frames.error_frame(exc.code, exc.message, exc.client_id))
        except StoreUnavailable as exc:  # disk full: the frame changed nothing; send it again
            log.warning("conversation %s: frame refused, store unavailable: %s",
                        self.conversation_id, exc)
            await self.sink.send(frames.error_frame("try_again", "the bridge cannot store "
                                                    "anything right now; try again shortly"))
        except Exception:
            ref = f"{time.time_ns() & 0xFFFFFF:06x}"
            log.exception("conversation %s: internal error (ref %s)", self.conversation_id, ref)
            await self.sink.send(frames.error_frame("internal", f"internal error (ref {ref})"))
        return True

    async def dispatch(self, frame: object) -> None:
        match frame:
            case PingFrame():
                await self.sink.send({"type": "pong"})
            case StartFrame():
                await self._start(frame)
            case ResumeFrame():
                await self._switch(self.hub.resume(frame, self.sink))
            case MessageFrame():
                try:
                    seq = await self.hub.visitor_message(self._current(), frame, self.sink)
                except ProtocolError as exc:
                    exc.client_id = frame.client_id
                    raise
                await self.sink.send(frames.ack_frame(frame.client_id, seq))
            case EditFrame() | DeleteFrame():
                await self.hub.visitor_change(self._current(), frame, self.sink)
            case TypingFrame():
                await self.hub.visitor_typing(self._current(), frame.active)
            case ReadFrame():
                await self.hub.visitor_read(self._current(), frame.seq)
            case EndFrame():
                await self.hub.visitor_end(self._current())
            case LeaveMessageFrame():
                await self.hub.leave_message(self._current())
            case DraftFrame():
                await self.hub.visitor_draft(self._current(), frame.text)
            case ExtendFrame():
                ends_in = await self.hub.visitor_extend(self._current())
                await self.sink.send(frames.extended_frame(ends_in))
            case SurveyFrame():
                await self.hub.visitor_survey(self._current(), frame)
                await self.sink.send(frames.rated_frame(frame.rating))
            case CallbackFrame():
                await self.hub.visitor_callback(self._current(), frame)
                await self.sink.send(frames.callback_saved_frame(frame.phone))
            case TranscriptFrame():
                sent_to = await self._transcript(self._current(), frame.email)
                await self.sink.send(frames.transcript_sent_frame(sent_to))

    async def _start(self, frame: StartFrame) -> None:
        """Start a conversation unless this address started too many lately: each one is a
        room on the messenger, so the limit is checked before the hub sees the frame."""
        chats, now = self.limits.chats, time.monotonic()
        if not chats.take(self.address, now):
            minutes = math.ceil(chats.retry_after(self.address, now) / 60)
            log.info("refused a new chat from %s: too many lately", self.address)
            raise ProtocolError("too_many_chats", "too many new chats from your address; "
                                f"try again in {minutes} min or leave a message")
        try:
            await self._switch(self.hub.start_conversation(frame, self.sink))
        except (ProtocolError, StoreUnavailable):
            chats.give_back(self.address, now)  # refused before anything was created
            raise

    async def _transcript(self, conversation_id: ConversationId, email: str | None) -> str:
        """Email the transcript unless this address asked for too many lately: the mail
        goes from the site's own address, so it must not become a way to spam anyone."""
        mails, now = self.limits.transcripts, time.monotonic()
        if not mails.take(self.address, now):
            raise ProtocolError("too_many_mails", "too many transcript emails from your "
                                "address; download the transcript instead")
        try:
            return await self.hub.visitor_transcript(conversation_id, email)
        except ProtocolError as exc:
            if exc.code != "mail_failed":  # refused before the mail relay was asked
                mails.give_back(self.address, now)
            raise

    def _current(self) -> ConversationId:
        if self.conversation_id is None:
            raise ProtocolError("no_conversation", "start or resume a conversation first")
        return self.conversation_id

    async def _switch(self, opening: Awaitable[Conversation]) -> None:
        """Follow a newly started or resumed conversation instead of the current one.

        The old one is let go first, so frames of two conversations never mix on the
        socket; if the new one fails, the old one is followed again from where it was.
        """
        previous, previous_seq = self.conversation_id, self.sink.last_seq
        if previous is not None:
            self.hub.detach(previous, self.sink)
        self.conversation_id = None
        self.sink.last_seq = 0
        try:
            conversation = await opening
        except BaseException:
            if previous is not None:
                self.conversation_id, self.sink.last_seq = previous, previous_seq
                await self.hub.follow(previous, previous_seq, self.sink)
            raise
        self.conversation_id = conversation.id


async def handle_ws(
    request: web.Request, hub: VisitorDesk, server: ServerConfig,
    sockets: WeakSet[web.WebSocketResponse],
) -> web.StreamResponse:
    if not origin_allowed(request, server):
        log.info("refused a visitor socket from origin %r", request.headers.get("Origin"))
        raise web.HTTPForbidden(text="origin not allowed")
    limits = limits_of(request)
    address = limits.key(request)
    if not limits.sockets.acquire(address):
        log.info("refused a visitor socket from %s: %d open already", address,
                 limits.sockets.count(address))
        raise web.HTTPTooManyRequests(text=TOO_MANY_SOCKETS, content_type="application/json")
    try:
        # Compression off: a deflate context costs about 7x the memory of an idle socket.
        ws = web.WebSocketResponse(compress=False, max_msg_size=MAX_FRAME_BYTES, heartbeat=55)
        await ws.prepare(request)
        sockets.add(ws)
        connection = VisitorConnection(hub, server, ws, request.transport,
                                       request.headers.get("User-Agent", ""), limits, address)
        await connection.run()
    finally:
        limits.sockets.release(address)
    return ws


TOO_MANY_SOCKETS = json.dumps({"error": {
    "code": "too_many_sockets",
    "message": "too many open chat connections from your address; close some and retry"}})
