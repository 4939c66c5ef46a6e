"""Files on Matrix: a visitor's file uploaded to the homeserver's media repository and
posted as `m.image` or `m.file`; an agent's file found in their event and downloaded
through the homeserver's authenticated media API.

Plain aiohttp rather than nio: nio's upload puts the access token in the query string and
waits without a time limit, and its download reads the whole file into memory. Here both
stream, a download stops as soon as it is larger than allowed, and only the configured
homeserver is ever asked (an mxc URI names a server, never an address to fetch from).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp

from bridge.backends.base import (
    AgentFile,
    AgentMessage,
    BackendError,
    BackendState,
    BackendUnavailable,
    FileRefused,
    OutgoingFile,
    RateLimited,
)
from bridge.blobs import read_chunks
from bridge.core.files import RASTER
from bridge.core.models import RoomRef
from bridge.core.protocol import clean_text

log = logging.getLogger(__name__)

MEDIA_MSGTYPES = frozenset({"m.image", "m.file", "m.video", "m.audio"})
CHUNK = 64 * 1024
ANSWER_MAX = 4096  # an upload's or error's answer is a small JSON object: never read more
# The spec's server_name (hostname: IPv4, [IPv6] or DNS name; optional port) and the
# media id's "opaque" characters, strictly: anything else is not an address we fetch.
_MXC = re.compile(
    r"mxc://(?P<server>(?:\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9.-]{1,255})(?::[0-9]{1,5})?)"
    r"/(?P<media>[A-Za-z0-9_-]{1,255})"
)
_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60)
_NETWORK_ERRORS = (aiohttp.ClientError, TimeoutError, OSError)


def parse_mxc(url: str) -> tuple[str, str] | None:
    """(server name, media id) of a well-formed `mxc://` URI, else None."""
    match = _MXC.fullmatch(url)
    return (match["server"], match["media"]) if match else None


def file_content(file: OutgoingFile, mxc: str) -> dict[str, Any]:
    """The `m.room.message` content for a visitor's uploaded file: an image clients show
    inline, else a file to download. `body` is the name alone (a different body would be a
    caption under the spec's newer rules)."""
    image = file.mimetype in RASTER  # shown inline; anything else is a download (m.file)
    info: dict[str, Any] = {"mimetype": file.mimetype, "size": file.size}
    if image and file.width and file.height:
        info["w"], info["h"] = file.width, file.height
    return {"msgtype": "m.image" if image else "m.file", "body": file.name,
            "filename": file.name, "url": mxc, "info": info}


def media_event(room: RoomRef, source: dict[str, Any],
                sender_name: str) -> AgentFile | AgentMessage | None:
    """An agent's media event as a file to pass on; None when it is no media event (or an
    edit of one: the file was passed on already). A file the bridge cannot fetch (encrypted,
    `content.file`; or a `url` that is no mxc URI) arrives as its name in text, so that the
    visitor sees that something was sent rather than nothing."""
    content = source.get("content")
    if not isinstance(content, dict) or content.get("msgtype") not in MEDIA_MSGTYPES:
        return None
    if (content.get("m.relates_to") or {}).get("rel_type") == "m.replace":
        return None
    name = _text(content.get("filename")) or _text(content.get("body"))
    sender, event_id = str(source.get("sender", "")), str(source.get("event_id", ""))
    ts = float(source.get("origin_server_ts") or 0) / 1000
    url = content.get("url")
    if not isinstance(url, str) or parse_mxc(url) is None:
        text = clean_text(name)
        return AgentMessage(room, sender, sender_name, text, event_id, ts) if text else None
    info = content.get("info")
    info = info if isinstance(info, dict) else {}
    size = info.get("size")
    return AgentFile(
        room=room, sender=sender, sender_name=sender_name, name=name, url=url,
        mimetype=_text(info.get("mimetype")),
        size=size if isinstance(size, int) and not isinstance(size, bool) and size >= 0
        else None,
        event_id=event_id, ts=ts,
    )


def http_error(status: int, answer: dict[str, Any], retry_after: str | None) -> BackendError:
    """A media API's error answer as the backend's exception (what `error_of` does for
    nio's answers)."""
    errcode = answer.get("errcode")
    if status == 429 or errcode == "M_LIMIT_EXCEEDED":
        wait_ms = answer.get("retry_after_ms")
        if isinstance(wait_ms, int | float):
            return RateLimited(wait_ms / 1000)
        return RateLimited(float(retry_after) if retry_after and retry_after.isdigit() else 1.0)
    message = f"matrix: media: {status} {errcode or ''} {answer.get('error') or ''}".rstrip()
    error = BackendUnavailable(message) if status >= 500 else BackendError(message)
    error.status = status
    return error


class MediaRepository:
    """The homeserver's media repository, reached with the bot's access token over an
    HTTP session of its own (made when first needed, closed by `close`)."""

    def __init__(self, homeserver: str, token: Callable[[], str]) -> None:
        self._base = homeserver.rstrip("/")
        self._token = token
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def upload_once(self, file: OutgoingFile, key: str, state: BackendState) -> str:
        """The file's mxc URI: uploaded on the first attempt of a post, remembered for the
        retries (in memory of the store, not forced to disk: a lost one means one more
        upload, never a second message)."""
        mxc = state.get(f"upload:{key}")
        if not mxc:
            mxc = await self.upload(file)
            state.set(f"upload:{key}", mxc, durable=False)
        return mxc

    async def upload(self, file: OutgoingFile) -> str:
        """Upload the file, read from disk in chunks; returns its mxc URI."""
        try:
            size = (await asyncio.to_thread(file.path.stat)).st_size
        except OSError as exc:
            raise FileRefused(f"the stored file cannot be read ({exc})") from None
        query = urlencode({"filename": file.name})
        headers = {"Content-Type": file.mimetype, "Content-Length": str(size)}
        try:
            async with self._request("POST", f"/_matrix/media/v3/upload?{query}",
                                     headers, read_chunks(file.path, size)) as response:
                answer = await _answer(response)
                if response.status == 413 or answer.get("errcode") == "M_TOO_LARGE":
                    raise FileRefused(f"the homeserver does not take files of {size} "
                                      "bytes (its max_upload_size)")
                if response.status != 200:
                    raise http_error(response.status, answer,
                                     response.headers.get("Retry-After"))
        except _NETWORK_ERRORS as exc:
            raise BackendUnavailable(f"matrix: upload: {type(exc).__name__}: {exc}") from None
        mxc = answer.get("content_uri")
        if not isinstance(mxc, str) or parse_mxc(mxc) is None:
            raise BackendError(f"matrix: upload answered no usable content_uri: {answer!r:.200}")
        log.info("matrix: uploaded a file of %d bytes as %s", size, mxc)
        return mxc

    async def download(self, url: str, max_bytes: int) -> AsyncIterator[bytes]:
        """The file at an mxc URI, in chunks, through the configured homeserver only;
        FileRefused as soon as it proves larger than `max_bytes`."""
        parts = parse_mxc(url)
        if parts is None:
            raise FileRefused(f"matrix: not an mxc URI: {url[:100]!r}")
        path = f"{quote(parts[0], safe=':')}/{parts[1]}"
        try:
            response = await self._open_download(path, max_bytes)
            try:
                received = 0
                async for chunk in response.content.iter_chunked(CHUNK):
                    received += len(chunk)
                    if received > max_bytes:
                        raise FileRefused(f"matrix: {url} is larger than {max_bytes} bytes")
                    yield chunk
            finally:
                response.close()  # an unread rest is not read: the connection is dropped
        except _NETWORK_ERRORS as exc:
            raise BackendUnavailable(f"matrix: download: {type(exc).__name__}: {exc}") from None

    async def _open_download(self, path: str, max_bytes: int) -> aiohttp.ClientResponse:
        response = await self._request("GET", f"/_matrix/client/v1/media/download/{path}")
        if response.status in (400, 404):
            answer = await _answer(response)
            if answer.get("errcode") != "M_UNRECOGNIZED":
                raise _refused(path, response.status, answer)
            # A homeserver from before authenticated media (spec 1.11): the old endpoint.
            response = await self._request("GET", f"/_matrix/media/v3/download/{path}")
        if response.status == 200 and (response.content_length or 0) <= max_bytes:
            return response
        if response.status == 200:
            response.close()  # unread
            raise FileRefused(f"matrix: media {path} has {response.content_length} bytes, "
                              f"more than {max_bytes}")
        answer = await _answer(response)
        if response.status == 429 or response.status >= 500:
            raise http_error(response.status, answer, response.headers.get("Retry-After"))
        raise _refused(path, response.status, answer)  # gone, forbidden; or a redirect

    def _request(self, method: str, path: str, headers: dict[str, str] | None = None,
                 data: Any = None) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=_TIMEOUT)
        return self._session.request(
            method, self._base + path, data=data, allow_redirects=False,
            headers={**(headers or {}), "Authorization": f"Bearer {self._token()}"})


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


async def _answer(response: aiohttp.ClientResponse) -> dict[str, Any]:
    """A small JSON answer, or {} when it is none; the response is closed after it."""
    data = b""
    try:
        while len(data) <= ANSWER_MAX and (chunk := await response.content.read(ANSWER_MAX)):
            data += chunk
    finally:
        response.close()
    try:
        answer = json.loads(data)
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}


def _refused(path: str, status: int, answer: dict[str, Any]) -> FileRefused:
    error = FileRefused(f"matrix: media {path}: {status} {answer.get('errcode') or ''}".rstrip())
    error.status = status
    return error
