#!/usr/bin/env python3
"""File transfer: a 10 MiB file through the bridge both ways, against a direct upload.

Starts a private Synapse and the bridge as its own process (as `relay_latency.py` does, with
`[files] max_bytes` raised), connects a visitor over the WebSocket and an agent and a second
"peer" user on matrix-nio clients, then measures, one transfer at a time, the order of the
three kinds rotated every round (a fresh random file every time):

    upload_to_room     the visitor's POST /v1/uploads starts -> the agent's client sees the
                       m.file event in the conversation's room (also: the POST until its 201)
    direct_to_room     the peer's media upload starts (then its m.file) -> the agent's client
                       sees the event in a room the two share: the baseline
    agent_to_visitor   the agent's media upload starts (then its m.file) -> the visitor's
                       socket gets the `message` frame with `file`; and on until GET
                       /v1/files/{id} has returned every byte (checked against what was sent)

Meanwhile a thread reads the bridge process's VmRSS every few milliseconds: a file that is
streamed leaves it nearly flat; one held whole in memory would add its own size. Prints one
JSON object on stdout, logs on stderr (docs: bench/README.md, "Files").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
from nio import RoomMessageMedia, RoomSendResponse, UploadResponse

BENCH_DIR = Path(__file__).resolve().parent
if importlib.util.find_spec("bridge") is None:  # run from a checkout, package not installed
    sys.path.insert(0, str(BENCH_DIR.parent))
if str(BENCH_DIR) not in sys.path:  # the helper modules next to this script
    sys.path.insert(0, str(BENCH_DIR))

from _soak_proc import MIB, memory  # noqa: E402
from relay_latency import (  # noqa: E402
    Accounts,
    BenchBridge,
    BenchError,
    MatrixUser,
    Probe,
    Visitor,
    as_ctrl_c,
    register_accounts,
    room_of,
    start_user,
)
from soak import bridge_revision  # noqa: E402

from bridge.devserver.synapse import prepare_synapse  # noqa: E402
from bridge.web.uploads import CLIENT_ID_HEADER, NAME_HEADER, TOKEN_HEADER  # noqa: E402

log = logging.getLogger("file_transfer")

FILE_BYTES = 10 * MIB
# Above the file, so the bridge's default cap (10 MiB) never decides; Synapse takes 50M.
MAX_BYTES = 32 * MIB
PDF_HEAD = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"  # sniffed as application/pdf, an allowed type
PDF = "application/pdf"
WARMUP_ROUNDS = 1
PAUSE_S = 0.2  # between transfers, so that one's tail never overlaps the next
RSS_EVERY_S = 0.005
SETTLE_S = 1.0  # RSS read this long before the first upload, for the baseline
KINDS = ("upload_to_room", "direct_to_room", "agent_to_visitor")
MEASURES = ("upload_to_room_s", "upload_post_s", "direct_to_room_s", "agent_to_visitor_s",
            "agent_to_visitor_download_s", "download_get_s")
Times = dict[str, float]


# -- the parts -------------------------------------------------------------------------------


class FilesBridge(BenchBridge):
    """relay_latency's bridge with files allowed up to MAX_BYTES and no per-hour caps (every
    round uploads from the same conversation and address)."""

    def __init__(self, workdir: Path, accounts: Accounts) -> None:
        super().__init__(workdir, accounts)
        with self.config.open("a") as config:
            config.write(f"[files]\nmax_bytes = {MAX_BYTES}\nper_hour = 0\n"
                         "[limits]\nuploads_per_hour = 0\n")


class FileVisitor(Visitor):
    """relay_latency's visitor that also uploads and downloads, and keeps the `file` of the
    agents' file frames by name (the frame's `text` is the name, stamped by the inbox)."""

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url)
        self.token = ""
        self.agent_files: dict[str, dict[str, Any]] = {}
        self.agent_joined = asyncio.Event()
        self._http = aiohttp.ClientSession()

    def _on_frame(self, frame: dict[str, Any], at: float) -> None:
        kind = frame.get("type")
        if kind == "started":
            self.token = str(frame["token"])
        elif kind == "message" and frame.get("from") == "agent" and "file" in frame:
            self.agent_files[str(frame["text"])] = frame["file"]  # before the inbox wakes
        elif kind == "agent" and frame.get("event") == "joined":
            self.agent_joined.set()
        super()._on_frame(frame, at)

    async def upload(self, content: bytes, name: str) -> None:
        headers = {TOKEN_HEADER: self.token, CLIENT_ID_HEADER: uuid.uuid4().hex,
                   NAME_HEADER: quote(name)}
        async with self._http.post(f"{self.base_url}/v1/uploads", data=content,
                                   headers=headers) as response:
            answer = await response.json()
        if response.status != 201:
            raise BenchError(f"upload of {name} answered {response.status}: {answer}")

    async def download(self, file_id: str) -> bytes:
        async with self._http.get(f"{self.base_url}/v1/files/{file_id}",
                                  headers={TOKEN_HEADER: self.token}) as response:
            body = await response.read()
        if response.status != 200:
            raise BenchError(f"GET /v1/files/{file_id} answered {response.status}")
        return body

    async def close(self) -> None:
        await super().close()
        await self._http.close()


def see_files(user: MatrixUser) -> None:
    """Stamp the user's incoming m.file/m.image events in its inbox by body (the name). nio
    runs event callbacks while it handles a sync's answer, just before `sync` returns."""
    def arrived(_room: object, event: RoomMessageMedia) -> None:
        user.inbox.arrived(event.body, time.perf_counter())

    user.client.add_event_callback(arrived, RoomMessageMedia)


async def send_file(user: MatrixUser, room: str, content: bytes, name: str) -> None:
    """What Element does: the bytes to the media repository, then an m.file event."""
    uploaded, _keys = await user.client.upload(
        lambda *_: content, content_type=PDF, filename=name, filesize=len(content))
    if not isinstance(uploaded, UploadResponse):
        raise BenchError(f"{user.user_id}: media upload failed: {uploaded}")
    sent = await user.client.room_send(room, "m.room.message", {
        "msgtype": "m.file", "body": name, "filename": name, "url": uploaded.content_uri,
        "info": {"mimetype": PDF, "size": len(content)}})
    if not isinstance(sent, RoomSendResponse):
        raise BenchError(f"{user.user_id}: send to {room} failed: {sent}")


def a_file(size: int) -> bytes:
    """A PDF by its first bytes, random after them: unique every time, so the bridge's
    content-addressed store never finds it there already."""
    return PDF_HEAD + os.urandom(size - len(PDF_HEAD))


# -- the bridge's memory ---------------------------------------------------------------------


class RssSampler:
    """VmRSS of one process every RSS_EVERY_S, read from a thread so that the benchmark's
    busy event loop does not space the readings out."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[tuple[float, int]] = []  # (perf_counter, bytes)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            rss, _hwm = memory(self.pid)
            self.samples.append((time.perf_counter(), rss))
            self._stop.wait(RSS_EVERY_S)

    def peak(self, start: float, end: float) -> int:
        return max((rss for at, rss in self.samples if start <= at <= end), default=0)

    def last_before(self, moment: float) -> int:
        return next((rss for at, rss in reversed(self.samples) if at <= moment), 0)


@dataclass
class Windows:
    """When each transfer ran (its start to its last byte), by kind, for the RSS peaks."""

    spans: dict[str, list[tuple[float, float]]] = field(default_factory=dict)

    def add(self, kind: str, start: float, end: float) -> None:
        self.spans.setdefault(kind, []).append((start, end))

    def peak(self, sampler: RssSampler, kind: str) -> int:
        return max((sampler.peak(start, end) for start, end in self.spans.get(kind, [])),
                   default=0)

    def growth(self, sampler: RssSampler, kind: str) -> int:
        """The most one transfer of the kind added, from its start to its own peak."""
        return max((sampler.peak(start, end) - sampler.last_before(start)
                    for start, end in self.spans.get(kind, [])), default=0)


# -- the measurement -------------------------------------------------------------------------


@dataclass(frozen=True)
class Parties:
    visitor: FileVisitor
    agent: MatrixUser
    peer: MatrixUser
    conversation_room: str
    direct_room: str


async def upload_to_room(p: Parties, content: bytes, name: str) -> Times:
    posted: list[float] = []

    async def post(body: str) -> None:
        started = time.perf_counter()
        await p.visitor.upload(content, body)
        posted.append(time.perf_counter() - started)

    to_room = await Probe("upload_to_room", post, p.agent.inbox).sample(name)
    return {"upload_to_room_s": to_room, "upload_post_s": posted[0]}


async def direct_to_room(p: Parties, content: bytes, name: str) -> Times:
    send = partial(send_file, p.peer, p.direct_room, content)
    return {"direct_to_room_s": await Probe("direct_to_room", send, p.agent.inbox).sample(name)}


async def agent_to_visitor(p: Parties, content: bytes, name: str) -> Times:
    send = partial(send_file, p.agent, p.conversation_room, content)
    started = time.perf_counter()  # a few microseconds before the probe's own start
    to_visitor = await Probe("agent_to_visitor", send, p.visitor.inbox).sample(name)
    got_frame = time.perf_counter()
    body = await p.visitor.download(p.visitor.agent_files.pop(name)["id"])
    done = time.perf_counter()
    if body != content:
        raise BenchError(f"{name}: the visitor got {len(body)} bytes that differ from the "
                         f"{len(content)} the agent sent")
    return {"agent_to_visitor_s": to_visitor, "agent_to_visitor_download_s": done - started,
            "download_get_s": done - got_frame}


TRANSFERS: dict[str, Callable[[Parties, bytes, str], Awaitable[Times]]] = {
    "upload_to_room": upload_to_room,
    "direct_to_room": direct_to_room,
    "agent_to_visitor": agent_to_visitor,
}


async def run_rounds(p: Parties, rounds: int, size: int, windows: Windows
                     ) -> dict[str, list[float]]:
    """Rounds of one transfer per kind, the order rotated each round; warm-up not kept."""
    samples: dict[str, list[float]] = {}
    for n in range(WARMUP_ROUNDS + rounds):
        for kind in KINDS[n % len(KINDS):] + KINDS[:n % len(KINDS)]:
            content = a_file(size)
            start = time.perf_counter()
            times = await TRANSFERS[kind](p, content, f"{kind}-{n}-{uuid.uuid4().hex[:8]}.pdf")
            if n >= WARMUP_ROUNDS:
                windows.add(kind, start, time.perf_counter())
                for measure, seconds in times.items():
                    samples.setdefault(measure, []).append(seconds)
            await asyncio.sleep(PAUSE_S)
        log.info("round %d/%d done%s", n + 1, WARMUP_ROUNDS + rounds,
                 " (warm-up)" if n < WARMUP_ROUNDS else "")
    return samples


async def set_up(stack: contextlib.AsyncExitStack, accounts: Accounts, workdir: Path
                 ) -> tuple[Parties, int]:
    """Bridge, agent, peer and visitor, the conversation's room and a direct room joined;
    returns the parties and the bridge's pid. The stack undoes it all."""
    bridge = FilesBridge(workdir, accounts)
    stack.push_async_callback(bridge.stop)
    await bridge.start()
    assert bridge.proc is not None
    agent = await start_user(stack, accounts.homeserver, accounts.agent_id,
                             accounts.agent_token, "agent")
    peer = await start_user(stack, accounts.homeserver, accounts.peer_id,
                            accounts.peer_token, "peer")
    see_files(agent)
    visitor = FileVisitor(bridge.base_url)
    stack.push_async_callback(visitor.close)
    await visitor.connect()

    conversation_room = await room_of(bridge, await visitor.start_conversation())
    await agent.join(conversation_room)
    async with asyncio.timeout(30):  # the bridge takes the agent's files once it saw the join
        await visitor.agent_joined.wait()
    direct_room = await agent.create_room(invite=peer.user_id)
    await peer.join(direct_room)
    log.info("conversation room %s, direct room %s", conversation_room, direct_room)
    return Parties(visitor, agent, peer, conversation_room, direct_room), bridge.proc.pid


async def measure(accounts: Accounts, workdir: Path, rounds: int, size: int
                  ) -> dict[str, Any]:
    async with contextlib.AsyncExitStack() as stack:
        parties, pid = await set_up(stack, accounts, workdir)
        sampler = RssSampler(pid)
        sampler.start()
        stack.callback(sampler.stop)
        await asyncio.sleep(SETTLE_S)
        before = sampler.peak(0.0, time.perf_counter())
        windows = Windows()
        first = time.perf_counter()
        samples = await run_rounds(parties, rounds, size, windows)
        last = time.perf_counter()
        end_rss, hwm = memory(pid)
        rss = rss_report(sampler, windows, before=before, during=(first, last),
                         end=end_rss, hwm=hwm)
    return {"samples": samples, "bridge_rss": rss}


# -- the report ------------------------------------------------------------------------------


def summary(seconds: list[float]) -> dict[str, Any]:
    return {
        "median": round(statistics.median(seconds), 4),
        "p90": round(statistics.quantiles(seconds, n=10, method="inclusive")[8], 4),
        "min": round(min(seconds), 4),
        "max": round(max(seconds), 4),
        "spread": round(max(seconds) - min(seconds), 4),
        "n": len(seconds),
    }


def mib(value: int) -> float:
    return round(value / MIB, 1)


def rss_report(sampler: RssSampler, windows: Windows, *, before: int,
               during: tuple[float, float], end: int, hwm: int) -> dict[str, Any]:
    """Peak minus baseline, overall (warm-up included: the first file may be the one that
    grows the heap) and per kind over the measured transfers."""
    peak = sampler.peak(*during)
    return {
        "before_mib": mib(before),
        "peak_mib": mib(peak),
        "growth_mib": mib(peak - before),
        "growth_by_kind_mib": {kind: mib(windows.peak(sampler, kind) - before)
                               for kind in KINDS},
        "growth_within_transfer_mib": {kind: mib(windows.growth(sampler, kind))
                                       for kind in KINDS},
        "end_mib": mib(end),
        "hwm_end_mib": mib(hwm),
        "samples": sum(1 for at, _ in sampler.samples if during[0] <= at <= during[1]),
    }


def report(result: dict[str, Any], rounds: int, size: int) -> dict[str, Any]:
    samples: dict[str, list[float]] = result["samples"]
    stats = {measure: summary(samples[measure]) for measure in MEASURES}
    direct = stats["direct_to_room_s"]["median"]
    return {
        "backend": "matrix",
        "file_bytes": size,
        "rounds": rounds,
        "warmup_rounds": WARMUP_ROUNDS,
        "unit": "s",
        **stats,
        "ratio_median": {"upload_to_room_s": round(stats["upload_to_room_s"]["median"]
                                                   / direct, 3)},
        "bridge_rss": result["bridge_rss"],
        "synapse": importlib.metadata.version("matrix-synapse"),
        "commit": bridge_revision(),
    }


# -- running it ------------------------------------------------------------------------------


def run(rounds: int, size: int, workdir: Path) -> dict[str, Any]:
    server = prepare_synapse(workdir / "synapse")
    try:
        server.start()
        accounts = register_accounts(server)
        result = asyncio.run(measure(accounts, workdir, rounds, size))
    finally:
        server.stop()
    return report(result, rounds, size)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20,
                        help="measured rounds, one transfer of each kind (default 20, after "
                             f"{WARMUP_ROUNDS} warm-up)")
    parser.add_argument("--mib", type=float, default=FILE_BYTES / MIB,
                        help="file size in MiB (default 10; at most 32)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="also the INFO logs of the clients (the bridge logs to its own file)")
    args = parser.parse_args(argv)
    if args.rounds < 2:
        parser.error("--rounds must be at least 2 (for a p90)")
    if not 0 < args.mib <= MAX_BYTES / MIB:
        parser.error(f"--mib must be more than 0 and at most {MAX_BYTES // MIB}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)
    signal.signal(signal.SIGTERM, as_ctrl_c)
    size = max(int(args.mib * MIB), len(PDF_HEAD) + 1)
    try:
        with tempfile.TemporaryDirectory(prefix="file-transfer-") as workdir:
            result = run(args.rounds, size, Path(workdir))
    except KeyboardInterrupt:
        log.error("interrupted; everything stopped")
        return 130
    except Exception:
        log.exception("benchmark failed; everything stopped")
        return 1
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
