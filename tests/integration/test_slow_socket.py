"""A visitor socket that stops reading is closed with 1013 once it is 500 frames behind;
the bridge's memory for it stays bounded and other visitors are not held up.

The slow visitor is a raw WebSocket client on a TCP socket with a small receive buffer,
so that not reading really fills the kernel's buffers on both ends.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
import time
from urllib.parse import urlsplit

from bridge.web import ws as ws_module
from tests.integration.conftest import room_of

LINE = "x" * 3000
MAX_PUSHES = 20_000  # far more than the kernel buffers of both ends hold


class RawSocket:
    """The least WebSocket client: text frames out (masked), frames in, read on demand."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, base_url: str) -> RawSocket:
        parts = urlsplit(base_url)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (parts.hostname, parts.port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write((f"GET /v1/ws HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer)

    async def send_json(self, frame: dict[str, object]) -> None:
        payload = json.dumps(frame).encode()
        mask = os.urandom(4)
        assert len(payload) < 126
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.writer.write(bytes([0x81, 0x80 | len(payload)]) + mask + masked)
        await self.writer.drain()

    async def receive(self) -> tuple[int, bytes]:
        """(opcode, payload) of the next frame."""
        first, second = await self.reader.readexactly(2)
        size = second & 0x7F
        if size == 126:
            size = struct.unpack("!H", await self.reader.readexactly(2))[0]
        elif size == 127:
            size = struct.unpack("!Q", await self.reader.readexactly(8))[0]
        return first & 0x0F, await self.reader.readexactly(size)

    def close(self) -> None:
        self.writer.close()


async def test_a_socket_that_stops_reading_is_closed_with_1013(
        make_matrix_bridge, visitors) -> None:
    bridge = await make_matrix_bridge()
    other = await visitors(bridge.base_url)
    await other.start(name="Bob")
    slow = await RawSocket.connect(bridge.base_url)
    try:
        await slow.send_json({"type": "start", "visitor": {"name": "Anna", "email": "a@x.test"},
                              "page": {"url": "https://x.test/"}})
        opcode, payload = await slow.receive()
        started = json.loads(payload)
        assert started["type"] == "started"
        conversation = started["conversation"]
        await room_of(bridge, conversation)
        sink = bridge.hub.parts.sinks.of(conversation)[0]

        # The visitor reads nothing from here on, while agents' lines keep coming.
        frame = {"type": "message", "seq": 0, "from": "agent", "name": "Alice", "text": LINE,
                 "ts": 0.0}
        for n in range(MAX_PUSHES):
            await bridge.hub.parts.sinks.push(conversation, {**frame, "seq": 1000 + n})
            queued = sink._queue
            assert queued is None or len(queued) <= ws_module.MAX_QUEUED_FRAMES
            if sink.ws.closed:
                break
            if n % 50 == 0:
                await asyncio.sleep(0)  # the writer runs now and then, as between real lines
        # Closed while the visitor still reads nothing: not left to the writer, which waits
        # on a peer that does not read.
        assert sink.ws.closed, "never given up on: buffering without end"

        began = time.monotonic()  # another visitor's line still goes through at once
        await other.say("still here")
        assert time.monotonic() - began < 2.0

        # Reading again, the visitor finds the close frame after what was on its way.
        async with asyncio.timeout(20):
            while (opcode := (received := await slow.receive())[0]) != 0x8:
                assert opcode == 0x1
        code = struct.unpack("!H", received[1][:2])[0]
        assert (code, received[1][2:]) == (1013, b"too slow")
    finally:
        slow.close()
