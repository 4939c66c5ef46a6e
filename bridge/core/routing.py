"""Routing decisions: opening hours and who gets a new chat. Pure: the caller passes the
local time and the agents' state."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RANGE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
MINUTES_PER_DAY = 24 * 60


@dataclass(frozen=True)
class Hours:
    """Opening ranges per weekday (0 = Monday) in minutes after midnight; a range whose end
    is not after its start runs past midnight into the next day."""

    ranges: dict[int, tuple[tuple[int, int], ...]] = field(default_factory=dict)


def parse_hours(spec: dict[str, str]) -> Hours:
    """{"mon": "08:00-17:00", "tue": "08:00-12:00, 13:00-17:00"}; raises ValueError naming
    the day and what was expected."""
    ranges: dict[int, tuple[tuple[int, int], ...]] = {}
    for day, text in spec.items():
        if day not in DAYS:
            raise ValueError(f"{day!r} is not a day (expected one of {', '.join(DAYS)})")
        if not isinstance(text, str):
            raise ValueError(f"{day}: expected a string like \"08:00-17:00\"")
        parsed = []
        for part in text.split(","):
            match = _RANGE.match(part)
            if not match:
                raise ValueError(f"{day}: {part.strip()!r} is not a range (expected HH:MM-HH:MM)")
            h1, m1, h2, m2 = (int(g) for g in match.groups())
            if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2):
                raise ValueError(f"{day}: {part.strip()!r} is not a time of day")
            start, end = h1 * 60 + m1, h2 * 60 + m2
            if start == end:
                raise ValueError(f"{day}: {part.strip()!r} is empty")
            parsed.append((start, end))
        ranges[DAYS.index(day)] = tuple(parsed)
    return Hours(ranges)


def is_open(hours: Hours | None, holidays: frozenset[date], local: datetime) -> bool:
    """Whether the queue takes chats at `local` (the queue's own time zone).

    No hours at all: always open. A day missing from the hours is closed. A holiday is
    closed all day, including the part of a range that crossed into it from the day before.
    """
    if local.date() in holidays:
        return False
    if hours is None:
        return True
    minute = local.hour * 60 + local.minute
    for start, end in hours.ranges.get(local.weekday(), ()):
        if start < end and start <= minute < end:
            return True
        if end <= start and minute >= start:  # runs past midnight: today's part
            return True
    yesterday = (local - timedelta(days=1)).weekday()
    return any(end <= start and minute < end for start, end in hours.ranges.get(yesterday, ()))


@dataclass(frozen=True)
class AgentView:
    """What routing needs to know of one member agent of a queue, right now."""

    id: str
    priority: int
    open_chats: int
    max_chats: int
    available: bool

    @property
    def can_take(self) -> bool:
        return self.available and self.open_chats < self.max_chats


def choose_agents(strategy: str, members: list[AgentView]) -> list[str]:
    """Who is invited to a new chat: `least_busy` → the one available agent with the highest
    priority, then the fewest open chats; `broadcast` → every agent who can take it. Empty
    when nobody can: the chat waits."""
    takers = [m for m in members if m.can_take]
    if not takers:
        return []
    if strategy == "broadcast":
        return [m.id for m in takers]
    best = min(takers, key=lambda m: (-m.priority, m.open_chats, members.index(m)))
    return [best.id]


ESTIMATE_MIN_SAMPLES = 3


def estimate_wait(position: int, recent_waits: list[float], serving: int,
                  waited_s: float = 0.0) -> int | None:
    """Seconds until an agent answers the chat at `position` in line (1 = next), or None
    when there is no honest answer.

    The base is the median time recent chats of the queue waited for their first answer;
    with `serving` agents on duty, a visitor at position p waits about ceil(p / serving)
    such turns. Time already waited counts against it. No estimate without at least
    ESTIMATE_MIN_SAMPLES recent answers, without an agent on duty, or once the visitor has
    already waited longer than estimated: saying "any moment now" then would be a guess.
    """
    if len(recent_waits) < ESTIMATE_MIN_SAMPLES or serving < 1 or position < 1:
        return None
    ordered = sorted(recent_waits)
    middle = len(ordered) // 2
    base = ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
    turns = -(-position // serving)
    remaining = base * turns - waited_s
    return math.ceil(remaining) if remaining > 0 else None
