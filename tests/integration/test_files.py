"""Files both ways through the running bridge: a visitor's upload reaches the agent's own
client on the real messenger (Synapse's media repository, Prosody's HTTP upload service),
an agent's file reaches the visitor through the bridge only, and every bad upload gets a
clear refusal that changes nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import aiohttp

from tests.integration.conftest import TestAgent, chat_with_agent, room_of
from tests.unit.test_files import png

PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"


async def upload(base_url: str, token: str, content: bytes | AsyncIterator[bytes],
                 name: str = "shot.png", client_id: str = "up-1",
                 headers: dict[str, str] | None = None, expect100: bool = False
                 ) -> tuple[int, dict[str, Any]]:
    sent = {"X-Livechat-Token": token, "X-Livechat-Client-Id": client_id,
            "X-Livechat-Filename": quote(name), **(headers or {})}
    async with aiohttp.ClientSession() as http, http.post(
            f"{base_url}/v1/uploads", data=content, headers=sent,
            expect100=expect100) as response:
        return response.status, await response.json()


async def download(base_url: str, file_id: str, token: str = "", key: str = ""
                   ) -> tuple[int, bytes, dict[str, str]]:
    query = f"?key={key}" if key else ""
    async with aiohttp.ClientSession() as http, http.get(
            f"{base_url}/v1/files/{file_id}{query}",
            headers={"X-Livechat-Token": token} if token else {}) as response:
        return response.status, await response.read(), dict(response.headers)


async def test_files_go_both_ways(make_bridge, visitors, agent: TestAgent) -> None:
    bridge, visitor, started, room = await chat_with_agent(make_bridge, visitors, agent)
    token = started["token"]
    image = png(64, 48)
    status, answer = await upload(bridge.base_url, token, image, "../screen\x07shot.png")
    assert status == 201, answer
    assert answer["file"] | {"id": ""} == {"id": "", "name": "screenshot.png",
                                           "size": len(image), "type": "image/png",
                                           "width": 64, "height": 48}
    frame = await visitor.wait("message", lambda f: f.get("seq") == answer["seq"])
    assert frame["file"] == answer["file"]

    # The agent's own client shows it as a file and gets the same bytes from its server.
    # The agent's account may see files of earlier chats too: this room's only.
    def in_room() -> list[tuple[str, str, str, dict[str, Any]]]:
        return [f for f in agent.files if f[0] == room]

    await agent.until(in_room)
    [(_room, _name, url, content)] = in_room()
    assert await agent.download(url) == image
    if content:  # Matrix: an inline image with its size, as Element needs it
        assert (content["msgtype"], content["body"]) == ("m.image", "screenshot.png")
        assert content["info"] == {"mimetype": "image/png", "size": len(image), "w": 64,
                                   "h": 48}

    # The agent's PDF reaches the visitor through the bridge, as a download.
    await agent.send_file(room, "manual.pdf", PDF, "application/pdf")
    sent = await visitor.wait("message", lambda f: f["from"] == "agent" and "file" in f)
    assert (sent["file"]["type"], sent["file"]["size"]) == ("application/pdf", len(PDF))
    status, body, headers = await download(bridge.base_url, sent["file"]["id"], token)
    assert (status, body) == (200, PDF)
    assert headers["Content-Type"] == "application/pdf"
    assert headers["Content-Disposition"].startswith("attachment;")
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Content-Security-Policy"].startswith("sandbox")

    # Another visitor's token opens nothing.
    other = await visitors(bridge.base_url)
    other_token = (await other.start("Ben", "ben@example.com"))["token"]
    assert (await download(bridge.base_url, sent["file"]["id"], other_token))[0] == 401
    assert (await download(bridge.base_url, sent["file"]["id"]))[0] == 401
    transcript = bridge.hub.parts.aftercare.transcript_for_token(token) or ""
    assert "Alice: [file] manual.pdf (" in transcript


async def test_bad_uploads_are_refused_and_change_nothing(make_matrix_bridge, visitors,
                                                          matrix_agent: TestAgent) -> None:
    bridge = await make_matrix_bridge(files={"max_bytes": 1024 * 1024})
    visitor = await visitors(bridge.base_url)
    started = await visitor.start()
    room = await room_of(bridge, started["conversation"])
    await matrix_agent.join(room)
    await visitor.wait("agent", lambda f: f["event"] == "joined")
    token, base = started["token"], bridge.base_url

    def last_seq() -> int:
        conversation = bridge.store.conversation(started["conversation"])
        assert conversation is not None
        return conversation.last_seq

    seq_before = last_seq()
    refusals = [
        (await upload(base, token, b"<html><script>alert(1)</script>", "cat.png"), 415),
        (await upload(base, token, b"", "empty.txt"), 400),
        (await upload(base, "not-a-token", png(2, 2)), 401),
        (await upload(base, token, png(2, 2), client_id="bad id!"), 400),
        (await upload(base, token, png(2, 2), headers={"Origin": "https://evil.example.net"}),
         403),
        # Declared too large: refused before the body is sent, when the client asks first.
        (await upload(base, token, b"\x00" * (2 * 1024 * 1024), "big.bin", expect100=True),
         413),
    ]
    for (status, answer), expected in refusals:
        assert status == expected, answer
        assert set(answer["error"]) == {"code", "message"}
    assert last_seq() == seq_before

    # A polyglot (a real PNG with markup after it) is an image, served as one, never as HTML.
    polyglot = png(2, 2, b"<html><script>alert(1)</script></html>")
    status, answer = await upload(base, token, polyglot, "poly.html")
    assert status == 201 and answer["file"]["type"] == "image/png"
    status, _, headers = await download(base, answer["file"]["id"], token)
    assert (headers["Content-Type"], headers["X-Content-Type-Options"]) == ("image/png",
                                                                            "nosniff")
    # A retry (same client id) gets the first answer and shows once in the room.
    again, repeated = await upload(base, token, polyglot, "poly.html")
    assert (again, repeated) == (200, answer)
    await matrix_agent.until(lambda: "poly.html" in matrix_agent.file_names(room))
    await asyncio.sleep(1)
    assert matrix_agent.file_names(room).count("poly.html") == 1
    assert last_seq() == seq_before + 1


async def test_an_oversized_stream_is_cut_off_early(make_matrix_bridge, visitors) -> None:
    """No Content-Length (a chunked body): the bridge stops reading at the cap and closes
    the connection instead of swallowing the rest."""
    bridge = await make_matrix_bridge(files={"max_bytes": 1024 * 1024})
    visitor = await visitors(bridge.base_url)
    token = (await visitor.start())["token"]
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        yield png(8, 8)
        while sent < 200 * 1024 * 1024:
            sent += 256 * 1024
            yield b"\x00" * (256 * 1024)

    try:
        status, answer = await upload(bridge.base_url, token, endless())
        assert (status, answer["error"]["code"]) == (413, "too_large")
    except aiohttp.ClientError:
        pass  # the connection closed under the client while it was still sending
    assert sent < 20 * 1024 * 1024, f"the bridge read {sent} bytes before refusing"


async def test_uploads_per_chat_are_limited_and_end_with_the_chat(make_matrix_bridge,
                                                                   visitors) -> None:
    bridge = await make_matrix_bridge(files={"per_hour": 2})
    visitor = await visitors(bridge.base_url)
    started = await visitor.start()
    token = started["token"]
    for n in range(2):
        assert (await upload(bridge.base_url, token, png(2, 2 + n), client_id=f"u{n}"))[0] == 201
    status, refused = await upload(bridge.base_url, token, png(3, 3), client_id="u2")
    assert (status, refused["error"]["code"]) == (429, "rate_limited")
    await visitor.send({"type": "end"})
    await visitor.wait("ended")
    status, refused = await upload(bridge.base_url, token, png(3, 3), client_id="u3")
    assert (status, refused["error"]["code"]) == (409, "ended")


async def test_files_can_be_switched_off(make_matrix_bridge, visitors) -> None:
    bridge = await make_matrix_bridge(files={"enabled": False})
    visitor = await visitors(bridge.base_url)
    token = (await visitor.start())["token"]
    status, refused = await upload(bridge.base_url, token, png(2, 2))
    assert (status, refused["error"]["code"]) == (404, "files_off")
    async with aiohttp.ClientSession() as http, http.get(
            f"{bridge.base_url}/v1/config") as response:
        assert (await response.json())["files"] is None
