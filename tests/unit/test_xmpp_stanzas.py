"""The XMPP backend's inbound side without a server: raw stanzas fed through the fast path
and through slixmpp's own handlers must give the same events and keep stream management's
count of handled stanzas; the fast path's version guard; the pure stanza helpers."""

from __future__ import annotations

import asyncio
import dataclasses
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import pytest

from bridge.backends.base import AgentMessage, AgentTyping, InboundEvent, MemberJoined, RoomSpec
from bridge.backends.xmpp import XmppBackend
from bridge.backends.xmpp.archive import ArchivePage
from bridge.backends.xmpp.connection import build_client
from bridge.backends.xmpp.fastpath import BotClient, FastPath, fast_path_problem
from bridge.backends.xmpp.stanzas import (
    chat_state,
    delay_stamp,
    event_id,
    group_line,
    history_address,
    is_correction,
    line_head,
    parse_stamp,
    sent_key,
    xml_escape,
)
from bridge.backends.xmpp.state import Room
from bridge.config import XmppConfig

ROOM = "lc-1@muc.example.com"
BOT_NICK = "Anna (visitor)"
CONFIG = XmppConfig(jid="bot@example.com", password="x", muc_service="muc.example.com")
SPEC = RoomSpec(name="Anna", topic="", visitor_nick=BOT_NICK, invite=("alice@example.com",),
                key="1")


@dataclasses.dataclass
class Wired:
    backend: XmppBackend
    client: BotClient
    fast: bool
    through_slixmpp: int = 0  # stanzas slixmpp built and matched against its handlers

    def feed(self, stanza: str) -> None:
        """One stanza as slixmpp's reader hands it over, to the client's first step."""
        self.client._spawn_event(ET.fromstring(stanza))

    def took(self, stanzas: int) -> None:
        """The fast path took that many stanzas, or slixmpp did with the fast path off."""
        assert self.through_slixmpp == (0 if self.fast else stanzas)

    def events(self) -> list[InboundEvent]:
        queue = self.backend._events
        return [queue.get_nowait() for _ in range(queue.qsize())]

    @property
    def handled(self) -> int:
        return int(self.client.plugin["xep_0198"].handled)


@pytest.fixture(params=["fast", "slixmpp"])
def wired(request: pytest.FixtureRequest) -> Iterator[Wired]:
    """A backend on a real client that never connects, in a room with Alice; stream
    management on, as after <enabled/>. "slixmpp": the fast path switched off."""
    backend = XmppBackend(CONFIG, ("alice@example.com",))
    client = build_client(CONFIG)
    backend._wire(client)
    if request.param == "slixmpp":
        client.take = None
    client.plugin["xep_0198"].enabled_in = True
    backend._rooms.rooms[ROOM] = Room(spec=SPEC, nick=BOT_NICK, joined=True,
                                      real_jids={"Alice": "alice@example.com"})
    wired = Wired(backend, client, fast=request.param == "fast")
    recv_stanza = client.recv_stanza

    def counted(stanza: Any) -> None:
        wired.through_slixmpp += 1
        recv_stanza(stanza)

    client.recv_stanza = counted  # type: ignore[method-assign]
    yield wired


def line(text: str, *, nick: str = "Alice", extra: str = "") -> str:
    return (f'<message xmlns="jabber:client" type="groupchat" from="{ROOM}/{nick}" '
            f'to="bot@example.com/r" id="m-{text}"><body>{text}</body>'
            f'<stanza-id xmlns="urn:xmpp:sid:0" by="{ROOM}" id="sid-{text}"/>{extra}</message>')


def typing(state: str) -> str:
    return (f'<message xmlns="jabber:client" type="groupchat" from="{ROOM}/Alice" '
            f'to="bot@example.com/r"><{state} xmlns="http://jabber.org/protocol/chatstates"/>'
            "</message>")


def without_time(events: list[InboundEvent]) -> list[InboundEvent]:
    return [dataclasses.replace(e, ts=0.0) if isinstance(e, AgentMessage) else e
            for e in events]


async def test_an_agent_line_gives_one_message_and_counts_once(wired: Wired) -> None:
    before = wired.handled
    wired.feed(line("hello"))
    assert without_time(wired.events()) == [AgentMessage(
        room=ROOM, sender="alice@example.com", sender_name="Alice", text="hello",
        event_id="sid-hello", ts=0.0)]
    assert wired.handled == before + 1
    wired.took(1)


async def test_a_correction_is_marked_as_edited(wired: Wired) -> None:
    wired.feed(line("fixed", extra='<replace xmlns="urn:xmpp:message-correct:0" id="m-1"/>'))
    [event] = wired.events()
    assert isinstance(event, AgentMessage) and event.edited


async def test_chat_states_give_typing_and_count_once_each(wired: Wired) -> None:
    before = wired.handled
    wired.feed(typing("composing"))
    wired.feed(typing("paused"))
    assert wired.events() == [
        AgentTyping(ROOM, "alice@example.com", "Alice", True),
        AgentTyping(ROOM, "alice@example.com", "Alice", False),
    ]
    assert wired.handled == before + 2
    wired.took(2)


async def test_our_own_line_coming_back_is_noted_not_relayed(wired: Wired) -> None:
    future = asyncio.get_running_loop().create_future()
    wired.backend._receiver.reflections["k1"] = future
    before = wired.handled
    wired.feed(line("mine", nick=BOT_NICK,
                    extra='<origin-id xmlns="urn:xmpp:sid:0" id="k1"/>'))
    assert wired.events() == []
    assert future.result() == "sid-mine"
    assert wired.backend._rooms.rooms[ROOM].delivered == {"k1": "sid-mine"}
    assert wired.handled == before + 1
    wired.took(1)


async def test_a_stranger_and_an_unknown_room_give_nothing(wired: Wired) -> None:
    before = wired.handled
    wired.feed(line("who am I", nick="Mallory"))
    wired.feed(line("hi").replace(ROOM, "other@muc.example.com"))
    assert wired.events() == []
    assert wired.handled == before + 2
    assert wired.through_slixmpp == 2  # left to slixmpp either way


async def test_history_goes_through_slixmpp_with_its_stamp(wired: Wired) -> None:
    wired.feed(line("earlier", extra='<delay xmlns="urn:xmpp:delay" '
                                     'stamp="2024-01-02T03:04:05Z"/>'))
    [event] = wired.events()
    assert isinstance(event, AgentMessage)
    assert event.ts == parse_stamp("2024-01-02T03:04:05Z")


async def test_a_presence_and_an_iq_count_once(wired: Wired) -> None:
    before = wired.handled
    wired.feed(f'<presence xmlns="jabber:client" from="{ROOM}/Bob" to="bot@example.com/r">'
               '<x xmlns="http://jabber.org/protocol/muc#user">'
               '<item affiliation="member" role="participant" jid="bob@example.com/phone"/>'
               "</x></presence>")
    [joined] = wired.events()
    assert isinstance(joined, MemberJoined)
    assert (joined.room, joined.member, joined.member_name) == (ROOM, "bob@example.com", "Bob")
    wired.feed('<iq xmlns="jabber:client" type="get" id="p1" from="example.com" '
               'to="bot@example.com/r"><ping xmlns="urn:xmpp:ping"/></iq>')
    assert wired.handled == before + 2


async def test_an_archive_result_is_collected_and_counted(wired: Wired) -> None:
    page = wired.backend._receiver.archive_pages["q1"] = ArchivePage(ROOM)
    before = wired.handled
    wired.feed(f'<message xmlns="jabber:client" from="{ROOM}" to="bot@example.com/r">'
               '<result xmlns="urn:xmpp:mam:2" queryid="q1" id="arch-1">'
               '<forwarded xmlns="urn:xmpp:forward:0">'
               '<delay xmlns="urn:xmpp:delay" stamp="2024-01-02T03:04:05Z"/>'
               f"{line('archived')}</forwarded></result></message>")
    assert [archived.archive_id for archived in page.lines] == ["arch-1"]
    assert wired.events() == []
    assert wired.handled == before + 1
    wired.took(1)


async def test_the_count_stays_put_before_stream_management_is_on(wired: Wired) -> None:
    wired.client.plugin["xep_0198"].enabled_in = False
    before = wired.handled
    wired.feed(line("hello"))
    assert len(wired.events()) == 1
    assert wired.handled == before


# -- the version guard -------------------------------------------------------------------


async def test_the_fast_path_runs_on_the_release_it_was_checked_against() -> None:
    backend = XmppBackend(CONFIG, ())
    client = build_client(CONFIG)
    backend._wire(client)
    assert backend._fast is not None and backend._fast.enabled
    assert client.take is not None


async def test_a_missing_attribute_switches_the_fast_path_off(
        caplog: pytest.LogCaptureFixture) -> None:
    client = build_client(CONFIG)
    del client.plugin["xep_0198"].window_counter
    assert fast_path_problem(client) == "slixmpp lacks xep_0198.window_counter"
    fast = FastPath(client, XmppBackend(CONFIG, ())._receiver)
    assert not fast.enabled and client.take is None
    assert not fast.send_line(ROOM, "k", "text")  # lines take slixmpp's send queue
    assert "fast path off" in caplog.text
    caplog.clear()
    FastPath(build_client(CONFIG), XmppBackend(CONFIG, ())._receiver)
    other = build_client(CONFIG)
    del other.plugin["xep_0198"].window_counter
    FastPath(other, XmppBackend(CONFIG, ())._receiver)
    assert "fast path off" not in caplog.text  # said once is enough


async def test_another_release_switches_the_fast_path_off() -> None:
    client = build_client(CONFIG)
    assert fast_path_problem(client, (1, 17, 0)) is None
    assert fast_path_problem(client, (1, 18, 0)) == (
        "slixmpp 1.18.0 is not a release the fast path was checked against")
    assert fast_path_problem(client, (2, 0)) is not None


# -- pure helpers ------------------------------------------------------------------------


def parse(stanza: str) -> ET.Element:
    return ET.fromstring(stanza)


def test_chat_state_is_read_from_its_namespace() -> None:
    assert chat_state(parse(typing("composing"))) == "composing"
    assert chat_state(parse(typing("gone"))) == "gone"
    assert chat_state(parse(line("no state"))) is None


def test_stamps_parse_or_say_none() -> None:
    assert parse_stamp("1970-01-01T00:01:00Z") == 60.0
    assert parse_stamp("1970-01-01T00:01:00.5+00:00") == 60.5
    assert parse_stamp("yesterday") is None
    assert parse_stamp(None) is None
    assert delay_stamp(parse(line("live"))) is None
    assert delay_stamp(parse(line("old", extra='<delay xmlns="urn:xmpp:delay" '
                                               'stamp="1970-01-01T00:00:10Z"/>'))) == 10.0


def test_escaping_covers_content_and_both_quotes() -> None:
    assert xml_escape("""<b>"fish" & 'chips'</b>""") == (
        "&lt;b&gt;&quot;fish&quot; &amp; &apos;chips&apos;&lt;/b&gt;")


def test_the_line_template_parses_back_to_what_was_meant() -> None:
    text = """<b>fish & "chips"</b> it's ]]> 5 > 3 ✓"""
    stanza = group_line(line_head(ROOM, "en"), 'k"1', text)
    xml = ET.fromstring(stanza.replace("<message ", '<message xmlns="jabber:client" ', 1))
    assert xml.get("to") == ROOM
    assert xml.get("{http://www.w3.org/XML/1998/namespace}lang") == "en"
    assert xml.findtext("{jabber:client}body") == text
    assert sent_key(xml) == 'k"1'
    assert 'xml:lang' not in line_head(ROOM, None)


def test_event_ids_prefer_the_room_s_stanza_id() -> None:
    assert event_id(ROOM, parse(line("x"))) == "sid-x"
    assert event_id("elsewhere@muc.example.com", parse(line("x"))) == f"{ROOM}/Alice#m-x"


def test_sent_key_prefers_the_origin_id() -> None:
    assert sent_key(parse(line("x", extra='<origin-id xmlns="urn:xmpp:sid:0" id="o1"/>'))) \
        == "o1"
    assert sent_key(parse(line("x"))) == "m-x"
    assert sent_key(parse('<message xmlns="jabber:client"/>')) is None


def test_history_address_is_the_bare_real_jid() -> None:
    item = ('<x xmlns="http://jabber.org/protocol/muc#user">'
            '<item jid="alice@example.com/laptop"/></x>')
    assert history_address(parse(line("x", extra=item))) == "alice@example.com"
    assert history_address(parse(line("x"))) is None


def test_a_correction_needs_the_id_it_replaces() -> None:
    assert is_correction(parse(line("x", extra='<replace xmlns="urn:xmpp:message-correct:0" '
                                               'id="m-1"/>')))
    assert not is_correction(parse(line("x", extra='<replace xmlns="urn:xmpp:message-correct:0"'
                                                   "/>")))
    assert not is_correction(parse(line("x")))
