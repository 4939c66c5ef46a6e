"""The visitors of the soak benchmark: one aiohttp WebSocket each on the bridge's `/v1/ws`,
writing what they send and receive into the ledger (bench/soak.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from _soak_ledger import V2A, Ledger

STEP_TIMEOUT_S = 60.0


class VisitorError(RuntimeError):
    """A visitor could not get its conversation going."""


@dataclass
class Tally:
    """What all the visitors' sockets saw besides the lines: for the report."""

    frames: Counter[str] = field(default_factory=Counter)
    error_codes: Counter[str] = field(default_factory=Counter)
    closes: Counter[str] = field(default_factory=Counter)  # closed by the other side, and how
    ended: int = 0  # `ended` frames: nothing here ends a conversation
    examples: list[str] = field(default_factory=list)

    def note(self, what: str) -> None:
        if len(self.examples) < 10:
            self.examples.append(what)


class Visitor:
    """The widget's side of one conversation, reduced to what the soak needs."""

    def __init__(self, index: int, base_url: str, session: aiohttp.ClientSession,
                 ledger: Ledger, tally: Tally) -> None:
        self.index = index
        self.base_url = base_url
        self.session = session
        self.ledger = ledger
        self.tally = tally
        self.conversation_id = ""
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._closing = False
        loop = asyncio.get_running_loop()
        self._started: asyncio.Future[str] = loop.create_future()
        self._joined: asyncio.Future[None] = loop.create_future()

    @property
    def name(self) -> str:
        """Unique per visitor: the Matrix agent finds the conversation by its room's name."""
        return f"Soak {self.index}"

    async def connect(self) -> None:
        self._ws = await self.session.ws_connect(f"{self.base_url}/v1/ws", autoping=True)
        self._reader = asyncio.create_task(self._read(self._ws), name=f"visitor-{self.index}")

    async def start(self) -> str:
        """`start`, then wait for `started`; returns the conversation id."""
        await self._send({"type": "start",
                          "visitor": {"name": self.name,
                                      "email": f"soak{self.index}@example.com"},
                          "page": {"url": "https://shop.example.com/cart", "title": "Cart"},
                          "lang": "en"})
        async with asyncio.timeout(STEP_TIMEOUT_S):
            self.conversation_id = await asyncio.shield(self._started)
        return self.conversation_id

    async def agent_joined(self, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            await asyncio.shield(self._joined)

    async def say(self) -> None:
        at = time.perf_counter()
        conversation = self.ledger.conversations[self.index]
        number, text = conversation.new_line(V2A, at)
        try:
            await self._send({"type": "message", "client_id": f"v{number}", "text": text})
        except (ConnectionError, RuntimeError) as exc:
            conversation.lines[V2A][number].failure = repr(exc)

    async def _send(self, frame: dict[str, Any]) -> None:
        if self._ws is None or self._ws.closed:
            raise ConnectionError(f"visitor {self.index}: socket closed")
        await self._ws.send_str(json.dumps(frame))

    # -- reading ----------------------------------------------------------------------------

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            at = time.perf_counter()
            if msg.type is aiohttp.WSMsgType.TEXT:
                self._on_frame(json.loads(msg.data), at)
        if not self._closing:
            self.tally.closes[f"close {ws.close_code}"] += 1
            self.tally.note(f"visitor {self.index}: socket closed ({ws.close_code}, "
                            f"{ws.exception()!r})")
        self._fail(VisitorError(f"visitor {self.index}: socket closed ({ws.close_code})"))

    def _on_frame(self, frame: dict[str, Any], at: float) -> None:
        kind = str(frame.get("type"))
        self.tally.frames[kind] += 1
        if kind == "ack":
            number = int(str(frame["client_id"]).removeprefix("v"))
            self.ledger.acked(self.index, number, int(frame["seq"]), at)
        elif kind == "message" and frame.get("from") == "agent":
            self.ledger.visitor_got(self.index, str(frame.get("text")), int(frame["seq"]), at)
        elif kind == "started" and not self._started.done():
            self._started.set_result(str(frame["conversation"]))
        elif kind == "agent" and frame.get("event") == "joined" and not self._joined.done():
            self._joined.set_result(None)
        elif kind == "error":
            self.tally.error_codes[str(frame.get("code"))] += 1
            self.tally.note(f"visitor {self.index}: {frame}")
            self._fail(VisitorError(f"visitor {self.index}: the bridge answered {frame}"))
        elif kind == "ended":
            self.tally.ended += 1
            self.tally.note(f"visitor {self.index}: {frame}")

    def _fail(self, exc: Exception) -> None:
        """Whoever waits to get the conversation going learns why at once."""
        for future in (self._started, self._joined):
            if not future.done():
                future.set_exception(exc)
                future.exception()  # retrieved: nobody may be waiting any more

    async def close(self) -> None:
        self._closing = True
        if self._ws is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
