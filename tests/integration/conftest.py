"""Bridges under test: a real bridge process-in-the-loop against the private homeserver."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from bridge.app import Bridge
from bridge.config import Config, parse_config
from bridge.core.models import RoomRef
from bridge.devserver.ports import free_port
from tests.conftest import Homeserver
from tests.integration.helpers import Agent, Visitor


def bridge_config(hs: Homeserver, db: Path, **server: Any) -> Config:
    port = free_port()
    return parse_config({
        "server": {"listen": f"127.0.0.1:{port}", "public_url": f"http://127.0.0.1:{port}",
                   "allowed_origins": ["https://shop.example.com"], **server},
        "storage": {"path": str(db)},
        "backend": {"type": "matrix"},
        "matrix": {"homeserver": hs.url, "user_id": hs.bot_id, "password": hs.bot_password},
        "agents": [
            {"id": "alice", "address": hs.agent_id, "name": "Alice"},
            {"id": "bob", "address": hs.agent2_id},
        ],
        "queues": [{"id": "support", "name": "Support", "agents": ["alice"],
                    "welcome": "Hi {visitor}, {agent} will be with you shortly."}],
    })


BridgeFactory = Callable[..., Awaitable[Bridge]]


@pytest.fixture
async def make_bridge(homeserver: Homeserver, tmp_path: Path) -> AsyncIterator[BridgeFactory]:
    """Starts bridges on one database (so a test can restart); stops what is still running."""
    running: list[Bridge] = []

    async def make(**server: Any) -> Bridge:
        bridge = Bridge(bridge_config(homeserver, tmp_path / "livechat.sqlite3", **server))
        await bridge.start()
        running.append(bridge)
        return bridge

    yield make
    for bridge in running:
        if bridge._runner is not None:
            await bridge.stop()


@pytest.fixture
async def agent(homeserver: Homeserver) -> AsyncIterator[Agent]:
    alice = await Agent(homeserver.url, homeserver.agent_id, homeserver.agent_token).start()
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


async def room_of(bridge: Bridge, conversation_id: str, timeout: float = 15.0) -> RoomRef:
    """The room the bridge opened for a conversation (waits for the backend to create it)."""
    async with asyncio.timeout(timeout):
        while True:
            conversation = bridge.store.conversation(conversation_id)
            if conversation is not None and conversation.room is not None:
                return conversation.room
            await asyncio.sleep(0.05)
