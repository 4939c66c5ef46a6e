"""Files both ways on a real Prosody, the XMPP backend driven directly: a visitor's file
uploaded through mod_http_file_share (XEP-0363) and shown to the agent's client by its
OOB URL (XEP-0066); an agent's upload arriving as an AgentFile and fetched; a server
without an upload service getting the bridge's link."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from slixmpp import JID, Message

from bridge.backends.base import (
    AgentFile,
    AgentMessage,
    FileRefused,
    InboundEvent,
    OutgoingFile,
    RoomSpec,
)
from bridge.backends.xmpp import XmppBackend
from bridge.backends.xmpp.files import PREFIX_KEY, MemoryState, upload_key
from bridge.backends.xmpp.oob import OOB_URL
from bridge.config import XmppConfig
from bridge.core.models import RoomRef
from bridge.devserver.prosody import ProsodyServer, prepare_prosody
from tests.conftest import XmppServer
from tests.integration.xmpp_agent import XmppAgent

LINK = "http://127.0.0.1:9/v1/files/0123456789abcdef0123456789abcdef?key=k"


@dataclass
class Bot:
    """A started backend and the events it delivered."""

    backend: XmppBackend
    state: MemoryState
    events: list[InboundEvent] = field(default_factory=list)

    async def event(self, check: Callable[[InboundEvent], bool],
                    timeout: float = 15.0) -> InboundEvent:
        async with asyncio.timeout(timeout):
            while True:
                found = [event for event in self.events if check(event)]
                if found:
                    return found[0]
                await asyncio.sleep(0.02)


BotFactory = Callable[..., Awaitable[Bot]]


def config_for(server: ProsodyServer, password: str, **extra: Any) -> XmppConfig:
    return XmppConfig(jid=f"support@{server.domain}", password=password,
                      muc_service=server.muc_domain, host="127.0.0.1", port=server.c2s_port,
                      plaintext=True, **extra)


@pytest.fixture
async def bots() -> AsyncIterator[BotFactory]:
    """Starts backends (one at a time: they share the bot's account); stops them all."""
    started: list[XmppBackend] = []

    async def start(config: XmppConfig, state: MemoryState | None = None,
                    since: float | None = None) -> Bot:
        state = state if state is not None else MemoryState()
        backend = XmppBackend(config, ("alice@localhost",),
                              catch_up_since=lambda _room: since, state=state)
        bot = Bot(backend, state)

        async def inbound(event: InboundEvent) -> None:
            bot.events.append(event)

        await backend.start(inbound)
        started.append(backend)
        return bot

    yield start
    for backend in started:
        await backend.stop()


def spec_for(agent: XmppAgent) -> RoomSpec:
    return RoomSpec(name="Files", topic="", visitor_nick="Vera (visitor)",
                    invite=(agent.address,), key=f"files-{secrets.token_hex(6)}")


async def chat(bot: Bot, agent: XmppAgent) -> tuple[RoomRef, RoomSpec]:
    spec = spec_for(agent)
    room = await bot.backend.open_room(spec)
    await agent.join(room)
    return room, spec


def visitor_file(tmp_path: Path, size: int = 300_000, name: str = "screen shot ü.png",
                 **changes: Any) -> tuple[OutgoingFile, bytes]:
    content = os.urandom(size)
    path = tmp_path / f"stored-{secrets.token_hex(4)}"
    path.write_bytes(content)
    file = OutgoingFile(name=name, mimetype="image/png", size=size, width=10, height=10,
                        path=path, link=LINK)
    return replace(file, **changes), content


class OobLines:
    """What the agent's client saw of lines with an OOB URL: (room, nick, body, url, id)."""

    def __init__(self, agent: XmppAgent) -> None:
        self.seen: list[tuple[str, str, str, str, str]] = []
        agent.client.add_event_handler("groupchat_message", self._on_line)

    def _on_line(self, message: Message) -> None:
        url = message.xml.findtext(OOB_URL)
        if url:
            self.seen.append((message["from"].bare, message["from"].resource,
                              str(message["body"]), url, message["stanza_id"]["id"]))

    async def wait(self, room: str, count: int = 1, timeout: float = 15.0
                   ) -> list[tuple[str, str, str, str, str]]:
        async with asyncio.timeout(timeout):
            while len(lines := [line for line in self.seen if line[0] == room]) < count:
                await asyncio.sleep(0.02)
        return lines


async def http_get(url: str) -> tuple[int, bytes, str]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, await response.read(), response.content_type


def send_link(agent: XmppAgent, room: str, url: str) -> None:
    """A line with an OOB URL that is no upload of the agent's (any link a client sends
    that way)."""
    message = agent.client.make_message(mto=JID(room), mbody=url, mtype="groupchat")
    message["oob"]["url"] = url
    message.send()


async def fetch_all(bot: Bot, url: str, max_bytes: int) -> bytes:
    return b"".join([chunk async for chunk in bot.backend.fetch_file(url, max_bytes)])


# -- a visitor's file --------------------------------------------------------------------

@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "slixmpp"])
async def test_a_visitor_file_is_uploaded_and_shown_by_its_oob_url(
        xmpp_server: XmppServer, xmpp_agent: XmppAgent, bots: BotFactory,
        tmp_path: Path, fast_path: bool) -> None:
    server = xmpp_server.server
    bot = await bots(config_for(server, xmpp_server.passwords["support@localhost"]))
    assert bot.backend._fast is not None and bot.backend._fast.enabled
    bot.backend._fast.enabled = fast_path  # off: the line goes through slixmpp's queue
    oob = OobLines(xmpp_agent)
    room, _spec = await chat(bot, xmpp_agent)
    file, content = visitor_file(tmp_path)

    event_id = await bot.backend.post_file(room, file, key="file-1")

    [(_room, nick, body, url, stanza_id)] = await oob.wait(room)
    assert nick == "Vera (visitor)"
    assert body == url  # clients without OOB show the link
    assert server.upload_url is not None and url.startswith(server.upload_url)
    assert url.endswith("/screen%20shot%20%C3%BC.png")
    assert event_id == stanza_id
    assert await http_get(url) == (200, content, "image/png")
    # Remembered for a retry, and the download prefix learned for agents' files.
    assert bot.state.get(upload_key("file-1")) == url
    assert bot.state.get(PREFIX_KEY) == server.upload_url


async def test_the_same_key_uploads_once_and_shows_once(
        xmpp_server: XmppServer, xmpp_agent: XmppAgent, bots: BotFactory,
        tmp_path: Path) -> None:
    server = xmpp_server.server
    config = config_for(server, xmpp_server.passwords["support@localhost"])
    first = await bots(config)
    oob = OobLines(xmpp_agent)
    room, spec = await chat(first, xmpp_agent)
    file, _content = visitor_file(tmp_path)
    stored_before = server.uploaded_files()
    since = time.time()

    event_id = await first.backend.post_file(room, file, key="once")
    assert await first.backend.post_file(room, file, key="once") == event_id
    # An attempt that ended after its upload, before its line was sent (a crash).
    uploaded = await first.backend._files.url_for(room, file, "crashed")
    # A restart: the room's archive shows the first line was delivered, the state that
    # both files were uploaded; neither happens again.
    await first.backend.stop()
    second = await bots(config, state=first.state, since=since)
    await second.backend.attach_rooms({room: spec})
    assert await second.backend.post_file(room, file, key="once") == event_id
    await second.backend.post_file(room, file, key="crashed")

    await asyncio.sleep(0.5)  # a doubled line would have arrived by now
    lines = await oob.wait(room, 2)
    assert len(lines) == 2 and lines[1][3] == uploaded
    assert server.uploaded_files() == stored_before + 2


async def test_a_file_over_the_service_limit_goes_as_the_bridge_link(
        xmpp_server: XmppServer, xmpp_agent: XmppAgent, bots: BotFactory,
        tmp_path: Path) -> None:
    server = xmpp_server.server
    bot = await bots(config_for(server, xmpp_server.passwords["support@localhost"]))
    oob = OobLines(xmpp_agent)
    room, _spec = await chat(bot, xmpp_agent)
    # Claimed larger than the service takes (64 MiB): refused before a byte is read.
    file, _content = visitor_file(tmp_path, size=1000, mimetype="application/pdf")
    stored_before = server.uploaded_files()

    await bot.backend.post_file(room, replace(file, size=65 * 2**20), key="too-big")

    [(_room, _nick, body, url, _id)] = await oob.wait(room)
    assert body == url == LINK
    assert server.uploaded_files() == stored_before


# -- an agent's file ---------------------------------------------------------------------

async def test_an_agent_upload_arrives_as_a_file_and_is_fetched(
        xmpp_server: XmppServer, xmpp_agent: XmppAgent, bots: BotFactory,
        tmp_path: Path) -> None:
    server = xmpp_server.server
    config = config_for(server, xmpp_server.passwords["support@localhost"])
    bot = await bots(config)
    room, spec = await chat(bot, xmpp_agent)
    # The bot's own upload shows where the service's files are downloaded from.
    file, _content = visitor_file(tmp_path, size=1000)
    await bot.backend.post_file(room, file, key="learn")
    since = time.time()

    content = os.urandom(200_000)
    await xmpp_agent.send_file(room, "Handbuch für Sie.pdf", content, "application/pdf")

    event = await bot.event(lambda e: isinstance(e, AgentFile))
    assert isinstance(event, AgentFile)
    url = event.url
    assert server.upload_url is not None and url.startswith(server.upload_url)
    await xmpp_agent.until(lambda: (room, url) in xmpp_agent.archive_ids)
    assert replace(event, ts=0.0) == AgentFile(
        room=room, sender="alice@localhost", sender_name="Alice", name="Handbuch für Sie.pdf",
        url=url, mimetype="", size=None, event_id=xmpp_agent.archive_ids[(room, url)],
        ts=0.0)
    assert not [e for e in bot.events if isinstance(e, AgentMessage) and e.text == url]
    assert await fetch_all(bot, url, len(content)) == content
    # Over the cap: refused on the announced length, before the body is read.
    with pytest.raises(FileRefused, match="more than"):
        await fetch_all(bot, url, len(content) - 1)

    # The same stanza read back from the archive after a restart is the same file.
    await bot.backend.stop()
    again = await bots(config, state=bot.state, since=since - 5)
    await again.backend.attach_rooms({room: spec})
    archived = await again.event(lambda e: isinstance(e, AgentFile))
    assert replace(archived, ts=event.ts) == event


async def test_with_the_configured_prefix_only_its_urls_are_files(
        xmpp_server: XmppServer, xmpp_agent: XmppAgent, bots: BotFactory,
        tmp_path: Path) -> None:
    server = xmpp_server.server
    assert server.upload_url is not None
    bot = await bots(config_for(server, xmpp_server.passwords["support@localhost"],
                                upload_url=server.upload_url))
    room, _spec = await chat(bot, xmpp_agent)
    photo = b"\xff\xd8\xff" + os.urandom(5000)
    elsewhere = "https://example.org/file_share/abc/photo.jpg"
    same_host = f"http://127.0.0.1:{server.http_port}/other/abc/photo.jpg"
    for link in (elsewhere, same_host):
        send_link(xmpp_agent, room, link)
    await xmpp_agent.send_file(room, "photo.jpg", photo, "image/jpeg")

    file = await bot.event(lambda e: isinstance(e, AgentFile))
    assert isinstance(file, AgentFile) and file.name == "photo.jpg"
    assert file.url.startswith(server.upload_url)
    texts = [e.text for e in bot.events if isinstance(e, AgentMessage)]
    assert texts == [elsewhere, same_host]
    assert await fetch_all(bot, file.url, 10_000) == photo


async def test_fetch_refuses_what_is_not_the_services(
        xmpp_server: XmppServer, bots: BotFactory) -> None:
    server = xmpp_server.server
    assert server.upload_url is not None
    bot = await bots(config_for(server, xmpp_server.passwords["support@localhost"],
                                upload_url=server.upload_url))
    for url in (f"http://127.0.0.1:{server.http_port}/other/x",
                f"http://127.0.0.1:{server.c2s_port}/file_share/x/y",
                "http://169.254.169.254/latest/meta-data/",
                f"{server.upload_url}../http-bind",
                f"file://{server.config_path}",
                "gopher://127.0.0.1/"):
        with pytest.raises(FileRefused, match="not an address"):
            await fetch_all(bot, url, 1000)
    # Under the prefix but no such file: gone.
    with pytest.raises(FileRefused, match="gone"):
        await fetch_all(bot, f"{server.upload_url}nosuchslot/a.png", 1000)


# -- a server without an upload service --------------------------------------------------

@pytest.fixture
def server_without_upload(require_prosody: None, tmp_path: Path) -> Iterator[ProsodyServer]:
    server = prepare_prosody(tmp_path / "prosody-bare", upload=False)
    server.start()
    try:
        for name in ("support", "alice"):
            server.register(name, f"{name}-pw-1")
        yield server
    finally:
        server.stop()


async def test_without_an_upload_service_the_bridge_link_is_posted(
        server_without_upload: ProsodyServer, bots: BotFactory, tmp_path: Path) -> None:
    server = server_without_upload
    bot = await bots(config_for(server, "support-pw-1"))
    alice = await XmppAgent("alice@localhost", "alice-pw-1", server.c2s_port,
                            "support@localhost", "Alice").start()
    try:
        oob = OobLines(alice)
        room, _spec = await chat(bot, alice)
        file, _content = visitor_file(tmp_path)
        event_id = await bot.backend.post_file(room, file, key="linked")
        [(_room, _nick, body, url, stanza_id)] = await oob.wait(room)
        assert body == url == LINK
        assert event_id == stanza_id
        assert bot.state.get(upload_key("linked")) == LINK
        assert bot.state.get(PREFIX_KEY) is None
        # Nothing is an upload service's file here: an agent's link stays text.
        send_link(alice, room, "http://127.0.0.1:1/file_share/a/b.png")
        message = await bot.event(lambda e: isinstance(e, AgentMessage))
        assert isinstance(message, AgentMessage)
    finally:
        await alice.close()
