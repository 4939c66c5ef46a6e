"""The soak benchmark's report: lines, latency per minute, memory, CPU, and the bars
(bench/soak.py)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from _soak_ledger import (
    DIRECTIONS,
    Conversation,
    Counts,
    ack_latencies,
    latencies,
    p99_ms,
    sent_between,
    summary,
)
from _soak_proc import MIB, Sample, Watch, cpu_between

# The bars. The p99 one has an absolute slack so that a baseline of a few milliseconds (XMPP)
# is not failed by noise: 9 ms after 3 ms is no trend.
RSS_GROWTH_MAX_PCT = 10.0
P99_FACTOR = 2.0
P99_SLACK_MS = 50.0


@dataclass
class Marks:
    """The samples of the bridge process the bars are read from."""

    setup_start: Sample
    window_start: Sample
    warmup_end: Sample | None = None
    end: Sample | None = None
    drained: Sample | None = None


@dataclass(frozen=True)
class Window:
    """The traffic window in seconds from its start: `warmup_s` of warm-up, then the rest."""

    start: float  # time.perf_counter() when the traffic began
    warmup_s: float
    length_s: float

    @property
    def first_minute(self) -> tuple[float, float]:
        """The first minute after the warm-up."""
        return self.warmup_s, min(self.warmup_s + 60, self.length_s)

    @property
    def last_minute(self) -> tuple[float, float]:
        """The last minute (it overlaps the first one when less than two minutes follow the
        warm-up)."""
        return max(self.warmup_s, self.length_s - 60), self.length_s


def lines_report(counts: Counts) -> dict[str, int]:
    return {"sent": counts.sent, "received": counts.received, "lost": counts.lost,
            "unacked": counts.unacked, "doubled": counts.doubled,
            "conversations_out_of_order": counts.out_of_order,
            "send_failures": counts.send_failures, "unconfirmed": counts.unconfirmed}


def latency_report(ready: list[Conversation], window: Window) -> dict[str, Any]:
    """After the warm-up, per direction; and the visitor's acks (all of them), for reading."""
    report = {d: summary(latencies(ready, d, window.start, window.warmup_s, window.length_s))
              for d in DIRECTIONS}
    report["visitor_ack"] = summary(ack_latencies(ready))
    return report


def per_minute(ready: list[Conversation], window: Window, watch: Watch
               ) -> list[dict[str, Any]]:
    """Per minute of the window: lines sent in it and their latencies, per direction; the
    bridge's RSS at the minute's end and its CPU share over the minute."""
    rows = []
    for minute in range(math.ceil(window.length_s / 60)):
        begin, end = minute * 60.0, min((minute + 1) * 60.0, window.length_s)
        row: dict[str, Any] = {"minute": minute, "warmup": begin < window.warmup_s}
        for d in DIRECTIONS:
            row[d] = {"sent": sent_between(ready, d, window.start, begin, end),
                      **summary(latencies(ready, d, window.start, begin, end))}
        first, last = watch.nearest(window.start + begin), watch.nearest(window.start + end)
        if first is not None and last is not None:
            row["rss_mib"] = last.mib()
            row["bridge_cpu_pct"] = cpu_between(first, last)["bridge_pct"]
        rows.append(row)
    return rows


def flatness(ready: list[Conversation], window: Window) -> dict[str, dict[str, Any]]:
    """Per direction: p99 of the last minute against the first minute after the warm-up."""
    judged = {}
    for d in DIRECTIONS:
        first = p99_ms(latencies(ready, d, window.start, *window.first_minute))
        last = p99_ms(latencies(ready, d, window.start, *window.last_minute))
        limit = None if first is None else round(P99_FACTOR * first + P99_SLACK_MS, 1)
        judged[d] = {"first_p99_ms": first, "last_p99_ms": last, "limit_ms": limit,
                     "pass": limit is not None and last is not None and last <= limit}
    return judged


def rss_report(marks: Marks, watch: Watch) -> dict[str, Any]:
    assert marks.warmup_end is not None and marks.end is not None
    assert marks.drained is not None
    growth = 100 * (marks.end.rss - marks.warmup_end.rss) / max(marks.warmup_end.rss, 1)
    return {
        "setup_start": marks.setup_start.mib(),
        "window_start": marks.window_start.mib(),
        "warmup_end": marks.warmup_end.mib(),
        "end": marks.end.mib(),
        "after_drain": marks.drained.mib(),
        "max_sampled_after_warmup": round(
            watch.max_rss_between(marks.warmup_end.at, marks.end.at) / MIB, 1),
        "peak_hwm": round(marks.drained.hwm / MIB, 1),
        "growth_after_warmup_pct": round(growth, 2),
        "samples": len(watch.samples),
    }


def cpu_report(marks: Marks) -> dict[str, Any]:
    assert marks.end is not None
    return {"setup": cpu_between(marks.setup_start, marks.window_start),
            "window": cpu_between(marks.window_start, marks.end)}


def bars(result: dict[str, Any], checks: dict[str, Counts], conflicts: int
         ) -> dict[str, dict[str, Any]]:
    v2a, a2v = (checks[d] for d in DIRECTIONS)
    growth = result["rss_mib"]["growth_after_warmup_pct"]
    judged = {
        "errors": _at_most(result["errors"]["total"], 0),
        "lost": _at_most(v2a.lost + v2a.unacked + a2v.lost, 0),
        "doubled": _at_most(v2a.doubled + a2v.doubled, 0),
        "order": _at_most(v2a.out_of_order + a2v.out_of_order + conflicts, 0),
        "rss_growth_pct": {"value": growth, "limit": RSS_GROWTH_MAX_PCT,
                           "pass": growth < RSS_GROWTH_MAX_PCT},
    }
    for d, flat in result["p99_flat"].items():
        judged[f"p99_flat_{d}"] = flat
    return judged


def _at_most(value: int, limit: int) -> dict[str, Any]:
    return {"value": value, "limit": limit, "pass": value <= limit}
