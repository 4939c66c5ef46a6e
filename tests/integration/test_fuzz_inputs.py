"""Hostile input over a real socket and real HTTP: never `internal`, never a 5xx.

A corpus generated with hypothesis (the strategies of tests/unit/test_fuzz_protocol.py) goes
to `/v1/ws` on a fresh connection and on one inside a chat, and to every HTTP endpoint as
bodies, query strings and header values, as raw bytes so nothing is cleaned on the way.
Every refusal must carry a documented code and the socket must still answer `ping`.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import quote_from_bytes, urlsplit

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from bridge.core.protocol import is_encodable
from tests.integration.helpers import Visitor
from tests.unit.test_fuzz_protocol import (
    DOCUMENTED,
    hostile_frames,
    hostile_offline_bodies,
    hostile_strings,
)

FRAMES = 400  # per socket; the whole file runs in a few seconds
MAX_FRAME_BYTES = 64 * 1024
ADMIN_TOKEN = "fuzz-admin-token-0123456789"


def corpus(strategy: st.SearchStrategy[Any], size: int) -> list[Any]:
    """`size` generated examples (hypothesis picks them; each run a different sample)."""
    found: list[Any] = []

    @settings(max_examples=size, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(value: Any) -> None:
        found.append(value)

    collect()
    return found


def sendable(raw: str) -> bool:
    # Invalid UTF-8 and frames over 64 KiB close the socket by design (1007, 1009);
    # test_bad_input covers those.
    return is_encodable(raw) and len(raw.encode()) <= MAX_FRAME_BYTES


async def round_trip(visitor: Visitor, raw: str) -> list[dict[str, Any]]:
    """Send one frame, then `ping`: what came back before the `pong` answers the frame
    (frames of a connection are handled in order)."""
    before = len(visitor.frames)
    await visitor.send_raw(raw)
    await visitor.send({"type": "ping"})
    await visitor.wait("pong", start=before, timeout=10)
    return visitor.frames[before:]


def assert_documented(replies: list[dict[str, Any]], raw: str) -> None:
    for frame in replies:
        if frame.get("type") == "error":
            assert frame["code"] != "internal", (raw[:300], frame)
            assert frame["code"] in DOCUMENTED, (raw[:300], frame)


async def test_hostile_frames_get_documented_errors(make_matrix_bridge, visitors) -> None:
    bridge = await make_matrix_bridge(frames_per_10s=100_000, identity="fuzz-identity-secret")
    fresh = await visitors(bridge.base_url)
    chatting = await visitors(bridge.base_url)
    await chatting.start()
    frames = [raw for raw in corpus(hostile_frames, FRAMES * 2) if sendable(raw)][:FRAMES]
    deadline = time.monotonic() + 20
    for raw in frames:
        for visitor in (fresh, chatting):
            assert_documented(await round_trip(visitor, raw), raw)
        assert time.monotonic() < deadline, "the corpus took too long"
    for visitor in (fresh, chatting):  # still open and answering
        assert not visitor.ws.closed
        assert (await round_trip(visitor, '{"type": "ping"}'))[-1] == {"type": "pong"}


# --- HTTP, as raw bytes -------------------------------------------------------------------


async def http(base_url: str, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """One request on its own connection: (status, body). `head` is the request line and
    headers without the final blank line."""
    url = urlsplit(base_url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        length = b"Content-Length: %d\r\n" % len(body) if body else b""
        writer.write(head + b"\r\nHost: " + url.netloc.encode() + b"\r\n" + length
                     + b"Connection: close\r\n\r\n" + body)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


def where(head: bytes) -> str:
    """The request line without the query, and the first header's name."""
    lines = head.split(b"\r\n")
    header = lines[1].partition(b":")[0] if len(lines) > 1 else b""
    return f"{lines[0].partition(b'?')[0].decode()} {header.decode()}"


def hostile_bytes(text: str) -> bytes:
    # surrogatepass: a lone surrogate becomes the invalid UTF-8 a hostile client can send.
    return text.encode("utf-8", "surrogatepass")


def wrong_answer(status: int, body: bytes) -> str | None:
    """What is wrong with an answer to a hostile request, if anything."""
    if status >= 500:
        return f"HTTP {status}"
    if status in (400, 401):
        try:
            code = json.loads(body)["error"]["code"]
        except (ValueError, KeyError, TypeError):
            return None  # aiohttp's own plain-text 400 for a request it cannot parse
        if code not in DOCUMENTED:
            return f"HTTP {status} with the undocumented code {code!r}"
    return None


CONTENT_TYPES = [b"application/json", b"application/json; charset=utf-16",
                 b"text/plain; charset=no-such-charset", b"application/x-www-form-urlencoded",
                 b"multipart/form-data; boundary=x"]


HEADER_VALUES = [b"\xff\xfe", b"\xed\xa0\x80", b"\xc3", b"%", b"%ZZ", b"\x00", b"\x7f" * 40,
                 b"http://[", b"http://[::1", b"https://x:99999", b"http://\xff", b"null"]


async def hostile_requests(base: str, requests: Any) -> dict[str, str]:
    """Sends `requests(value)` for generated and fixed hostile values; returns one example
    per endpoint and problem."""
    values = [hostile_bytes(v) for v in corpus(hostile_strings, 60)] + HEADER_VALUES
    wrong: dict[str, str] = {}
    for value in values:
        for head, body in requests(value):
            problem = wrong_answer(*await http(base, head, body))
            if problem:
                wrong.setdefault(f"{where(head)}: {problem}", repr((head + body)[:300]))
    return wrong


async def test_hostile_offline_bodies_get_documented_errors(make_matrix_bridge) -> None:
    bridge = await make_matrix_bridge()
    bodies = corpus(hostile_offline_bodies, 150)
    bodies += ["[" * 60_000, "{}", "\ufeff{}", "\ud800", '{"name": "\\ud800"}']
    wrong: dict[str, str] = {}
    for n, body in enumerate(bodies):
        content_type = CONTENT_TYPES[n % len(CONTENT_TYPES)]
        head = b"POST /v1/offline HTTP/1.1\r\nContent-Type: " + content_type
        problem = wrong_answer(*await http(bridge.base_url, head, hostile_bytes(body)))
        if problem:
            wrong.setdefault(f"{content_type.decode()}: {problem}", repr(body[:200]))
    assert wrong == {}
    status, _ = await http(bridge.base_url, b"POST /v1/offline HTTP/1.1", b"x" * 70_000)
    assert status == 413


async def test_hostile_query_and_header_values_get_no_5xx(make_matrix_bridge) -> None:
    bridge = await make_matrix_bridge(admin_token=ADMIN_TOKEN)
    assert await hostile_requests(bridge.base_url, requests_with) == {}
    status, answer = await http(bridge.base_url, b"GET /healthz HTTP/1.1")
    assert (status, json.loads(answer)) == (200, {"ok": True})


async def test_hostile_origin_and_admin_token_get_no_5xx(make_matrix_bridge) -> None:
    bridge = await make_matrix_bridge(admin_token=ADMIN_TOKEN)
    assert await hostile_requests(bridge.base_url, origin_requests_with) == {}


def requests_with(value: bytes) -> list[tuple[bytes, bytes]]:
    """`value` in each query string, header and form field the endpoints read (as raw
    header bytes, %-encoded in URLs and forms): (head, body) pairs."""
    header = value.replace(b"\r", b"").replace(b"\n", b"")[:4000]
    query = quote_from_bytes(value[:2000]).encode()
    form = b"Content-Type: application/x-www-form-urlencoded"
    token = b"Authorization: Bearer " + ADMIN_TOKEN.encode()
    heads = [
        b"GET /v1/config?lang=" + query + b" HTTP/1.1",
        b"GET /v1/status?lang=" + query + b"&lang=" + query + b" HTTP/1.1",
        b"GET /v1/transcript HTTP/1.1\r\nX-Livechat-Token: " + header,
        b"GET /stats?since=" + query + b"&until=" + query + b" HTTP/1.1\r\n" + token,
        b"GET /widget.js HTTP/1.1\r\nAccept-Encoding: " + header,
    ]
    return [*((head, b"") for head in heads),
            (b"POST /stats HTTP/1.1\r\n" + form, b"token=" + query + b"&since=" + query),
            (b"POST /stats HTTP/1.1\r\n" + form, b"token=" + ADMIN_TOKEN.encode()
             + b"&since=" + query + b"&until=" + query)]


def origin_requests_with(value: bytes) -> list[tuple[bytes, bytes]]:
    """`value` as the Origin of every endpoint that reads it, and as the admin token."""
    header = value.replace(b"\r", b"").replace(b"\n", b"")[:4000]
    return [(head + header, b"") for head in (
        b"GET /v1/config HTTP/1.1\r\nOrigin: ",
        b"GET /v1/status HTTP/1.1\r\nOrigin: ",
        b"GET /v1/transcript HTTP/1.1\r\nOrigin: ",
        b"OPTIONS /v1/transcript HTTP/1.1\r\nOrigin: ",
        b"POST /v1/offline HTTP/1.1\r\nOrigin: ",
        b"GET /v1/ws HTTP/1.1\r\nOrigin: ",
        b"GET /stats HTTP/1.1\r\nAuthorization: Bearer ",
    )]
