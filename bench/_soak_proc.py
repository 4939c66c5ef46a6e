"""What the soak benchmark reads about processes: RSS, peak RSS and CPU time from /proc, and
the bridge's log lines by level (bench/soak.py)."""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MIB = 1024 * 1024
_TICKS = os.sysconf("SC_CLK_TCK")
_LOG_LINE = re.compile(r"^\S+ \S+ (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")


def memory(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in bytes; (0, 0) once it is gone."""
    values = {"VmRSS": 0, "VmHWM": 0}
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0, 0
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in values:
            values[key] = int(rest.split()[0]) * 1024
    return values["VmRSS"], values["VmHWM"]


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of a process (all its threads), from /proc/PID/stat."""
    if pid is None:
        return 0.0
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    # The name in brackets may hold spaces: count the fields from the closing bracket.
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


@dataclass(frozen=True)
class Sample:
    at: float  # time.perf_counter()
    rss: int
    hwm: int
    bridge_cpu: float
    server_cpu: float
    driver_cpu: float

    def mib(self) -> float:
        return round(self.rss / MIB, 1)


@dataclass
class Watch:
    """Samples the bridge (and the messaging server's CPU) every few seconds."""

    bridge_pid: int
    server_pid: int | None
    every_s: float
    samples: list[Sample] = field(default_factory=list)

    def sample(self) -> Sample:
        rss, hwm = memory(self.bridge_pid)
        return Sample(time.perf_counter(), rss, hwm, cpu_seconds(self.bridge_pid),
                      cpu_seconds(self.server_pid), time.process_time())

    async def run(self) -> None:
        while True:
            self.samples.append(self.sample())
            await asyncio.sleep(self.every_s)

    def nearest(self, at: float) -> Sample | None:
        return min(self.samples, key=lambda s: abs(s.at - at), default=None)

    def max_rss_between(self, begin: float, end: float) -> int:
        return max((s.rss for s in self.samples if begin <= s.at <= end), default=0)


def cpu_between(first: Sample, last: Sample) -> dict[str, float]:
    wall = max(last.at - first.at, 1e-9)
    bridge = last.bridge_cpu - first.bridge_cpu
    return {"bridge_s": round(bridge, 1), "bridge_pct": round(100 * bridge / wall, 1),
            "server_s": round(last.server_cpu - first.server_cpu, 1),
            "server_pct": round(100 * (last.server_cpu - first.server_cpu) / wall, 1),
            "driver_s": round(last.driver_cpu - first.driver_cpu, 1)}


def scan_log(path: Path, keep: int = 20) -> dict[str, Any]:
    """Lines per level, and the first WARNING-or-worse lines (with what follows them, such
    as a traceback, cut short)."""
    levels: Counter[str] = Counter()
    worst: list[str] = []
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return {"levels": {}, "first": []}
    for line in lines:
        match = _LOG_LINE.match(line)
        if match is None:
            continue
        levels[match[1]] += 1
        if match[1] in ("WARNING", "ERROR", "CRITICAL") and len(worst) < keep:
            worst.append(line[:400])
    return {"levels": dict(levels), "first": worst}
