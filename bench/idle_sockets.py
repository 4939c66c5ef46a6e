#!/usr/bin/env python3
"""Idle sockets: the bridge's memory with 10,000 visitor sockets open and nothing happening.

The bar (DESIGN.md, "Quality bars"): 10,000 concurrent idle visitor sockets in one process
within 250 MiB RSS. The bridge runs as its own process (this script again, with `--serve`):
`bridge.app.Bridge` on a recording backend that never touches the network, SQLite in a
temporary directory, the default flood limit. This process holds the sockets, on plain
asyncio protocols speaking just enough RFC 6455 (answering the server's pings), and reads the
child's VmRSS and VmHWM from /proc. Each variant gets a fresh child:

    connected        sockets upgraded, then silent
    in_conversation  each socket sent `start` and got `started` (a conversation, its room and
                     its welcome line on the recording backend), then silent

Prints one JSON object on stdout, progress on stderr (docs: bench/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gc
import hashlib
import importlib.metadata
import json
import logging
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve()
REPO_ROOT = SCRIPT.parents[1]
if str(REPO_ROOT) not in sys.path:  # for `tests.fakes` (and `bridge` when not installed)
    sys.path.insert(0, str(REPO_ROOT))

from bridge.app import Bridge  # noqa: E402
from bridge.config import Config, parse_config  # noqa: E402
from bridge.devserver.ports import free_port  # noqa: E402
from bridge.web.app import SOCKETS  # noqa: E402
from tests.fakes.backend import RecordingBackend  # noqa: E402

log = logging.getLogger("idle_sockets")

MIB = 1024 * 1024
TARGET = {"sockets": 10_000, "rss_mib": 250}
VARIANTS = ("connected", "in_conversation")
HOST = "127.0.0.1"
ORIGIN = "https://shop.example.com"
START_FRAME = {"type": "start", "visitor": {"name": "V1", "email": "v1@example.com"}}
# What Chrome sends when a page opens a WebSocket (the server keeps the parsed request for
# the socket's life, so the header set counts; behind a proxy add its X-Forwarded-* lines).
BROWSER_HEADERS = (
    "Connection: Upgrade\r\nPragma: no-cache\r\nCache-Control: no-cache\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36\r\nUpgrade: websocket\r\n"
    f"Origin: {ORIGIN}\r\nSec-WebSocket-Version: 13\r\n"
    "Accept-Encoding: gzip, deflate, br, zstd\r\nAccept-Language: en-US,en;q=0.9\r\n"
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
)
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TRACEMALLOC_ENV = "IDLE_SOCKETS_TRACEMALLOC"  # in the child: frames per traceback
READY_TIMEOUT_S = 30.0
STEP_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 60.0  # a routing sweep over 10,000 waiting chats blocks the loop ~30 s
OP_TEXT, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x8, 0x9, 0xA


class BenchError(RuntimeError):
    """A part of the set-up refused to work; the run is void."""


def raise_nofile_limit() -> int:
    """Lift the soft open-files limit to the hard one; returns the new limit."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def proc_memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in bytes."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) * 1024
    return values


# -- the child: a bridge on a recording backend ---------------------------------------------


def bridge_config(workdir: Path, port: int) -> Config:
    """One queue with a welcome line and one agent; the default flood limit."""
    return parse_config({
        "server": {"listen": f"{HOST}:{port}", "allowed_origins": [ORIGIN]},
        # Every socket comes from one loopback address: its per-address limits are lifted.
        "limits": {"sockets_per_address": 0, "chats_per_address": 0},
        "storage": {"path": str(workdir / "livechat.sqlite3")},
        "backend": {"type": "matrix"},  # the addresses' form; the backend itself is replaced
        "matrix": {"homeserver": "http://127.0.0.1:9", "user_id": "@support:bench.invalid",
                   "password": "never-used-bench"},
        "agents": [{"id": "alice", "address": "@alice:bench.invalid", "name": "Alice"}],
        "queues": [{"id": "support", "name": "Support", "agents": ["alice"],
                    "welcome": "Hi {visitor}, {agent} will be with you shortly."}],
    }, base_dir=workdir)


class ChildServer:
    """The bridge plus a line-based control channel on stdin/stdout (one JSON answer per
    command). EOF on stdin or SIGTERM stops it, so it never outlives the benchmark."""

    def __init__(self, workdir: Path) -> None:
        # Counting only: what it would keep per conversation is not the bridge's memory.
        self.backend = RecordingBackend(keep=False)
        self.bridge = Bridge(bridge_config(workdir, free_port()), backend=self.backend)
        self._mark: tracemalloc.Snapshot | None = None

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        await self.bridge.start()
        try:
            self._answer({"ready": self.bridge.port})
            commands = asyncio.create_task(self._serve_commands(reader))
            stopped = asyncio.create_task(stop.wait())
            await asyncio.wait({commands, stopped}, return_when=asyncio.FIRST_COMPLETED)
            for task in (commands, stopped):
                task.cancel()
        finally:
            await self.bridge.stop()

    async def _serve_commands(self, reader: asyncio.StreamReader) -> None:
        while line := (await reader.readline()).decode().strip():
            command, _, argument = line.partition(" ")
            if command == "quit":
                return
            self._answer(self.command(command, argument))

    def command(self, command: str, argument: str) -> dict[str, Any]:
        handlers: dict[str, Callable[[str], dict[str, Any]]] = {
            "ping": lambda _: {"pong": True},
            "progress": lambda _: self.progress(),
            "stats": lambda _: self.stats(),
            "census": lambda _: census(),
            "mark": lambda _: self.mark(),
            "snapshot": self.snapshot,
        }
        handler = handlers.get(command)
        return handler(argument) if handler else {"error": f"unknown command {command!r}"}

    def progress(self) -> dict[str, Any]:
        """Cheap enough to ask while measuring: it allocates next to nothing."""
        outbox = self.bridge.hub.parts.outbox
        couriers = getattr(outbox, "_couriers", {})  # a private; 0 if renamed
        return {"rooms": self.backend.calls["open_room"], "couriers": len(couriers)}

    def stats(self) -> dict[str, Any]:
        """Counts for the report (after measuring: some of them build big temporaries)."""
        sinks: dict[Any, set[Any]] = getattr(self.bridge.hub.parts.sinks, "_by_conversation",
                                             {})  # a private
        return {
            "backend": dict(self.backend.calls),
            "tasks": len(asyncio.all_tasks()),
            "ws_open": len(self.bridge.app[SOCKETS]),
            "followed": sum(len(followers) for followers in sinks.values()),
            **self.progress(),
        }

    def mark(self) -> dict[str, Any]:
        self._mark = tracemalloc.take_snapshot() if tracemalloc.is_tracing() else None
        return {"marked": self._mark is not None}

    def snapshot(self, path: str) -> dict[str, Any]:
        """What was allocated since `mark`, by source line and by traceback, into `path`."""
        if self._mark is None:
            return {"error": f"start the child with {TRACEMALLOC_ENV}=N and send mark first"}
        ignore = [tracemalloc.Filter(False, tracemalloc.__file__)]
        now = tracemalloc.take_snapshot().filter_traces(ignore)
        before = self._mark.filter_traces(ignore)
        lines = ["# growth since mark, by line"]
        lines += [str(s) for s in now.compare_to(before, "lineno")[:40]]
        lines.append("\n# growth since mark, by traceback")
        for stat in now.compare_to(before, "traceback")[:25]:
            lines.append(f"\n{stat.size_diff / 1024:.1f} KiB in {stat.count_diff} blocks")
            lines += [f"    {frame}" for frame in stat.traceback.format()]
        Path(path).write_text("\n".join(lines) + "\n")
        total = sum(s.size_diff for s in now.compare_to(before, "filename"))
        return {"written": path, "traced_growth_bytes": total}

    def _answer(self, body: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(body) + "\n")
        sys.stdout.flush()


def census(top: int = 30) -> dict[str, Any]:
    """The most numerous object types (run after measuring: the list itself costs memory)."""
    counts = Counter(type(o).__qualname__ for o in gc.get_objects())
    return {"objects": dict(counts.most_common(top))}


def serve(workdir: Path) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the benchmark, which stops us
    raise_nofile_limit()
    frames = int(os.environ.get(TRACEMALLOC_ENV, "0"))
    if frames:
        tracemalloc.start(frames)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(ChildServer(workdir).run())


class BridgeChild:
    """The child process as the benchmark sees it: start, ask, measure, stop."""

    def __init__(self, workdir: Path, tracemalloc_frames: int) -> None:
        self.workdir = workdir
        self.log_path = workdir / "bridge.log"
        self.tracemalloc_frames = tracemalloc_frames
        self.proc: asyncio.subprocess.Process | None = None
        self.port = 0

    async def start(self) -> None:
        env = dict(os.environ)
        if self.tracemalloc_frames:
            env[TRACEMALLOC_ENV] = str(self.tracemalloc_frames)
        with self.log_path.open("wb") as log_file:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, str(SCRIPT), "--serve", str(self.workdir),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=log_file,
                cwd=str(REPO_ROOT), env=env,
            )
        self.port = int((await self._read_answer(READY_TIMEOUT_S))["ready"])

    async def ask(self, command: str, timeout: float | None = STEP_TIMEOUT_S
                  ) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(f"{command}\n".encode())
        await self.proc.stdin.drain()
        return await self._read_answer(timeout)

    async def _read_answer(self, timeout: float | None) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        async with asyncio.timeout(timeout):
            line = await self.proc.stdout.readline()
        if not line:
            raise BenchError(f"the bridge exited: {self.log_tail()}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def memory(self) -> dict[str, int]:
        assert self.proc is not None
        return proc_memory(self.proc.pid)

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text()[-2000:]
        return ""

    async def stop(self) -> None:
        """Ask politely (EOF, then SIGTERM), then kill; never leaves the process behind."""
        proc, self.proc = self.proc, None
        if proc is None or proc.returncode is not None:
            return
        try:
            if proc.stdin is not None:
                proc.stdin.close()
            proc.terminate()
            await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            log.warning("the bridge did not stop within %.0fs; killing it", STOP_TIMEOUT_S)
        except ProcessLookupError:
            pass
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await asyncio.shield(proc.wait())


# -- the visitors: a minimal WebSocket client per socket -------------------------------------


def mask_payload(payload: bytes, mask: bytes) -> bytes:
    repeated = (mask * (len(payload) // 4 + 1))[: len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(
        len(payload), "big")


def client_frame(opcode: int, payload: bytes) -> bytes:
    """A final, masked frame (clients must mask, RFC 6455 §5.3)."""
    length = len(payload)
    if length < 126:
        header = bytes([0x80 | opcode, 0x80 | length])
    elif length < 65536:
        header = bytes([0x80 | opcode, 0x80 | 126]) + length.to_bytes(2, "big")
    else:
        header = bytes([0x80 | opcode, 0x80 | 127]) + length.to_bytes(8, "big")
    mask = os.urandom(4)
    return header + mask + mask_payload(payload, mask)


def parse_server_frame(buf: bytearray) -> tuple[int, bytes] | None:
    """Take one complete unmasked frame off the buffer: (opcode, payload), or None."""
    if len(buf) < 2:
        return None
    if not buf[0] & 0x80 or buf[1] & 0x80:
        raise BenchError("fragmented or masked frame from the server")
    length, pos = buf[1] & 0x7F, 2
    if length >= 126:
        pos = 4 if length == 126 else 10
        if len(buf) < pos:
            return None
        length = int.from_bytes(buf[2:pos], "big")
    if len(buf) < pos + length:
        return None
    opcode, payload = buf[0] & 0x0F, bytes(buf[pos:pos + length])
    del buf[:pos + length]
    return opcode, payload


@dataclass
class Tally:
    """What all the sockets saw, for the report."""

    frames: Counter[str] = field(default_factory=Counter)
    pings: int = 0
    lost: Counter[str] = field(default_factory=Counter)  # sockets the server closed, and why
    errors: list[str] = field(default_factory=list)
    max_stall_s: float = 0.0  # the slowest answer to `stats` while settling


class VisitorSocket(asyncio.Protocol):
    """One visitor's socket: the upgrade, then frames; pings are answered at once, text
    frames are counted and may complete a waiter for their `type`."""

    def __init__(self, port: int, tally: Tally) -> None:
        self.tally = tally
        self.key = base64.b64encode(os.urandom(16)).decode()
        self.request = (
            f"GET /v1/ws HTTP/1.1\r\nHost: {HOST}:{port}\r\n{BROWSER_HEADERS}"
            f"Sec-WebSocket-Key: {self.key}\r\n\r\n"
        ).encode()
        loop = asyncio.get_running_loop()
        self.upgraded: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self._aborted = False
        self._buf = bytearray()
        self._waiters: dict[str, asyncio.Future[dict[str, Any]]] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._aborted:
            self.tally.lost[repr(exc) if exc else "connection closed"] += 1
        lost = exc or ConnectionResetError("socket closed")
        for future in (self.upgraded, self.closed, *self._waiters.values()):
            if not future.done():
                future.set_exception(lost)
            if not future.cancelled():
                future.exception()  # retrieved: whoever gave up waiting gets no warning

    @property
    def is_open(self) -> bool:
        return not self.closed.done()

    def data_received(self, data: bytes) -> None:
        self._buf += data
        try:
            if not self.upgraded.done() and not self._take_upgrade():
                return
            while (frame := parse_server_frame(self._buf)) is not None:
                self._on_frame(*frame)
        except BenchError as exc:
            self.tally.errors.append(str(exc))
            self.abort()

    def _take_upgrade(self) -> bool:
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = bytes(self._buf[:end]).decode("latin-1")
        del self._buf[:end + 4]
        accept = base64.b64encode(hashlib.sha1((self.key + WS_GUID).encode()).digest()).decode()
        if not head.startswith("HTTP/1.1 101") or accept not in head:
            raise BenchError(f"upgrade refused: {head.splitlines()[0]!r}")
        self.upgraded.set_result(None)
        return True

    def _on_frame(self, opcode: int, payload: bytes) -> None:
        if opcode == OP_PING:
            self.tally.pings += 1
            self._write(OP_PONG, payload)
        elif opcode == OP_CLOSE:
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
            self.tally.lost[f"close {code} {payload[2:].decode(errors='replace')}"] += 1
            self.abort()
        elif opcode == OP_TEXT:
            frame = json.loads(payload)
            kind = str(frame.get("type"))
            self.tally.frames[kind] += 1
            if kind == "error":  # whatever was awaited will not come
                self._fail_waiters(BenchError(f"the bridge answered {frame}"))
            waiter = self._waiters.pop(kind, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(frame)

    def _fail_waiters(self, exc: Exception) -> None:
        for waiter in self._waiters.values():
            if not waiter.done():
                waiter.set_exception(exc)
        self._waiters.clear()

    def expect(self, kind: str) -> asyncio.Future[dict[str, Any]]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters[kind] = future
        return future

    async def exchange(self, frame: dict[str, Any], answer: str) -> dict[str, Any]:
        waiter = self.expect(answer)
        self._write(OP_TEXT, json.dumps(frame).encode())
        async with asyncio.timeout(STEP_TIMEOUT_S):
            return await asyncio.shield(waiter)

    def _write(self, opcode: int, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(client_frame(opcode, payload))

    def abort(self) -> None:
        self._aborted = True
        if self.transport is not None:
            self.transport.abort()


# -- one variant, measured -------------------------------------------------------------------


@dataclass
class Options:
    sockets: int
    concurrency: int
    open_timeout_s: float
    settle_s: float
    settle_timeout_s: float
    sample: int
    census: bool
    tracemalloc_prefix: str | None
    tracemalloc_frames: int


async def open_one(port: int, variant: str, tally: Tally) -> VisitorSocket:
    loop = asyncio.get_running_loop()
    _, sock = await loop.create_connection(lambda: VisitorSocket(port, tally), HOST, port)
    try:
        async with asyncio.timeout(STEP_TIMEOUT_S):
            await asyncio.shield(sock.upgraded)
        if variant == "in_conversation":
            await sock.exchange(START_FRAME, "started")
    except BaseException:
        sock.abort()
        raise
    return sock


async def open_all(port: int, variant: str, opts: Options, tally: Tally,
                   sockets: list[VisitorSocket]) -> None:
    """Open the sockets into `sockets`, `concurrency` handshakes in flight (under the listen
    backlog, so no SYN waits for a retransmission); stop trying after `open_timeout_s`."""
    numbers = iter(range(opts.sockets))

    async def worker() -> None:
        for _ in numbers:  # shared: each number is taken by one worker
            try:
                sockets.append(await open_one(port, variant, tally))
            except (OSError, TimeoutError, BenchError) as exc:
                tally.errors.append(f"open: {exc!r}")
                continue
            if len(sockets) % 1000 == 0:
                log.info("%s: %d sockets open", variant, len(sockets))

    try:
        async with asyncio.timeout(opts.open_timeout_s):
            await asyncio.gather(*(worker() for _ in range(min(opts.concurrency, opts.sockets))))
    except TimeoutError:
        tally.errors.insert(0, f"open: gave up after {opts.open_timeout_s:.0f}s, "
                               f"{len(sockets)} open")
        log.warning("%s: %s", variant, tally.errors[0])


async def warm_up(port: int, variant: str) -> None:
    """One socket through the whole path first, so first-use costs (lazy imports, prepared
    statements, caches) land in the baseline rather than on the sockets."""
    sock = await open_one(port, variant, Tally())
    try:
        await sock.exchange({"type": "ping"}, "pong")
    finally:
        sock.abort()
    await asyncio.sleep(0.2)


async def settle(child: BridgeChild, variant: str, tally: Tally, opts: Options) -> float:
    """Wait until the couriers have opened every room and posted every welcome line
    (in_conversation), then `settle_s` more; returns the seconds waited in all."""
    started = time.perf_counter()
    if variant == "in_conversation":
        try:
            async with asyncio.timeout(opts.settle_timeout_s):
                await rooms_opened(child, variant, tally, tally.frames["started"] + 1)  # + warm-up
        except TimeoutError:
            tally.errors.insert(0, f"settle: couriers still busy after "
                                   f"{opts.settle_timeout_s:.0f}s")
            log.warning("%s: %s", variant, tally.errors[0])
    end = time.perf_counter() + opts.settle_s
    while time.perf_counter() < end:
        await ask_timed(child, tally, "ping")
        await asyncio.sleep(0.25)
    return time.perf_counter() - started


async def ask_timed(child: BridgeChild, tally: Tally, command: str) -> dict[str, Any]:
    """Ask the bridge; a late answer means its event loop was busy (with everything)."""
    began = time.perf_counter()
    answer = await child.ask(command, timeout=None)
    tally.max_stall_s = max(tally.max_stall_s, time.perf_counter() - began)
    return answer


async def rooms_opened(child: BridgeChild, variant: str, tally: Tally, rooms: int) -> None:
    while True:
        progress = await ask_timed(child, tally, "progress")
        if progress["rooms"] >= rooms and not progress["couriers"]:
            return
        log.info("%s: settling, %d of %d rooms opened, %d couriers at work", variant,
                 progress["rooms"], rooms, progress["couriers"])
        await asyncio.sleep(2.0)


async def ping_sample(sockets: list[VisitorSocket], sample: int) -> dict[str, int]:
    """Ask a spread-out sample of sockets for `pong`: the server still reads them."""
    open_sockets = [s for s in sockets if s.is_open]
    step = max(1, len(open_sockets) // max(sample, 1))
    chosen = open_sockets[::step][:sample]
    answers = await asyncio.gather(
        *(s.exchange({"type": "ping"}, "pong") for s in chosen), return_exceptions=True)
    return {"sent": len(chosen), "answered": sum(isinstance(a, dict) for a in answers)}


def mib(value: int) -> float:
    return round(value / MIB, 1)


async def measure(variant: str, opts: Options) -> dict[str, Any]:
    """One variant on a fresh bridge; the bridge and the sockets are gone when it returns."""
    with tempfile.TemporaryDirectory(prefix="idle-sockets-") as tmp:
        child = BridgeChild(Path(tmp), opts.tracemalloc_frames if opts.tracemalloc_prefix
                            else 0)
        sockets: list[VisitorSocket] = []
        try:
            await child.start()
            await warm_up(child.port, variant)
            await child.ask("mark")
            result = await load(child, variant, opts, sockets)
            result.update(await diagnostics(child, variant, opts))
            return result
        finally:
            for sock in sockets:
                sock.abort()
            await child.stop()


async def load(child: BridgeChild, variant: str, opts: Options,
               sockets: list[VisitorSocket]) -> dict[str, Any]:
    """Open the sockets, let them idle, and read the bridge's memory at each step."""
    tally = Tally()
    before = child.memory()
    log.info("%s: bridge on port %d, RSS %.1f MiB before load", variant, child.port,
             before["VmRSS"] / MIB)
    began = time.perf_counter()
    await open_all(child.port, variant, opts, tally, sockets)
    open_s = time.perf_counter() - began
    at_open = child.memory()
    log.info("%s: %d sockets in %.1fs, RSS %.1f MiB", variant, len(sockets), open_s,
             at_open["VmRSS"] / MIB)
    settle_s = await settle(child, variant, tally, opts)
    settled = child.memory()
    log.info("%s: settled after %.1fs more, RSS %.1f MiB", variant, settle_s,
             settled["VmRSS"] / MIB)
    result = {
        "sockets": opts.sockets,
        "opened": len(sockets),
        "open_s": round(open_s, 2),
        "settle_s": round(settle_s, 1),
        "rss_mib": {"before": mib(before["VmRSS"]), "open": mib(at_open["VmRSS"]),
                    "settled": mib(settled["VmRSS"])},
        "hwm_mib": mib(settled["VmHWM"]),
        "per_socket_bytes": per_socket(settled, before, len(sockets)),
        "per_socket_bytes_at_open": per_socket(at_open, before, len(sockets)),
        **await checks(child, sockets, tally, opts),
    }
    result["meets_target"] = meets_target(result)
    return result


def per_socket(after: dict[str, int], before: dict[str, int], count: int) -> int:
    return round((after["VmRSS"] - before["VmRSS"]) / count) if count else 0


async def checks(child: BridgeChild, sockets: list[VisitorSocket], tally: Tally,
                 opts: Options) -> dict[str, Any]:
    """Everything still open on both ends, and a sample answers."""
    server = await child.ask("stats", timeout=None)
    return {
        "still_open": sum(s.is_open for s in sockets),
        "server_ws_open": server["ws_open"],
        "pings": await ping_sample(sockets, opts.sample),
        "lost": dict(tally.lost),
        "heartbeats_answered": tally.pings,
        "max_stall_s": round(tally.max_stall_s, 2),
        "frames_received": dict(tally.frames),
        "server": {k: server[k] for k in ("tasks", "followed", "couriers", "backend")},
        "errors": tally.errors[:5],
    }


def meets_target(result: dict[str, Any]) -> bool:
    """Only a full-size run can meet the bar: every socket open and answering, RSS within."""
    return (result["sockets"] >= TARGET["sockets"]
            and result["still_open"] == result["sockets"]
            and result["pings"]["answered"] == result["pings"]["sent"]
            and result["rss_mib"]["settled"] <= TARGET["rss_mib"])


async def diagnostics(child: BridgeChild, variant: str, opts: Options) -> dict[str, Any]:
    """Optional, after measuring (they cost memory themselves): object census, tracemalloc."""
    extra: dict[str, Any] = {}
    if opts.tracemalloc_prefix:
        path = f"{opts.tracemalloc_prefix}-{variant}.txt"
        extra["tracemalloc"] = await child.ask(f"snapshot {path}", timeout=600)
    if opts.census:
        extra["census"] = (await child.ask("census", timeout=600))["objects"]
    return extra


# -- the command line ------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sockets", type=int, default=TARGET["sockets"],
                        help="visitor sockets to hold (default 10000)")
    parser.add_argument("--variant", choices=(*VARIANTS, "both"), default="both",
                        help="each variant on its own fresh bridge (default both)")
    parser.add_argument("--json-only", action="store_true", help="no progress on stderr")
    parser.add_argument("--concurrency", type=int, default=100,
                        help="handshakes in flight while opening (default 100)")
    parser.add_argument("--open-timeout", type=float, default=600.0,
                        help="seconds to keep opening sockets before giving up (default 600)")
    parser.add_argument("--settle", type=float, default=5.0,
                        help="seconds to wait once everything is open (default 5)")
    parser.add_argument("--settle-timeout", type=float, default=900.0,
                        help="seconds the couriers may take to open every room (default 900)")
    parser.add_argument("--sample", type=int, default=100,
                        help="sockets asked for a pong at the end (default 100)")
    parser.add_argument("--census", action="store_true",
                        help="also count the bridge's objects by type after measuring")
    parser.add_argument("--tracemalloc", metavar="PREFIX",
                        help="trace the bridge's allocations (inflates its RSS) and write the "
                             "growth under load to PREFIX-<variant>.txt")
    parser.add_argument("--tracemalloc-frames", type=int, default=10,
                        help="frames kept per allocation (default 10; 1 is much faster)")
    parser.add_argument("--serve", metavar="WORKDIR", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    opts = Options(args.sockets, args.concurrency, args.open_timeout, args.settle,
                   args.settle_timeout, args.sample, args.census, args.tracemalloc,
                   args.tracemalloc_frames)
    variants = VARIANTS if args.variant == "both" else (args.variant,)
    results = {variant: await measure(variant, opts) for variant in variants}
    return {
        "sockets": args.sockets,
        "target": TARGET,
        "variants": results,
        "meets_target": all(r["meets_target"] for r in results.values()),
        "tracemalloc": bool(args.tracemalloc),
        "bridge": bridge_revision(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "aiohttp": importlib.metadata.version("aiohttp")},
    }


def bridge_revision() -> str | None:
    """The commit measured, "+changes" when bridge/ differs from it (None: not a checkout)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(REPO_ROOT), *args], capture_output=True,
                              text=True, check=True).stdout.strip()

    try:
        changed = git("status", "--porcelain", "--", "bridge")
        return git("rev-parse", "--short", "HEAD") + ("+changes" if changed else "")
    except (OSError, subprocess.CalledProcessError):
        return None


async def run_interruptibly(args: argparse.Namespace) -> dict[str, Any]:
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(signum, task.cancel)
    return await run(args)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve:
        serve(Path(args.serve))
        return 0
    logging.basicConfig(level=logging.WARNING if args.json_only else logging.INFO,
                        stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")
    limit = raise_nofile_limit()
    if args.sockets + 200 > limit:
        log.error("%d sockets need more open files than the hard limit %d allows",
                  args.sockets, limit)
        return 1
    try:
        result = asyncio.run(run_interruptibly(args))
    except asyncio.CancelledError:
        log.error("interrupted")
        return 130
    except (BenchError, OSError, TimeoutError) as exc:
        log.error("benchmark failed: %r", exc)
        return 1
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
