"""`POST /v1/uploads` and `GET /v1/files/{id}`: a visitor's file in, files out, safely.

An upload's body is the file's bytes, streamed to disk with a hard cap: a body that grows
past `[files] max_bytes` (or declares that it will) is answered 413 and the connection is
closed without reading the rest. The type is found from the first bytes, never from the name
or the Content-Type. A file is served only with its conversation's token (a header) or its
link's key, with the stored type, `nosniff`, a sandboxing CSP, and as an attachment unless
it is a raster image.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Protocol
from urllib.parse import quote, unquote

from aiohttp import web

from bridge.config import Config
from bridge.config_files import FilesConfig
from bridge.core.files import RASTER
from bridge.core.frames import file_fields
from bridge.core.models import Conversation, Item
from bridge.core.protocol import CLIENT_ID_RE
from bridge.core.untrusted import ProtocolError
from bridge.files import Served
from bridge.store import StoreUnavailable
from bridge.web import client_address
from bridge.web.ws import origin_allowed

log = logging.getLogger(__name__)

TOKEN_HEADER = "X-Livechat-Token"
CLIENT_ID_HEADER = "X-Livechat-Client-Id"
NAME_HEADER = "X-Livechat-Filename"
MAX_NAME_HEADER = 1024  # percent-encoded: 200 characters of any script fit
CHUNK = 64 * 1024
STATUS = {"bad_request": 400, "empty": 400, "bad_token": 401, "origin": 403, "files_off": 404,
          "ended": 409, "too_large": 413, "bad_type": 415, "rate_limited": 429,
          "try_again": 503}


class FileDesk(Protocol):
    """What the web layer asks of the bridge's files."""

    config: FilesConfig

    def conversation(self, token: str) -> Conversation | None: ...

    def earlier_upload(self, conversation: Conversation, client_id: str) -> Item | None: ...

    def refusal(self, conversation: Conversation, declared_size: int | None
                ) -> ProtocolError | None: ...

    async def visitor_file(self, conversation: Conversation, client_id: str, raw_name: str,
                           chunks: AsyncIterator[bytes]) -> Item: ...

    def served(self, file_id: str, *, token: str = "", key: str = "") -> Served | None: ...


FILES = web.AppKey("files", FileDesk)
CONFIG = web.AppKey("uploads_config", Config)


def register(app: web.Application, config: Config, files: FileDesk) -> None:
    app[FILES] = files
    app[CONFIG] = config
    app.router.add_post("/v1/uploads", _upload, expect_handler=_expect)
    app.router.add_route("OPTIONS", "/v1/uploads", _preflight)
    app.router.add_get("/v1/files/{file_id}", _download)
    app.router.add_route("OPTIONS", "/v1/files/{file_id}", _preflight)


async def _upload(request: web.Request) -> web.StreamResponse:
    files = request.app[FILES]
    try:
        conversation, client_id, name = _check_request(request, files)
        earlier = files.earlier_upload(conversation, client_id)
        if earlier is not None:  # a retry: the first answer, and the body is not read
            return await _cut(request, _answer(request, earlier, 200))
        limits = client_address.limits_of(request)
        if not limits.uploads.take(limits.key(request), time.monotonic()):
            raise ProtocolError("rate_limited", "too many files from this address; try later")
        refusal = files.refusal(conversation, request.content_length)
        if refusal is not None:
            raise refusal
        item = await files.visitor_file(conversation, client_id, name,
                                        request.content.iter_chunked(CHUNK))
    except ProtocolError as exc:
        return await _cut(request, _error(request, exc.code, exc.message))
    except StoreUnavailable as exc:
        log.warning("upload not stored: %s", exc)
        return await _cut(request, _error(request, "try_again",
                                    "the file could not be stored right now; send it again"))
    return _answer(request, item, 201)


async def _expect(request: web.Request) -> web.StreamResponse | None:
    """`Expect: 100-continue`: a client that asks learns of a refusal before it sends the
    body; otherwise it is told to go on."""
    files = request.app[FILES]
    try:
        conversation, client_id, _ = _check_request(request, files)
        if files.earlier_upload(conversation, client_id) is None:
            refusal = files.refusal(conversation, request.content_length)
            if refusal is not None:
                raise refusal
    except ProtocolError as exc:
        return await _cut(request, _error(request, exc.code, exc.message))
    if request.headers.get("Expect", "").lower() != "100-continue":
        return _error(request, "bad_request", "only Expect: 100-continue is understood")
    await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    request.writer.output_size = 0
    return None


def _check_request(request: web.Request, files: FileDesk) -> tuple[Conversation, str, str]:
    """The conversation, client id and name of an upload, or the ProtocolError that
    refuses it; nothing of the body is read yet."""
    if not origin_allowed(request, request.app[CONFIG].server):
        raise ProtocolError("origin", "origin not allowed")
    if not files.config.enabled:
        raise ProtocolError("files_off", "files cannot be sent in this chat")
    conversation = files.conversation(request.headers.get(TOKEN_HEADER, ""))
    if conversation is None:
        raise ProtocolError("bad_token", "unknown conversation token")
    client_id = request.headers.get(CLIENT_ID_HEADER, "")
    if not CLIENT_ID_RE.fullmatch(client_id):
        raise ProtocolError("bad_request", f"{CLIENT_ID_HEADER} must be 1-64 of "
                            "A-Z a-z 0-9 _ -")
    raw_name = request.headers.get(NAME_HEADER, "")
    if len(raw_name) > MAX_NAME_HEADER:
        raise ProtocolError("bad_request", f"{NAME_HEADER} is too long")
    return conversation, client_id, unquote(raw_name, errors="replace")


async def _cut(request: web.Request, response: web.Response) -> web.Response:
    """Answer without reading the rest of the body: the answer is written, then the
    connection closed (aiohttp would otherwise read and drop the rest for up to 10 s)."""
    if not request.content.is_eof():
        response.force_close()
        await response.prepare(request)
        await response.write_eof()
        request.protocol.force_close()
    return response


def _answer(request: web.Request, item: Item, status: int) -> web.Response:
    assert item.file is not None
    response = web.json_response({"seq": item.seq, "file": file_fields(item.file)},
                                 status=status)
    return _cors(request, response)


def _error(request: web.Request, code: str, message: str) -> web.Response:
    response = web.json_response({"error": {"code": code, "message": message}},
                                 status=STATUS[code])
    return _cors(request, response)


async def _download(request: web.Request) -> web.StreamResponse:
    served = request.app[FILES].served(
        request.match_info["file_id"], token=request.headers.get(TOKEN_HEADER, ""),
        key=request.query.get("key", ""))
    if served is None:
        response = _error(request, "bad_token", "no such file, or not yours")
        response.headers["Cache-Control"] = "no-store"
        return response
    file = served.file
    disposition = "inline" if file.mimetype in RASTER else "attachment"
    headers = {
        "Content-Type": file.mimetype,
        "Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(file.name, safe='')}",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox; default-src 'none'",
        "Cache-Control": "private, max-age=3600",
        "Cross-Origin-Resource-Policy": "cross-origin",
    }
    file_response = web.FileResponse(served.path, headers=headers)
    origin = request.headers.get("Origin", "")
    if origin and origin_allowed(request, request.app[CONFIG].server):
        file_response.headers["Access-Control-Allow-Origin"] = origin
        file_response.headers["Vary"] = "Origin"
    return file_response


def _cors(request: web.Request, response: web.Response) -> web.Response:
    origin = request.headers.get("Origin", "")
    if origin and origin_allowed(request, request.app[CONFIG].server):
        response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Vary"] = "Origin"
    return response


async def _preflight(request: web.Request) -> web.Response:
    response = web.Response(status=204)
    response.headers["Access-Control-Allow-Headers"] = (
        f"{TOKEN_HEADER}, {CLIENT_ID_HEADER}, {NAME_HEADER}, Content-Type")
    response.headers["Access-Control-Allow-Methods"] = "GET, POST"
    response.headers["Access-Control-Max-Age"] = "600"
    return _cors(request, response)
