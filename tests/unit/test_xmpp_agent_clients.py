"""An XMPP agent's client that drops out of a group chat or sends a line again: a departure
on purpose is reported after the short settle, a lost connection only when the agent is not
back within the grace; a line resent with the same client id is relayed once."""

from __future__ import annotations

import asyncio

import pytest

from bridge.backends.base import RoomSpec
from bridge.backends.xmpp import departures as departures_module
from bridge.backends.xmpp.departures import Departures
from bridge.backends.xmpp.inbound import Resends
from bridge.backends.xmpp.state import DELIVERED_MEMORY, Room
from bridge.tasks import TaskGroup

pytestmark = pytest.mark.fast

SETTLE = 0.02
GRACE = 0.2
ROOM = "lc-1@muc.example.com"
ALICE = "alice@example.com/phone"


@pytest.fixture(autouse=True)
def short_settle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(departures_module, "SETTLE_S", SETTLE)


class Scene:
    def __init__(self, online: set[str], grace: float = GRACE) -> None:
        self.online = online
        self.tasks = TaskGroup()
        self.reported: list[str] = []
        self.departures = Departures(lambda jid: jid in self.online, self.tasks, grace)

    def leave(self, full_jid: str = ALICE) -> None:
        self.departures.left(ROOM, full_jid, lambda: self.reported.append(full_jid))


async def test_a_client_still_online_left_on_purpose() -> None:
    scene = Scene(online={ALICE})
    scene.leave()
    await asyncio.sleep(SETTLE * 3)
    assert scene.reported == [ALICE]  # well before the grace
    await scene.tasks.close()


async def test_a_lost_connection_waits_for_the_grace() -> None:
    scene = Scene(online=set())
    scene.leave()
    await asyncio.sleep(GRACE / 2)
    assert scene.reported == []
    await asyncio.sleep(GRACE)
    assert scene.reported == [ALICE]
    await scene.tasks.close()


async def test_back_within_the_grace_never_left() -> None:
    scene = Scene(online=set())
    scene.leave()
    await asyncio.sleep(GRACE / 2)
    assert scene.departures.came_back(ROOM, "alice@example.com") is True
    await asyncio.sleep(GRACE)
    assert scene.reported == []
    assert scene.departures.came_back(ROOM, "alice@example.com") is False  # nothing held
    await scene.tasks.close()


async def test_another_room_or_agent_is_not_cancelled() -> None:
    scene = Scene(online=set())
    scene.leave()
    scene.leave("bob@example.com/laptop")
    assert scene.departures.came_back("lc-2@muc.example.com", "alice@example.com") is False
    assert scene.departures.came_back(ROOM, "bob@example.com") is True
    await asyncio.sleep(GRACE * 1.5)
    assert scene.reported == [ALICE]
    await scene.tasks.close()


async def test_no_grace_reports_at_once() -> None:
    scene = Scene(online=set(), grace=0)
    scene.leave()
    assert scene.reported == [ALICE]
    await scene.tasks.close()


def test_a_resent_line_is_a_copy_the_same_stanza_again_is_not() -> None:
    resends = Resends(memory=2)
    assert resends.is_resend(ROOM, "alice@example.com", "m1", "archive-1") is False
    assert resends.is_resend(ROOM, "alice@example.com", "m1", "archive-1") is False  # re-read
    assert resends.is_resend(ROOM, "alice@example.com", "m1", "archive-2") is True  # resent
    assert resends.is_resend(ROOM, "bob@example.com", "m1", "archive-3") is False  # not his
    assert resends.is_resend("lc-2@muc.example.com", "alice@example.com", "m1", "a-4") is False
    assert resends.is_resend(ROOM, "alice@example.com", None, "archive-5") is False  # no id
    # Memory is bounded: the oldest client id is forgotten first.
    assert resends.is_resend(ROOM, "alice@example.com", "m1", "archive-6") is False


def test_a_room_remembers_only_its_newest_delivered_lines() -> None:
    room = Room(spec=RoomSpec(key="c1", name="Chat", topic="", visitor_nick="Anna (visitor)",
                              invite=()))
    for n in range(DELIVERED_MEMORY + 10):
        room.note_delivered(f"line-{n}", f"archive-{n}")
    room.note_delivered("line-20", "archive-20")  # seen again: now the newest
    assert len(room.delivered) == DELIVERED_MEMORY
    assert "line-0" not in room.delivered and "line-9" not in room.delivered
    assert room.delivered[f"line-{DELIVERED_MEMORY + 9}"] == f"archive-{DELIVERED_MEMORY + 9}"
    assert list(room.delivered)[-1] == "line-20"
