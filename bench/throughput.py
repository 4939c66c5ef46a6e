#!/usr/bin/env python3
"""Throughput: durable visitor messages per second per core through hub and store.

The bar (DESIGN.md, "Quality bars"): at least 2,000 durable visitor messages per second per
core through hub and store (SQLite WAL, synchronous=FULL for the outbox), measured with a
recording backend. Two measurements, each on a fresh database in a temporary directory:

    socket    the bridge (bridge.app.Bridge with a RecordingBackend, bench/_recording.py) in
              its own process, serving /v1/ws on loopback; N visitors in this process, each
              on its own WebSocket, send M `message` frames each, at most W unacknowledged
              per socket. Counted: the bridge process's CPU time from the first frame until
              the backend has every line.
    hub_only  Hub, Store and a RecordingBackend in this process; N tasks call
              Hub.visitor_message directly (frames parsed beforehand), M lines each, with a
              sink that only counts frames. No sockets, no JSON, no aiohttp.

`messages_per_cpu_s` (messages / CPU-seconds of the process running the hub) is the "per
core" figure: the bridge runs one event loop in one thread. `meets_target` is the socket
figure against 2,000 (the hub_only figure when only `--mode hub` ran). Afterwards every
line is checked: acked exactly once, stored exactly once in send order, posted to the
backend exactly once and in order. Prints one JSON object on stdout, progress on stderr
(docs: bench/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import logging
import os
import platform
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import aiohttp

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
if str(REPO_ROOT) not in sys.path:  # for `tests.fakes` (and `bridge` when not installed)
    sys.path.insert(0, str(REPO_ROOT))

from _recording import cpu_seconds  # noqa: E402

from bridge.app import build_hub  # noqa: E402
from bridge.config import parse_config  # noqa: E402
from bridge.core.models import ConversationId  # noqa: E402
from bridge.core.protocol import MessageFrame, StartFrame, parse_frame  # noqa: E402
from bridge.hub import Hub  # noqa: E402
from bridge.store import Store  # noqa: E402
from tests.fakes.backend import RecordingBackend  # noqa: E402

log = logging.getLogger("throughput")

TARGET_PER_CPU_S = 2000
ORIGIN = "https://shop.example.com"
SETUP_TIMEOUT_S = 60.0
RUN_TIMEOUT_S = 900.0
STOP_TIMEOUT_S = 15.0

Acks = dict[str, list[int]]  # client_id -> every seq acked for it (one, when all is well)


class BenchError(RuntimeError):
    """A part of the set-up refused to work; the run is void."""


# -- what the visitors send -------------------------------------------------------------------


def bridge_config(db: Path) -> dict[str, Any]:
    """The bridge's config: a loopback port picked by the kernel, the flood limit lifted,
    chats that never time out, one queue with one agent (the backend never dials out)."""
    return {
        "server": {"listen": "127.0.0.1:0", "allowed_origins": [ORIGIN],
                   "frames_per_10s": 100_000_000, "idle_timeout_minutes": 0},
        # Every visitor comes from one loopback address: its per-address limits are lifted.
        "limits": {"sockets_per_address": 0, "chats_per_address": 0},
        "storage": {"path": str(db)},
        "backend": {"type": "matrix"},  # replaced by the recording backend
        "matrix": {"homeserver": "http://127.0.0.1:9", "user_id": "@support:bench.invalid",
                   "password": "bench-pw-unused"},
        "agents": [{"id": "alice", "address": "@alice:bench.invalid", "name": "Alice"}],
        "queues": [{"id": "support", "name": "Support", "agents": ["alice"]}],
    }


def start_frame(visitor: int) -> dict[str, Any]:
    return {"type": "start", "visitor": {"name": f"Visitor {visitor}",
                                         "email": f"visitor{visitor}@example.com"},
            "page": {"url": f"{ORIGIN}/pricing", "title": "Pricing"}, "lang": "en"}


def lines(visitor: int, messages: int) -> list[tuple[str, str]]:
    """(client_id, text) of every line one visitor sends, in order."""
    return [(f"v{visitor}-m{n}",
             f"Hello, visitor {visitor} here with question {n}: where is my order? "
             "It was due on Monday and the tracking page shows nothing yet.")
            for n in range(messages)]


# -- the bridge in its own process ------------------------------------------------------------


class BridgeChild:
    """bench/_recording.py: a real bridge with a recording backend, in its own process, so
    the visitors' work here never counts as the bridge's and never delays its loop."""

    def __init__(self, workdir: Path) -> None:
        self.db = workdir / "socket.sqlite3"
        self.config_path = workdir / "bridge.json"
        self.config_path.write_text(json.dumps(bridge_config(self.db)), encoding="utf-8")
        self.log_path = workdir / "bridge.log"
        self.proc: asyncio.subprocess.Process | None = None
        self.port = 0

    async def start(self) -> None:
        with self.log_path.open("wb") as log_file:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, str(BENCH_DIR / "_recording.py"), str(self.config_path),
                cwd=str(REPO_ROOT), stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=log_file,
            )
        async with asyncio.timeout(SETUP_TIMEOUT_S):
            self.port = int((await self._read())["port"])

    async def command(self, line: str) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()
        answer = await self._read()
        if "error" in answer:
            raise BenchError(f"bridge runner: {answer['error']}")
        return answer

    async def _read(self) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        line = await self.proc.stdout.readline()
        if not line:
            await self.proc.wait()
            raise BenchError(f"bridge exited ({self.proc.returncode}): "
                             f"{self.log_path.read_text()[-2000:]}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def stop(self) -> None:
        """End of stdin stops the bridge cleanly; a bridge that hangs is killed."""
        if self.proc is None or self.proc.returncode is not None:
            return
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()

    @property
    def ws_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/ws"


# -- the visitors -----------------------------------------------------------------------------


class Visitor:
    """One widget on one WebSocket: starts a chat, then sends its lines as fast as acks allow,
    at most `window` unacknowledged."""

    def __init__(self, index: int, messages: int, window: int) -> None:
        self.index = index
        self.lines = lines(index, messages)
        self.acks: Acks = defaultdict(list)
        self.latencies: list[float] = []
        self.conversation = ConversationId("")
        self._window = asyncio.Semaphore(window)
        self._sent_at: dict[str, float] = {}
        self._started: asyncio.Future[str] | None = None
        self._all_acked = asyncio.Event()
        self._failure: BaseException | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None

    async def connect(self, session: aiohttp.ClientSession, url: str) -> None:
        self._ws = await session.ws_connect(url, headers={"Origin": ORIGIN}, compress=0)
        self._started = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read(self._ws), name=f"visitor-{self.index}")
        self._reader.add_done_callback(self._reader_done)

    async def start(self) -> None:
        assert self._started is not None
        await self._send(start_frame(self.index))
        self.conversation = ConversationId(await self._started)

    async def run(self) -> None:
        """Send every line; returns when each one is acked."""
        for client_id, text in self.lines:
            await self._window.acquire()
            self._check()
            self._sent_at[client_id] = time.monotonic()
            await self._send({"type": "message", "client_id": client_id, "text": text})
        await self._all_acked.wait()
        self._check()

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type is aiohttp.WSMsgType.TEXT:
                self._on_frame(json.loads(msg.data), time.monotonic())

    def _on_frame(self, frame: dict[str, Any], at: float) -> None:
        kind = frame.get("type")
        if kind == "ack":
            self._on_ack(str(frame["client_id"]), int(frame["seq"]), at)
        elif kind == "started" and self._started is not None and not self._started.done():
            self._started.set_result(str(frame["conversation"]))
        elif kind == "error":
            raise BenchError(f"visitor {self.index} got an error: {frame}")

    def _on_ack(self, client_id: str, seq: int, at: float) -> None:
        self.acks[client_id].append(seq)
        if len(self.acks[client_id]) > 1:
            return  # a double: the check reports it
        self.latencies.append(at - self._sent_at[client_id])
        self._window.release()
        if len(self.acks) == len(self.lines):
            self._all_acked.set()

    def _reader_done(self, task: asyncio.Task[None]) -> None:
        """The socket closed or the reader failed: wake the sender so it stops."""
        exc = None if task.cancelled() else task.exception()
        self._failure = exc or BenchError(f"visitor {self.index}: socket closed")
        if self._started is not None and not self._started.done():
            if task.cancelled():  # closed by us: nobody waits for the start any more
                self._started.cancel()
            else:
                self._started.set_exception(self._failure)
        self._all_acked.set()
        self._window.release()

    def _check(self) -> None:
        if self._failure is not None:
            raise self._failure

    async def _send(self, frame: dict[str, Any]) -> None:
        if self._ws is None:
            raise BenchError("visitor is not connected")
        await self._ws.send_str(json.dumps(frame))

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)


# -- a measurement window ---------------------------------------------------------------------


@dataclass
class Window:
    """What one measured run saw, from the first line sent until the backend had them all."""

    messages: int
    started: float  # time.monotonic() of the first send
    acked: float  # the last ack arrived
    delivered: float  # the backend got the last line
    bridge_cpu_s: float  # user + system
    bridge_cpu_sys_s: float  # the system part (fsync, sockets)
    client_cpu_s: float | None
    latencies: list[float] = field(default_factory=list)
    memory: dict[str, Any] = field(default_factory=dict)

    def report(self) -> dict[str, Any]:
        wall = self.delivered - self.started
        return {
            "messages": self.messages,
            "acked_s": round(self.acked - self.started, 3),
            "delivered_s": round(wall, 3),
            "acked_per_s": round(self.messages / (self.acked - self.started)),
            "delivered_per_s": round(self.messages / wall),
            "bridge_cpu_s": round(self.bridge_cpu_s, 3),
            "bridge_cpu_sys_s": round(self.bridge_cpu_sys_s, 3),
            "messages_per_cpu_s": round(self.messages / max(self.bridge_cpu_s, 1e-6)),
            # How much of one core the bridge used: near 1, the bridge was the bottleneck.
            "bridge_cpu_busy": round(self.bridge_cpu_s / wall, 2),
            **({"client_cpu_s": round(self.client_cpu_s, 3)}
               if self.client_cpu_s is not None else {}),
            **({"ack_latency_ms": latency_summary(self.latencies)} if self.latencies else {}),
            **self.memory,
        }


def latency_summary(seconds: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in seconds)
    p99 = statistics.quantiles(ms, n=100, method="inclusive")[98] if len(ms) > 1 else ms[0]
    return {"p50": round(statistics.median(ms), 2), "p99": round(p99, 2),
            "max": round(ms[-1], 2)}


# -- socket: the whole path, bridge in its own process ----------------------------------------


async def measure_socket(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    child = BridgeChild(workdir)
    visitors = [Visitor(i, args.messages, args.window) for i in range(args.conversations)]
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(child.stop)
        await child.start()
        # No limit on connections per host (aiohttp's default is 100): one per visitor.
        session = await stack.enter_async_context(
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)))
        for visitor in visitors:
            stack.push_async_callback(visitor.close)
        await start_visitors(child, session, visitors)
        window = await socket_window(args, child, visitors)
        recording_path = workdir / "recording.json"
        await child.command(f"dump {recording_path}")
    check = verify(child.db, {v.conversation: (v.lines, v.acks) for v in visitors},
                   load_json(recording_path))
    return {"bridge": "own process (bench/_recording.py); the visitors' sockets in the "
                      "benchmark's process", **window.report(), "check": check}


async def start_visitors(child: BridgeChild, session: aiohttp.ClientSession,
                         visitors: list[Visitor]) -> None:
    """Every visitor connected with a chat started, and every chat's room opened."""
    async with asyncio.timeout(SETUP_TIMEOUT_S):
        await asyncio.gather(*(v.connect(session, child.ws_url) for v in visitors))
        await asyncio.gather(*(v.start() for v in visitors))
        await child.command(f"wait rooms {len(visitors)}")
    log.info("%d visitors connected, chats started, rooms open", len(visitors))


async def socket_window(args: argparse.Namespace, child: BridgeChild,
                        visitors: list[Visitor]) -> Window:
    total = args.conversations * args.messages
    before = await child.command("stats")
    if args.profile:
        await child.command("profile start")
    client_cpu, started = cpu_seconds()[0], time.monotonic()
    async with asyncio.timeout(RUN_TIMEOUT_S):
        await asyncio.gather(*(v.run() for v in visitors))
        acked, client_cpu = time.monotonic(), cpu_seconds()[0] - client_cpu
        log.info("%d lines acked in %.2fs; waiting for the backend", total, acked - started)
        after = await child.command(f"wait posts {total}")
    if args.profile:
        await child.command(f"profile stop {args.profile / 'socket-bridge.pstats'}")
    return Window(
        messages=total, started=started, acked=acked, delivered=after["reached_at"],
        bridge_cpu_s=after["cpu_s"] - before["cpu_s"],
        bridge_cpu_sys_s=after["cpu_sys_s"] - before["cpu_sys_s"], client_cpu_s=client_cpu,
        latencies=[s for v in visitors for s in v.latencies],
        memory={"bridge_rss_mib": after["rss_mib"], "bridge_peak_rss_mib": after["peak_rss_mib"],
                "sqlite": after["sqlite"]},
    )


# -- hub_only: hub, store and outbox in this process ------------------------------------------


class CountingSink:
    """A visitor connection that only counts what the hub sends it."""

    def __init__(self) -> None:
        self.frames = 0

    async def send(self, frame: dict[str, Any]) -> None:
        self.frames += 1

    async def drain(self) -> None:
        return None


async def measure_hub(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    db = workdir / "hub.sqlite3"
    config = parse_config(bridge_config(db), base_dir=workdir)
    store = Store(db)
    backend = RecordingBackend()
    hub = build_hub(config, store, backend)
    await hub.start()
    try:
        conversations = await start_hub_conversations(hub, backend, args.conversations)
        window, acks = await hub_window(args, hub, backend, conversations)
        sqlite_mode = sqlite_pragmas(store)
    finally:
        await hub.stop()
        store.close()
    sent = {cid: (lines(i, args.messages), acks[cid]) for i, cid in enumerate(conversations)}
    check = verify(db, sent, backend.recording())
    return {"bridge": "in the benchmark's process: Hub.visitor_message called directly",
            **window.report(), "sqlite": sqlite_mode, "check": check}


async def start_hub_conversations(hub: Hub, backend: RecordingBackend, count: int
                                  ) -> list[ConversationId]:
    conversations = []
    for i in range(count):
        frame = parse_frame(json.dumps(start_frame(i)), max_text=hub.config.server.max_text)
        assert isinstance(frame, StartFrame)
        conversations.append((await hub.start_conversation(frame, CountingSink())).id)
    async with asyncio.timeout(SETUP_TIMEOUT_S):
        await backend.wait_rooms(count)
    return conversations


async def hub_window(args: argparse.Namespace, hub: Hub, backend: RecordingBackend,
                     conversations: list[ConversationId]
                     ) -> tuple[Window, dict[ConversationId, Acks]]:
    max_text = hub.config.server.max_text
    frames = {cid: message_frames(i, args.messages, max_text)
              for i, cid in enumerate(conversations)}
    acks: dict[ConversationId, Acks] = {cid: defaultdict(list) for cid in conversations}
    profile = cProfile.Profile(time.process_time) if args.profile else None
    total = args.conversations * args.messages
    if profile is not None:
        profile.enable()
    cpu, started = cpu_seconds(), time.monotonic()
    async with asyncio.timeout(RUN_TIMEOUT_S):
        await asyncio.gather(*(drive(hub, cid, frames[cid], acks[cid]) for cid in conversations))
        acked = time.monotonic()
        delivered = await backend.wait_posts(total)
    cpu_end = cpu_seconds()
    if profile is not None:
        profile.disable()
        profile.dump_stats(args.profile / "hub.pstats")
    return Window(messages=total, started=started, acked=acked, delivered=delivered,
                  bridge_cpu_s=cpu_end[0] - cpu[0], bridge_cpu_sys_s=cpu_end[1] - cpu[1],
                  client_cpu_s=None), acks


def message_frames(visitor: int, messages: int, max_text: int) -> list[MessageFrame]:
    """The visitor's lines as the socket handler hands them to the hub (parsed here, before
    the clock starts: parsing is the web layer's work)."""
    frames = []
    for client_id, text in lines(visitor, messages):
        raw = json.dumps({"type": "message", "client_id": client_id, "text": text})
        frame = parse_frame(raw, max_text=max_text)
        assert isinstance(frame, MessageFrame)
        frames.append(frame)
    return frames


async def drive(hub: Hub, conversation: ConversationId, frames: list[MessageFrame],
                acks: Acks) -> None:
    sink = CountingSink()
    for frame in frames:
        acks[frame.client_id].append(await hub.visitor_message(conversation, frame, sink))
        # Between two frames the socket handler waits for the next one: the other visitors
        # and the couriers run meanwhile.
        await asyncio.sleep(0)


def sqlite_pragmas(store: Store) -> dict[str, Any]:
    return {
        "journal_mode": store.db.execute("PRAGMA journal_mode").fetchone()[0],
        "synchronous": store.db.execute("PRAGMA synchronous").fetchone()[0],
    }


# -- nothing lost, nothing doubled ------------------------------------------------------------


def load_json(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def verify(db: Path, sent: dict[ConversationId, tuple[list[tuple[str, str]], Acks]],
           recording: dict[str, Any]) -> dict[str, Any]:
    """Every line acked exactly once, stored exactly once in send order with the acked seq,
    posted to the backend exactly once, in seq order, with the stored key and text."""
    stored = stored_lines(db)
    posts = posts_by_conversation(recording)
    problems: list[str] = []
    for conversation, (sent_lines, acks) in sent.items():
        problems += check_acks(conversation, sent_lines, acks)
        problems += check_stored(conversation, sent_lines, acks, stored.get(conversation, []))
        problems += check_posted(conversation, stored.get(conversation, []),
                                 posts.get(conversation, []))
    undelivered = sum(1 for rows in stored.values() for row in rows if not row[5])
    other = sum(1 for post in recording["posts"] if post["kind"] != "text")
    return {
        "lines": sum(len(s) for s, _ in sent.values()),
        "acked_once": not any(p.startswith("ack") for p in problems),
        "stored_once_in_order": not any(p.startswith("store") for p in problems),
        "posted_once_in_order": not any(p.startswith("post") for p in problems),
        "undelivered": undelivered,
        "notices_posted": other,
        "problems": problems[:20],
        "ok": not problems and undelivered == 0,
    }


Row = tuple[int, str, str, str, str, int]  # seq, client_id, text, txn_id, event_id, delivered


def stored_lines(db: Path) -> dict[str, list[Row]]:
    """The visitors' text lines in the database, per conversation, in seq order."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        rows = conn.execute(
            "SELECT conversation_id, seq, client_id, text, txn_id, event_id, delivered"
            " FROM items WHERE sender = 'visitor' AND kind = 'text'"
            " ORDER BY conversation_id, seq").fetchall()
    stored: dict[str, list[Row]] = defaultdict(list)
    for conversation, *row in rows:
        stored[conversation].append(tuple(row))  # type: ignore[arg-type]
    return stored


def posts_by_conversation(recording: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Text posts per conversation in arrival order (a reopened room's key has a suffix)."""
    owner = {room: key.split("-")[0] for room, key in recording["rooms"].items()}
    posts: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for post in recording["posts"]:
        if post["kind"] == "text":
            posts[owner.get(post["room"], "?")].append(post)
    return posts


def check_acks(conversation: str, sent_lines: list[tuple[str, str]], acks: Acks) -> list[str]:
    problems = [f"ack: {conversation} {cid} acked {len(acks.get(cid, []))} times"
                for cid, _ in sent_lines if len(acks.get(cid, [])) != 1]
    seqs = [acks[cid][0] for cid, _ in sent_lines if acks.get(cid)]
    if seqs != sorted(set(seqs)):
        problems.append(f"ack: {conversation} seqs not increasing in send order")
    unknown = set(acks) - {cid for cid, _ in sent_lines}
    problems += [f"ack: {conversation} ack for unknown {cid}" for cid in sorted(unknown)]
    return problems


def check_stored(conversation: str, sent_lines: list[tuple[str, str]], acks: Acks,
                 rows: list[Row]) -> list[str]:
    stored = [(client_id, text) for _, client_id, text, *_ in rows]
    if stored != sent_lines:
        return [f"store: {conversation} has {len(rows)} lines, not the {len(sent_lines)} "
                "sent, in order"]
    return [f"store: {conversation} {client_id} stored as seq {seq}, acked {acks[client_id]}"
            for seq, client_id, *_ in rows if acks.get(client_id, [None])[0] != seq]


def check_posted(conversation: str, rows: list[Row], posts: list[dict[str, Any]]
                 ) -> list[str]:
    expected = [(txn_id, text, event_id) for _, _, text, txn_id, event_id, _ in rows]
    got = [(p["key"], p["text"], p["event_id"]) for p in posts]
    if got == expected:
        return []
    return [f"post: {conversation} posted {len(got)} lines, {len(expected)} stored; first "
            f"difference at line {first_difference(got, expected) + 1}"]


def first_difference(a: list[Any], b: list[Any]) -> int:
    pairs = enumerate(zip(a, b, strict=False))
    return next((i for i, (x, y) in pairs if x != y), min(len(a), len(b)))


# -- the report -------------------------------------------------------------------------------


def filesystem_of(path: Path) -> str:
    """The type of the filesystem holding `path` (fsync costs nothing on tmpfs)."""
    best, kind = "", "unknown"
    with open("/proc/mounts", encoding="utf-8") as mounts:
        for line in mounts:
            _, mount_point, fs_type, *_ = line.split()
            prefix = mount_point.rstrip("/") + "/"
            if (str(path.resolve()) + "/").startswith(prefix) and len(prefix) > len(best):
                best, kind = prefix, fs_type
    return kind


def machine(workdir: Path) -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version, "db_filesystem": filesystem_of(workdir)}


async def measure(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    result: dict[str, Any] = {
        "conversations": args.conversations,
        "messages_per_conversation": args.messages,
        "window": args.window,
        "target_messages_per_cpu_s": TARGET_PER_CPU_S,
    }
    if args.mode in ("both", "socket"):
        log.info("socket: %d visitors x %d lines, window %d", args.conversations,
                 args.messages, args.window)
        result["socket"] = await measure_socket(args, workdir)
    if args.mode in ("both", "hub"):
        log.info("hub_only: %d conversations x %d lines", args.conversations, args.messages)
        result["hub_only"] = await measure_hub(args, workdir)
    judged = result.get("socket") or result["hub_only"]
    result["meets_target"] = judged["messages_per_cpu_s"] >= TARGET_PER_CPU_S
    result["profiled"] = args.profile is not None
    result["machine"] = machine(workdir)
    return result


# -- running it -------------------------------------------------------------------------------


def positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=positive, default=50,
                        help="visitors, each with its own chat and socket (default 50)")
    parser.add_argument("--messages", type=positive, default=200,
                        help="lines each visitor sends (default 200)")
    parser.add_argument("--window", type=positive, default=20,
                        help="unacknowledged lines allowed per socket (default 20)")
    parser.add_argument("--mode", choices=["both", "socket", "hub"], default="both",
                        help="socket (whole path, bridge in its own process), hub (hub_only, "
                             "in this process) or both (default)")
    parser.add_argument("--dir", type=Path, default=None,
                        help="where the temporary directory with the databases goes (default: "
                             "the system's temp dir; use a real disk, not tmpfs)")
    parser.add_argument("--profile", type=Path, default=None, metavar="DIR",
                        help="write cProfile stats of the measured windows to DIR "
                             "(socket-bridge.pstats, hub.pstats); slows the runs down")
    parser.add_argument("--json-only", action="store_true",
                        help="no progress on stderr, the JSON on one line")
    return parser.parse_args(argv)


def as_ctrl_c(_signum: int, _frame: FrameType | None) -> None:
    """SIGTERM takes Ctrl-C's path: inside asyncio.run it cancels the main task (so every
    cleanup runs), outside it raises KeyboardInterrupt."""
    signal.raise_signal(signal.SIGINT)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.WARNING if args.json_only else logging.INFO)
    # A shell starts a background job with SIGINT ignored; asyncio.run then leaves it so,
    # and SIGTERM (which takes Ctrl-C's path) would do nothing.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, as_ctrl_c)
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(prefix="throughput-", dir=args.dir) as workdir:
            result = asyncio.run(measure(args, Path(workdir)))
    except KeyboardInterrupt:
        log.error("interrupted; everything stopped")
        return 130
    except Exception:
        log.exception("benchmark failed; everything stopped")
        return 1
    print(json.dumps(result, indent=None if args.json_only else 2))
    checks = [result[mode]["check"]["ok"] for mode in ("socket", "hub_only") if mode in result]
    return 0 if all(checks) else 1


if __name__ == "__main__":
    sys.exit(main())
