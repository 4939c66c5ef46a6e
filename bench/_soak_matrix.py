"""The soak benchmark's Matrix side: accounts on the private Synapse, and a lean agent client
on raw HTTP (one /sync loop with a filter, /join, PUT /send), which keeps up with a thousand
rooms where a full client would parse and keep every room's state (bench/soak.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp

from bridge.devserver.synapse import SynapseServer

SYNC_TIMEOUT_MS = 30_000
HTTP_TIMEOUT_S = 90.0
SEND_ATTEMPTS = 5
CONNECTIONS = 32  # to Synapse at once: sends queue here rather than pile onto the server
# Only what the agent reads: invitations (with the room's name) and text lines.
SYNC_FILTER = {
    "account_data": {"not_types": ["*"]},
    "presence": {"not_types": ["*"]},
    "room": {
        "account_data": {"not_types": ["*"]},
        "ephemeral": {"not_types": ["*"]},
        "state": {"lazy_load_members": True, "types": []},
        "timeline": {"types": ["m.room.message"], "limit": 100},
    },
}
_NAME_INDEX = re.compile(r"\bSoak (\d+)\b")

RoomLine = Callable[[str, str, bool, float], None]  # room, text, sent by me, when


@dataclass(frozen=True)
class MatrixAccounts:
    homeserver: str
    bot_id: str
    bot_password: str
    agent_id: str
    agent_token: str


def register_matrix(server: SynapseServer) -> MatrixAccounts:
    """An admin, the bot and the agent; both exempt from message rate limiting (the server's
    other limits are lifted by its config)."""
    _, admin_token = server.register("admin", "admin-pw-1", admin=True)
    bot_id, _ = server.register("support", "bot-pw-1", displayname="Support bot")
    agent_id, agent_token = server.register("alice", "alice-pw-1", displayname="Alice")
    for user in (bot_id, agent_id):
        server.override_ratelimit(admin_token, user)
    return MatrixAccounts(server.base_url, bot_id, "bot-pw-1", agent_id, agent_token)


def matrix_backend_toml(accounts: MatrixAccounts) -> list[str]:
    q = json.dumps
    return ['type = "matrix"', "[matrix]", f"homeserver = {q(accounts.homeserver)}",
            f"user_id = {q(accounts.bot_id)}", f"password = {q(accounts.bot_password)}"]


class HomeserverRefused(RuntimeError):
    """The homeserver answered the agent's request with an error."""


@dataclass
class MatrixStats:
    sync_failures: int = 0
    gaps: int = 0  # rooms whose sync timeline was cut short: lines may be unseen
    send_retries: int = 0
    join_failures: int = 0
    examples: list[str] = field(default_factory=list)

    def note(self, what: str) -> None:
        if len(self.examples) < 10:
            self.examples.append(what)


class MatrixAgent:
    """The agent: joins every room it is invited to and reports the lines it sees."""

    name = "matrix"

    def __init__(self, accounts: MatrixAccounts, on_line: RoomLine, joins_at_once: int
                 ) -> None:
        self.accounts = accounts
        self.user_id = accounts.agent_id
        self.on_line = on_line
        self.stats = MatrixStats()
        self._joins = asyncio.Semaphore(joins_at_once)
        self._rooms: dict[str, asyncio.Future[str]] = {}  # room key -> room id, once joined
        self._seen_rooms: set[str] = set()  # rooms a sync has shown since the join
        self._session: aiohttp.ClientSession | None = None
        self._syncer: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._since = ""

    def room_key(self, index: int, _conversation_id: str) -> str:
        """The room's name holds the visitor's name, which holds the conversation's index."""
        return str(index)

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=CONNECTIONS),
            headers={"Authorization": f"Bearer {self.accounts.agent_token}"},
            timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S))
        first = await self._sync(timeout_ms=0)
        self._since = first["next_batch"]
        self._syncer = asyncio.create_task(self._sync_forever(), name="agent-sync")

    async def room_for(self, key: str, timeout: float) -> str:
        future = self._rooms.setdefault(key, asyncio.get_running_loop().create_future())
        async with asyncio.timeout(timeout):
            return await asyncio.shield(future)

    # -- reading ----------------------------------------------------------------------------

    async def _sync(self, timeout_ms: int) -> dict[str, Any]:
        params = {"timeout": str(timeout_ms), "filter": json.dumps(SYNC_FILTER)}
        if self._since:
            params["since"] = self._since
        return await self._request("GET", "/_matrix/client/v3/sync", params=params)

    async def _sync_forever(self) -> None:
        while True:
            try:
                response = await self._sync(SYNC_TIMEOUT_MS)
            except (aiohttp.ClientError, TimeoutError, HomeserverRefused) as exc:
                self.stats.sync_failures += 1
                self.stats.note(f"sync failed: {exc!r}")
                await asyncio.sleep(1.0)
                continue
            at = time.perf_counter()
            self._since = response["next_batch"]
            rooms = response.get("rooms", {})
            for room_id, invited in rooms.get("invite", {}).items():
                self._invited(room_id, invited)
            for room_id, joined in rooms.get("join", {}).items():
                self._read_room(room_id, joined, at)

    def _read_room(self, room_id: str, joined: dict[str, Any], at: float) -> None:
        timeline = joined.get("timeline", {})
        if timeline.get("limited") and room_id in self._seen_rooms:
            # Joined before, so this is no first look at the room: lines were skipped.
            self.stats.gaps += 1
            self.stats.note(f"{room_id}: sync timeline limited")
        self._seen_rooms.add(room_id)
        for event in timeline.get("events", []):
            body = (event.get("content") or {}).get("body")
            if event.get("type") == "m.room.message" and isinstance(body, str):
                self.on_line(room_id, body, event.get("sender") == self.user_id, at)

    def _invited(self, room_id: str, invited: dict[str, Any]) -> None:
        names = [e.get("content", {}).get("name", "") for e in
                 invited.get("invite_state", {}).get("events", [])
                 if e.get("type") == "m.room.name"]
        match = _NAME_INDEX.search(names[0]) if names else None
        if match is None:
            self.stats.note(f"{room_id}: invitation to a room without a soak name {names}")
            return
        task = asyncio.create_task(self._join(room_id, match[1]), name=f"join-{room_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _join(self, room_id: str, key: str) -> None:
        future = self._rooms.setdefault(key, asyncio.get_running_loop().create_future())
        if future.done():
            return  # a second invitation (the bridge opened a new room): not the soak's case
        try:
            async with self._joins:
                await self._request("POST", f"/_matrix/client/v3/join/{quote(room_id)}", {})
        except (aiohttp.ClientError, TimeoutError, HomeserverRefused) as exc:
            self.stats.join_failures += 1
            self.stats.note(f"join {room_id} failed: {exc!r}")
            future.set_exception(HomeserverRefused(f"join {room_id} failed: {exc!r}"))
            future.exception()
            return
        future.set_result(room_id)

    # -- writing ----------------------------------------------------------------------------

    async def send(self, room_id: str, text: str) -> None:
        """PUT with one transaction id for every attempt: a retry never doubles the line."""
        path = (f"/_matrix/client/v3/rooms/{quote(room_id)}/send/m.room.message/"
                f"{uuid.uuid4().hex}")
        content = {"msgtype": "m.text", "body": text}
        for attempt in range(SEND_ATTEMPTS):
            try:
                await self._request("PUT", path, content)
                return
            except (aiohttp.ClientError, TimeoutError, HomeserverRefused) as exc:
                if attempt == SEND_ATTEMPTS - 1:
                    raise HomeserverRefused(f"send to {room_id}: {exc!r}") from None
                self.stats.send_retries += 1
                await asyncio.sleep(0.5 * 2 ** attempt)

    async def _request(self, method: str, path: str, body: dict[str, Any] | None = None,
                       params: dict[str, str] | None = None) -> dict[str, Any]:
        assert self._session is not None
        async with self._session.request(method, self.accounts.homeserver + path,
                                         json=body, params=params) as response:
            payload: dict[str, Any] = await response.json(content_type=None)
            if response.status != 200:
                raise HomeserverRefused(f"{method} {path.split('?')[0]}: HTTP {response.status} "
                                     f"{payload.get('errcode')} {payload.get('error')}")
            return payload

    async def close(self) -> None:
        for task in [self._syncer, *self._tasks]:
            if task is not None:
                task.cancel()
        await asyncio.gather(*[t for t in [self._syncer, *self._tasks] if t is not None],
                             return_exceptions=True)
        if self._session is not None:
            with contextlib.suppress(Exception):
                await self._session.close()

    def report(self) -> dict[str, Any]:
        return {"sync_failures": self.stats.sync_failures, "sync_gaps": self.stats.gaps,
                "send_retries": self.stats.send_retries,
                "join_failures": self.stats.join_failures, "examples": self.stats.examples}
