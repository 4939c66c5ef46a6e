"""The visitor's edits and deletions as the backends send them, without a server: on Matrix
an `m.replace` edit of the bot's line and a redaction, each with the change's transaction
id; on XMPP a correction (XEP-0308) naming the line by the id the bot gave it and a
retraction (XEP-0424, both forms, with its fallback), each delivered once the room
reflects it and never sent twice for a key (real servers: tests/integration/
test_visitor_edits.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import pytest
from nio import RoomGetStateEventError, RoomRedactError, RoomRedactResponse, RoomSendResponse

from bridge.backends.base import PostedLine, RoomGone, RoomSpec
from bridge.backends.matrix import MatrixBackend
from bridge.backends.xmpp import XmppBackend
from bridge.backends.xmpp.archive import ArchivedLine
from bridge.backends.xmpp.connection import build_client
from bridge.backends.xmpp.corrections import RETRACTION_FALLBACK, retraction
from bridge.backends.xmpp.fastpath import BotClient
from bridge.backends.xmpp.state import Room
from bridge.config import MatrixConfig, XmppConfig
from bridge.core.models import RoomRef

# -- Matrix ----------------------------------------------------------------------------------

MATRIX_ROOM = RoomRef("!room:example.com")
LINE = PostedLine("$line", "lcb.c1.2")


class Homeserver:
    """Stands in for nio's client: records what is sent, answers as told."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any, str]] = []  # (what, content or event id, txn id)
        self.redaction: Any = None  # the answer to a redaction (None: done)

    async def room_send(self, room: str, event_type: str, content: dict[str, Any],
                        tx_id: str) -> Any:
        self.sent.append(("send", content, tx_id))
        return RoomSendResponse(f"$sent-{len(self.sent)}", room)

    async def room_redact(self, room: str, event_id: str, reason: str, tx_id: str) -> Any:
        self.sent.append(("redact", event_id, tx_id))
        return self.redaction or RoomRedactResponse(f"$redaction-{len(self.sent)}", room)

    async def room_get_state_event(self, room: str, event_type: str, state_key: str) -> Any:
        return answered(RoomGetStateEventError("not in the room", "M_FORBIDDEN"), 403)


def answered(error: Any, status: int) -> Any:
    """An error answer as nio gives it, with the HTTP status it came with."""
    error.transport_response = type("Response", (), {"status": status})()
    return error


@pytest.fixture
def matrix() -> tuple[MatrixBackend, Homeserver]:
    backend = MatrixBackend(MatrixConfig(homeserver="http://127.0.0.1:9",
                                         user_id="@support:example.com", password="x"),
                            state=None)  # type: ignore[arg-type]
    server = Homeserver()
    backend._client = server
    return backend, server


async def test_matrix_edits_the_bots_line_with_the_changes_key(
        matrix: tuple[MatrixBackend, Homeserver]) -> None:
    backend, server = matrix
    await backend.edit_line(MATRIX_ROOM, LINE, "Hello, where is my order?", key="lcb.c1.2.edit1")
    assert server.sent == [("send", {
        "msgtype": "m.text", "body": "* Hello, where is my order?",
        "m.new_content": {"msgtype": "m.text", "body": "Hello, where is my order?"},
        "m.relates_to": {"rel_type": "m.replace", "event_id": "$line"},
    }, "lcb.c1.2.edit1")]


async def test_matrix_redacts_the_bots_line_with_the_changes_key(
        matrix: tuple[MatrixBackend, Homeserver]) -> None:
    backend, server = matrix
    await backend.retract_line(MATRIX_ROOM, LINE, key="lcb.c1.2.delete1")
    assert server.sent == [("redact", "$line", "lcb.c1.2.delete1")]


async def test_matrix_a_redaction_in_a_room_the_bot_left_is_room_gone(
        matrix: tuple[MatrixBackend, Homeserver]) -> None:
    backend, server = matrix
    server.redaction = answered(RoomRedactError("forbidden", "M_FORBIDDEN"), 403)
    with pytest.raises(RoomGone):
        await backend.retract_line(MATRIX_ROOM, LINE, key="k")


# -- XMPP ------------------------------------------------------------------------------------

ROOM = RoomRef("lc-1@muc.example.com")
BOT_NICK = "Anna (visitor)"
CONFIG = XmppConfig(jid="bot@example.com", password="x", muc_service="muc.example.com")
SPEC = RoomSpec(name="Anna", topic="", visitor_nick=BOT_NICK, invite=("alice@example.com",),
                key="1")
XMPP_LINE = PostedLine("sid-line", "lcb.c1.2")
CLIENT = "{jabber:client}"


@dataclasses.dataclass
class Wired:
    backend: XmppBackend
    client: BotClient
    sent: list[Any]  # stanzas handed to slixmpp's send queue

    def feed(self, stanza: str) -> None:
        self.client._spawn_event(ET.fromstring(stanza))

    @property
    def room(self) -> Room:
        return self.backend._rooms.rooms[ROOM]

    def events(self) -> list[Any]:
        queue = self.backend._events
        return [queue.get_nowait() for _ in range(queue.qsize())]


@pytest.fixture(params=["fast", "slixmpp"])
def wired(request: pytest.FixtureRequest) -> Iterator[Wired]:
    """A backend on a client that never connects, joined to a room with Alice; what it
    sends is kept. "slixmpp": the fast path switched off."""
    backend = XmppBackend(CONFIG, ("alice@example.com",))
    client = build_client(CONFIG)
    backend._wire(client)
    if request.param == "slixmpp":
        client.take = None
    backend._rooms.rooms[ROOM] = Room(spec=SPEC, nick=BOT_NICK, joined=True,
                                      real_jids={"Alice": "alice@example.com"})
    wired = Wired(backend, client, [])
    client.send = wired.sent.append  # type: ignore[method-assign,assignment]
    yield wired


def reflected(stanza: ET.Element, stanza_id: str) -> str:
    """What the room sends back for a stanza of ours: from our nick, with its own id."""
    copy = ET.fromstring(ET.tostring(stanza))
    copy.set("from", f"{ROOM}/{BOT_NICK}")
    copy.set("to", "bot@example.com/r")
    ET.SubElement(copy, "{urn:xmpp:sid:0}stanza-id", {"by": ROOM, "id": stanza_id})
    return ET.tostring(copy, encoding="unicode")


async def sent_one(wired: Wired, before: int = 0) -> ET.Element:
    for _ in range(100):
        if len(wired.sent) > before:
            break
        await asyncio.sleep(0)
    [stanza] = wired.sent[before:]
    return stanza.xml


async def test_xmpp_a_correction_names_the_line_by_the_bots_id(wired: Wired) -> None:
    editing = asyncio.create_task(wired.backend.edit_line(ROOM, XMPP_LINE, "Hello",
                                                          key="lcb.c1.2.edit1"))
    stanza = await sent_one(wired)
    assert (stanza.get("type"), stanza.get("to"), stanza.get("id")) == (
        "groupchat", ROOM, "lcb.c1.2.edit1")
    assert stanza.findtext(f"{CLIENT}body") == "Hello"
    assert stanza.find("{urn:xmpp:message-correct:0}replace").get("id") == "lcb.c1.2"  # type: ignore[union-attr]
    assert stanza.find("{urn:xmpp:sid:0}origin-id").get("id") == "lcb.c1.2.edit1"  # type: ignore[union-attr]
    assert not editing.done()  # delivered only once the room reflects it
    wired.feed(reflected(stanza, "sid-edit"))
    await asyncio.wait_for(editing, 1)
    assert wired.events() == []  # the bot's own correction is no agent's line
    await wired.backend.edit_line(ROOM, XMPP_LINE, "Hello", key="lcb.c1.2.edit1")
    assert len(wired.sent) == 1  # a retry of a change the room has: not sent again


async def test_xmpp_a_retraction_in_both_forms_with_its_fallback(wired: Wired) -> None:
    taking_back = asyncio.create_task(wired.backend.retract_line(ROOM, XMPP_LINE,
                                                                 key="lcb.c1.2.delete1"))
    stanza = await sent_one(wired)
    assert (stanza.get("type"), stanza.get("id")) == ("groupchat", "lcb.c1.2.delete1")
    assert stanza.findtext(f"{CLIENT}body") == RETRACTION_FALLBACK
    assert stanza.find("{urn:xmpp:message-retract:1}retract").get("id") == "sid-line"  # type: ignore[union-attr]
    fastened = stanza.find("{urn:xmpp:fasten:0}apply-to")
    assert fastened is not None and fastened.get("id") == "lcb.c1.2"
    assert fastened.find("{urn:xmpp:message-retract:0}retract") is not None
    fallback = stanza.find("{urn:xmpp:fallback:0}fallback")
    assert fallback is not None and fallback.get("for") == "urn:xmpp:message-retract:1"
    assert stanza.find("{urn:xmpp:hints}store") is not None
    assert retraction(stanza) is not None  # what our own receiving side reads
    assert not taking_back.done()
    wired.feed(reflected(stanza, "sid-retraction"))
    await asyncio.wait_for(taking_back, 1)
    assert wired.events() == []  # the bot's own retraction is reported to no one
    await wired.backend.retract_line(ROOM, XMPP_LINE, key="lcb.c1.2.delete1")
    assert len(wired.sent) == 1


async def test_xmpp_a_room_without_ids_gets_the_line_named_by_ours(wired: Wired) -> None:
    line = PostedLine(f"{ROOM}/{BOT_NICK}#lcb.c1.2", "lcb.c1.2")
    taking_back = asyncio.create_task(wired.backend.retract_line(ROOM, line, key="k-1"))
    stanza = await sent_one(wired)
    assert stanza.find("{urn:xmpp:message-retract:1}retract").get("id") == "lcb.c1.2"  # type: ignore[union-attr]
    taking_back.cancel()


async def test_xmpp_a_retraction_found_in_the_archive_is_not_sent_again(wired: Wired) -> None:
    taking_back = asyncio.create_task(wired.backend.retract_line(ROOM, XMPP_LINE, key="k-2"))
    stanza = await sent_one(wired)
    taking_back.cancel()  # the stream broke before the room reflected it
    copy = ET.fromstring(reflected(stanza, "sid-r"))
    wired.backend._receiver.archived_line(
        ROOM, wired.room, ArchivedLine("a-7", copy, 1_700_000_000.0, "bot@example.com"))
    await wired.backend.retract_line(ROOM, XMPP_LINE, key="k-2")
    assert len(wired.sent) == 1 and wired.events() == []


async def test_xmpp_a_draft_previews_retraction_is_no_line_of_ours(wired: Wired) -> None:
    # The previews' retractions carry no origin-id: nothing is remembered for them.
    wired.feed(f'<message xmlns="jabber:client" type="groupchat" from="{ROOM}/{BOT_NICK}" '
               'to="bot@example.com/r" id="x-1">'
               '<retract xmlns="urn:xmpp:message-retract:1" id="sid-preview"/></message>')
    assert wired.room.delivered == {} and wired.events() == []
