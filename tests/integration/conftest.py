"""Bridges under test against real messengers; shared scenarios run on Matrix and XMPP."""

from __future__ import annotations

import asyncio
import json
import os
import urllib.parse
import urllib.request
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest
from playwright.async_api import Browser, async_playwright

from bridge.app import Bridge
from bridge.backends.base import InboundEvent, RoomSpec
from bridge.backends.matrix import MatrixBackend
from bridge.config import Config, MatrixConfig, parse_config
from bridge.core.models import RoomRef
from bridge.devserver.ports import free_port
from bridge.store import Store, StoreBackendState
from tests.conftest import Homeserver, XmppServer, session_homeservers
from tests.integration.helpers import MatrixAgent, Visitor
from tests.integration.matrix_bot import Bot, StartBot
from tests.integration.smtp_server import start_server  # noqa: F401  (a fixture)
from tests.integration.xmpp_agent import XmppAgent

BACKENDS = ["matrix", "xmpp"]
TestAgent = MatrixAgent | XmppAgent


class Messenger(Protocol):
    """One real messenger network as the tests use it, whichever backend it is."""

    name: str

    def backend_config(self) -> dict[str, Any]: ...

    def address(self, who: str) -> str: ...

    async def agent(self, who: str, nick: str) -> TestAgent: ...

    def stop_server(self) -> None: ...

    def start_server(self) -> None: ...

    def destroy_room(self, room: str) -> None: ...

    @property
    def bot(self) -> str: ...


class MatrixMessenger:
    name = "matrix"

    def __init__(self, hs: Homeserver) -> None:
        self.hs = hs
        self._who = {"alice": (hs.agent_id, hs.agent_token), "bob": (hs.agent2_id, hs.agent2_token),
                     "eve": (hs.stranger_id, hs.stranger_token)}

    def backend_config(self) -> dict[str, Any]:
        return {"backend": {"type": "matrix"},
                "matrix": {"homeserver": self.hs.url, "user_id": self.hs.bot_id,
                           "password": self.hs.bot_password}}

    def address(self, who: str) -> str:
        return self._who[who][0]

    @property
    def bot(self) -> str:
        return self.hs.bot_id

    async def agent(self, who: str, nick: str) -> TestAgent:
        user_id, token = self._who[who]
        return await MatrixAgent(self.hs.url, user_id, token, self.hs.bot_id).start()

    def stop_server(self) -> None:
        self.hs.server.stop()

    def start_server(self) -> None:
        self.hs.server.start()

    def destroy_room(self, room: str) -> None:
        """What a homeserver admin does to a room: everyone is removed, the room closed."""
        request = urllib.request.Request(
            f"{self.hs.url}/_synapse/admin/v1/rooms/{urllib.parse.quote(room)}",
            method="DELETE", data=json.dumps({"purge": False}).encode(),
            headers={"Authorization": f"Bearer {self.hs.admin_token}",
                     "Content-Type": "application/json"},
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=30) as response:
            assert response.status == 200


class XmppMessenger:
    name = "xmpp"

    def __init__(self, xs: XmppServer) -> None:
        self.xs = xs

    def backend_config(self) -> dict[str, Any]:
        bot = self.xs.jid("support")
        return {"backend": {"type": "xmpp"},
                "xmpp": {"jid": bot, "password": self.xs.passwords[bot],
                         "muc_service": self.xs.server.muc_domain, "host": "127.0.0.1",
                         "port": self.xs.server.c2s_port, "plaintext": True}}

    def address(self, who: str) -> str:
        return self.xs.jid(who)

    @property
    def bot(self) -> str:
        return self.xs.jid("support")

    async def agent(self, who: str, nick: str) -> TestAgent:
        jid = self.xs.jid(who)
        return await XmppAgent(jid, self.xs.passwords[jid], self.xs.server.c2s_port,
                               self.xs.jid("support"), nick).start()

    def stop_server(self) -> None:
        self.xs.server.stop()

    def start_server(self) -> None:
        self.xs.server.start()

    def destroy_room(self, room: str) -> None:
        self.xs.server.destroy_room(room)


def synapse_admin(hs: Homeserver, method: str, path: str, body: dict[str, Any] | None = None
                  ) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{hs.url}{path}", method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {hs.admin_token}",
                 "Content-Type": "application/json"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=60) as response:
        answer: dict[str, Any] = json.loads(response.read())
        return answer


def shut_rooms(hs: Homeserver) -> None:
    """Every room on the homeserver that still has members is shut with the admin API (its
    members removed, as `destroy_room` does): the bot and the agents are in no room."""
    while True:
        listing = synapse_admin(hs, "GET", "/_synapse/admin/v1/rooms"
                                "?order_by=joined_local_members&dir=b&limit=100")
        busy = [r["room_id"] for r in listing["rooms"] if r["joined_local_members"] > 0]
        for room in busy:
            synapse_admin(hs, "DELETE", f"/_synapse/admin/v1/rooms/{urllib.parse.quote(room)}",
                          {"purge": False})
        if len(busy) < 100:
            return


@pytest.fixture(autouse=True)
def no_rooms_left_on_synapse() -> Iterator[None]:
    """After each test, once its bridges are stopped and its clients closed (this fixture is
    set up first, so torn down last), the rooms it made on the session's Synapse are shut.
    No test uses another test's rooms, and every room the bot and the agents stay in makes
    each later initial sync slower (about 9 ms a room: a bridge's start, an agent's first
    sync), which over the whole suite came to minutes."""
    yield
    for hs in session_homeservers:
        if not hs.server.running:
            continue
        try:
            shut_rooms(hs)
        except OSError as exc:  # an HTTPError too; the next test's teardown tries again
            warnings.warn(f"rooms on Synapse not shut: {exc!r}", stacklevel=1)


@pytest.fixture(params=BACKENDS)
def messenger(request: pytest.FixtureRequest) -> Messenger:
    if request.param == "matrix":
        return MatrixMessenger(request.getfixturevalue("homeserver"))
    return XmppMessenger(request.getfixturevalue("xmpp_server"))


@pytest.fixture
def matrix(homeserver: Homeserver) -> Messenger:
    """For tests that are about the visitor side only: one backend is enough."""
    return MatrixMessenger(homeserver)


@pytest.fixture
def xmpp(xmpp_server: XmppServer) -> Messenger:
    """For tests of what only XMPP does."""
    return XmppMessenger(xmpp_server)


def bridge_config(messenger: Messenger, db: Path, smtp: dict[str, Any] | None = None,
                  queues: list[dict[str, Any]] | None = None, identity: str | None = None,
                  agents: dict[str, dict[str, Any]] | None = None,
                  widget: dict[str, Any] | None = None, files: dict[str, Any] | None = None,
                  **server: Any) -> Config:
    """The test bridge's config; `agents` adds keys to agents by id ({"alice": {...}})."""
    return parse_config(bridge_settings(messenger, db, smtp, queues, identity, agents, widget,
                                        files, **server))


def bridge_settings(messenger: Messenger, db: Path, smtp: dict[str, Any] | None = None,
                    queues: list[dict[str, Any]] | None = None, identity: str | None = None,
                    agents: dict[str, dict[str, Any]] | None = None,
                    widget: dict[str, Any] | None = None, files: dict[str, Any] | None = None,
                    **server: Any) -> dict[str, Any]:
    """The test bridge's config as the TOML file's tables."""
    port = free_port()
    extra: dict[str, Any] = {"smtp": smtp} if smtp else {}
    if files is not None:
        extra["files"] = files
    if identity:
        extra["identity"] = {"secret": identity}
    if queues is not None:
        extra["queues"] = queues
    if widget is not None:
        extra["widget"] = widget
    return {
        "server": {"listen": f"127.0.0.1:{port}", "public_url": f"http://127.0.0.1:{port}",
                   "allowed_origins": ["https://shop.example.com"], **server},
        "storage": {"path": str(db)},
        **messenger.backend_config(),
        "agents": [
            {"id": "alice", "address": messenger.address("alice"), "name": "Alice",
             **(agents or {}).get("alice", {})},
            {"id": "bob", "address": messenger.address("bob"), **(agents or {}).get("bob", {})},
        ],
        "queues": [{"id": "support", "name": "Support", "agents": ["alice"],
                    "welcome": "Hi {visitor}, {agent} will be with you shortly."},
                   {"id": "sales", "name": "Sales", "agents": ["bob"]}],
        **extra,
        "canned": {"greeting": "Hello {visitor}, I'm {agent} from {queue}.",
                   "de": {"greeting": "Hallo {visitor}, hier ist {agent}."}},
    }


BridgeFactory = Callable[..., Awaitable[Bridge]]


def _bridges(messenger_fixture: str) -> Any:
    @pytest.fixture
    async def make(request: pytest.FixtureRequest, tmp_path: Path
                   ) -> AsyncIterator[BridgeFactory]:
        """Starts bridges on one database (a test may restart); stops what still runs."""
        messenger: Messenger = request.getfixturevalue(messenger_fixture)
        running: list[Bridge] = []

        async def start(smtp: dict[str, Any] | None = None,
                        queues: list[dict[str, Any]] | None = None,
                        identity: str | None = None,
                        agents: dict[str, dict[str, Any]] | None = None,
                        widget: dict[str, Any] | None = None,
                        files: dict[str, Any] | None = None, db: str = "livechat.sqlite3",
                        **server: Any) -> Bridge:
            # `db`: another file for a second bridge of another network in the same test.
            bridge = Bridge(bridge_config(messenger, tmp_path / db, smtp, queues, identity,
                                          agents, widget, files, **server))
            await bridge.start()
            running.append(bridge)
            return bridge

        yield start
        for bridge in running:
            if bridge._runner is not None:
                await bridge.stop()

    return make


make_bridge = _bridges("messenger")
make_matrix_bridge = _bridges("matrix")
make_xmpp_bridge = _bridges("xmpp")


@pytest.fixture
async def agent(messenger: Messenger) -> AsyncIterator[TestAgent]:
    alice = await messenger.agent("alice", "Alice")
    yield alice
    await alice.close()


@pytest.fixture
async def matrix_agent(matrix: Messenger) -> AsyncIterator[TestAgent]:
    alice = await matrix.agent("alice", "Alice")
    yield alice
    await alice.close()


@pytest.fixture
async def xmpp_agent(xmpp: Messenger) -> AsyncIterator[TestAgent]:
    alice = await xmpp.agent("alice", "Alice")
    yield alice
    await alice.close()


@pytest.fixture
async def visitors() -> AsyncIterator[Callable[..., Awaitable[Visitor]]]:
    opened: list[Visitor] = []

    async def connect(base_url: str, origin: str | None = None) -> Visitor:
        visitor = await Visitor(base_url, origin).connect()
        opened.append(visitor)
        return visitor

    yield connect
    for visitor in opened:
        await visitor.close()


async def chat_with_agent(make_bridge, visitors, agent: TestAgent, **start: str
                          ) -> tuple[Bridge, Visitor, dict[str, Any], RoomRef]:
    """A started bridge, a visitor in a chat, and `agent` joined to its room (the visitor has
    seen the join): (bridge, visitor, the `started` frame, room)."""
    bridge = await make_bridge()
    visitor = await visitors(bridge.base_url)
    started = await visitor.start(**start)
    room = await room_of(bridge, started["conversation"])
    await agent.join(room)
    await visitor.wait("agent", lambda f: f["event"] == "joined")
    return bridge, visitor, started, room


async def room_of(bridge: Bridge, conversation_id: str, timeout: float = 15.0) -> RoomRef:
    """The room the bridge opened for a conversation (waits for the backend to create it)."""
    async with asyncio.timeout(timeout):
        while True:
            conversation = bridge.store.conversation(conversation_id)
            if conversation is not None and conversation.room is not None:
                return conversation.room
            await asyncio.sleep(0.05)


CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
async def browser(require_chromium: str) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=require_chromium, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


# -- the Matrix backend alone (tests/integration/matrix_bot.py) -----------------------------

@pytest.fixture
async def start_bot(homeserver: Homeserver) -> AsyncIterator[StartBot]:
    """Starts the Matrix backend as the bot with its state in the store at a path (a fresh path
    is a first start: the first sync skips the history); all stopped at the end."""
    started: list[Bot] = []

    async def start(db: Path) -> Bot:
        store = Store(db)
        state = StoreBackendState(store, "matrix")
        backend = MatrixBackend(MatrixConfig(homeserver=homeserver.url,
                                             user_id=homeserver.bot_id,
                                             password=homeserver.bot_password), state)
        bot = Bot(backend, store, state)

        async def inbound(event: InboundEvent) -> None:
            bot.events.append(event)

        started.append(bot)
        await backend.start(inbound)
        return bot

    yield start
    for bot in started:
        await bot.stop()


@pytest.fixture
async def bot(start_bot: StartBot, tmp_path: Path) -> Bot:
    """The Matrix backend alone, logged in as the bot, its events recorded."""
    return await start_bot(tmp_path / "livechat.sqlite3")


@pytest.fixture
async def room(bot: Bot, matrix_agent: TestAgent, homeserver: Homeserver) -> RoomRef:
    """A conversation room `bot` opened (Synapse's default room version), the agent in."""
    room = await bot.backend.open_room(RoomSpec(
        name="💬 Anna · Support", topic="", visitor_nick="Anna (visitor)",
        invite=(homeserver.agent_id,), key=os.urandom(4).hex()))
    await matrix_agent.join(room)
    return room
