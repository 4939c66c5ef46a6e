"""Ad-hoc commands (XEP-0050) in the XMPP backend without a server: raw stanzas in as a
client sends them, the stanzas the bot answers with out; a recording desk stands for the
hub ring's side. Plus the pure parts: rendering a form, reading a submitted one."""

from __future__ import annotations

import asyncio
import dataclasses
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

import pytest

from bridge.backends.xmpp import XmppBackend
from bridge.backends.xmpp.adhoc import (
    COMMANDS,
    MAX_SESSIONS,
    BoundedSessions,
    data_form,
    submitted_values,
)
from bridge.backends.xmpp.connection import build_client
from bridge.backends.xmpp.fastpath import BotClient
from bridge.config import XmppConfig
from bridge.core.forms import Choice, Field, FieldKind, Form, MenuEntry, Outcome

CONFIG = XmppConfig(jid="bot@example.com", password="x", muc_service="muc.example.com")
ALICE = "alice@example.com"
EVE = "eve@example.com"
BOT = "bot@example.com/r1"
X = "{jabber:x:data}"
C = f"{{{COMMANDS}}}"
MENU = (MenuEntry("note", "Write a note"), MenuEntry("stats", "Today's figures"),
        MenuEntry("claim", "Claim a waiting chat"))
NOTE_FORM = Form("note", "Write a note", "An internal note.", (
    Field("conversation", "Chat", FieldKind.CHOICE, default="c2", choices=(
        Choice("c2", "Ben · Support · 1 min"), Choice("c1", "Anna · Support · 12 min"))),
    Field("note", "Note", FieldKind.TEXT),
    Field("pin", "Pin it", FieldKind.FLAG, required=False)))


@dataclasses.dataclass
class RecordingDesk:
    """Answers as the hub ring's desk would; keeps what it was asked to run."""

    submitted: list[tuple[str, str, dict[str, str], str]] = dataclasses.field(
        default_factory=list)
    outcome: Outcome = dataclasses.field(
        default_factory=lambda: Outcome("📝 Note saved (agents only): hi"))

    def menu(self, address: str) -> Sequence[MenuEntry] | None:
        return MENU if address == ALICE else None

    def form(self, address: str, command: str) -> Form | Outcome:
        if command == "claim":
            return Outcome("Nobody is waiting in your queues.")
        return NOTE_FORM if command == "note" else Form(command, "Today's figures", "")

    async def submit(self, address: str, command: str, values: Mapping[str, str], key: str
                     ) -> Outcome:
        self.submitted.append((address, command, dict(values), key))
        return self.outcome


@dataclasses.dataclass
class Wired:
    client: BotClient
    desk: RecordingDesk
    sent: list[Any]
    ids: Iterator[int] = dataclasses.field(default_factory=lambda: iter(range(1, 10**6)))

    async def ask(self, payload: str, sender: str = ALICE, kind: str = "set",
                  to: str = BOT) -> ET.Element:
        """An iq from `sender`'s phone, and the bot's answer to it."""
        iq_id = f"q{next(self.ids)}"
        self.client._spawn_event(ET.fromstring(
            f'<iq xmlns="jabber:client" type="{kind}" id="{iq_id}" from="{sender}/phone" '
            f'to="{to}">{payload}</iq>'))
        async with asyncio.timeout(2):
            while True:
                for stanza in self.sent:
                    if stanza.xml.get("id") == iq_id:
                        return stanza.xml
                await asyncio.sleep(0.001)

    async def execute(self, node: str, sender: str = ALICE, **extra: str) -> ET.Element:
        attributes = "".join(f' {k}="{v}"' for k, v in extra.items())
        return await self.ask(f'<command xmlns="{COMMANDS}" node="{node}"{attributes}/>',
                              sender)

    async def complete(self, node: str, session: str, fields: dict[str, list[str]],
                       sender: str = ALICE, action: str = "complete") -> ET.Element:
        values = "".join(f'<field var="{var}">' + "".join(f"<value>{v}</value>" for v in vs)
                         + "</field>" for var, vs in fields.items())
        return await self.ask(
            f'<command xmlns="{COMMANDS}" node="{node}" sessionid="{session}" '
            f'action="{action}"><x xmlns="jabber:x:data" type="submit">{values}</x></command>',
            sender)


@pytest.fixture
async def wired() -> AsyncIterator[Wired]:
    """A backend on a client that never connects, serving the recording desk (made in the
    test's loop: slixmpp schedules its handlers on the loop the client was made in)."""
    backend = XmppBackend(CONFIG, (ALICE,))
    client = build_client(CONFIG)
    backend._wire(client)
    desk = RecordingDesk()
    backend.serve_forms(desk)
    wired = Wired(client, desk, [])
    client.send = wired.sent.append  # type: ignore[method-assign,assignment]
    yield wired


def error_condition(answer: ET.Element) -> str:
    error = answer.find("{jabber:client}error")
    assert answer.get("type") == "error" and error is not None, ET.tostring(answer)
    return next(child.tag.split("}")[1] for child in error
                if child.tag.startswith("{urn:ietf:params:xml:ns:xmpp-stanzas}")
                and not child.tag.endswith("}text"))


def notes(answer: ET.Element) -> list[tuple[str, str]]:
    return [(n.get("type", ""), n.text or "") for n in answer.iter(f"{C}note")]


# -- discovery -----------------------------------------------------------------------------

async def test_an_agent_discovers_the_commands_at_whatever_resource_the_bot_has(
        wired: Wired) -> None:
    for bot in (BOT, "bot@example.com/after-a-reconnect"):
        answer = await wired.ask(f'<query xmlns="http://jabber.org/protocol/disco#items" '
                                 f'node="{COMMANDS}"/>', kind="get", to=bot)
        items = [(i.get("jid"), i.get("node"), i.get("name"))
                 for i in answer.iter("{http://jabber.org/protocol/disco#items}item")]
        assert items == [(bot, "note", "Write a note"), (bot, "stats", "Today's figures"),
                         (bot, "claim", "Claim a waiting chat")]


async def test_anyone_else_sees_no_commands(wired: Wired) -> None:
    answer = await wired.ask(f'<query xmlns="http://jabber.org/protocol/disco#items" '
                             f'node="{COMMANDS}"/>', sender=EVE, kind="get")
    assert answer.get("type") == "result"
    assert list(answer.iter("{http://jabber.org/protocol/disco#items}item")) == []
    info = await wired.ask('<query xmlns="http://jabber.org/protocol/disco#info" '
                           'node="note"/>', sender=EVE, kind="get")
    assert error_condition(info) == "item-not-found"


async def test_the_nodes_say_what_they_are_and_the_rest_of_disco_is_untouched(
        wired: Wired) -> None:
    info = await wired.ask('<query xmlns="http://jabber.org/protocol/disco#info" '
                           'node="note"/>', kind="get")
    identity = info.find(".//{http://jabber.org/protocol/disco#info}identity")
    assert identity is not None and identity.attrib == {
        "category": "automation", "type": "command-node", "name": "Write a note"}
    features = {f.get("var") for f in info.iter("{http://jabber.org/protocol/disco#info}feature")}
    assert features == {COMMANDS, "jabber:x:data"}
    root = await wired.ask('<query xmlns="http://jabber.org/protocol/disco#info"/>', kind="get")
    assert root.get("type") == "result"
    assert root.find(".//{http://jabber.org/protocol/disco#info}identity") is not None


# -- executing -----------------------------------------------------------------------------

async def test_a_form_is_filled_in_and_its_values_run_once_through_the_desk(
        wired: Wired) -> None:
    first = await wired.execute("note")
    command = first.find(f"{C}command")
    assert command is not None and command.get("status") == "executing"
    actions = command.find(f"{C}actions")
    assert actions is not None and [a.tag for a in actions] == [f"{C}complete"]
    form = command.find(f"{X}x")
    assert form is not None and form.get("type") == "form"
    session = command.get("sessionid", "")

    answer = await wired.complete("note", session, {
        "conversation": ["c1"], "note": ["VIP customer", "don't rush them"], "pin": ["1"]})
    done = answer.find(f"{C}command")
    assert done is not None and done.get("status") == "completed"
    assert notes(answer) == [("info", "📝 Note saved (agents only): hi")]
    assert wired.desk.submitted == [(ALICE, "note", {
        "conversation": "c1", "note": "VIP customer\ndon't rush them", "pin": "1"},
        f"adhoc-{session}")]
    # The session is over: the same submit again starts afresh (a new form), runs nothing.
    again = await wired.complete("note", session, {"conversation": ["c1"], "note": ["x"]})
    assert again.find(f"{C}command/{X}x") is not None
    assert len(wired.desk.submitted) == 1


async def test_a_refused_command_comes_back_as_an_error_note(wired: Wired) -> None:
    wired.desk.outcome = Outcome("Chat: 'c9' is not one of the choices.", failed=True)
    first = await wired.execute("note")
    session = first.find(f"{C}command").get("sessionid", "")  # type: ignore[union-attr]
    answer = await wired.complete("note", session, {"conversation": ["c9"], "note": ["x"]},
                                  action="execute")  # some clients "execute" the last page
    assert notes(answer) == [("error", "Chat: 'c9' is not one of the choices.")]
    assert answer.find(f"{C}command").get("status") == "completed"  # type: ignore[union-attr]


async def test_a_form_without_fields_runs_when_opened(wired: Wired) -> None:
    answer = await wired.execute("stats")
    assert answer.find(f"{C}command").get("status") == "completed"  # type: ignore[union-attr]
    assert notes(answer) == [("info", "📝 Note saved (agents only): hi")]
    [(address, command, values, key)] = wired.desk.submitted
    assert (address, command, values) == (ALICE, "stats", {}) and key.startswith("adhoc-")


async def test_nothing_to_fill_in_completes_with_the_desk_s_word(wired: Wired) -> None:
    answer = await wired.execute("claim")
    assert notes(answer) == [("info", "Nobody is waiting in your queues.")]
    assert wired.desk.submitted == []


async def test_a_cancelled_form_runs_nothing(wired: Wired) -> None:
    first = await wired.execute("note")
    session = first.find(f"{C}command").get("sessionid", "")  # type: ignore[union-attr]
    answer = await wired.ask(f'<command xmlns="{COMMANDS}" node="note" sessionid="{session}" '
                             'action="cancel"/>')
    assert answer.find(f"{C}command").get("status") == "canceled"  # type: ignore[union-attr]
    assert wired.desk.submitted == []


async def test_strangers_and_unknown_commands_are_refused(wired: Wired) -> None:
    assert error_condition(await wired.execute("stats", sender=EVE)) == "forbidden"
    assert error_condition(await wired.execute("ban")) == "item-not-found"
    assert wired.desk.submitted == []


async def test_without_a_desk_there_are_no_commands() -> None:
    backend = XmppBackend(CONFIG, (ALICE,))
    client = build_client(CONFIG)
    backend._wire(client)
    wired = Wired(client, RecordingDesk(), [])
    client.send = wired.sent.append  # type: ignore[method-assign,assignment]
    assert error_condition(await wired.execute("stats")) == "item-not-found"


# -- the pure parts ------------------------------------------------------------------------

def test_a_form_renders_as_a_data_form() -> None:
    xml = data_form(NOTE_FORM).xml
    assert (xml.get("type"), xml.findtext(f"{X}title"), xml.findtext(f"{X}instructions")) == (
        "form", "Write a note", "An internal note.")
    chat, note, pin = xml.findall(f"{X}field")
    assert (chat.get("var"), chat.get("type"), chat.get("label")) == (
        "conversation", "list-single", "Chat")
    assert chat.findtext(f"{X}value") == "c2" and chat.find(f"{X}required") is not None
    assert [(o.get("label"), o.findtext(f"{X}value")) for o in chat.findall(f"{X}option")] == [
        ("Ben · Support · 1 min", "c2"), ("Anna · Support · 12 min", "c1")]
    assert (note.get("type"), note.find(f"{X}value")) == ("text-multi", None)
    assert (pin.get("type"), pin.find(f"{X}required")) == ("boolean", None)


def test_submitted_values_are_read_whatever_the_client_left_out() -> None:
    form = data_form(NOTE_FORM)
    form["type"] = "submit"
    assert submitted_values(form) == {"conversation": "c2", "note": "", "pin": ""}
    assert submitted_values([]) == {}
    cancelled = data_form(NOTE_FORM)
    cancelled["type"] = "cancel"
    assert submitted_values([cancelled]) == {}


def test_abandoned_sessions_are_forgotten_oldest_first() -> None:
    sessions = BoundedSessions()
    for n in range(MAX_SESSIONS + 5):
        sessions[f"s{n}"] = {"id": f"s{n}"}
    assert len(sessions) == MAX_SESSIONS
    assert "s4" not in sessions and "s5" in sessions and f"s{MAX_SESSIONS + 4}" in sessions
