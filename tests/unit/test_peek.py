"""Sneak peek on the project's fakes: only where the queue shows drafts, throttled to one
preview update at a time with the latest text winning, taken away when the line is sent,
never stored (the real-server test proves the wiring on Matrix and XMPP)."""

from __future__ import annotations

from typing import Any

import pytest

from bridge import peek
from bridge.core.protocol import ProtocolError
from tests.fakes.hub import HubHarness, eventually
from tests.unit.conftest import MakeHub

pytestmark = pytest.mark.fast

INTERVAL = 0.05


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(peek, "PEEK_INTERVAL_S", INTERVAL)


def peeking(raw: dict[str, Any]) -> None:
    raw["queues"][0]["peek"] = True


async def test_drafts_reach_the_room_throttled_and_go_when_the_line_is_sent(
        make_hub: MakeHub) -> None:
    ring: HubHarness = await make_hub(peeking)
    chat = await ring.start_chat()
    room = await ring.room_of(chat)
    items = len(ring.store.items_after(chat.id, 0))

    await ring.hub.visitor_draft(chat.id, "I")
    await eventually(lambda: ring.backend.drafts == [(room, "I")])  # at once
    for text in ("I have", "I have a", "I have a question"):
        await ring.hub.visitor_draft(chat.id, text)
    assert len(ring.backend.drafts) == 1  # the pause after an update holds them
    await eventually(lambda: len(ring.backend.drafts) == 2)
    assert ring.backend.drafts[-1] == (room, "I have a question")  # only the latest

    await ring.say(chat, "I have a question about my order")
    await eventually(lambda: ring.backend.drafts[-1] == (room, ""))
    assert len(ring.backend.drafts) == 3
    assert len(ring.store.items_after(chat.id, 0)) == items + 1  # the line, no draft


async def test_a_line_without_a_preview_takes_nothing_away(make_hub: MakeHub) -> None:
    ring = await make_hub(peeking)
    chat = await ring.start_chat()
    await ring.room_of(chat)
    await ring.say(chat, "hello")
    await ring.delivered(chat)
    assert ring.backend.drafts == []


async def test_no_peek_where_the_queue_does_not_show_drafts(ring: HubHarness) -> None:
    chat = await ring.start_chat()
    with pytest.raises(ProtocolError) as refused:
        await ring.hub.visitor_draft(chat.id, "secret")
    assert refused.value.code == "peek_off"
    assert ring.backend.drafts == []


async def test_no_draft_after_the_end(make_hub: MakeHub) -> None:
    ring = await make_hub(peeking)
    chat = await ring.start_chat()
    await ring.hub.visitor_end(chat.id)
    with pytest.raises(ProtocolError) as refused:
        await ring.hub.visitor_draft(chat.id, "too late")
    assert refused.value.code == "ended"
