"""`livechat-bridge report`: volume, waiting time, duration and satisfaction, aggregated.

Pure code: the store hands over one `ChatRecord` per conversation and one `(queue_id,
created_at)` pair per offline ticket, already filtered by time; this module groups them
and renders the result as JSON, CSV or an aligned text table. `build_overview` gathers the
same figures for the admin page `/stats` (bridge/web/stats.py). No SQL, no I/O.

Definitions (every time is a Unix timestamp in seconds; every duration is in seconds,
rounded to 0.1 s):
- chats: conversations started (`created_at`) in the period, whatever their status.
- missed: ended conversations that no agent ever answered (`first_response_at` unset).
- tickets: offline messages left, and unanswered chats turned into tickets, in the period.
- messages: the conversations' text lines (visitor, agent and system alike).
- wait / first response: `first_response_at - created_at`, answered conversations only;
  `wait_median_s` and `first_response_median_s` are the same number under both names.
- duration: `ended_at - created_at`, ended conversations only.
- median: the middle value, or the mean of the two middle values for an even count;
  p90: nearest rank, the value at position ceil(0.9 * n) of the sorted list.
- rating_avg: mean of the 1-5 ratings given, rounded to 2 decimals; None without ratings.
Grouping: by the conversation's (current) queue, its (last) agent, or the UTC date it
started. A conversation no agent took and every ticket have no agent: under `by="agent"`
they are grouped under the key "-" (so the rows always add up to the total).
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GROUPINGS = ("queue", "agent", "day")
FORMATS = ("table", "csv", "json")
NO_AGENT = "-"
RATING_SCALE = (1, 2, 3, 4, 5)
FIELDS = (
    "key", "chats", "missed", "tickets", "messages", "wait_median_s", "wait_p90_s",
    "first_response_median_s", "duration_median_s", "rating_avg", "ratings",
)
CSV_FIELDS = (*FIELDS[:-1], *(f"rating_{n}" for n in RATING_SCALE))

Row = dict[str, Any]


@dataclass(frozen=True)
class ChatRecord:
    """What a report needs of one conversation."""

    queue_id: str
    agent_id: str | None
    created_at: float
    first_response_at: float | None
    ended_at: float | None
    status: str  # "waiting" | "active" | "ended"
    rating: int | None
    messages: int  # text lines in its timeline

    @property
    def ended(self) -> bool:
        return self.status == "ended"

    @property
    def missed(self) -> bool:
        return self.ended and self.first_response_at is None


TicketRecord = tuple[str, float]  # (queue_id, created_at)


def utc_day(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).date().isoformat()


def build_report(
    chats: Iterable[ChatRecord], tickets: Iterable[TicketRecord], by: str = "queue"
) -> dict[str, Any]:
    """`{"rows": [row, ...], "total": row}`, rows sorted by key, one per key with any chat
    or ticket; a row has exactly the keys in FIELDS."""
    if by not in GROUPINGS:
        raise ValueError(f"cannot group by {by!r} (expected one of {GROUPINGS})")
    chats = list(chats)
    tickets = list(tickets)
    chat_groups: dict[str, list[ChatRecord]] = {}
    ticket_groups: dict[str, int] = {}
    for chat in chats:
        chat_groups.setdefault(_chat_key(chat, by), []).append(chat)
    for queue_id, created_at in tickets:
        key = _ticket_key(queue_id, created_at, by)
        ticket_groups[key] = ticket_groups.get(key, 0) + 1
    keys = sorted(set(chat_groups) | set(ticket_groups))
    rows = [_row(key, chat_groups.get(key, []), ticket_groups.get(key, 0)) for key in keys]
    return {"rows": rows, "total": _row("total", chats, len(tickets))}


@dataclass(frozen=True)
class DayVolume:
    """Chats started on one UTC day: `answered` (an agent replied), `missed` (ended without
    a reply) and `pending` (neither yet: still waiting, or taken without a reply so far)."""

    day: str
    answered: int
    missed: int
    pending: int

    @property
    def chats(self) -> int:
        return self.answered + self.missed + self.pending


def daily_volume(chats: Iterable[ChatRecord], days: Iterable[str]) -> list[DayVolume]:
    """One `DayVolume` per day in `days` (YYYY-MM-DD, in the given order), zero for a day
    without chats; a chat started on a day not in `days` is left out."""
    counts: dict[str, dict[str, int]] = {
        day: {"answered": 0, "missed": 0, "pending": 0} for day in days}
    for chat in chats:
        day = counts.get(utc_day(chat.created_at))
        if day is not None:
            day[_outcome(chat)] += 1
    return [DayVolume(day=day, **figures) for day, figures in counts.items()]


def _outcome(chat: ChatRecord) -> str:
    if chat.first_response_at is not None:
        return "answered"
    return "missed" if chat.missed else "pending"


@dataclass(frozen=True)
class Overview:
    """Everything the /stats page shows: the total row, the rows by queue and by agent
    (exactly as `build_report` makes them) and the chats of each day."""

    total: Row
    queues: list[Row]
    agents: list[Row]
    days: list[DayVolume]


def build_overview(
    chats: Iterable[ChatRecord], tickets: Iterable[TicketRecord], days: Iterable[str]
) -> Overview:
    chats = list(chats)
    tickets = list(tickets)
    by_queue = build_report(chats, tickets, "queue")
    return Overview(
        total=by_queue["total"],
        queues=by_queue["rows"],
        agents=build_report(chats, tickets, "agent")["rows"],
        days=daily_volume(chats, days),
    )


def _chat_key(chat: ChatRecord, by: str) -> str:
    if by == "queue":
        return chat.queue_id
    if by == "agent":
        return chat.agent_id or NO_AGENT
    return utc_day(chat.created_at)


def _ticket_key(queue_id: str, created_at: float, by: str) -> str:
    if by == "queue":
        return queue_id
    if by == "agent":
        return NO_AGENT
    return utc_day(created_at)


def _row(key: str, chats: Sequence[ChatRecord], tickets: int) -> Row:
    waits = sorted(c.first_response_at - c.created_at for c in chats
                   if c.first_response_at is not None)
    durations = sorted(c.ended_at - c.created_at for c in chats
                       if c.ended and c.ended_at is not None)
    ratings = [c.rating for c in chats if c.rating in RATING_SCALE]
    wait_median = median(waits)
    return {
        "key": key,
        "chats": len(chats),
        "missed": sum(1 for c in chats if c.missed),
        "tickets": tickets,
        "messages": sum(c.messages for c in chats),
        "wait_median_s": wait_median,
        "wait_p90_s": percentile(waits, 90),
        "first_response_median_s": wait_median,
        "duration_median_s": median(durations),
        "rating_avg": round(statistics.fmean(ratings), 2) if ratings else None,
        "ratings": {str(n): ratings.count(n) for n in RATING_SCALE},
    }


def median(values: Sequence[float]) -> float | None:
    """Middle value (mean of the two middle ones for an even count), 0.1 s; None if empty."""
    if not values:
        return None
    return round(statistics.median(values), 1)


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile: the ceil(p/100 * n)-th smallest value, 0.1 s; None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return round(ordered[rank - 1], 1)


# -- renderers --------------------------------------------------------------------------


def render(report: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return render_json(report)
    if fmt == "csv":
        return render_csv(report)
    if fmt == "table":
        return render_table(report)
    raise ValueError(f"unknown format {fmt!r} (expected one of {FORMATS})")


def render_json(report: dict[str, Any]) -> str:
    return json.dumps({"rows": report["rows"], "total": report["total"]}, indent=2) + "\n"


def render_csv(report: dict[str, Any]) -> str:
    """A header line, one line per row, then the total (key "total"); an empty cell is
    "no value" (None); ratings are flattened to rating_1 ... rating_5."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for row in (*report["rows"], report["total"]):
        flat = [("" if row[f] is None else row[f]) for f in FIELDS[:-1]]
        writer.writerow([*flat, *(row["ratings"][str(n)] for n in RATING_SCALE)])
    return out.getvalue()


TABLE_COLUMNS = (
    ("key", "key"), ("chats", "chats"), ("missed", "missed"), ("tickets", "tickets"),
    ("messages", "messages"), ("wait_median_s", "wait med"), ("wait_p90_s", "wait p90"),
    ("first_response_median_s", "1st resp med"), ("duration_median_s", "duration med"),
    ("rating_avg", "rating"), ("ratings", "ratings 1/2/3/4/5"),
)


def render_table(report: dict[str, Any]) -> str:
    """Aligned plain text: a header, the rows, a rule, the total. Durations read as
    45s, 3m05s, 1h02m; "-" means no value."""
    lines = [[title for _, title in TABLE_COLUMNS]]
    body = [[cell_text(name, row[name]) for name, _ in TABLE_COLUMNS] for row in report["rows"]]
    total = [cell_text(name, report["total"][name]) for name, _ in TABLE_COLUMNS]
    lines += [*body, total]
    widths = [max(len(line[i]) for line in lines) for i in range(len(TABLE_COLUMNS))]

    def fmt(cells: list[str]) -> str:
        parts = [cells[0].ljust(widths[0])]
        parts += [cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * width for width in widths)
    out = [fmt(lines[0]), rule, *(fmt(cells) for cells in body)]
    if body:
        out.append(rule)
    out.append(fmt(total))
    return "\n".join(out) + "\n"


def cell_text(name: str, value: Any) -> str:
    """One figure as the table shows it: "-" for no value, durations as `human_duration`,
    the rating average with 2 decimals, the ratings as n1/n2/n3/n4/n5."""
    if value is None:
        return "-"
    if name == "ratings":
        return "/".join(str(value[str(n)]) for n in RATING_SCALE)
    if name == "rating_avg":
        return f"{value:.2f}"
    if name.endswith("_s"):
        return human_duration(value)
    return str(value)


def human_duration(seconds: float) -> str:
    """12s, 3m05s, 1h02m (rounded to the second; under 10 s with one decimal)."""
    if seconds < 10:
        return f"{seconds:.1f}s"
    total = round(seconds)
    if total < 60:
        return f"{total}s"
    if total < 3600:
        return f"{total // 60}m{total % 60:02d}s"
    hours, rest = divmod(total, 3600)
    return f"{hours}h{rest // 60:02d}m"
