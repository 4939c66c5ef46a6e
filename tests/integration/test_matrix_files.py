"""Files through the Matrix backend on a real Synapse, driven directly (no hub): a visitor's
file posted as an image or a file that an independent agent client sees and downloads, a
retried post shown and uploaded once, an agent's image passed on and fetched byte for byte
through authenticated media, and the downloads the backend refuses."""

from __future__ import annotations

import json
import os
import struct
import zlib
from io import BytesIO
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from nio import UploadResponse

from bridge.backends.base import (
    AgentFile,
    AgentMessage,
    FileRefused,
    OutgoingFile,
)
from bridge.core.models import RoomRef
from tests.conftest import Homeserver
from tests.integration.conftest import TestAgent
from tests.integration.matrix_bot import Bot, agent_client

pytestmark = pytest.mark.usefixtures("require_synapse")



def png(width: int, height: int) -> bytes:
    """A real PNG of noise (incompressible: the file has a size worth checking)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))
    rows = b"".join(b"\x00" + os.urandom(width * 3) for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


async def http_get(homeserver: Homeserver, path: str, token: str | None
                   ) -> tuple[int, bytes]:
    """A GET as any client makes it (no redirect followed), with or without a token."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as session, session.get(
            homeserver.url + path, headers=headers, allow_redirects=False) as response:
        return response.status, await response.read()


async def get_json(homeserver: Homeserver, path: str, token: str) -> Any:
    status, body = await http_get(homeserver, path, token)
    assert status == 200, body
    return json.loads(body)


async def agent_sees(homeserver: Homeserver, room: RoomRef, event_id: str) -> dict[str, Any]:
    """The event as the agent's own client fetches it from the homeserver."""
    return await get_json(homeserver, f"/_matrix/client/v3/rooms/{quote(room)}/event/"
                          f"{quote(event_id)}", homeserver.agent_token)


async def room_files(homeserver: Homeserver, room: RoomRef) -> list[dict[str, Any]]:
    """The media messages of the room, as the agent's client pages back through it."""
    page = await get_json(homeserver, f"/_matrix/client/v3/rooms/{quote(room)}/messages"
                          "?dir=b&limit=100", homeserver.agent_token)
    return [e["content"] for e in page["chunk"] if e["type"] == "m.room.message"
            and e["content"].get("msgtype") in ("m.image", "m.file")]


async def bot_uploads(homeserver: Homeserver) -> int:
    """How many files the bot's account has in the media repository (admin API)."""
    media = await get_json(homeserver, f"/_synapse/admin/v1/users/{quote(homeserver.bot_id)}"
                           "/media", homeserver.admin_token)
    return int(media["total"])


def media_path(mxc: str) -> str:
    return mxc.removeprefix("mxc://")


def stored(tmp_path: Path, name: str, data: bytes, mimetype: str,
           size: tuple[int, int] | None = None) -> OutgoingFile:
    path = tmp_path / os.urandom(8).hex()
    path.write_bytes(data)
    return OutgoingFile(name=name, mimetype=mimetype, size=len(data),
                        width=size[0] if size else None, height=size[1] if size else None,
                        path=path, link="http://127.0.0.1:9/v1/files/x?key=y")


# -- a visitor's file into the room ---------------------------------------------------------


async def test_a_visitors_png_shows_as_an_image_the_agent_downloads(
    bot: Bot, room: RoomRef, homeserver: Homeserver, tmp_path: Path
) -> None:
    data = png(64, 48)
    event_id = await bot.backend.post_file(
        room, stored(tmp_path, "Screenshot 1.png", data, "image/png", (64, 48)), key="f1")

    event = await agent_sees(homeserver, room, event_id)
    assert event["sender"] == homeserver.bot_id
    content = event["content"]
    assert content["msgtype"] == "m.image"
    assert (content["body"], content["filename"]) == ("Screenshot 1.png", "Screenshot 1.png")
    assert content["info"] == {"mimetype": "image/png", "size": len(data), "w": 64, "h": 48}
    assert content["url"].startswith("mxc://localhost/")
    status, body = await http_get(
        homeserver, f"/_matrix/client/v1/media/download/{media_path(content['url'])}",
        homeserver.agent_token)
    assert (status, body) == (200, data)


async def test_a_visitors_pdf_shows_as_a_file(
    bot: Bot, room: RoomRef, homeserver: Homeserver, tmp_path: Path
) -> None:
    data = b"%PDF-1.4\n" + os.urandom(5000) + b"\n%%EOF\n"
    event_id = await bot.backend.post_file(
        room, stored(tmp_path, "invoice.pdf", data, "application/pdf"), key="f2")

    content = (await agent_sees(homeserver, room, event_id))["content"]
    assert content["msgtype"] == "m.file"
    assert content["body"] == "invoice.pdf"
    assert content["info"] == {"mimetype": "application/pdf", "size": len(data)}
    status, body = await http_get(
        homeserver, f"/_matrix/client/v1/media/download/{media_path(content['url'])}",
        homeserver.agent_token)
    assert (status, body) == (200, data)


async def test_a_retried_post_shows_once_and_uploads_once(
    bot: Bot, room: RoomRef, homeserver: Homeserver, tmp_path: Path
) -> None:
    file = stored(tmp_path, "twice.png", png(8, 8), "image/png", (8, 8))
    uploads_before = await bot_uploads(homeserver)
    first = await bot.backend.post_file(room, file, key="retried-1")
    again = await bot.backend.post_file(room, file, key="retried-1")

    assert again == first  # Synapse answers a repeated transaction with the first event
    assert await bot_uploads(homeserver) == uploads_before + 1
    assert [c["body"] for c in await room_files(homeserver, room)] == ["twice.png"]
    assert bot.state.get("upload:retried-1") == (await agent_sees(
        homeserver, room, first))["content"]["url"]


async def test_the_bots_upload_is_served_to_room_members_with_a_token_only(
    bot: Bot, room: RoomRef, homeserver: Homeserver, tmp_path: Path
) -> None:
    """Synapse 1.16x marks media uploaded with authenticated media on as authenticated: the
    old unauthenticated endpoints answer 404 for it, the new ones 401 without a token."""
    event_id = await bot.backend.post_file(
        room, stored(tmp_path, "private.png", png(4, 4), "image/png", (4, 4)), key="f3")
    path = media_path((await agent_sees(homeserver, room, event_id))["content"]["url"])

    status, body = await http_get(homeserver, f"/_matrix/media/v3/download/{path}", None)
    assert (status, json.loads(body)["errcode"]) == (404, "M_NOT_FOUND")
    status, body = await http_get(homeserver, f"/_matrix/client/v1/media/download/{path}", None)
    assert (status, json.loads(body)["errcode"]) == (401, "M_MISSING_TOKEN")
    status, _ = await http_get(homeserver, f"/_matrix/client/v1/media/download/{path}",
                               homeserver.agent_token)
    assert status == 200


# -- an agent's file out of the room --------------------------------------------------------


async def agent_sends_image(agent: TestAgent, room: RoomRef, data: bytes,
                            content: dict[str, Any] | None = None) -> str:
    client = agent_client(agent).client
    uploaded, _ = await client.upload(BytesIO(data), content_type="image/png",
                                      filename="from-alice.png", filesize=len(data))
    assert isinstance(uploaded, UploadResponse), uploaded
    sent = await client.room_send(room, "m.room.message", content or {
        "msgtype": "m.image", "body": "from-alice.png", "url": uploaded.content_uri,
        "info": {"mimetype": "image/png", "size": len(data), "w": 32, "h": 32}})
    return str(sent.event_id)


async def test_an_agents_image_arrives_as_a_file_the_bot_fetches(
    bot: Bot, room: RoomRef, matrix_agent: TestAgent, homeserver: Homeserver
) -> None:
    data = png(32, 32)
    event_id = await agent_sends_image(matrix_agent, room, data)

    file = await bot.until(lambda: next(
        (e for e in bot.events if isinstance(e, AgentFile) and e.event_id == event_id), None))
    assert (file.room, file.sender, file.sender_name) == (room, homeserver.agent_id, "Alice")
    assert (file.name, file.mimetype, file.size) == ("from-alice.png", "image/png", len(data))
    assert file.url.startswith("mxc://localhost/")
    chunks = [chunk async for chunk in bot.backend.fetch_file(file.url, len(data))]
    assert b"".join(chunks) == data


async def test_a_file_over_the_cap_is_refused_before_its_body_is_read(
    bot: Bot, room: RoomRef, matrix_agent: TestAgent
) -> None:
    data = os.urandom(3_000_000)
    event_id = await agent_sends_image(matrix_agent, room, data)
    file = await bot.until(lambda: next(
        (e for e in bot.events if isinstance(e, AgentFile) and e.event_id == event_id), None))

    download = bot.backend.fetch_file(file.url, 1_000_000)
    with pytest.raises(FileRefused, match="has 3000000 bytes, more than 1000000"):
        await anext(download)  # refused on Content-Length: not one chunk read
    with pytest.raises(FileRefused):
        async for _ in bot.backend.fetch_file(file.url, len(data) - 1):
            pass


@pytest.mark.parametrize("content", [
    {"msgtype": "m.file", "body": "elsewhere.pdf",
     "url": "https://files.example.com/elsewhere.pdf"},
    # Encrypted media (its key in content.file), which only an encrypted room should carry.
    {"msgtype": "m.image", "body": "elsewhere.pdf",
     "file": {"url": "mxc://localhost/abc", "key": {"k": "x"}, "iv": "x", "hashes": {},
              "v": "v2"}},
])
async def test_a_file_the_bot_cannot_fetch_arrives_as_its_name(
    bot: Bot, room: RoomRef, matrix_agent: TestAgent, content: dict[str, Any]
) -> None:
    event_id = await agent_sends_image(matrix_agent, room, png(2, 2), content)

    line = await bot.until(lambda: next(
        (e for e in bot.events if isinstance(e, AgentMessage) and e.event_id == event_id),
        None))
    assert line.text == "elsewhere.pdf"
    assert not [e for e in bot.events if isinstance(e, AgentFile) and e.event_id == event_id]


@pytest.mark.parametrize("url", [
    "https://127.0.0.1/_matrix/client/v1/media/download/localhost/abc",
    "mxc://localhost/../../_synapse/admin/v1/users",
    "mxc://localhost/abc/def",
    "mxc://local host/abc",
    "mxc://localhost@127.0.0.1/abc",
    "mxc://localhost/abc?allow_redirect=true",
    "mxc://localhost/NoSuchMediaHere",  # well formed, but the homeserver has no such file
])
async def test_a_bad_or_unknown_address_is_refused(bot: Bot, url: str) -> None:
    with pytest.raises(FileRefused):
        async for _ in bot.backend.fetch_file(url, 1_000_000):
            pass
