#!/usr/bin/env python3
"""A runner that serves a real bridge on the recording backend in its own process.

`RecordingBackend` lives with the tests' fakes (`tests/fakes/backend.py`), so the benchmarks
and the fast tests measure and check the same fake: it implements the `Backend` protocol
without a network, records every post (room, kind, text, key, the `time.monotonic()` it
arrived) and answers at once with an event id. Benchmarks import it from there; this module
puts the repository root on `sys.path` for them (a script run as `python bench/NAME.py` has
only `bench/` there).

Run as a script, it is a bridge process whose backend is a `RecordingBackend`:

    python bench/_recording.py CONFIG.json

CONFIG.json is the config as a JSON object (the same keys as `config.toml`; a relative
`storage.path` is read from the file's directory). The runner builds `bridge.app.Bridge` with
the recording backend, starts it, prints one JSON line `{"port": N, "pid": N}` on stdout,
then answers one JSON line on stdout per command line read from stdin:

    stats             {"posts", "rooms", "cpu_s", "cpu_sys_s", "rss_mib", "peak_rss_mib",
                       "sqlite"} (CPU: this process's user + system time, and the system part)
    wait posts N      the same, once the backend has N posts, plus "reached_at" (monotonic
                      time of the N-th post; CLOCK_MONOTONIC is one clock for all processes)
    wait rooms N      the same for N rooms opened
    dump PATH         writes the recording to PATH as JSON: {"ok": true}
    profile start     cProfile on (the bridge runs in this one thread)
    profile stop PATH cProfile off, stats written to PATH (pstats format): {"ok": true}

End of input on stdin, SIGTERM or SIGINT stops the bridge and ends the process (exit 0).
The bridge logs to stderr at WARNING (BENCH_LOG_LEVEL=INFO or DEBUG for more).
"""

from __future__ import annotations

import asyncio
import cProfile
import json
import logging
import os
import resource
import signal
import stat
import sys
import time
from pathlib import Path
from typing import Any

REPO_ROOT = str(Path(__file__).resolve().parents[1])
if REPO_ROOT not in sys.path:  # for `tests.fakes` (and `bridge` when not installed)
    sys.path.insert(0, REPO_ROOT)

from bridge.app import Bridge  # noqa: E402
from bridge.config import Config, parse_config  # noqa: E402
from tests.fakes.backend import RecordingBackend  # noqa: E402

log = logging.getLogger("recording")


def cpu_seconds() -> tuple[float, float]:
    """(user + system, system) CPU time of this process, all threads, in seconds."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime, usage.ru_stime


def memory_mib() -> tuple[float, float]:
    """(current RSS, peak RSS) of this process in MiB, from /proc/self/status."""
    fields: dict[str, float] = {}
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0]) / 1024
    return round(fields.get("VmRSS", 0.0), 1), round(fields.get("VmHWM", 0.0), 1)


class Control:
    """Answers the benchmark's commands about the running bridge."""

    def __init__(self, bridge: Bridge, backend: RecordingBackend) -> None:
        self.bridge = bridge
        self.backend = backend
        self.profile: cProfile.Profile | None = None

    def stats(self) -> dict[str, Any]:
        rss, peak = memory_mib()
        cpu, cpu_sys = cpu_seconds()
        db = self.bridge.store.db
        return {
            "posts": len(self.backend.posts),
            "rooms": len(self.backend.rooms),
            "cpu_s": cpu,
            "cpu_sys_s": cpu_sys,
            "rss_mib": rss,
            "peak_rss_mib": peak,
            "sqlite": {
                "journal_mode": db.execute("PRAGMA journal_mode").fetchone()[0],
                "synchronous": db.execute("PRAGMA synchronous").fetchone()[0],
            },
        }

    async def answer(self, line: str) -> dict[str, Any]:
        match line.split():
            case ["stats"]:
                return self.stats()
            case ["wait", "posts", count]:
                at = await self.backend.wait_posts(int(count))
                return {**self.stats(), "reached_at": at}
            case ["wait", "rooms", count]:
                at = await self.backend.wait_rooms(int(count))
                return {**self.stats(), "reached_at": at}
            case ["dump", path]:
                write_json(Path(path), self.backend.recording())
                return {"ok": True}
            case ["profile", "start"]:
                self.profile = cProfile.Profile(time.process_time)  # CPU, not waits
                self.profile.enable()
                return {"ok": True}
            case ["profile", "stop", path] if self.profile is not None:
                self.profile.disable()
                self.profile.dump_stats(path)
                self.profile = None
                return {"ok": True}
        return {"error": f"unknown command {line!r}"}


def say(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def read_commands(control: Control) -> None:
    """Answer command lines from stdin until it closes."""
    mode = os.fstat(sys.stdin.fileno()).st_mode
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
        raise RuntimeError("stdin must be a pipe from the benchmark (see the module's doc)")
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).decode():
        if not line.strip():
            continue
        try:
            answer = await control.answer(line)
        except Exception as exc:  # a bad command must not take the bridge down
            log.exception("command %r failed", line.strip())
            answer = {"error": f"{line.strip()!r} failed: {exc}"}
        say(answer)


def write_json(path: Path, obj: dict[str, Any]) -> None:
    path.write_text(json.dumps(obj), encoding="utf-8")


def load_config(path: Path) -> Config:
    """The config from a JSON file with the keys of `config.toml`."""
    return parse_config(json.loads(path.read_text(encoding="utf-8")), base_dir=path.parent)


async def serve(config_path: Path) -> int:
    config = load_config(config_path)
    backend = RecordingBackend()
    bridge = Bridge(config, backend=backend)
    await bridge.start()
    try:
        say({"port": bridge.port, "pid": os.getpid()})
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
        commands = asyncio.create_task(read_commands(Control(bridge, backend)))
        stop = asyncio.create_task(stopping.wait())
        await asyncio.wait({commands, stop}, return_when=asyncio.FIRST_COMPLETED)
        for task in (commands, stop):
            task.cancel()
        results = await asyncio.gather(commands, stop, return_exceptions=True)
    finally:
        await bridge.stop()
    failed = [r for r in results if isinstance(r, Exception)]
    for exc in failed:  # stdin not a pipe, say
        log.error("runner failed: %r", exc)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python bench/_recording.py CONFIG.json\n")
        return 2
    logging.basicConfig(stream=sys.stderr, level=os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return asyncio.run(serve(Path(args[0])))


if __name__ == "__main__":
    sys.exit(main())
