"""Agents' corrections (XEP-0308), retractions (XEP-0424) and moderations (XEP-0425) in the
XMPP backend without a server: raw stanzas fed through the fast path and through slixmpp's
handlers give AgentMessage.replaces and AgentRetracted with the event ids the backend
reported for the lines; the bot's own retractions and forgeries give nothing; the pure
parts. Moderation is tested here only: Prosody 0.12 has no mod_muc_moderation."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import pytest

from bridge.backends.base import (
    AgentMessage,
    AgentRetracted,
    AgentTyping,
    InboundEvent,
    RoomSpec,
)
from bridge.backends.xmpp import XmppBackend
from bridge.backends.xmpp.archive import ArchivedLine
from bridge.backends.xmpp.connection import build_client
from bridge.backends.xmpp.corrections import (
    Corrections,
    Retraction,
    moderator_address,
    retraction,
)
from bridge.backends.xmpp.fastpath import BotClient
from bridge.backends.xmpp.markers import ReadMarks
from bridge.backends.xmpp.state import Room
from bridge.config import XmppConfig
from bridge.core.models import RoomRef

ROOM = RoomRef("lc-1@muc.example.com")
BOT_NICK = "Anna (visitor)"
CONFIG = XmppConfig(jid="bot@example.com", password="x", muc_service="muc.example.com")
SPEC = RoomSpec(name="Anna", topic="", visitor_nick=BOT_NICK, invite=("alice@example.com",),
                key="1")
ALICE = "alice@example.com"
BOB = "bob@example.com"
RETRACT_1 = "urn:xmpp:message-retract:1"
FALLBACK = ('<fallback xmlns="urn:xmpp:fallback:0" for="urn:xmpp:message-retract:1"/>'
            "<body>/me retracted a previous message, but it's unsupported by your client."
            "</body>")


@dataclasses.dataclass
class Wired:
    backend: XmppBackend
    client: BotClient
    fast: bool

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


@pytest.fixture(params=["fast", "slixmpp"])
def wired(request: pytest.FixtureRequest) -> Iterator[Wired]:
    """A backend on a client that never connects, in a room with Alice and Bob, stream
    management on. "slixmpp": the fast path switched off."""
    backend = XmppBackend(CONFIG, (ALICE, BOB))
    client = build_client(CONFIG)
    backend._wire(client)
    if request.param == "slixmpp":
        client.take = None
    client.plugin["xep_0198"].enabled_in = True
    backend._rooms.rooms[ROOM] = Room(spec=SPEC, nick=BOT_NICK, joined=True,
                                      real_jids={"Alice": ALICE, "Bob": BOB})
    yield Wired(backend, client, fast=request.param == "fast")


def line(text: str, *, nick: str = "Alice", message_id: str | None = None,
         origin: str | None = None, extra: str = "", room_ids: bool = True) -> str:
    """A group chat line as the room relays it: its stanza-id is "sid-{text}"."""
    origin_id = f'<origin-id xmlns="urn:xmpp:sid:0" id="{origin}"/>' if origin else ""
    stanza_id = (f'<stanza-id xmlns="urn:xmpp:sid:0" by="{ROOM}" id="sid-{text}"/>'
                 if room_ids else "")
    return (f'<message xmlns="jabber:client" type="groupchat" from="{ROOM}/{nick}" '
            f'to="bot@example.com/r" id="{message_id or "m-" + text}"><body>{text}</body>'
            f'{origin_id}{stanza_id}{extra}</message>')


def correction(text: str, of: str, **kwargs: Any) -> str:
    return line(text, extra=f'<replace xmlns="urn:xmpp:message-correct:0" id="{of}"/>',
                **kwargs)


def stanza(inner: str, *, sender: str = f"{ROOM}/Alice", extra: str = "") -> str:
    return (f'<message xmlns="jabber:client" type="groupchat" from="{sender}" '
            f'to="bot@example.com/r" id="r-1">{inner}{extra}</message>')


def retract(target: str, **kwargs: str) -> str:
    return stanza(f'<retract xmlns="{RETRACT_1}" id="{target}"/>'
                  '<store xmlns="urn:xmpp:hints"/>', **kwargs)


def fastened(target: str, **kwargs: str) -> str:
    """The older form (XEP-0424 0.2 with XEP-0422), naming the line by its origin-id."""
    return stanza(f'<apply-to xmlns="urn:xmpp:fasten:0" id="{target}">'
                  '<retract xmlns="urn:xmpp:message-retract:0"/></apply-to>', **kwargs)


def moderation(target: str, by: str | None, *, sender: str = ROOM) -> str:
    """XEP-0425 0.3: from the room, naming the moderator."""
    by_attr = f' by="{by}"' if by is not None else ""
    return stanza(f'<retract xmlns="{RETRACT_1}" id="{target}">'
                  f'<moderated xmlns="urn:xmpp:message-moderate:1"{by_attr}/>'
                  "<reason>spam</reason></retract>", sender=sender)


def old_moderation(target: str, by: str) -> str:
    """XEP-0425 0.2, with a fastening."""
    return stanza(f'<apply-to xmlns="urn:xmpp:fasten:0" id="{target}">'
                  f'<moderated xmlns="urn:xmpp:message-moderate:0" by="{by}">'
                  '<retract xmlns="urn:xmpp:message-retract:0"/></moderated></apply-to>',
                  sender=ROOM)


def messages(events: list[InboundEvent]) -> list[AgentMessage]:
    return [e for e in events if isinstance(e, AgentMessage)]


# -- corrections -------------------------------------------------------------------------

async def test_a_correction_names_the_line_by_its_event_id(wired: Wired) -> None:
    wired.feed(line("Ships Monday", message_id="c-1"))
    wired.feed(correction("Ships Tuesday", "c-1"))
    first, fixed = messages(wired.events())
    assert (first.edited, first.replaces) == (False, None)
    assert (fixed.text, fixed.event_id, fixed.edited, fixed.replaces) == (
        "Ships Tuesday", "sid-Ships Tuesday", True, "sid-Ships Monday")


async def test_a_correction_by_origin_id(wired: Wired) -> None:
    wired.feed(line("Ships Monday", message_id="c-1", origin="o-1"))
    wired.feed(correction("Ships Tuesday", "o-1"))
    assert messages(wired.events())[1].replaces == "sid-Ships Monday"


async def test_corrections_again_name_the_first_line_either_way(wired: Wired) -> None:
    # XEP-0308 now: every correction names the first line; older clients: the previous one.
    wired.feed(line("one", message_id="c-1"))
    wired.feed(correction("two", "c-1", message_id="c-2"))
    wired.feed(correction("three", "c-1", message_id="c-3"))
    wired.feed(correction("four", "c-3", message_id="c-4"))
    assert [m.replaces for m in messages(wired.events())] == [None, "sid-one", "sid-one",
                                                              "sid-one"]


async def test_a_correction_of_an_unknown_or_another_s_line_replaces_nothing(
        wired: Wired) -> None:
    wired.feed(line("Bob's", nick="Bob", message_id="b-1"))
    wired.feed(correction("not Bob's", "b-1"))  # Alice names Bob's line
    wired.feed(correction("never seen", "zzz"))
    _bobs, *fixes = messages(wired.events())
    assert [(m.edited, m.replaces) for m in fixes] == [(True, None), (True, None)]


async def test_a_client_naming_the_line_by_the_room_s_id(wired: Wired) -> None:
    wired.feed(line("Ships Monday"))
    wired.feed(correction("Ships Tuesday", "sid-Ships Monday"))
    assert messages(wired.events())[1].replaces == "sid-Ships Monday"


async def test_a_correction_in_a_room_without_stanza_ids(wired: Wired) -> None:
    wired.feed(line("one", message_id="c-1", room_ids=False))
    wired.feed(correction("two", "c-1", message_id="c-2", room_ids=False))
    assert messages(wired.events())[1].replaces == f"{ROOM}/Alice#c-1"


# -- retractions -------------------------------------------------------------------------

async def test_an_agent_s_retraction_by_the_room_s_id(wired: Wired) -> None:
    wired.feed(line("oops", message_id="c-1"))
    wired.events()
    before = wired.handled
    wired.feed(retract("sid-oops"))
    assert wired.events() == [AgentRetracted(ROOM, ALICE, "sid-oops")]
    assert wired.handled == before + 1


async def test_a_retraction_by_the_origin_id_and_the_older_form(wired: Wired) -> None:
    wired.feed(line("oops", message_id="c-1", origin="o-1"))
    wired.feed(line("again", message_id="c-2"))
    wired.events()
    wired.feed(retract("o-1"))  # a client without the room's ids
    wired.feed(fastened("c-2"))
    assert wired.events() == [AgentRetracted(ROOM, ALICE, "sid-oops"),
                              AgentRetracted(ROOM, ALICE, "sid-again")]


async def test_both_forms_in_one_stanza_give_one_retraction(wired: Wired) -> None:
    wired.feed(line("oops", message_id="c-1"))
    wired.events()
    wired.feed(stanza(f'<retract xmlns="{RETRACT_1}" id="sid-oops"/>'
                      '<apply-to xmlns="urn:xmpp:fasten:0" id="c-1">'
                      '<retract xmlns="urn:xmpp:message-retract:0"/></apply-to>'))
    assert wired.events() == [AgentRetracted(ROOM, ALICE, "sid-oops")]


async def test_a_retraction_with_a_fallback_text_is_no_line(wired: Wired) -> None:
    # What Conversations and Gajim send: clients that know no retractions show the text.
    wired.feed(line("oops"))
    wired.events()
    wired.feed(stanza(f'<retract xmlns="{RETRACT_1}" id="sid-oops"/>', extra=FALLBACK))
    assert wired.events() == [AgentRetracted(ROOM, ALICE, "sid-oops")]


async def test_a_retraction_with_a_chat_state_gives_both(wired: Wired) -> None:
    wired.feed(line("oops"))
    wired.events()
    wired.feed(stanza(f'<retract xmlns="{RETRACT_1}" id="sid-oops"/>',
                      extra='<active xmlns="http://jabber.org/protocol/chatstates"/>'))
    # In either order: slixmpp's handlers run in the order they were registered.
    assert set(wired.events()) == {AgentRetracted(ROOM, ALICE, "sid-oops"),
                                   AgentTyping(ROOM, ALICE, "Alice", False)}


async def test_retracting_a_corrected_line_by_either_id_takes_back_the_line(
        wired: Wired) -> None:
    wired.feed(line("one", message_id="c-1"))
    wired.feed(correction("two", "c-1", message_id="c-2"))
    wired.events()
    wired.feed(retract("sid-two"))  # the correction's id, as some clients keep it
    wired.feed(retract("sid-one"))
    assert wired.events() == [AgentRetracted(ROOM, ALICE, "sid-one")] * 2


async def test_a_retraction_of_an_unknown_line_passes_as_named(wired: Wired) -> None:
    # Before a restart, say: the hub knows the line, or ignores the id.
    wired.feed(retract("sid-old"))
    assert wired.events() == [AgentRetracted(ROOM, ALICE, "sid-old")]


async def test_a_retraction_in_a_room_without_stanza_ids(wired: Wired) -> None:
    wired.feed(line("oops", message_id="c-1", room_ids=False))
    wired.events()
    wired.feed(retract("c-1"))
    assert wired.events() == [AgentRetracted(ROOM, ALICE, f"{ROOM}/Alice#c-1")]


async def test_no_one_retracts_another_s_line(wired: Wired) -> None:
    wired.feed(line("Bob's", nick="Bob", message_id="b-1"))
    wired.events()
    wired.feed(retract("sid-Bob's"))
    wired.feed(fastened("b-1"))
    assert wired.events() == []


async def test_the_bot_s_own_retractions_are_not_reported(wired: Wired) -> None:
    # The visitor's draft preview taken back (drafts.py), coming back from the room.
    wired.room.note_delivered("draft-1", "sid-draft")
    wired.feed(retract("sid-draft", sender=f"{ROOM}/{BOT_NICK}"))
    assert wired.events() == []


async def test_a_retraction_from_someone_the_room_gave_no_address_for(wired: Wired) -> None:
    wired.feed(retract("sid-x", sender=f"{ROOM}/Mallory"))
    assert wired.events() == []


async def test_retractions_held_while_the_archive_is_read_come_after_it(wired: Wired) -> None:
    wired.room.catching_up = True
    wired.feed(retract("sid-oops"))
    assert wired.events() == []
    wired.backend._rooms._release_held(ROOM, wired.room)
    assert wired.events() == [AgentRetracted(ROOM, ALICE, "sid-oops")]


async def test_history_retractions_are_reported(wired: Wired) -> None:
    # From the join history (a room without an archive): slixmpp's handlers, always.
    delayed = ('<delay xmlns="urn:xmpp:delay" stamp="2024-01-01T10:00:00Z"/>'
               '<x xmlns="http://jabber.org/protocol/muc#user">'
               '<item jid="carol@example.com/phone"/></x>')
    wired.feed(retract("sid-old", sender=f"{ROOM}/Carol", extra=delayed))
    assert wired.events() == [AgentRetracted(ROOM, "carol@example.com", "sid-old")]


# -- moderation (XEP-0425) ---------------------------------------------------------------

async def test_a_moderation_names_the_moderator(wired: Wired) -> None:
    wired.feed(line("spam"))
    wired.events()
    wired.feed(moderation("sid-spam", f"{ROOM}/Bob"))
    wired.feed(old_moderation("sid-spam", f"{ROOM}/Bob"))
    assert wired.events() == [AgentRetracted(ROOM, BOB, "sid-spam")] * 2


async def test_a_moderator_the_room_does_not_tell_is_the_room(wired: Wired) -> None:
    wired.feed(moderation("sid-1", f"{ROOM}/Gone"))
    wired.feed(moderation("sid-2", None))
    wired.feed(moderation("sid-3", "carol@example.com/laptop"))
    assert wired.events() == [AgentRetracted(ROOM, ROOM, "sid-1"),
                              AgentRetracted(ROOM, ROOM, "sid-2"),
                              AgentRetracted(ROOM, "carol@example.com", "sid-3")]


async def test_a_moderation_from_an_occupant_is_a_forgery(wired: Wired) -> None:
    wired.feed(moderation("sid-1", f"{ROOM}/Bob", sender=f"{ROOM}/Alice"))
    assert wired.events() == []


# -- the archive -------------------------------------------------------------------------

def archived(xml: str, archive_id: str, real_jid: str | None = ALICE) -> ArchivedLine:
    message = ET.fromstring(xml)
    for stanza_id in message.findall("{urn:xmpp:sid:0}stanza-id"):
        message.remove(stanza_id)  # the archive's own id says it
    return ArchivedLine(archive_id, message, 1_700_000_000.0, real_jid)


async def test_corrections_and_retractions_from_the_archive(wired: Wired) -> None:
    receiver = wired.backend._receiver
    for item in (archived(line("Ships Monday", message_id="c-1"), "a-1"),
                 archived(correction("Ships Tuesday", "c-1"), "a-2"),
                 archived(retract("a-1"), "a-3"),
                 archived(fastened("c-1"), "a-4"),
                 archived(retract("a-9", sender=f"{ROOM}/{BOT_NICK}"), "a-5", "bot@example.com"),
                 archived(moderation("a-1", f"{ROOM}/Bob"), "a-6", None)):
        receiver.archived_line(ROOM, wired.room, item)
    events = wired.events()
    assert messages(events)[1].replaces == "a-1"
    assert [e for e in events if isinstance(e, AgentRetracted)] == [
        AgentRetracted(ROOM, ALICE, "a-1"), AgentRetracted(ROOM, ALICE, "a-1"),
        AgentRetracted(ROOM, BOB, "a-1")]
    assert wired.room.delivered == {}  # the bot's retraction is no line of its own


# -- the pure parts ----------------------------------------------------------------------

@pytest.mark.parametrize(("xml", "expected"), [
    (retract("s-1"), Retraction("s-1", None)),
    (fastened("o-1"), Retraction("o-1", None)),
    (moderation("s-1", "r/b"), Retraction("s-1", "r/b")),
    (moderation("s-1", None), Retraction("s-1", "")),
    (old_moderation("s-1", "r/b"), Retraction("s-1", "r/b")),
    (stanza(f'<retract xmlns="{RETRACT_1}"/>'), None),  # names nothing
    (stanza('<apply-to xmlns="urn:xmpp:fasten:0" id="x"><external name="y"/></apply-to>'),
     None),  # fastened, but no retraction
    (stanza(f'<retracted xmlns="{RETRACT_1}" id="s-1"/>'), None),  # an archive's tombstone
    (line("hello"), None),
])
def test_retraction(xml: str, expected: Retraction | None) -> None:
    assert retraction(ET.fromstring(xml)) == expected


@pytest.mark.parametrize(("by", "expected"), [
    (f"{ROOM}/Bob", BOB),
    (f"{ROOM}/Nobody", ROOM),
    (ROOM, ROOM),
    ("", ROOM),
    ("carol@example.com/phone", "carol@example.com"),
    ("carol@example.com", "carol@example.com"),
])
def test_moderator_address(by: str, expected: str) -> None:
    assert moderator_address(by, ROOM, {"Bob": BOB}) == expected


def test_corrections_are_remembered_within_a_bound() -> None:
    marks = ReadMarks()
    edits = Corrections({}, "bot@example.com", marks, lambda _e: None, memory=2)
    marks.note_line(ROOM, "sid-0", "c-0", ALICE)
    replace = ET.fromstring(correction("x", "c-0"))
    for n in range(1, 4):
        marks.note_line(ROOM, f"sid-{n}", f"c-{n}", ALICE)
        assert edits.replaces(ROOM, ALICE, replace, f"sid-{n}") == "sid-0"
    assert len(edits._corrected) == 2
    assert edits.replaces(ROOM, BOB, replace, "sid-9") is None  # not Bob's line
