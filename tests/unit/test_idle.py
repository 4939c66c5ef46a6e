"""Idle chats on the project's fakes: the visitor is warned once before a silent chat ends,
can keep it open with one action as often as they like, and a silent chat ends (WCAG 2.2.1;
the real-server test proves the wiring)."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.core.models import Status
from bridge.core.protocol import ProtocolError
from bridge.core.states import idle_ends_in, idle_warning_window
from tests.fakes.clock import FakeClock
from tests.unit.conftest import MakeHub

pytestmark = pytest.mark.fast

TIMEOUT_S = 600.0


def ten_minutes(raw: dict[str, Any]) -> None:
    raw["server"]["idle_timeout_minutes"] = TIMEOUT_S / 60


def test_the_warning_window() -> None:
    assert idle_warning_window(1800) == 120  # two minutes before a half-hour timeout
    assert idle_warning_window(60) == 15  # a quarter of a short one
    assert idle_ends_in(0, 400, TIMEOUT_S) is None  # not yet
    assert idle_ends_in(0, 500, TIMEOUT_S) == 100
    assert idle_ends_in(0, 600, TIMEOUT_S) is None  # over: it ends, no warning
    assert idle_ends_in(0, 590, 0) is None  # chats never end


async def test_warned_once_then_kept_open_then_ended(make_hub: MakeHub,
                                                     clock: FakeClock) -> None:
    ring = await make_hub(ten_minutes)
    idle = ring.hub.parts.idle
    chat = await ring.start_chat()
    started = clock()

    clock.set(started + 470)  # 130 s left: outside the two-minute window
    await idle.check()
    assert chat.sink.of("idle") == []
    clock.set(started + 510)
    await idle.check()
    await idle.check()  # one warning per silence, however often the sweep runs
    assert [f["ends_in_s"] for f in chat.sink.of("idle")] == [90]

    assert await ring.hub.visitor_extend(chat.id) == TIMEOUT_S
    clock.set(started + 510 + 590)  # the clock started again at the extension
    await idle.check()
    assert ring.conversation(chat).status is not Status.ENDED
    assert [f["ends_in_s"] for f in chat.sink.of("idle")] == [90, 10]  # warned again

    clock.advance(11)
    await idle.check()
    ended = chat.sink.last("ended")
    assert ended["by"] == "system"
    assert ring.conversation(chat).status is Status.ENDED
    with pytest.raises(ProtocolError) as refused:
        await ring.hub.visitor_extend(chat.id)
    assert refused.value.code == "ended"


async def test_a_line_is_activity(make_hub: MakeHub, clock: FakeClock) -> None:
    ring = await make_hub(ten_minutes)
    chat = await ring.start_chat()
    clock.advance(500)
    await ring.say(chat, "still there?")
    clock.advance(400)  # 900 s after the start, 200 s before the line's timeout
    await ring.hub.parts.idle.check()
    assert chat.sink.of("idle") == [] and chat.sink.of("ended") == []


async def test_no_timeout_no_warning(make_hub: MakeHub, clock: FakeClock) -> None:
    def never(raw: dict[str, Any]) -> None:
        raw["server"]["idle_timeout_minutes"] = 0

    ring = await make_hub(never)
    chat = await ring.start_chat()
    clock.advance(10 * 24 * 3600)
    assert ring.hub.parts.idle.check_every() is None
    await ring.hub.parts.idle.check()
    assert chat.sink.of("idle") == [] and chat.sink.of("ended") == []
