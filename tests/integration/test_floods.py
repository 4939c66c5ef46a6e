"""Floods from one address are refused per address ([limits]); other visitors go on as usual.

A real bridge on a real homeserver, visitors on real WebSockets. The loopback network gives
the tests several client addresses: 127.0.0.1 and 127.0.0.2 are different peers.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bridge.app import Bridge
from bridge.config import parse_config
from tests.integration.conftest import Messenger, bridge_settings
from tests.integration.helpers import Frame, Visitor
from tests.integration.smtp_server import StartServer

OTHER = "127.0.0.2"  # a second client address on the loopback network
START = {"type": "start", "visitor": {"name": "Flo", "email": "flo@example.com"}}

StartBridge = Callable[..., Awaitable[Bridge]]
Connect = Callable[..., Awaitable["AddressedVisitor"]]


class AddressedVisitor(Visitor):
    """A visitor connecting from a chosen loopback address, optionally through a 'proxy'
    (an X-Forwarded-For header it sets itself)."""

    def __init__(self, base_url: str, local: str, forwarded: str | None) -> None:
        super().__init__(base_url)
        self.local = local
        self.forwarded = forwarded

    async def connect(self) -> AddressedVisitor:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(local_addr=(self.local, 0)))
        try:
            self.ws = await self.session.ws_connect(f"{self.base_url}/v1/ws",
                                                    headers=forwarded(self.forwarded))
        except aiohttp.ClientError:
            await self.session.close()
            raise
        self._reader = asyncio.create_task(self._read())
        return self


def forwarded(value: str | None) -> dict[str, str]:
    return {"X-Forwarded-For": value} if value else {}


@pytest.fixture
async def start_bridge(matrix: Messenger, tmp_path: Path) -> AsyncIterator[StartBridge]:
    running: list[Bridge] = []

    async def start(limits: dict[str, Any] | None = None, smtp: dict[str, Any] | None = None,
                    **server: Any) -> Bridge:
        settings = bridge_settings(matrix, tmp_path / "livechat.sqlite3", smtp, **server)
        if limits is not None:
            settings["limits"] = limits
        bridge = Bridge(parse_config(settings))
        await bridge.start()
        running.append(bridge)
        return bridge

    yield start
    for bridge in running:
        await bridge.stop()


@pytest.fixture
async def clients() -> AsyncIterator[Connect]:
    opened: list[AddressedVisitor] = []

    async def connect(base_url: str, local: str = "127.0.0.1",
                      forwarded: str | None = None) -> AddressedVisitor:
        visitor = AddressedVisitor(base_url, local, forwarded)
        opened.append(visitor)
        return await visitor.connect()

    yield connect
    for visitor in opened:
        await visitor.close()


async def upgrade(base_url: str, local: str = "127.0.0.1", forwarded_for: str | None = None
                  ) -> tuple[int, Any]:
    """A raw WebSocket upgrade request: its status and, when refused, its JSON body."""
    headers = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
               "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
               **forwarded(forwarded_for)}
    async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(local_addr=(local, 0))) as session, \
            session.get(f"{base_url}/v1/ws", headers=headers) as response:
        body = await response.json() if response.status != 101 else None
        return response.status, body


async def answers(visitor: Visitor, count: int, timeout: float = 20.0) -> list[Frame]:
    """The first `count` answers to `start` frames (`started` or `error`)."""
    async with asyncio.timeout(timeout):
        while len(found := [f for f in visitor.frames
                            if f.get("type") in ("started", "error")]) < count:
            await asyncio.sleep(0.05)
    return found[:count]


async def test_a_burst_of_starts_from_one_address_opens_only_the_limit(
        start_bridge: StartBridge, clients: Connect) -> None:
    bridge = await start_bridge()  # the defaults: 10 new chats per 10 minutes
    sockets = [await clients(bridge.base_url) for _ in range(8)]
    await asyncio.gather(*(v.send(START) for _ in range(5) for v in sockets))  # 40 at once
    replies = [f for v in sockets for f in await answers(v, 5)]
    started = [f for f in replies if f["type"] == "started"]
    refused = [f for f in replies if f["type"] == "error"]
    assert len(started) == 10
    assert len(refused) == 30
    assert {f["code"] for f in refused} == {"too_many_chats"}
    assert "try again in 10 min" in refused[0]["message"]
    # Nothing was created for the refused ones: only ten conversations, so ten rooms.
    conversations = bridge.store.open_conversations()
    assert sorted(c.id for c in conversations) == sorted(f["conversation"] for f in started)
    # Another address is not affected.
    other = await clients(bridge.base_url, local=OTHER)
    assert (await other.start())["type"] == "started"
    assert len(bridge.store.open_conversations()) == 11
    # Nor is what the first address already has: its sockets still answer.
    await sockets[0].send({"type": "ping"})
    await sockets[0].wait("pong")


async def test_a_refused_start_does_not_count(start_bridge: StartBridge,
                                              clients: Connect) -> None:
    bridge = await start_bridge(limits={"chats_per_address": 1})
    visitor = await clients(bridge.base_url)
    await visitor.send(START | {"topic": "no-such-queue"})
    assert (await visitor.wait("error"))["code"] == "unknown_topic"
    await visitor.start()
    before = len(visitor.frames)
    await visitor.send(START)
    assert (await visitor.wait("error", start=before))["code"] == "too_many_chats"
    assert len(bridge.store.open_conversations()) == 1


async def test_sockets_over_the_limit_are_refused_while_another_address_connects(
        start_bridge: StartBridge, clients: Connect) -> None:
    bridge = await start_bridge(limits={"sockets_per_address": 3})
    held = [await clients(bridge.base_url) for _ in range(3)]
    status, body = await upgrade(bridge.base_url)
    assert status == 429
    assert body["error"]["code"] == "too_many_sockets"
    other = await clients(bridge.base_url, local=OTHER)
    await other.start()
    for visitor in held:
        await visitor.send({"type": "ping"})
        await visitor.wait("pong")
    # A closed socket frees its place.
    await held[0].close()
    async with asyncio.timeout(10):
        while (await upgrade(bridge.base_url))[0] != 101:
            await asyncio.sleep(0.05)


async def test_forwarded_for_from_an_untrusted_peer_is_ignored(
        start_bridge: StartBridge, clients: Connect) -> None:
    bridge = await start_bridge(limits={"sockets_per_address": 2, "chats_per_address": 1},
                                trusted_proxies=["10.0.0.0/8"])  # the peer is not in it
    first = await clients(bridge.base_url, forwarded="198.51.100.1")
    second = await clients(bridge.base_url, forwarded="198.51.100.2")
    status, body = await upgrade(bridge.base_url, forwarded_for="198.51.100.3")
    assert (status, body["error"]["code"]) == (429, "too_many_sockets")
    await first.start()
    await second.send(START)
    assert (await second.wait("error"))["code"] == "too_many_chats"


async def test_forwarded_for_from_a_trusted_proxy_is_honoured(
        start_bridge: StartBridge, clients: Connect) -> None:
    bridge = await start_bridge(limits={"sockets_per_address": 2, "chats_per_address": 1},
                                trusted_proxies=["127.0.0.1"])
    a1 = await clients(bridge.base_url, forwarded="198.51.100.1")
    a2 = await clients(bridge.base_url, forwarded="198.51.100.1")
    status, body = await upgrade(bridge.base_url, forwarded_for="198.51.100.1")
    assert (status, body["error"]["code"]) == (429, "too_many_sockets")
    # What a client writes left of the address our proxy appended is not believed.
    status, _ = await upgrade(bridge.base_url, forwarded_for="198.51.100.2, 198.51.100.1")
    assert status == 429
    b = await clients(bridge.base_url, forwarded="198.51.100.2")
    proxy_itself = await clients(bridge.base_url)  # no header: the proxy's own address
    await a1.start()
    await a2.send(START)
    assert (await a2.wait("error"))["code"] == "too_many_chats"
    await b.start()
    await proxy_itself.start()
    assert len(bridge.store.open_conversations()) == 3
    # Offline messages are counted by the same forwarded address.
    message = {"name": "Flo", "email": "flo@example.com", "text": "call me"}
    async with aiohttp.ClientSession() as session, session.post(
            f"{bridge.base_url}/v1/offline", json=message,
            headers=forwarded("198.51.100.7")) as response:
        assert response.status == 201
    assert bridge.store.count_tickets(ip="198.51.100.7", since=0) == 1


async def test_transcript_emails_are_limited_per_address(
        start_bridge: StartBridge, clients: Connect, start_server: StartServer) -> None:
    smtp = start_server()
    bridge = await start_bridge(
        limits={"transcripts_per_hour": 2},
        smtp={"host": "127.0.0.1", "port": smtp.port, "starttls": False,
              "from": "Support <support@example.com>"})
    visitor = await clients(bridge.base_url)
    await visitor.start(email="flo@example.com")
    for _ in range(2):
        before = len(visitor.frames)
        await visitor.send({"type": "transcript", "email": "flo@example.com"})
        await visitor.wait("transcript", start=before)
    await visitor.send({"type": "transcript", "email": "flo@example.com"})
    assert (await visitor.wait("error"))["code"] == "too_many_mails"
    other = await clients(bridge.base_url, local=OTHER)
    await other.start(email="other@example.com")
    await other.send({"type": "transcript", "email": "other@example.com"})
    await other.wait("transcript")
    assert [r.envelope.rcpt_tos for r in smtp.handler.received] == [
        ["flo@example.com"], ["flo@example.com"], ["other@example.com"]]
