"""Catching up after the bridge was away: where the store says to start, commands that run
once, writes refused by a full store, the archive's stanzas, and deferred events."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.backends.base import AgentMessage, HandlingDeferred, InboundEvent
from bridge.backends.xmpp import XmppBackend
from bridge.backends.xmpp import backend as xmpp_module
from bridge.backends.xmpp.archive import archive_query, archived_line, page_end
from bridge.config import XmppConfig
from bridge.core.models import ConversationId, ItemKind, RoomRef, Sender, Status
from bridge.store import Store, StoreUnavailable
from tests.unit.test_store import new_conversation, say

ROOM = RoomRef("lc-1@muc.example.com")
C1 = ConversationId("c1")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "livechat.sqlite3")
    yield s
    s.close()


def agent_line(store: Store, text: str, ts: float, event_id: str) -> None:
    store.append_item(C1, ItemKind.TEXT, Sender.AGENT, "Alice", text, ts, sender_id="alice",
                      event_id=event_id, delivered=True)


def test_a_room_without_lines_is_read_from_the_conversation_start(store: Store) -> None:
    new_conversation(store, C1, now=100.0)
    store.set_room(C1, ROOM)
    assert store.catch_up_since(ROOM) == 100.0


def test_reading_starts_at_the_last_agent_line(store: Store) -> None:
    new_conversation(store, C1, now=100.0)
    store.set_room(C1, ROOM)
    agent_line(store, "one", 150.0, "a1")
    agent_line(store, "two", 170.0, "a2")
    item, _ = say(store, C1, "delivered")  # ts 200, then confirmed
    store.mark_delivered(C1, item.seq, "v1")
    assert store.catch_up_since(ROOM) == 170.0


def test_an_unconfirmed_visitor_line_moves_the_start_back(store: Store) -> None:
    new_conversation(store, C1, now=100.0)
    store.set_room(C1, ROOM)
    say(store, C1, "not confirmed yet")  # ts 200
    agent_line(store, "later", 250.0, "a1")
    assert store.catch_up_since(ROOM) == 200.0


def test_a_lobby_is_read_from_its_last_command(store: Store) -> None:
    lobby = RoomRef("lobby@muc.example.com")
    assert store.catch_up_since(lobby) is None  # nothing ever taken from it
    store.mark_command_handled("ev1", 40.0, lobby)
    store.mark_command_handled("ev2", 50.0, lobby)
    store.mark_command_handled("ev3", 90.0, "elsewhere@muc.example.com")
    assert store.catch_up_since(lobby) == 50.0


def test_rooms_of_ended_conversations_need_no_catching_up(store: Store) -> None:
    new_conversation(store, C1)
    store.set_room(C1, ROOM)
    store.set_status(C1, Status.ENDED, ended_at=300.0)
    assert store.catch_up_since(ROOM) is None


def test_a_command_is_marked_once(store: Store) -> None:
    assert not store.command_handled("ev1")
    store.mark_command_handled("ev1", 10.0, ROOM)
    store.mark_command_handled("ev1", 11.0, ROOM)  # delivered again: no error
    assert store.command_handled("ev1")
    assert not store.command_handled("ev2")


def test_a_full_store_refuses_with_store_unavailable(store: Store) -> None:
    new_conversation(store, C1)
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    store.db.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(StoreUnavailable, match="full"):
        for n in range(200):  # until a line needs a page the database may not have
            store.append_item(C1, ItemKind.TEXT, Sender.VISITOR, "Ann", "x" * 2000, 1.0,
                              client_id=f"c{n}")
    store.db.execute(f"PRAGMA max_page_count = {pages * 100}")
    item, created = say(store, C1, "after", client_id="again")  # the same store works again
    assert created and item.text == "after"


MAM_RESULT = """<message xmlns="jabber:client" from="lc-1@muc.example.com" to="bot@example.com/r">
<result xmlns="urn:xmpp:mam:2" queryid="q1" id="arch-7"><forwarded xmlns="urn:xmpp:forward:0">
<delay xmlns="urn:xmpp:delay" stamp="2026-12-07T04:41:23Z"/>
<message xmlns="jabber:client" type="groupchat" from="lc-1@muc.example.com/Alice" id="m1">
<body>hello</body>
<x xmlns="http://jabber.org/protocol/muc#user"><item jid="alice@example.com/phone"
 affiliation="member" role="participant"/></x></message></forwarded></result></message>"""


def test_an_archived_line_is_read_with_its_id_stamp_and_sender() -> None:
    line = archived_line(ET.fromstring(MAM_RESULT))
    assert line is not None
    assert line.archive_id == "arch-7"
    assert line.real_jid == "alice@example.com"
    assert line.stamp == 1796618483.0
    assert line.message.findtext("{jabber:client}body") == "hello"


def test_a_result_without_a_message_is_no_line() -> None:
    empty = ET.fromstring('<message xmlns="jabber:client"><result xmlns="urn:xmpp:mam:2" '
                          'id="x"/></message>')
    assert archived_line(empty) is None
    assert archived_line(ET.fromstring('<message xmlns="jabber:client"/>')) is None


def test_the_query_asks_from_a_time_after_an_id() -> None:
    query = archive_query("q1", 1796618483.0, "arch-7", 100)
    text = ET.tostring(query, encoding="unicode")
    assert 'queryid="q1"' in text
    assert "2026-12-07T04:41:23Z" in text
    assert ">arch-7<" in text and ">100<" in text
    assert ">arch-7<" not in ET.tostring(archive_query("q1", 0.0, None, 100), encoding="unicode")


def test_the_end_of_a_page_says_whether_more_follows() -> None:
    fin = ('<iq xmlns="jabber:client" type="result"><fin xmlns="urn:xmpp:mam:2" complete="{}">'
           '<set xmlns="http://jabber.org/protocol/rsm"><last>L</last></set></fin></iq>')
    assert page_end(ET.fromstring(fin.format("true"))) == (True, "L")
    assert page_end(ET.fromstring(fin.format("false"))) == (False, "L")
    assert page_end(None) == (True, None)


async def test_a_deferred_event_comes_again_before_the_next(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(xmpp_module, "DEFERRED_RETRY_S", (0.01, 0.02))
    backend = XmppBackend(XmppConfig(jid="bot@example.com", password="x",
                                     muc_service="muc.example.com"), ())
    seen: list[str] = []
    refusals = 3

    async def hub(event: InboundEvent) -> None:
        nonlocal refusals
        assert isinstance(event, AgentMessage)
        seen.append(event.text)
        if event.text == "first" and refusals:
            refusals -= 1
            raise HandlingDeferred("store full")

    backend._inbound = hub
    for text in ("first", "second"):
        backend._queue_event(AgentMessage(ROOM, "alice@example.com", "Alice", text, text, 1.0))
    delivery = asyncio.create_task(backend._deliver_events())
    try:
        async with asyncio.timeout(5):
            while "second" not in seen:
                await asyncio.sleep(0.01)
    finally:
        delivery.cancel()
    assert seen == ["first", "first", "first", "first", "second"]
