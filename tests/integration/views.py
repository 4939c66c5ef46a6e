"""The two views a fault test compares at its end: what a visitor's socket was shown, and
what the agent's client shows in the room."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

from tests.integration.conftest import TestAgent
from tests.integration.helpers import Visitor

SETTLE_S = 1.0  # time for a doubled line to show before the views are compared


def seen_by(tab: Visitor, sent: dict[str, str]) -> list[tuple[int, str]]:
    """(seq, text) of every visitor and agent line this socket was shown, in arrival order:
    its own lines as acks (text from `sent`, by client_id), everything else as `message`.
    A repeated ack of one client_id is the protocol's answer to a resend, so it counts once."""
    lines: list[tuple[int, str]] = []
    acked: set[str] = set()
    for frame in tab.frames:
        if frame.get("type") == "message" and frame["from"] in ("visitor", "agent"):
            lines.append((frame["seq"], frame["text"]))
        elif frame.get("type") == "ack" and frame["client_id"] not in acked:
            acked.add(frame["client_id"])
            lines.append((frame["seq"], sent[frame["client_id"]]))
    return lines


def assert_same_lines(visitor: list[tuple[int, str]], room: list[str],
                      author: Callable[[str], str] | None = None) -> None:
    """The visitor's lines (by seq) are the room's lines: none missing, none doubled, same
    order. Checked in that order so a failure names the first thing that broke.

    With `author` (a line's text to who wrote it) the order is compared per author: lines
    the visitor wrote while the messenger was down reach the room after the agent's later
    answers, and both sides are right about what they saw."""
    seqs = [seq for seq, _ in visitor]
    assert len(seqs) == len(set(seqs)), f"a seq shown twice: {sorted(seqs)}"
    shown = [text for _, text in sorted(visitor)]
    doubled = {side: [t for t, n in Counter(lines).items() if n > 1]
               for side, lines in (("visitor", shown), ("room", room))}
    assert doubled == {"visitor": [], "room": []}, f"visitor {shown}, room {room}"
    missing_visitor = [t for t in room if t not in shown]
    missing_room = [t for t in shown if t not in room]
    assert (missing_visitor, missing_room) == ([], []), "lines missing on one side"
    if author is None:
        assert shown == room, "same lines, different order"
    for who in {author(text) for text in room} if author else ():
        mine = [[text for text in lines if author(text) == who] for lines in (shown, room)]
        assert mine[0] == mine[1], f"{who}'s lines in a different order"


async def settled_room(agent: TestAgent, room: str, last: str) -> list[str]:
    """The room's lines as the agent's client shows them (commands to the bot are not lines),
    once `last` is there and doubles had time."""
    await agent.wait_text(room, last, timeout=30)
    await asyncio.sleep(SETTLE_S)
    return [text for text in agent.texts(room) if not text.startswith("!")]
