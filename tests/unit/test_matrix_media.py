"""The Matrix backend's file pieces without a homeserver: mxc URIs parsed strictly, the
content of a posted file, an agent's media event read, the media API's errors sorted; and a
download that stops reading as soon as it is larger than allowed (against a loopback HTTP
server that answers without a Content-Length, which Synapse never does)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bridge.backends.base import (
    AgentFile,
    AgentMessage,
    BackendError,
    BackendUnavailable,
    FileRefused,
    OutgoingFile,
    RateLimited,
)
from bridge.backends.matrix_media import (
    MediaRepository,
    file_content,
    http_error,
    media_event,
    parse_mxc,
)
from bridge.core.models import RoomRef

pytestmark = pytest.mark.fast

ROOM = RoomRef("!room:example.com")


@pytest.mark.parametrize(("url", "parts"), [
    ("mxc://example.com/AbC_12-x", ("example.com", "AbC_12-x")),
    ("mxc://localhost:8448/abc", ("localhost:8448", "abc")),
    ("mxc://127.0.0.1/abc", ("127.0.0.1", "abc")),
    ("mxc://[::1]:8448/abc", ("[::1]:8448", "abc")),
])
def test_a_well_formed_mxc_uri_gives_server_and_media_id(url: str, parts: tuple[str, str]
                                                         ) -> None:
    assert parse_mxc(url) == parts


@pytest.mark.parametrize("url", [
    "https://example.com/abc",
    "mxc://example.com/",
    "mxc:///abc",
    "mxc://example.com/abc/def",
    "mxc://example.com/../abc",
    "mxc://example.com/abc?x=1",
    "mxc://example.com/abc#x",
    "mxc://example.com/ab%2Fc",
    "mxc://example.com/abc\n",
    "mxc://user@example.com/abc",
    "mxc://exa mple.com/abc",
    "mxc://example.com:/abc",
    "mxc://example.com:123456/abc",
    "mxc://exämple.com/abc",
    "mxc://example.com/äbc",
    "MXC://example.com/abc",
    "mxc://example.com/" + "a" * 256,
    "",
])
def test_anything_else_is_no_mxc_uri(url: str) -> None:
    assert parse_mxc(url) is None


def outgoing(mimetype: str, width: int | None = None, height: int | None = None
             ) -> OutgoingFile:
    return OutgoingFile(name="photo 1.png", mimetype=mimetype, size=1234, width=width,
                        height=height, path=Path("/nonexistent"), link="http://b/f?key=k")


@pytest.mark.parametrize("mimetype", ["image/png", "image/jpeg", "image/gif", "image/webp"])
def test_a_raster_image_is_posted_as_an_image_with_its_size(mimetype: str) -> None:
    assert file_content(outgoing(mimetype, 640, 480), "mxc://hs/abc") == {
        "msgtype": "m.image", "body": "photo 1.png", "filename": "photo 1.png",
        "url": "mxc://hs/abc",
        "info": {"mimetype": mimetype, "size": 1234, "w": 640, "h": 480},
    }


@pytest.mark.parametrize("mimetype", ["application/pdf", "text/plain", "image/svg+xml"])
def test_anything_else_is_posted_as_a_file(mimetype: str) -> None:
    content = file_content(outgoing(mimetype), "mxc://hs/abc")
    assert content["msgtype"] == "m.file"
    assert content["info"] == {"mimetype": mimetype, "size": 1234}


def test_an_image_without_known_dimensions_has_none_in_its_info() -> None:
    assert file_content(outgoing("image/png"), "mxc://hs/abc")["info"] == {
        "mimetype": "image/png", "size": 1234}


def event(content: dict[str, Any]) -> dict[str, Any]:
    return {"type": "m.room.message", "sender": "@alice:hs", "event_id": "$e",
            "origin_server_ts": 1_700_000_000_500, "content": content}


@pytest.mark.parametrize("msgtype", ["m.image", "m.file", "m.video", "m.audio"])
def test_an_agents_media_event_is_a_file(msgtype: str) -> None:
    source = event({"msgtype": msgtype, "body": "scan.pdf", "url": "mxc://hs/abc",
                    "info": {"mimetype": "application/pdf", "size": 99}})
    assert media_event(ROOM, source, "Alice") == AgentFile(
        room=ROOM, sender="@alice:hs", sender_name="Alice", name="scan.pdf",
        url="mxc://hs/abc", mimetype="application/pdf", size=99, event_id="$e",
        ts=1_700_000_000.5)


def test_the_file_name_is_filename_before_body_which_may_be_a_caption() -> None:
    source = event({"msgtype": "m.image", "body": "look at this", "filename": "a.png",
                    "url": "mxc://hs/abc"})
    file = media_event(ROOM, source, "Alice")
    assert isinstance(file, AgentFile)
    assert (file.name, file.mimetype, file.size) == ("a.png", "", None)


@pytest.mark.parametrize("info", [
    {"mimetype": 5, "size": "99"}, {"size": True}, {"size": -1}, {"size": 1.5}, "info", None,
])
def test_a_claimed_type_or_size_of_the_wrong_kind_is_left_out(info: Any) -> None:
    source = event({"msgtype": "m.file", "body": "x", "url": "mxc://hs/abc", "info": info})
    file = media_event(ROOM, source, "Alice")
    assert isinstance(file, AgentFile)
    assert (file.mimetype, file.size) == ("", None)


@pytest.mark.parametrize("content", [
    # Encrypted media: the key is in content.file; the bridge's rooms are not encrypted.
    {"msgtype": "m.image", "body": "cat.png", "file": {"url": "mxc://hs/abc", "key": {}}},
    {"msgtype": "m.file", "body": "cat.png", "url": "https://elsewhere.example/cat.png"},
    {"msgtype": "m.file", "body": "cat.png", "url": "mxc://hs/../../x"},
    {"msgtype": "m.file", "body": "cat.png", "url": 5},
])
def test_a_file_the_bridge_cannot_fetch_arrives_as_its_name(content: dict[str, Any]) -> None:
    assert media_event(ROOM, event(content), "Alice") == AgentMessage(
        ROOM, "@alice:hs", "Alice", "cat.png", "$e", 1_700_000_000.5)


@pytest.mark.parametrize("content", [
    {"msgtype": "m.text", "body": "hello"},
    {"msgtype": "m.location", "body": "here", "geo_uri": "geo:1,2"},
    {"msgtype": "m.file", "body": "", "url": "https://elsewhere.example/x"},
    {"msgtype": "m.image", "body": "* b.png", "url": "mxc://hs/b",
     "m.relates_to": {"rel_type": "m.replace", "event_id": "$a"}},
])
def test_no_file_and_no_text_from_other_events_or_edits(content: dict[str, Any]) -> None:
    assert media_event(ROOM, event(content), "Alice") is None


def test_the_media_apis_errors_are_the_backends() -> None:
    limited = http_error(429, {"errcode": "M_LIMIT_EXCEEDED", "retry_after_ms": 2500}, None)
    assert isinstance(limited, RateLimited) and limited.retry_after == 2.5
    by_header = http_error(429, {}, "7")
    assert isinstance(by_header, RateLimited) and by_header.retry_after == 7
    down = http_error(502, {}, None)
    assert isinstance(down, BackendUnavailable) and down.status == 502
    too_large = http_error(413, {"errcode": "M_TOO_LARGE", "error": "too big"}, None)
    assert type(too_large) is BackendError and too_large.status == 413
    assert "M_TOO_LARGE" in str(too_large)


# -- a download against a loopback server --------------------------------------------------


async def serve(handler: Any) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_a_download_without_content_length_stops_soon_after_the_cap() -> None:
    sent = 0
    seen: list[tuple[str, str | None]] = []

    async def endless(request: web.Request) -> web.StreamResponse:
        nonlocal sent
        seen.append((request.path, request.headers.get("Authorization")))
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            for _ in range(10_000):  # 640 MB if nobody stopped reading
                await response.write(b"x" * 65536)
                sent += 65536
        except (ConnectionError, asyncio.CancelledError):
            pass
        return response

    async for base in serve(endless):
        media = MediaRepository(base, lambda: "TOKEN")
        got = 0
        try:
            with pytest.raises(FileRefused, match="larger than 1000000 bytes"):
                async for chunk in media.download("mxc://hs.example/abc", 1_000_000):
                    got += len(chunk)
        finally:
            await media.close()
        await asyncio.sleep(0.2)
        assert got <= 1_000_000
        # Kernel buffers hold some more, but nowhere near the whole body.
        assert sent < 50_000_000
    assert seen == [("/_matrix/client/v1/media/download/hs.example/abc", "Bearer TOKEN")]


@pytest.mark.parametrize(("status", "body", "error"), [
    (404, {"errcode": "M_NOT_FOUND"}, FileRefused),
    (403, {"errcode": "M_FORBIDDEN"}, FileRefused),
    (302, {}, FileRefused),
    (429, {"errcode": "M_LIMIT_EXCEEDED", "retry_after_ms": 10}, RateLimited),
    (503, {}, BackendUnavailable),
])
async def test_a_refused_download_is_sorted_and_never_follows_a_redirect(
    status: int, body: dict[str, Any], error: type[Exception]
) -> None:
    paths: list[str] = []

    async def answer(request: web.Request) -> web.Response:
        paths.append(request.path)
        headers = {"Location": "http://127.0.0.1:9/elsewhere"} if status == 302 else {}
        return web.json_response(body, status=status, headers=headers)

    async for base in serve(answer):
        media = MediaRepository(base, lambda: "TOKEN")
        try:
            with pytest.raises(error):
                async for _ in media.download("mxc://hs.example/abc", 1000):
                    pass
        finally:
            await media.close()
    assert paths == ["/_matrix/client/v1/media/download/hs.example/abc"]


async def test_a_server_without_authenticated_media_is_asked_at_the_old_address() -> None:
    paths: list[str] = []

    async def old_server(request: web.Request) -> web.Response:
        paths.append(request.path)
        if request.path.startswith("/_matrix/client/v1/"):
            return web.json_response({"errcode": "M_UNRECOGNIZED"}, status=404)
        return web.Response(body=b"old bytes", content_type="image/png")

    async for base in serve(old_server):
        media = MediaRepository(base, lambda: "TOKEN")
        try:
            got = b"".join([c async for c in media.download("mxc://hs.example/abc", 1000)])
        finally:
            await media.close()
    assert got == b"old bytes"
    assert paths == ["/_matrix/client/v1/media/download/hs.example/abc",
                     "/_matrix/media/v3/download/hs.example/abc"]


async def test_an_unreachable_homeserver_is_unavailable_and_a_bad_uri_is_refused() -> None:
    media = MediaRepository("http://127.0.0.1:9", lambda: "TOKEN")  # discard port: closed
    try:
        with pytest.raises(BackendUnavailable):
            async for _ in media.download("mxc://hs.example/abc", 1000):
                pass
        with pytest.raises(FileRefused):
            async for _ in media.download("https://hs.example/abc", 1000):
                pass
    finally:
        await media.close()
