"""Matrix read states without a homeserver: an `m.receipt` event as nio parses it from the
wire turned into AgentReads (public, unthreaded or main-timeline, not the bot's own), and
the bot's read marker sent once per event, refusals logged, outages passed on."""

from __future__ import annotations

from typing import Any

import pytest
from nio import EphemeralEvent, ReceiptEvent

from bridge.backends.base import AgentRead, BackendError, BackendUnavailable, RateLimited
from bridge.backends.matrix_receipts import ReadMarkers, agent_reads
from bridge.backends.matrix_wire import SYNC_FILTER
from bridge.core.models import RoomRef

ROOM = RoomRef("!room:example.com")
BOT = "@support:example.com"
ALICE = "@alice:example.com"
BOB = "@bob:example.com"


def parsed(content: dict[str, Any]) -> ReceiptEvent:
    """The ephemeral event as nio makes it out of a sync response."""
    event = EphemeralEvent.parse_event({"type": "m.receipt", "content": content})
    assert isinstance(event, ReceiptEvent)
    return event


def reads(content: dict[str, Any]) -> list[AgentRead]:
    return agent_reads(ROOM, parsed(content).receipts, BOT)


def test_the_sync_asks_for_receipts() -> None:
    assert "m.receipt" in SYNC_FILTER["room"]["ephemeral"]["types"]


def test_one_read_per_user_and_event() -> None:
    assert reads({
        "$a": {"m.read": {ALICE: {"ts": 1}, BOB: {"ts": 2}}},
        "$b": {"m.read": {ALICE: {"ts": 3, "thread_id": "main"}}},
    }) == [AgentRead(ROOM, ALICE, "$a"), AgentRead(ROOM, BOB, "$a"),
           AgentRead(ROOM, ALICE, "$b")]


def test_the_bots_own_receipt_is_no_agent_read() -> None:
    assert reads({"$a": {"m.read": {BOT: {"ts": 1}}}}) == []


def test_a_private_receipt_is_ignored() -> None:
    assert reads({"$a": {"m.read.private": {ALICE: {"ts": 1}},
                         "m.read": {BOB: {"ts": 1}}}}) == [AgentRead(ROOM, BOB, "$a")]


def test_a_receipt_inside_a_thread_is_ignored() -> None:
    assert reads({"$in-thread": {"m.read": {ALICE: {"ts": 1, "thread_id": "$root"}}}}) == []


def test_an_unthreaded_and_a_main_receipt_on_one_event_read_once() -> None:
    receipts = parsed({"$a": {"m.read": {ALICE: {"ts": 1}}}}).receipts
    receipts += parsed({"$a": {"m.read": {ALICE: {"ts": 2, "thread_id": "main"}}}}).receipts
    assert agent_reads(ROOM, receipts, BOT) == [AgentRead(ROOM, ALICE, "$a")]


def test_a_malformed_receipt_event_is_dropped_not_raised() -> None:
    # nio validates the whole event: one entry without a timestamp (an old Synapse bug)
    # drops it, and the sync goes on; the agent's next receipt tells again.
    broken = {"type": "m.receipt", "content": {"$a": {"m.read": {ALICE: {}, BOB: {"ts": 1}}}}}
    assert EphemeralEvent.parse_event(broken) is None


class Sender:
    """Stands in for the homeserver: records each receipt sent, or fails as told."""

    def __init__(self) -> None:
        self.sent: list[tuple[RoomRef, str]] = []
        self.fail: BackendError | None = None

    async def __call__(self, room: RoomRef, event_id: str) -> None:
        if self.fail is not None:
            raise self.fail
        self.sent.append((room, event_id))


async def test_each_event_is_marked_once_per_room() -> None:
    send = Sender()
    markers = ReadMarkers(send)
    other = RoomRef("!other:example.com")

    await markers.mark(ROOM, "$a")
    await markers.mark(ROOM, "$a")
    await markers.mark(other, "$a")
    await markers.mark(ROOM, "$b")
    await markers.mark(ROOM, "$b")

    assert send.sent == [(ROOM, "$a"), (other, "$a"), (ROOM, "$b")]


async def test_a_refusal_is_logged_and_not_asked_again(
    caplog: pytest.LogCaptureFixture
) -> None:
    send = Sender()
    markers = ReadMarkers(send)
    send.fail = BackendError("matrix: M_FORBIDDEN")

    await markers.mark(ROOM, "$a")  # no exception
    assert f"read marker in {ROOM} not moved to $a" in caplog.text
    send.fail = None
    await markers.mark(ROOM, "$a")
    assert send.sent == []


@pytest.mark.parametrize("outage", [BackendUnavailable("matrix: 502"), RateLimited(1.0)])
async def test_an_outage_is_passed_on_and_tried_again(outage: BackendError) -> None:
    send = Sender()
    markers = ReadMarkers(send)
    send.fail = outage

    with pytest.raises(BackendUnavailable):
        await markers.mark(ROOM, "$a")
    send.fail = None
    await markers.mark(ROOM, "$a")
    assert send.sent == [(ROOM, "$a")]
