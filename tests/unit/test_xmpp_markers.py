"""Read markers (XEP-0333) in the XMPP backend without a server: agents' displayed markers
fed through the fast path and through slixmpp's handlers give the same AgentRead with the
ids the backend reports; the bot's own markers (what it sends, and what it ignores); the
pure helpers."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import pytest

from bridge.backends.base import (
    AgentMessage,
    AgentRead,
    AgentTyping,
    BackendUnavailable,
    InboundEvent,
    RoomSpec,
)
from bridge.backends.xmpp import XmppBackend
from bridge.backends.xmpp.archive import ArchivedLine
from bridge.backends.xmpp.connection import build_client
from bridge.backends.xmpp.fastpath import BotClient
from bridge.backends.xmpp.markers import (
    ReadMarks,
    displayed_element,
    displayed_marker,
    marker_target,
)
from bridge.backends.xmpp.stanzas import (
    DISPLAYED,
    MARKABLE,
    STORE_HINT,
    group_line,
    line_head,
)
from bridge.backends.xmpp.state import Room
from bridge.config import XmppConfig
from bridge.core.models import RoomRef

ROOM = RoomRef("lc-1@muc.example.com")
BOT_NICK = "Anna (visitor)"
CONFIG = XmppConfig(jid="bot@example.com", password="x", muc_service="muc.example.com")
SPEC = RoomSpec(name="Anna", topic="", visitor_nick=BOT_NICK, invite=("alice@example.com",),
                key="1")
CLIENT_NS = "{jabber:client}"


@dataclasses.dataclass
class Wired:
    backend: XmppBackend
    client: BotClient
    sent: list[Any]  # stanzas handed to slixmpp's send queue

    def feed(self, stanza: str) -> None:
        self.client._spawn_event(ET.fromstring(stanza))

    def events(self) -> list[InboundEvent]:
        queue = self.backend._events
        return [queue.get_nowait() for _ in range(queue.qsize())]

    @property
    def room(self) -> Room:
        return self.backend._rooms.rooms[ROOM]

    @property
    def handled(self) -> int:
        return int(self.client.plugin["xep_0198"].handled)

    def markers(self) -> list[ET.Element]:
        return [stanza.xml for stanza in self.sent if stanza.xml.find(DISPLAYED) is not None]


@pytest.fixture(params=["fast", "slixmpp"])
def wired(request: pytest.FixtureRequest) -> Iterator[Wired]:
    """A backend on a client that never connects, in a room with Alice, stream management
    on; what it sends is kept. "slixmpp": the fast path switched off."""
    backend = XmppBackend(CONFIG, ("alice@example.com",))
    client = build_client(CONFIG)
    backend._wire(client)
    if request.param == "slixmpp":
        client.take = None
    client.plugin["xep_0198"].enabled_in = True
    backend._rooms.rooms[ROOM] = Room(spec=SPEC, nick=BOT_NICK, joined=True,
                                      real_jids={"Alice": "alice@example.com"})
    wired = Wired(backend, client, [])
    client.send = wired.sent.append  # type: ignore[method-assign,assignment]
    yield wired


def line(text: str, *, nick: str = "Alice", extra: str = "", origin: str | None = None
         ) -> str:
    origin_id = f'<origin-id xmlns="urn:xmpp:sid:0" id="{origin}"/>' if origin else ""
    return (f'<message xmlns="jabber:client" type="groupchat" from="{ROOM}/{nick}" '
            f'to="bot@example.com/r" id="m-{text}"><body>{text}</body>{origin_id}'
            f'<stanza-id xmlns="urn:xmpp:sid:0" by="{ROOM}" id="sid-{text}"/>{extra}</message>')


def marker(line_id: str, *, nick: str = "Alice", kind: str = "groupchat", extra: str = "",
           sender: str | None = None) -> str:
    sender_attr = f' sender="{sender}"' if sender else ""
    return (f'<message xmlns="jabber:client" type="{kind}" from="{ROOM}/{nick}" '
            f'to="bot@example.com/r" id="mk-{line_id}">'
            f'<displayed xmlns="urn:xmpp:chat-markers:0" id="{line_id}"{sender_attr}/>'
            f'<store xmlns="urn:xmpp:hints"/>{extra}</message>')


# -- agents' markers ---------------------------------------------------------------------

async def test_an_agent_s_marker_gives_a_read_by_the_room_s_id(wired: Wired) -> None:
    wired.room.note_delivered("out-1", "sid-visitor-line")
    before = wired.handled
    wired.feed(marker("sid-visitor-line"))
    assert wired.events() == [AgentRead(ROOM, "alice@example.com", "sid-visitor-line")]
    assert wired.handled == before + 1  # counted once, whichever way it came


async def test_a_marker_by_the_id_its_sender_gave_names_the_same_line(wired: Wired) -> None:
    wired.room.note_delivered("out-1", "sid-mine")
    wired.feed(line("hello", origin="client-7"))
    wired.feed(marker("out-1"))  # our line, by our id (its origin-id)
    wired.feed(marker("client-7"))  # Alice's line, by her client's origin-id
    events = wired.events()
    assert isinstance(events[0], AgentMessage) and events[0].event_id == "sid-hello"
    assert events[1:] == [AgentRead(ROOM, "alice@example.com", "sid-mine"),
                          AgentRead(ROOM, "alice@example.com", "sid-hello")]


async def test_a_marker_with_a_sender_names_a_line_of_a_room_without_ids(
        wired: Wired) -> None:
    # Conversations names a line it has no stanza-id for by its message id and sender; the
    # backend named that line "{room}/{nick}#{id}".
    wired.feed(marker("m-9", sender=f"{ROOM}/{BOT_NICK}"))
    assert wired.events() == [AgentRead(ROOM, "alice@example.com", f"{ROOM}/{BOT_NICK}#m-9")]


async def test_a_marker_on_a_draft_preview_reads_up_to_the_line_before_it(
        wired: Wired) -> None:
    wired.feed(line("mine", nick=BOT_NICK, origin="out-1"))
    wired.feed(line("preview", nick=BOT_NICK, origin="draft-1"))  # the visitor typing
    wired.feed(line("answer"))
    wired.feed(line("preview2", nick=BOT_NICK, origin="draft-2"))  # corrected in place
    assert wired.events()[0].event_id == "sid-answer"  # type: ignore[union-attr]
    wired.feed(marker("sid-preview"))
    wired.feed(marker("sid-preview2"))
    assert wired.events() == [AgentRead(ROOM, "alice@example.com", "sid-mine"),
                              AgentRead(ROOM, "alice@example.com", "sid-answer")]


async def test_our_chat_states_coming_back_are_no_lines_of_ours(wired: Wired) -> None:
    wired.feed(f'<message xmlns="jabber:client" type="groupchat" from="{ROOM}/{BOT_NICK}" '
               'id="cs-1"><composing xmlns="http://jabber.org/protocol/chatstates"/>'
               "</message>")
    assert wired.events() == []
    assert wired.room.delivered == {} and wired.room.latest_line is None


async def test_markers_that_are_not_an_agent_s_live_read_give_nothing(wired: Wired) -> None:
    wired.feed(marker("sid-1", nick=BOT_NICK))  # ours, coming back
    wired.feed(marker("sid-1", nick="Stranger"))  # an occupant whose address we lack
    wired.feed(marker("sid-1", extra='<delay xmlns="urn:xmpp:delay" '
                                     'stamp="2024-01-01T00:00:00Z"/>'))  # history
    wired.feed(marker("sid-1", kind="chat"))  # a private message, about no line of ours
    wired.feed('<message xmlns="jabber:client" type="groupchat" from="'
               f'{ROOM}/Alice"><received xmlns="urn:xmpp:chat-markers:0" id="sid-1"/>'
               "</message>")  # received is not displayed
    wired.feed(marker("", nick="Alice"))  # names nothing
    assert wired.events() == []
    assert wired.room.delivered == {}  # our own marker is no line of ours


async def test_a_marker_with_a_chat_state_gives_both(wired: Wired) -> None:
    wired.feed(marker("sid-2", extra='<active xmlns="http://jabber.org/protocol/chatstates"/>'))
    events = wired.events()
    assert AgentRead(ROOM, "alice@example.com", "sid-2") in events
    assert AgentTyping(ROOM, "alice@example.com", "Alice", False) in events
    assert len(events) == 2


async def test_a_marker_during_catch_up_comes_after_the_archive_s_lines(wired: Wired) -> None:
    wired.room.catching_up = True
    wired.feed(marker("sid-old"))
    assert wired.events() == []
    archived = ET.fromstring(line("old"))
    wired.backend._receiver.archived_line(ROOM, wired.room, ArchivedLine(
        "sid-old", archived, 1.0, "alice@example.com"))
    wired.backend._rooms._release_held(ROOM, wired.room)
    events = wired.events()
    assert isinstance(events[0], AgentMessage) and events[0].event_id == "sid-old"
    assert events[1:] == [AgentRead(ROOM, "alice@example.com", "sid-old")]


async def test_archived_markers_are_neither_reads_nor_lines_of_ours(wired: Wired) -> None:
    receiver = wired.backend._receiver
    ours = ET.fromstring(marker("sid-1", nick=BOT_NICK))
    receiver.archived_line(ROOM, wired.room, ArchivedLine("a-1", ours, 1.0, "bot@example.com"))
    theirs = ET.fromstring(marker("sid-1"))
    receiver.archived_line(ROOM, wired.room, ArchivedLine("a-2", theirs, 1.0,
                                                          "alice@example.com"))
    assert wired.events() == []
    assert wired.room.delivered == {}


# -- the bot's markers -------------------------------------------------------------------

async def test_mark_read_sends_a_stored_displayed_marker_without_a_body(wired: Wired) -> None:
    await wired.backend.mark_read(ROOM, "sid-hello")
    [sent] = wired.markers()
    assert sent.get("to") == ROOM and sent.get("type") == "groupchat"
    assert sent.find(f"{CLIENT_NS}body") is None
    assert sent.find(STORE_HINT) is not None
    assert displayed_marker(sent) == ("sid-hello", None)


async def test_mark_read_never_goes_back_and_skips_repeats(wired: Wired) -> None:
    for text in ("one", "two", "three"):
        wired.feed(line(text))
    await wired.backend.mark_read(ROOM, "sid-two")
    await wired.backend.mark_read(ROOM, "sid-two")  # a repeat
    await wired.backend.mark_read(ROOM, "sid-one")  # backwards
    await wired.backend.mark_read(ROOM, "sid-three")
    await wired.backend.mark_read(ROOM, "sid-unknown")  # after a restart: the hub's word
    assert [displayed_marker(m) for m in wired.markers()] == [
        ("sid-two", None), ("sid-three", None), ("sid-unknown", None)]


async def test_mark_read_names_a_line_of_a_room_without_ids_as_clients_do(
        wired: Wired) -> None:
    await wired.backend.mark_read(ROOM, f"{ROOM}/Alice#m-4")
    [sent] = wired.markers()
    assert displayed_marker(sent) == ("m-4", f"{ROOM}/Alice")


async def test_mark_read_in_a_room_that_is_not_ours_is_only_logged(
        wired: Wired, caplog: pytest.LogCaptureFixture) -> None:
    await wired.backend.mark_read(RoomRef("other@muc.example.com"), "sid-1")
    assert wired.markers() == []
    assert "no read marker" in caplog.text


async def test_mark_read_while_offline_is_unavailable(wired: Wired) -> None:
    wired.room.joined = False

    async def offline() -> None:
        raise BackendUnavailable("xmpp: not connected")

    wired.backend._link.wait_online = offline  # type: ignore[method-assign]
    with pytest.raises(BackendUnavailable):
        await wired.backend.mark_read(ROOM, "sid-1")
    assert wired.markers() == []


async def test_lines_sent_through_slixmpp_are_markable(wired: Wired) -> None:
    wired.backend._send_line(ROOM, "hello", "k1")
    wired.backend._send_line(ROOM, "https://h/f.png", "k2", "https://h/f.png")
    assert [stanza.xml.find(MARKABLE) is not None for stanza in wired.sent] == [True, True]


# -- pure helpers ------------------------------------------------------------------------

def test_lines_written_by_the_fast_path_are_markable() -> None:
    for oob in (None, "https://h/f.png"):
        stanza = group_line(line_head(ROOM, None), "k1", "hi", oob)
        xml = ET.fromstring(stanza.replace("<message ", '<message xmlns="jabber:client" ', 1))
        assert xml.find(MARKABLE) is not None


def test_displayed_marker_reads_id_and_sender() -> None:
    def parse(stanza: str) -> ET.Element:
        return ET.fromstring(stanza)

    assert displayed_marker(parse(marker("sid-1"))) == ("sid-1", None)
    assert displayed_marker(parse(marker("m-1", sender=f"{ROOM}/Bob"))) == ("m-1",
                                                                          f"{ROOM}/Bob")
    assert displayed_marker(parse(marker(""))) is None
    assert displayed_marker(parse(line("x"))) is None
    element = displayed_element("m-1", f"{ROOM}/Bob")
    assert (element.get("id"), element.get("sender")) == ("m-1", f"{ROOM}/Bob")
    assert displayed_element("sid-1").get("sender") is None


@pytest.mark.parametrize(("line_id", "target"), [
    ("a1b2-c3", ("a1b2-c3", None)),  # the room's stanza-id
    (f"{ROOM}/Alice#m-1", ("m-1", f"{ROOM}/Alice")),
    (f"{ROOM}/A#lice#m-1", ("m-1", f"{ROOM}/A#lice")),  # a nick with a '#'
    ("other@muc.example.com/Alice#m-1", ("other@muc.example.com/Alice#m-1", None)),
    (f"{ROOM}/Alice", (f"{ROOM}/Alice", None)),
])
def test_marker_target(line_id: str, target: tuple[str, str | None]) -> None:
    assert marker_target(ROOM, line_id) == target


def test_read_marks_map_ids_back() -> None:
    marks = ReadMarks()
    marks.note_line(ROOM, "sid-a", "client-a")
    delivered = {"out-1": "sid-ours"}
    assert marks.line_for(ROOM, "out-1", None, delivered) == "sid-ours"
    assert marks.line_for(ROOM, "client-a", None, delivered) == "sid-a"
    assert marks.line_for("other@muc", "client-a", None, delivered) == "client-a"
    assert marks.line_for(ROOM, "m-1", f"{ROOM}/Bob", delivered) == f"{ROOM}/Bob#m-1"
    assert marks.line_for(ROOM, "sid-z", None, delivered) == "sid-z"


def test_read_marks_move_forward_per_room_within_a_bounded_memory() -> None:
    marks = ReadMarks(memory=3)
    for n in range(5):
        marks.note_line(ROOM, f"sid-{n}", f"c-{n}")
    assert marks.forward(ROOM, "sid-3")
    assert not marks.forward(ROOM, "sid-3")
    assert not marks.forward(ROOM, "sid-2")
    assert marks.forward("other@muc", "sid-2")  # another room has its own marker
    # Forgotten lines are taken on the hub's word: it keeps the order of its items.
    assert marks.forward(ROOM, "sid-0")
    assert len(marks._order) == 3 and len(marks._by_sent) == 3
    assert marks.line_for(ROOM, "c-0", None, {}) == "c-0"
