"""The soak benchmark's books: every line sent, where and when it arrived, and the checks and
latency figures made from them at the end (bench/soak.py)."""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

V2A = "visitor_to_agent"
A2V = "agent_to_visitor"
DIRECTIONS = (V2A, A2V)
_TAG = {V2A: "v", A2V: "a"}
# A tag in front makes every line unique and says where it belongs; the rest makes it as long
# as a typical chat line.
FILLER = "is this in stock, and how soon could it ship to Vienna?"
_BODY = re.compile(r"^soak-([va]) (\d+) (\d+) ")


def line_text(direction: str, conversation: int, number: int) -> str:
    return f"soak-{_TAG[direction]} {conversation} {number} {FILLER}"


def parse_text(text: str) -> tuple[str, int, int] | None:
    """(direction, conversation, number) of a soak line; None for anything else (welcome
    lines, notices)."""
    match = _BODY.match(text)
    if match is None:
        return None
    return (V2A if match[1] == "v" else A2V), int(match[2]), int(match[3])


@dataclass
class Line:
    """One line, from its sender's send to every copy its receiver saw."""

    sent_at: float
    failure: str | None = None  # the sender could not send it (socket closed, HTTP error)
    echoed: bool = False  # agent lines: the agent's client saw its own line in the room
    ack_seq: int | None = None  # visitor lines: the seq of the first ack
    acks: int = 0
    ack_at: float | None = None
    arrivals: list[float] = field(default_factory=list)  # each copy the receiver saw
    seqs: list[int] = field(default_factory=list)  # agent lines: the seq of each copy

    @property
    def latency(self) -> float | None:
        return self.arrivals[0] - self.sent_at if self.arrivals else None


@dataclass
class Conversation:
    index: int
    conversation_id: str = ""
    room: str = ""
    opened_at: float = 0.0  # time.perf_counter() when it was open and joined
    lines: dict[str, list[Line]] = field(default_factory=lambda: {V2A: [], A2V: []})
    # Line numbers per direction in the order the agent's client saw them in the room.
    room_order: dict[str, list[int]] = field(default_factory=lambda: {V2A: [], A2V: []})
    # (seq, number) of the agent lines in the order the visitor's socket got them.
    visitor_order: list[tuple[int, int]] = field(default_factory=list)

    def new_line(self, direction: str, at: float) -> tuple[int, str]:
        lines = self.lines[direction]
        lines.append(Line(sent_at=at))
        number = len(lines) - 1
        return number, line_text(direction, self.index, number)

    def line(self, direction: str, number: int) -> Line | None:
        lines = self.lines[direction]
        return lines[number] if 0 <= number < len(lines) else None


@dataclass
class Strays:
    """Soak lines that turned up where they do not belong, or that nobody sent."""

    misrouted: int = 0
    unknown: int = 0
    examples: list[str] = field(default_factory=list)

    def note(self, what: str) -> None:
        if len(self.examples) < 10:
            self.examples.append(what)


class Ledger:
    """All conversations' lines; the visitors and the agent client write into it."""

    def __init__(self, count: int) -> None:
        self.conversations = [Conversation(index) for index in range(count)]
        self.strays = Strays()
        self._by_room: dict[str, Conversation] = {}

    def opened(self, index: int, conversation_id: str, room: str, at: float) -> None:
        conversation = self.conversations[index]
        conversation.conversation_id, conversation.room = conversation_id, room
        conversation.opened_at = at
        self._by_room[room] = conversation

    def ready(self) -> list[Conversation]:
        return [c for c in self.conversations if c.room]

    # -- what the visitors report -----------------------------------------------------------

    def acked(self, index: int, number: int, seq: int, at: float) -> None:
        line = self.conversations[index].line(V2A, number)
        if line is None:
            self.strays.unknown += 1
            self.strays.note(f"ack of unknown line {number} in conversation {index}")
            return
        line.acks += 1
        if line.ack_seq is None:
            line.ack_seq, line.ack_at = seq, at

    def visitor_got(self, index: int, text: str, seq: int, at: float) -> None:
        """An agent `message` frame on conversation `index`'s socket."""
        parsed = parse_text(text)
        if parsed is None:
            return
        direction, owner, number = parsed
        line = self.conversations[owner].line(direction, number) if owner < len(
            self.conversations) else None
        if direction != A2V or line is None:
            self.strays.unknown += 1
            self.strays.note(f"visitor {index} got unknown line {text[:40]!r}")
            return
        if owner != index:
            self.strays.misrouted += 1
            self.strays.note(f"visitor {index} got line {number} of conversation {owner}")
            return
        line.arrivals.append(at)
        line.seqs.append(seq)
        self.conversations[index].visitor_order.append((seq, number))

    # -- what the agent's client reports ----------------------------------------------------

    def room_line(self, room: str, text: str, mine: bool, at: float) -> None:
        """A line the agent's client saw in a room: a visitor line relayed by the bot, or the
        agent's own line coming back (which confirms the server took it)."""
        parsed = parse_text(text)
        if parsed is None:
            return
        direction, owner, number = parsed
        conversation = self._by_room.get(room)
        line = self.conversations[owner].line(direction, number) if owner < len(
            self.conversations) else None
        if line is None or mine != (direction == A2V):
            self.strays.unknown += 1
            self.strays.note(f"room {room} had unknown line {text[:40]!r}")
            return
        if conversation is None or conversation.index != owner:
            self.strays.misrouted += 1
            self.strays.note(f"room {room} had line {number} of conversation {owner}")
            return
        conversation.room_order[direction].append(number)
        if direction == A2V:
            line.echoed = True
        else:
            line.arrivals.append(at)

    # -- waiting for the last lines ---------------------------------------------------------

    def outstanding(self) -> int:
        """Lines still on their way: visitor lines not yet in the room or not acked, agent
        lines the server took that the visitor has not had yet."""
        count = 0
        for conversation in self.conversations:
            for line in conversation.lines[V2A]:
                if line.failure is None and (not line.arrivals or line.ack_seq is None):
                    count += 1
            for line in conversation.lines[A2V]:
                if line.failure is None and (not line.echoed or not line.arrivals):
                    count += 1
        return count


# -- the checks --------------------------------------------------------------------------------


def _increasing(values: Iterable[int]) -> bool:
    previous: int | None = None
    for value in values:
        if previous is not None and value <= previous:
            return False
        previous = value
    return True


def _first_occurrences(numbers: list[int]) -> list[int]:
    seen: set[int] = set()
    firsts = []
    for number in numbers:
        if number not in seen:
            seen.add(number)
            firsts.append(number)
    return firsts


@dataclass
class Counts:
    sent: int = 0
    send_failures: int = 0
    unconfirmed: int = 0  # agent lines the server never showed back to their sender
    received: int = 0
    lost: int = 0
    unacked: int = 0
    doubled: int = 0
    out_of_order: int = 0  # conversations
    examples: list[str] = field(default_factory=list)

    def note(self, what: str) -> None:
        if len(self.examples) < 10:
            self.examples.append(what)


def check_visitor_lines(conversations: list[Conversation]) -> Counts:
    counts = Counts()
    for c in conversations:
        lines = c.lines[V2A]
        for number, line in enumerate(lines):
            counts.sent += 1
            if line.failure is not None:
                counts.send_failures += 1
                continue
            counts.received += bool(line.arrivals)
            if not line.arrivals:
                counts.lost += 1
                counts.note(f"conversation {c.index}: visitor line {number} never reached "
                            "the room")
            if line.ack_seq is None:
                counts.unacked += 1
                counts.note(f"conversation {c.index}: visitor line {number} never acked")
            if len(line.arrivals) > 1:
                counts.doubled += len(line.arrivals) - 1
                counts.note(f"conversation {c.index}: visitor line {number} in the room "
                            f"{len(line.arrivals)} times")
        acked = [line.ack_seq for line in lines if line.ack_seq is not None]
        if not (_increasing(acked) and _increasing(_first_occurrences(c.room_order[V2A]))):
            counts.out_of_order += 1
            counts.note(f"conversation {c.index}: visitor lines out of order (acks {acked}, "
                        f"room {c.room_order[V2A]})")
    return counts


def check_agent_lines(conversations: list[Conversation]) -> Counts:
    counts = Counts()
    for c in conversations:
        for number, line in enumerate(c.lines[A2V]):
            counts.sent += 1
            if line.failure is not None:
                counts.send_failures += 1
                continue
            if not line.echoed:
                counts.unconfirmed += 1
                counts.note(f"conversation {c.index}: agent line {number} never came back "
                            "to the agent")
            counts.received += bool(line.arrivals)
            if line.echoed and not line.arrivals:
                counts.lost += 1
                counts.note(f"conversation {c.index}: agent line {number} never reached "
                            "the visitor")
            if len(line.seqs) > 1:
                counts.doubled += len(line.seqs) - 1
                counts.note(f"conversation {c.index}: agent line {number} reached the "
                            f"visitor {len(line.seqs)} times (seqs {line.seqs})")
        if not _agent_order_kept(c):
            counts.out_of_order += 1
            counts.note(f"conversation {c.index}: agent lines out of order (room "
                        f"{c.room_order[A2V]}, visitor {c.visitor_order})")
    return counts


def _agent_order_kept(c: Conversation) -> bool:
    """The room has them in the order sent, and the visitor got them in that order with
    rising seqs. First copies only: a second copy is counted as doubled, not as disorder."""
    firsts: dict[int, int] = {}  # number -> seq, in arrival order
    for seq, number in c.visitor_order:
        firsts.setdefault(number, seq)
    return (_increasing(_first_occurrences(c.room_order[A2V])) and _increasing(firsts)
            and _increasing(firsts.values()))


def seq_conflicts(conversations: list[Conversation]) -> int:
    """Seqs the visitor was given for two different lines of one conversation."""
    conflicts = 0
    for c in conversations:
        owners: dict[int, tuple[str, int]] = {}
        for direction in DIRECTIONS:
            for number, line in enumerate(c.lines[direction]):
                seqs = {line.ack_seq} if direction == V2A else set(line.seqs)
                for seq in seqs - {None}:
                    assert seq is not None
                    if owners.setdefault(seq, (direction, number)) != (direction, number):
                        conflicts += 1
    return conflicts


# -- latency -----------------------------------------------------------------------------------


def summary(seconds: list[float]) -> dict[str, Any]:
    """count, p50, p99 (linear interpolation, inclusive, as bench/relay_latency.py) and max,
    in milliseconds; None figures when there is no sample."""
    if not seconds:
        return {"count": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
    ms = sorted(s * 1000 for s in seconds)
    p99 = ms[0] if len(ms) == 1 else statistics.quantiles(ms, n=100, method="inclusive")[98]
    return {"count": len(ms), "p50_ms": round(statistics.median(ms), 1),
            "p99_ms": round(p99, 1), "max_ms": round(ms[-1], 1)}


def p99_ms(seconds: list[float]) -> float | None:
    return summary(seconds)["p99_ms"]


def _sent_lines(conversations: list[Conversation], direction: str) -> Iterator[Line]:
    for c in conversations:
        yield from c.lines[direction]


def latencies(conversations: list[Conversation], direction: str, start: float,
              begin_s: float, end_s: float) -> list[float]:
    """Latencies of the lines sent between `begin_s` and `end_s` seconds after `start`."""
    found: list[float] = []
    for line in _sent_lines(conversations, direction):
        offset = line.sent_at - start
        if begin_s <= offset < end_s and (latency := line.latency) is not None:
            found.append(latency)
    return found


def ack_latencies(conversations: list[Conversation]) -> list[float]:
    return [line.ack_at - line.sent_at for line in _sent_lines(conversations, V2A)
            if line.ack_at is not None]


def sent_between(conversations: list[Conversation], direction: str, start: float,
                 begin_s: float, end_s: float) -> int:
    return sum(begin_s <= line.sent_at - start < end_s
               for line in _sent_lines(conversations, direction))
