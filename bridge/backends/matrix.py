"""Matrix backend on matrix-nio: one private room per conversation, an ordinary bot account.

nio returns errors as values; this module turns them into our exceptions at once, and no nio
type leaves it. nio's own retry loops are switched off: the hub's outbox decides when to retry.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from nio import (
    AsyncClient,
    AsyncClientConfig,
    ErrorResponse,
    LoginResponse,
    PresenceEvent,
    ReceiptEvent,
    RoomCreateResponse,
    RoomPreset,
    RoomVisibility,
    SyncResponse,
    TypingNoticeEvent,
    WhoamiResponse,
)

from bridge.backends.base import (
    AgentPresence,
    BackendError,
    BackendState,
    BackendUnavailable,
    Connected,
    InboundCallback,
    InboundEvent,
    OutgoingFile,
    PostedLine,
    RateLimited,
    RoomGone,
    RoomSpec,
)
from bridge.backends.matrix_direct import DirectChats
from bridge.backends.matrix_media import MediaRepository, file_content
from bridge.backends.matrix_receipts import ReadMarkers, agent_reads
from bridge.backends.matrix_timeline import Timeline
from bridge.backends.matrix_wire import FIRST_SYNC_FILTER, SYNC_FILTER, DraftPreviews, error_of
from bridge.config import MatrixConfig
from bridge.core.models import RoomRef
from bridge.startup import first_contact, refusal
from bridge.tasks import TaskGroup, backoff_delays

log = logging.getLogger(__name__)

SYNC_TIMEOUT_MS = 30_000
DISPLAY_NAME_ATTEMPTS = 5


class MatrixBackend(DirectChats):
    """Carries conversations into Matrix rooms through one bot account."""

    name = "matrix"
    presence_default = True

    def __init__(self, config: MatrixConfig, state: BackendState,
                 agents: tuple[str, ...] = ()) -> None:
        self.config = config
        self.state = state
        # Only configured agents may pull the bot into a room (a direct chat for commands).
        self.agents = set(agents)
        self.user_id = config.user_id
        self._client: AsyncClient | None = None
        self._inbound: InboundCallback | None = None
        self._tasks = TaskGroup()
        self._timeline = Timeline(self.user_id, self._name)
        self._drafts = DraftPreviews(self._send_draft, self._redact)
        # read_markers, not /receipt: its m.read is unthreaded (nio's /receipt call always
        # names the "main" thread), and it moves the bot's fully-read marker along.
        self._read = ReadMarkers(lambda room, event_id: self._call(
            self._require_client().room_read_markers(room, event_id, event_id)))
        self._media = MediaRepository(config.homeserver,
                                      lambda: self._require_client().access_token)

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self, inbound: InboundCallback) -> None:
        self._inbound = inbound
        self._client = AsyncClient(
            self.config.homeserver,
            self.user_id,
            config=AsyncClientConfig(
                encryption_enabled=False,
                store_sync_tokens=False,
                max_limit_exceeded=0,
                max_timeouts=0,
                request_timeout=SYNC_TIMEOUT_MS / 1000 + 20,
            ),
        )
        try:
            await self._log_in()
            if self.state.get("sync_token") is None:
                await self._first_sync()
        except BaseException:
            await self.stop()  # closes nio's HTTP session: nothing left open behind the error
            raise
        self._tasks.spawn(self._sync_loop(), name="matrix-sync")

    async def stop(self) -> None:
        await self._tasks.close()
        await self._media.close()
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def _log_in(self) -> None:
        """Reuse one device for the bot's whole life: transaction ids are per device."""
        client = self._require_client()
        token = self.config.access_token or self.state.get("access_token")
        device_id = self.config.device_id or self.state.get("device_id") or ""
        if token:
            client.restore_login(self.user_id, device_id, token)
            who = await first_contact(client.whoami(), self.config.homeserver)
            if isinstance(who, WhoamiResponse):
                if who.device_id and who.device_id != device_id:
                    client.device_id = who.device_id
                    self.state.set("device_id", who.device_id)
                log.info("matrix: logged in as %s (device %s)", self.user_id, client.device_id)
                return
            if self.config.access_token or not self.config.password:
                key = "access_token" if self.config.access_token else "password"  # to fix
                raise BackendError(f"matrix.{key}: the homeserver refused the access token of "
                                   f"{self.user_id} ({refusal(who)}) (expected a valid "
                                   "access_token of the bot, or its password)")
        if not self.config.password:
            raise BackendError("matrix.password: missing (expected a password or access_token)")
        login: dict[str, Any] = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": self.user_id},
            "password": self.config.password,
            "initial_device_display_name": self.config.device_name,
        }
        if device_id:
            login["device_id"] = device_id
        response = await first_contact(client.login_raw(login), self.config.homeserver)
        if not isinstance(response, LoginResponse):
            raise BackendError(f"matrix.password: the homeserver refused the login of "
                               f"{self.user_id} ({refusal(response)}) (wrong password?)")
        self.state.set("device_id", response.device_id)
        self.state.set("access_token", response.access_token)
        log.info("matrix: logged in as %s (device %s)", self.user_id, response.device_id)

    async def _first_sync(self) -> None:
        """Take the current position without replaying the bot's whole history."""
        response = await self._call(
            self._require_client().sync(timeout=0, sync_filter=FIRST_SYNC_FILTER)
        )
        self.state.set("sync_token", response.next_batch)

    async def _sync_loop(self) -> None:
        delays = backoff_delays(first=0.5, cap=15.0)
        connected = True
        while True:
            since = self.state.get("sync_token")
            try:
                response = await self._call(
                    self._require_client().sync(
                        timeout=SYNC_TIMEOUT_MS, since=since, sync_filter=SYNC_FILTER
                    )
                )
            except BackendError as exc:
                delay = exc.retry_after if isinstance(exc, RateLimited) else next(delays)
                if connected:
                    log.warning("matrix: sync failed (%s); retrying", exc)
                connected = False
                await asyncio.sleep(delay)
                continue
            delays = backoff_delays(first=0.5, cap=15.0)
            if not connected:
                connected = True
                log.info("matrix: connected again")
                await self._emit(Connected())
            try:
                await self._dispatch(response)
                # Saved only after the events were handled: a crash replays them, and the
                # hub drops what it already stored (by event id): nothing lost or doubled.
                self.state.set("sync_token", response.next_batch, durable=False)
            except Exception:
                # e.g. a locked database: the same batch is fetched again after a pause.
                log.exception("matrix: handling a sync batch failed; fetching it again")
                await asyncio.sleep(next(delays))

    # -- outbound ------------------------------------------------------------------------

    async def attach_rooms(self, rooms: dict[RoomRef, RoomSpec]) -> None:
        """Room membership is server state in Matrix: the bot is still in its rooms."""

    async def open_room(self, spec: RoomSpec) -> RoomRef:
        client = self._require_client()
        created = await self._call(
            client.room_create(
                visibility=RoomVisibility.private,
                name=spec.name,
                topic=spec.topic,
                preset=RoomPreset.private_chat,
                invite=spec.invite,
                federate=True,
            )
        )
        assert isinstance(created, RoomCreateResponse)
        room = RoomRef(created.room_id)
        # The room exists now: retrying the whole call would make a second one, so this
        # step is retried on its own. The bot speaks for the visitor in this room only.
        delays = backoff_delays(first=0.5, cap=5.0)
        for _ in range(DISPLAY_NAME_ATTEMPTS):
            try:
                await self._call(client.room_put_state(
                    room, "m.room.member",
                    {"membership": "join", "displayname": spec.visitor_nick},
                    state_key=self.user_id,
                ))
                break
            except BackendUnavailable as exc:
                delay = exc.retry_after if isinstance(exc, RateLimited) else next(delays)
                await asyncio.sleep(delay)
        else:
            log.warning("matrix: %s keeps the bot's own name (display name not set)", room)
        return room

    async def invite(self, room: RoomRef, address: str) -> None:
        await self._call(self._require_client().room_invite(room, address))

    async def remove(self, room: RoomRef, address: str) -> None:
        await self._call(
            self._require_client().room_kick(room, address, "not needed here any more"))

    async def post_text(self, room: RoomRef, text: str, *, key: str) -> str:
        return await self._send(room, {"msgtype": "m.text", "body": text}, key)

    async def post_notice(self, room: RoomRef, text: str, *, key: str) -> str:
        return await self._send(room, {"msgtype": "m.notice", "body": text}, key)

    async def edit_line(self, room: RoomRef, line: PostedLine, text: str, *, key: str
                        ) -> None:
        # The "* " fallback is what clients without edits show (the spec's convention).
        await self._send(room, {
            "msgtype": "m.text", "body": f"* {text}",
            "m.new_content": {"msgtype": "m.text", "body": text},
            "m.relates_to": {"rel_type": "m.replace", "event_id": line.event_id},
        }, key)

    async def retract_line(self, room: RoomRef, line: PostedLine, *, key: str) -> None:
        # A redaction's transaction id makes a retry idempotent, as for messages.
        await self._in_room(room, self._require_client().room_redact(
            room, line.event_id, "deleted by the visitor", tx_id=key))

    async def post_file(self, room: RoomRef, file: OutgoingFile, *, key: str) -> str:
        mxc = await self._media.upload_once(file, key, self.state)
        return await self._send(room, file_content(file, mxc), key)

    def fetch_file(self, url: str, max_bytes: int) -> AsyncIterator[bytes]:
        return self._media.download(url, max_bytes)

    async def set_typing(self, room: RoomRef, active: bool) -> None:
        await self._call(
            self._require_client().room_typing(room, active, timeout=20_000 if active else 0)
        )

    async def mark_read(self, room: RoomRef, event_id: str) -> None:
        await self._read.mark(room, event_id)

    async def show_draft(self, room: RoomRef, text: str) -> None:
        await self._drafts.show(room, text)

    async def _send_draft(self, room: RoomRef, content: dict[str, Any]) -> str:
        client = self._require_client()
        return str((await self._call(client.room_send(room, "m.room.message", content))).event_id)

    async def _redact(self, room: RoomRef, event_id: str) -> None:
        await self._call(self._require_client().room_redact(room, event_id, "sent or cleared"))

    async def _send(self, room: RoomRef, content: dict[str, Any], key: str) -> str:
        # Plain `body` only, never `formatted_body`: visitor text is text in every client.
        response = await self._in_room(
            room, self._require_client().room_send(room, "m.room.message", content, tx_id=key))
        return str(response.event_id)

    async def _in_room(self, room: RoomRef, request: Any) -> Any:
        """`_call` for a request in a room the bot speaks in: RoomGone when it is gone."""
        try:
            return await self._call(request)
        except BackendError as exc:
            if exc.status in (403, 404) and not await self._still_joined(room):
                raise RoomGone(str(exc)) from None  # kicked, banned, or the room is gone
            raise

    async def _still_joined(self, room: RoomRef) -> bool:
        """Whether the bot is still in the room (a 403 can also be a refused message)."""
        try:
            member = await self._call(self._require_client().room_get_state_event(
                room, "m.room.member", self.user_id))
        except BackendUnavailable:
            return True  # cannot tell: keep the room and retry later
        except BackendError:
            return False
        return (member.content or {}).get("membership") == "join"

    async def _call(self, request: Any) -> Any:
        """Await a nio request and translate every failure into our exceptions."""
        try:
            response = await request
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise BackendUnavailable(f"matrix: {type(exc).__name__}: {exc}") from None
        if isinstance(response, ErrorResponse):
            raise error_of(response)
        return response

    def _require_client(self) -> AsyncClient:
        if self._client is None:
            raise BackendUnavailable("matrix: not started")
        return self._client

    # -- inbound -------------------------------------------------------------------------

    async def _emit(self, event: InboundEvent) -> None:
        if self._inbound is not None:
            await self._inbound(event)

    async def _dispatch(self, response: SyncResponse) -> None:
        for room_id, invited in response.rooms.invite.items():
            await self.answer_invite(RoomRef(room_id), invited.invite_state)
        for room_id, joined in response.rooms.join.items():
            room = RoomRef(room_id)
            for inbound in self._timeline.translate_batch(room, joined.timeline.events):
                await self._emit(inbound)
            for event in joined.ephemeral:
                if isinstance(event, TypingNoticeEvent):
                    for typing in self._timeline.typing_changes(room, set(event.users)):
                        await self._emit(typing)
                elif isinstance(event, ReceiptEvent):
                    for read in agent_reads(room, event.receipts, self.user_id):
                        await self._emit(read)
        for presence in response.presence_events:
            if isinstance(presence, PresenceEvent) and presence.user_id != self.user_id:
                # "unavailable" is away/idle; only "online" takes new chats.
                await self._emit(AgentPresence(presence.user_id, presence.presence == "online"))

    def _name(self, room: RoomRef, user_id: str) -> str:
        client = self._client
        matrix_room = client.rooms.get(room) if client is not None else None
        name = matrix_room.user_name(user_id) if matrix_room is not None else None
        return name or user_id
