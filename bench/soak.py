#!/usr/bin/env python3
"""Soak: many conversations with traffic both ways for minutes, on a real Synapse or Prosody.

Starts a private Synapse (`--backend matrix`) and/or Prosody (`--backend xmpp`; `both`, the
default, runs one after the other), the bridge as its own process, N visitors on WebSockets
and one agent client that joins every room the bridge opens. Once every conversation is open
and joined, each one gets a visitor line and an agent line every `--interval` seconds (each
at a random phase) for `--minutes`, the first `--warmup-minutes` of them warm-up. Then the
traffic drains and every conversation's two views are compared.

Bars: no errors, no line lost or doubled, order kept in every conversation; the bridge's RSS
at the end less than 10 % above its RSS at the end of the warm-up; per direction, the relay
p99 of the last minute at most 2 x the p99 of the first minute after warm-up, plus 50 ms.

Prints one JSON object per backend on stdout, logs on stderr (docs: bench/README.md). Exit
code 0 when every bar holds, 1 when one fails or a run could not be measured, 130 when
interrupted.
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
import platform
import random
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Protocol, TypeVar

import aiohttp

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
if importlib.util.find_spec("bridge") is None:  # run from a checkout, package not installed
    sys.path.insert(0, str(REPO_ROOT))
if str(BENCH_DIR) not in sys.path:  # the helper modules next to this script
    sys.path.insert(0, str(BENCH_DIR))

from _soak_ledger import (  # noqa: E402
    A2V,
    V2A,
    Conversation,
    Counts,
    Ledger,
    check_agent_lines,
    check_visitor_lines,
    seq_conflicts,
)
from _soak_matrix import MatrixAgent, matrix_backend_toml, register_matrix  # noqa: E402
from _soak_proc import Watch, scan_log  # noqa: E402
from _soak_report import (  # noqa: E402
    Marks,
    Window,
    bars,
    cpu_report,
    flatness,
    latency_report,
    lines_report,
    per_minute,
    rss_report,
)
from _soak_visitors import Tally, Visitor  # noqa: E402
from _soak_xmpp import XmppAgent, prosody_version, register_xmpp, xmpp_backend_toml  # noqa: E402

from bridge.devserver.bridge_process import BridgeProcess  # noqa: E402
from bridge.devserver.ports import free_port  # noqa: E402
from bridge.devserver.prosody import ProsodyServer, prepare_prosody  # noqa: E402
from bridge.devserver.synapse import SynapseServer, prepare_synapse  # noqa: E402

log = logging.getLogger("soak")

PROGRESS_EVERY = 100
DRAIN_POLL_S = 0.5
PROSODY_STOP_S = 60.0
T = TypeVar("T")


class SoakError(RuntimeError):
    """The run could not be measured (a part did not start, the bridge died)."""


class Agent(Protocol):
    """The agent's client, whichever messenger it speaks."""

    def room_key(self, index: int, conversation_id: str) -> str: ...

    async def start(self) -> None: ...

    async def room_for(self, key: str, timeout: float) -> str: ...

    async def send(self, room: str, text: str) -> None: ...

    async def close(self) -> None: ...

    def report(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Options:
    conversations: int
    minutes: float
    warmup_minutes: float
    interval_s: float
    setup_concurrency: int
    setup_timeout_s: float
    drain_s: float
    sample_s: float
    seed: int
    bridge_log_level: str


@dataclass(frozen=True)
class Messenger:
    """A started messaging server as the run needs it."""

    name: str
    backend_toml: list[str]  # the bridge's [backend] table and the backend's own
    agent_address: str
    make_agent: Callable[[Ledger, int], Agent]  # (ledger, joins at once)
    server_pid: int | None
    server_version: str


# -- the bridge --------------------------------------------------------------------------------


def bridge_config_toml(messenger: Messenger, db: Path, port: int, conversations: int) -> str:
    """Strings are JSON-quoted, which TOML reads as basic strings."""
    q = json.dumps
    return "\n".join([
        "[server]",
        f"listen = {q(f'127.0.0.1:{port}')}",
        # A line a minute needs no lift; lifted so that the flood limit never decides.
        "frames_per_10s = 1000000",
        # Every visitor comes from 127.0.0.1: the per-address limits would refuse the 21st
        # socket and the 11th chat.
        "[limits]",
        "sockets_per_address = 0",
        "chats_per_address = 0",
        "[storage]",
        f"path = {q(str(db))}",
        "[backend]",
        *messenger.backend_toml,
        "[[agents]]",
        'id = "alice"',
        f"address = {q(messenger.agent_address)}",
        'name = "Alice"',
        # One agent holds every chat; routing counts pending invitations too: a margin.
        f"max_chats = {conversations + 100}",
        "[[queues]]",
        'id = "support"',
        'name = "Support"',
        'agents = ["alice"]',
        'welcome = "Hi {visitor}, {agent} will be with you shortly."',
        "",
    ])


class SoakBridge(BridgeProcess):
    def __init__(self, workdir: Path, messenger: Messenger, conversations: int,
                 log_level: str) -> None:
        port = free_port()
        config = workdir / "bridge.toml"
        config.write_text(bridge_config_toml(messenger, workdir / "livechat.sqlite3", port,
                                             conversations))
        super().__init__(config, port, workdir / "bridge.log", log_level=log_level)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def exited(self) -> str | None:
        if self.proc is None or self.proc.returncode is None:
            return None
        return f"the bridge exited with code {self.proc.returncode}"


# -- one run -----------------------------------------------------------------------------------


async def sleep_until(at: float) -> None:
    delay = at - time.perf_counter()
    if delay > 0:
        await asyncio.sleep(delay)


async def every(action: Callable[[], Awaitable[None]], first: float, end: float,
                interval: float) -> None:
    at = first
    while at < end:
        await sleep_until(at)
        await action()
        at += interval


def agent_line(agent: Agent, conversation: Conversation) -> Callable[[], Awaitable[None]]:
    async def send() -> None:
        number, text = conversation.new_line(A2V, time.perf_counter())
        try:
            await agent.send(conversation.room, text)
        except (RuntimeError, TimeoutError, OSError, aiohttp.ClientError) as exc:
            conversation.lines[A2V][number].failure = repr(exc)

    return send


async def close_all(visitors: list[Visitor]) -> None:
    await asyncio.gather(*(v.close() for v in visitors), return_exceptions=True)


class Soak:
    """One backend's run: set-up, traffic, drain, report; everything stopped after."""

    def __init__(self, messenger: Messenger, opts: Options, workdir: Path) -> None:
        self.messenger = messenger
        self.opts = opts
        self.ledger = Ledger(opts.conversations)
        self.tally = Tally()
        self.rng = random.Random(opts.seed)
        self.bridge = SoakBridge(workdir, messenger, opts.conversations, opts.bridge_log_level)
        self.setup_failures: list[str] = []

    async def run(self) -> dict[str, Any]:
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(self.bridge.stop)
            await self.bridge.start()
            agent = self.messenger.make_agent(self.ledger, self.opts.setup_concurrency)
            stack.push_async_callback(agent.close)
            await agent.start()
            session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
            stack.push_async_callback(session.close)
            visitors = [Visitor(i, self.bridge.base_url, session, self.ledger, self.tally)
                        for i in range(self.opts.conversations)]
            stack.push_async_callback(close_all, visitors)
            watch = Watch(self.bridge.pid, self.messenger.server_pid, self.opts.sample_s)
            sampler = asyncio.create_task(watch.run(), name="sampler")
            stack.callback(sampler.cancel)
            marks, window = await self.measure(visitors, agent, watch)
            return self.report(marks, window, watch, agent)
        raise AssertionError("unreachable: the exit stack passes exceptions on")

    async def measure(self, visitors: list[Visitor], agent: Agent, watch: Watch
                      ) -> tuple[Marks, Window]:
        setup_start = watch.sample()
        await self.guarded(self.set_up(visitors, agent))
        ready = [visitors[c.index] for c in self.ledger.ready()]
        if not ready:
            raise SoakError(f"no conversation got going: {self.setup_failures[:5]}")
        marks = Marks(setup_start, watch.sample())
        window = Window(marks.window_start.at, self.opts.warmup_minutes * 60,
                        self.opts.minutes * 60)
        log.info("%s: %d conversations open and joined in %.0f s; traffic for %.1f min",
                 self.messenger.name, len(ready), marks.window_start.at - setup_start.at,
                 self.opts.minutes)
        await self.guarded(self.traffic(ready, agent, watch, marks, window))
        log.info("%s: traffic over, draining", self.messenger.name)
        await self.guarded(self.drain())
        marks.drained = watch.sample()
        return marks, window

    async def guarded(self, phase: Coroutine[Any, Any, T]) -> T:
        """Run a phase, but stop at once when the bridge process dies under it."""
        assert self.bridge.proc is not None
        task = asyncio.ensure_future(phase)
        died = asyncio.ensure_future(self.bridge.proc.wait())
        try:
            await asyncio.wait({task, died}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            died.cancel()
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if (exited := self.bridge.exited()) is not None:
            raise SoakError(f"{exited}; its log ends: "
                            f"{self.bridge.log.read_text(errors='replace')[-3000:]}")
        return task.result()

    # -- setting up ---------------------------------------------------------------------------

    async def set_up(self, visitors: list[Visitor], agent: Agent) -> None:
        """Every visitor starts a conversation and waits for the agent to join its room,
        `setup_concurrency` at a time: Synapse takes a while to make a room, and the bridge
        runs a routing pass for each."""
        numbers = iter(range(len(visitors)))
        done = 0

        async def worker() -> None:
            nonlocal done
            for index in numbers:  # shared: each number is taken by one worker
                try:
                    await self.open_one(visitors[index], agent)
                except (RuntimeError, TimeoutError, OSError, aiohttp.ClientError) as exc:
                    self.setup_failures.append(f"conversation {index}: {exc!r}")
                done += 1
                if done % PROGRESS_EVERY == 0:
                    log.info("%s: %d of %d conversations set up", self.messenger.name, done,
                             len(visitors))

        await asyncio.gather(*(worker() for _ in range(self.opts.setup_concurrency)))

    async def open_one(self, visitor: Visitor, agent: Agent) -> None:
        """Open, then joined: the agent is in the room and the visitor has its `agent`
        `joined` frame (so the bridge saw the join)."""
        timeout = self.opts.setup_timeout_s
        waiting_for, room = "the socket", ""
        try:
            async with asyncio.timeout(timeout):
                await visitor.connect()
                waiting_for = "`started`"
                conversation_id = await visitor.start()
                waiting_for = f"the agent's join of the room of {conversation_id}"
                room = await agent.room_for(agent.room_key(visitor.index, conversation_id),
                                            timeout)
                waiting_for = (f"`agent joined` on the visitor's socket (the agent is in "
                               f"{room}, conversation {conversation_id})")
                await visitor.agent_joined(timeout)
        except TimeoutError:
            raise SoakError(f"no {waiting_for} after {timeout:.0f} s") from None
        self.ledger.opened(visitor.index, conversation_id, room, time.perf_counter())

    # -- the traffic --------------------------------------------------------------------------

    async def traffic(self, ready: list[Visitor], agent: Agent, watch: Watch, marks: Marks,
                      window: Window) -> None:
        end = window.start + window.length_s
        interval = self.opts.interval_s
        tasks = []
        for visitor in ready:
            conversation = self.ledger.conversations[visitor.index]
            for action in (visitor.say, agent_line(agent, conversation)):
                first = window.start + self.rng.uniform(0, interval)
                tasks.append(asyncio.create_task(every(action, first, end, interval)))
        try:
            await sleep_until(window.start + window.warmup_s)
            marks.warmup_end = watch.sample()
            log.info("%s: warm-up over, bridge RSS %.1f MiB", self.messenger.name,
                     marks.warmup_end.mib())
            await sleep_until(end)
            marks.end = watch.sample()
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def drain(self) -> None:
        """Until every line sent has arrived, or `drain_s` is over."""
        deadline = time.perf_counter() + self.opts.drain_s
        while (left := self.ledger.outstanding()) and time.perf_counter() < deadline:
            await asyncio.sleep(DRAIN_POLL_S)
        if left:
            log.warning("%s: %d lines still on their way after %.0f s", self.messenger.name,
                        left, self.opts.drain_s)

    # -- the report ---------------------------------------------------------------------------

    def report(self, marks: Marks, window: Window, watch: Watch, agent: Agent
               ) -> dict[str, Any]:
        ready = self.ledger.ready()
        assert marks.end is not None and marks.drained is not None
        checks = {V2A: check_visitor_lines(ready), A2V: check_agent_lines(ready)}
        bridge_log = scan_log(self.bridge.log)
        agent_report = agent.report()
        result: dict[str, Any] = {
            "backend": self.messenger.name,
            "conversations": {"asked": self.opts.conversations, "ready": len(ready)},
            "setup_s": round(marks.window_start.at - marks.setup_start.at, 1),
            # Shorter than setup_s when some conversations failed: they ran out the timeout.
            "setup_last_ready_s": round(max(c.opened_at for c in ready)
                                        - marks.setup_start.at, 1),
            "minutes": self.opts.minutes,
            "warmup_minutes": self.opts.warmup_minutes,
            "interval_s": self.opts.interval_s,
            "drain_s": round(marks.drained.at - marks.end.at, 1),
            "lines": {d: lines_report(c) for d, c in checks.items()},
            "errors": self.errors(checks, bridge_log, agent_report),
            "latency_ms": latency_report(ready, window),
            "p99_flat": flatness(ready, window),
            "per_minute": per_minute(ready, window, watch),
            "rss_mib": rss_report(marks, watch),
            "cpu": cpu_report(marks),
            "agent_client": agent_report,
            "bridge_log": bridge_log,
            "examples": self.examples(checks),
        }
        result["bars"] = bars(result, checks, seq_conflicts(ready))
        result["pass"] = all(bar["pass"] for bar in result["bars"].values())
        result.update(server=self.messenger.server_version, bridge=bridge_revision(),
                      machine=machine())
        return result

    def errors(self, checks: dict[str, Counts], bridge_log: dict[str, Any],
               agent: dict[str, Any]) -> dict[str, Any]:
        """Everything that should not happen, by kind; `total` is the bar's figure."""
        levels = bridge_log["levels"]
        parts = {
            "setup_failures": len(self.setup_failures),
            "error_frames": sum(self.tally.error_codes.values()),
            "unexpected_closes": sum(self.tally.closes.values()),
            "ended_frames": self.tally.ended,
            "visitor_send_failures": checks[V2A].send_failures,
            "agent_send_failures": checks[A2V].send_failures,
            "agent_lines_unconfirmed": checks[A2V].unconfirmed,
            "misrouted_lines": self.ledger.strays.misrouted,
            "unknown_lines": self.ledger.strays.unknown,
            # A retried send is no error: the transaction id keeps it single.
            "agent_client": sum(v for k, v in agent.items()
                                if k != "send_retries" and isinstance(v, int)),
            "bridge_log_errors": levels.get("ERROR", 0) + levels.get("CRITICAL", 0),
        }
        return {"total": sum(parts.values()), **parts,
                "error_codes": dict(self.tally.error_codes), "closes": dict(self.tally.closes),
                "bridge_log_warnings": levels.get("WARNING", 0),
                "visitor_frames": dict(sorted(self.tally.frames.items()))}

    def examples(self, checks: dict[str, Counts]) -> list[str]:
        found = [*self.setup_failures[:5], *self.tally.examples, *self.ledger.strays.examples]
        for counts in checks.values():
            found += counts.examples
        return found[:30]


# -- the messaging servers ---------------------------------------------------------------------


def start_matrix(workdir: Path, stack: contextlib.ExitStack) -> Messenger:
    server: SynapseServer = prepare_synapse(workdir / "synapse")  # rate limits lifted
    stack.callback(server.stop)
    server.start()
    accounts = register_matrix(server)
    return Messenger(
        name="matrix", backend_toml=matrix_backend_toml(accounts),
        agent_address=accounts.agent_id,
        make_agent=lambda ledger, joins: MatrixAgent(accounts, ledger.room_line, joins),
        server_pid=server.pid,
        server_version=f"synapse {importlib.metadata.version('matrix-synapse')}")


def start_xmpp(workdir: Path, stack: contextlib.ExitStack) -> Messenger:
    server: ProsodyServer = prepare_prosody(workdir / "prosody")
    # With a thousand persistent rooms to save, Prosody takes longer than its usual 10 s.
    stack.callback(server.stop, PROSODY_STOP_S)
    server.start()
    accounts = register_xmpp(server)
    return Messenger(
        name="xmpp", backend_toml=xmpp_backend_toml(accounts), agent_address=accounts.agent_jid,
        make_agent=lambda ledger, joins: XmppAgent(accounts, ledger.room_line, joins),
        server_pid=server.pid, server_version=f"prosody {prosody_version()}")


SERVERS: dict[str, Callable[[Path, contextlib.ExitStack], Messenger]] = {
    "matrix": start_matrix, "xmpp": start_xmpp}


def run_backend(backend: str, opts: Options, keep: Path | None) -> dict[str, Any]:
    """The server, then the soak, in a temporary directory (or `keep`/backend, kept)."""
    with contextlib.ExitStack() as stack:
        if keep is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(
                prefix=f"soak-{backend}-")))
        else:
            workdir = keep / backend
            workdir.mkdir(parents=True)  # an old run's server data would be reused: refuse
        messenger = SERVERS[backend](workdir, stack)
        return asyncio.run(Soak(messenger, opts, workdir).run())
    raise AssertionError("unreachable: the exit stack passes exceptions on")


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


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "aiohttp": importlib.metadata.version("aiohttp")}


# -- the command line --------------------------------------------------------------------------


def positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value}")
    return number


def positive_float(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be above 0: {value}")
    return number


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    add = parser.add_argument
    add("--backend", choices=["matrix", "xmpp", "both"], default="both",
        help="matrix (a private Synapse), xmpp (a private Prosody) or both, one after the "
             "other (default)")
    add("--conversations", type=positive_int, default=1000,
        help="concurrent conversations (default 1000)")
    add("--minutes", type=positive_float, default=10.0,
        help="minutes of traffic, warm-up included (default 10)")
    add("--warmup-minutes", type=float, default=1.0,
        help="the first minutes of traffic, not judged (default 1)")
    add("--interval", type=positive_float, default=60.0,
        help="seconds between lines per conversation and direction (default 60)")
    add("--json", type=Path, metavar="PATH",
        help="also write the results to PATH (a JSON array, one object per backend)")
    add("--setup-concurrency", type=positive_int, default=20,
        help="conversations being opened at once (default 20)")
    add("--setup-timeout", type=positive_float, default=120.0,
        help="seconds one conversation may take to be open and joined (default 120)")
    add("--drain", type=float, default=60.0,
        help="seconds to wait for lines still on their way after the traffic (default 60)")
    add("--sample", type=positive_float, default=5.0,
        help="seconds between readings of the bridge's RSS and CPU (default 5)")
    add("--seed", type=int, default=1, help="for the random phases (default 1)")
    add("--bridge-log-level", default="WARNING",
        help="the bridge's log level (default WARNING; INFO logs every room)")
    add("--keep", type=Path, metavar="DIR",
        help="run in DIR/<backend> (must not exist) and keep it: bridge log, database, server "
             "data")
    args = parser.parse_args(argv)
    if not 0 <= args.warmup_minutes < args.minutes:
        parser.error("--warmup-minutes must be at least 0 and less than --minutes")
    return args


def options(args: argparse.Namespace) -> Options:
    return Options(conversations=args.conversations, minutes=args.minutes,
                   warmup_minutes=args.warmup_minutes, interval_s=args.interval,
                   setup_concurrency=min(args.setup_concurrency, args.conversations),
                   setup_timeout_s=args.setup_timeout, drain_s=args.drain,
                   sample_s=args.sample, seed=args.seed,
                   bridge_log_level=args.bridge_log_level)


def as_ctrl_c(_signum: int, _frame: FrameType | None) -> None:
    """SIGTERM takes Ctrl-C's path: inside asyncio.run it cancels the main task (so every
    cleanup runs), outside it raises KeyboardInterrupt."""
    signal.raise_signal(signal.SIGINT)


def raise_open_files_limit() -> None:
    """A socket per visitor here, and as many in the bridge (which inherits the limit)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)
    # Started in the background by a shell, Python inherits SIGINT ignored: take it back, or
    # neither Ctrl-C nor SIGTERM (which takes its path) would stop the run.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, as_ctrl_c)
    raise_open_files_limit()
    opts = options(args)
    backends = ["matrix", "xmpp"] if args.backend == "both" else [args.backend]
    results: list[dict[str, Any]] = []
    try:
        for backend in backends:
            results.append(measured(backend, opts, args.keep))
            print(json.dumps(results[-1], indent=2), flush=True)
    except KeyboardInterrupt:
        log.error("interrupted; everything stopped")
        return 130
    finally:
        if args.json is not None and results:
            args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0 if all(result["pass"] for result in results) else 1


def measured(backend: str, opts: Options, keep: Path | None) -> dict[str, Any]:
    """A run's result; a run that could not be measured is a failed one, and says why."""
    try:
        return run_backend(backend, opts, keep)
    except (SoakError, RuntimeError, OSError, TimeoutError) as exc:
        log.exception("%s: the run failed; everything stopped", backend)
        return {"backend": backend, "pass": False, "failure": repr(exc)[:3000]}


if __name__ == "__main__":
    sys.exit(main())
