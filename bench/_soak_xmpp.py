"""The soak benchmark's XMPP side: accounts on the private Prosody, and the agent on slixmpp,
joined to every group chat the bot invites it to (bench/soak.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from slixmpp import JID, ClientXMPP, Message
from slixmpp.exceptions import PresenceError

from bridge.devserver.prosody import ProsodyServer

JOIN_TIMEOUT_S = 60.0
LOGIN_TIMEOUT_S = 30.0
NICK = "Alice"

RoomLine = Callable[[str, str, bool, float], None]  # room, text, sent by me, when


@dataclass(frozen=True)
class XmppAccounts:
    port: int
    muc_service: str
    bot_jid: str
    bot_password: str
    agent_jid: str
    agent_password: str


def register_xmpp(server: ProsodyServer) -> XmppAccounts:
    return XmppAccounts(port=server.c2s_port, muc_service=server.muc_domain,
                        bot_jid=server.register("support", "bot-pw-1"), bot_password="bot-pw-1",
                        agent_jid=server.register("alice", "alice-pw-1"),
                        agent_password="alice-pw-1")


def xmpp_backend_toml(accounts: XmppAccounts) -> list[str]:
    q = json.dumps
    return ['type = "xmpp"', "[xmpp]", f"jid = {q(accounts.bot_jid)}",
            f"password = {q(accounts.bot_password)}", f"muc_service = {q(accounts.muc_service)}",
            'host = "127.0.0.1"', f"port = {accounts.port}", "plaintext = true"]


def prosody_version() -> str:
    result = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "prosody"],
                            capture_output=True, text=True, check=False)
    return result.stdout.strip() or "unknown"


class AgentGone(RuntimeError):
    """The agent's client lost its stream."""


@dataclass
class XmppStats:
    disconnects: int = 0
    join_failures: int = 0
    examples: list[str] = field(default_factory=list)

    def note(self, what: str) -> None:
        if len(self.examples) < 10:
            self.examples.append(what)


class XmppAgent:
    """One slixmpp client (plaintext, SCRAM, no stream management) in every soak room."""

    name = "xmpp"

    def __init__(self, accounts: XmppAccounts, on_line: RoomLine, joins_at_once: int) -> None:
        self.accounts = accounts
        self.on_line = on_line
        self.stats = XmppStats()
        self.client = ClientXMPP(accounts.agent_jid, accounts.agent_password)
        for plugin in ("xep_0030", "xep_0045", "xep_0203", "xep_0249"):
            self.client.register_plugin(plugin)
        self.client.enable_direct_tls = False
        self.client.enable_starttls = False
        self.client.enable_plaintext = True
        self.client.plugin["feature_mechanisms"].unencrypted_scram = True
        # The bot asks for the agent's presence: without it the agent counts as away and
        # no chat would be routed to it.
        self.client.auto_authorize = True
        self.client.auto_subscribe = True
        self._joins = asyncio.Semaphore(joins_at_once)
        self._rooms: dict[str, asyncio.Future[str]] = {}  # conversation id -> room, once joined
        self._session: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self.client.add_event_handler("session_start", self._on_session_start)
        self.client.add_event_handler("failed_auth", self._on_failed_auth)
        self.client.add_event_handler("disconnected", self._on_disconnected)
        self.client.add_event_handler("groupchat_direct_invite", self._on_invite)
        self.client.add_event_handler("groupchat_message", self._on_groupchat)

    def room_key(self, _index: int, conversation_id: str) -> str:
        """The bot names the group chat after the conversation: `lc-<id>@service`."""
        return conversation_id

    async def start(self) -> None:
        self.client.connect("127.0.0.1", self.accounts.port)
        async with asyncio.timeout(LOGIN_TIMEOUT_S):
            await self._session

    async def room_for(self, key: str, timeout: float) -> str:
        future = self._rooms.setdefault(key, asyncio.get_running_loop().create_future())
        async with asyncio.timeout(timeout):
            return await asyncio.shield(future)

    # Plain functions, not coroutines: slixmpp calls them while it parses the stanza, so the
    # arrival is stamped then, not one loop iteration later.
    def _on_session_start(self, _event: Any) -> None:
        self.client.send_presence()
        if not self._session.done():
            self._session.set_result(None)

    def _on_failed_auth(self, _event: Any) -> None:
        if not self._session.done():
            self._session.set_exception(AgentGone(f"{self.accounts.agent_jid}: login refused"))

    def _on_disconnected(self, reason: Any) -> None:
        if self._closing:
            return
        self.stats.disconnects += 1
        self.stats.note(f"disconnected: {reason}")
        if not self._session.done():
            self._session.set_exception(AgentGone(f"disconnected ({reason})"))

    def _on_invite(self, message: Message) -> None:
        room = JID(message["groupchat_invite"]["jid"]).bare
        # `lc-<conversation id>`, with a suffix when the bridge had to open a second room.
        key = room.split("@")[0].removeprefix("lc-").split("-")[0]
        task = asyncio.create_task(self._join(room, key), name=f"join-{room}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _join(self, room: str, key: str) -> None:
        future = self._rooms.setdefault(key, asyncio.get_running_loop().create_future())
        if future.done():
            return
        try:
            async with self._joins:
                await self.client.plugin["xep_0045"].join_muc_wait(
                    JID(room), NICK, maxstanzas=0, timeout=JOIN_TIMEOUT_S)
        except (TimeoutError, PresenceError) as exc:
            self.stats.join_failures += 1
            self.stats.note(f"join {room} failed: {exc!r}")
            future.set_exception(AgentGone(f"join {room} failed: {exc!r}"))
            future.exception()
            return
        future.set_result(room)

    def _on_groupchat(self, message: Message) -> None:
        at = time.perf_counter()
        if message["type"] != "groupchat" or message.get_plugin("delay", check=True):
            return  # history replayed on a join
        sender = message["from"]
        self.on_line(sender.bare, str(message["body"]), sender.resource == NICK, at)

    async def send(self, room: str, text: str) -> None:
        """Handed to the stream; the room's reflection (to `on_line`, mine=True) confirms it."""
        if not self.client.is_connected():
            raise AgentGone("the agent is not connected")
        self.client.make_message(mto=JID(room), mbody=text, mtype="groupchat").send()

    async def close(self) -> None:
        self._closing = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.client.transport is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.client.disconnect(wait=1.0), 3.0)
        self.client.abort()

    def report(self) -> dict[str, Any]:
        return {"disconnects": self.stats.disconnects,
                "join_failures": self.stats.join_failures, "examples": self.stats.examples}
