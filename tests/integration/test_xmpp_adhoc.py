"""Agents' commands as ad-hoc commands (XEP-0050) on the real Prosody: an agent's slixmpp
client lists the bot's commands, fills in their forms and completes them as Gajim does;
each form has the effect its typed `!command` has, and answers with its reply.

One bridge and one set of agents serve the whole module (one event loop for it); each test
that needs a chat starts its own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from bridge.app import Bridge
from tests.conftest import XmppServer
from tests.integration.adhoc_client import AdhocClient, Step
from tests.integration.conftest import XmppMessenger, bridge_config, room_of
from tests.integration.helpers import Visitor
from tests.integration.xmpp_agent import XmppAgent

pytestmark = pytest.mark.asyncio(loop_scope="module")

MENU = [("end", "End a chat"), ("transfer", "Transfer a chat"), ("c", "Send a canned reply"),
        ("note", "Write a note (agents only)"),
        ("callback", "Ask for a phone number to call back"),
        ("claim", "Claim a waiting chat"), ("break", "Take a break"),
        ("back", "Back from a break"), ("stats", "Today's figures")]


@dataclass
class Desk:
    bridge: Bridge
    alice: XmppAgent
    bob: XmppAgent
    forms: AdhocClient  # Alice's
    stranger: AdhocClient  # Eve's: an account on the server, not an agent
    bot: str  # the bot's full JID

    async def run(self, node: str, values: dict[str, str] | None = None) -> Step:
        return await self.forms.run(self.bot, node, values)


@dataclass
class Chat:
    visitor: Visitor
    id: str
    room: str


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def desk(xmpp_server: XmppServer, tmp_path_factory: pytest.TempPathFactory
               ) -> AsyncIterator[Desk]:
    messenger = XmppMessenger(xmpp_server)
    db: Path = tmp_path_factory.mktemp("adhoc") / "livechat.sqlite3"
    bridge = Bridge(bridge_config(messenger, db))
    await bridge.start()
    agents = [await messenger.agent(who, who.title()) for who in ("alice", "bob", "eve")]
    try:
        alice, bob, eve = agents
        forms = AdhocClient(alice)
        yield Desk(bridge, alice, bob, forms, AdhocClient(eve),
                   await forms.bot_jid(messenger.bot))
    finally:
        for agent in agents:
            await agent.close()
        await bridge.stop()


@pytest_asyncio.fixture(loop_scope="module")
async def new_chat(desk: Desk) -> AsyncIterator[Callable[..., Awaitable[Chat]]]:
    """A visitor's chat; Alice joins its room unless `join` is False."""
    visitors: list[Visitor] = []

    async def start(name: str = "Anna", join: bool = True) -> Chat:
        visitor = await Visitor(desk.bridge.base_url).connect()
        visitors.append(visitor)
        started = await visitor.start(name=name, email=f"{name.lower()}@example.com")
        room = await room_of(desk.bridge, started["conversation"])
        if join:
            await desk.alice.join(room)
            await visitor.wait("agent", lambda f: f["event"] == "joined")
        return Chat(visitor, started["conversation"], room)

    yield start
    for visitor in visitors:  # ended, so Alice has room for the next test's chats
        if not visitor.of("ended"):
            await visitor.send({"type": "end"})
            await visitor.wait("ended")
        await visitor.close()


async def room_notice(desk: Desk, chat: Chat, start: str) -> str:
    return await desk.alice.until(lambda: next(
        (t for t in desk.alice.texts(chat.room, notice=True) if t.startswith(start)), None))


async def test_agents_see_the_commands_and_strangers_none(desk: Desk) -> None:
    assert await desk.forms.commands(desk.bot) == MENU
    assert await desk.stranger.commands(desk.bot) == []
    refused = await desk.stranger.run(desk.bot, "break")
    assert (refused.status, refused.error) == ("error", "forbidden")
    assert not desk.bridge.store.on_break("alice")


async def test_end(desk: Desk, new_chat: Callable[..., Awaitable[Chat]]) -> None:
    chat = await new_chat()
    form = await desk.forms.execute(desk.bot, "end")
    assert form.fields["conversation"].value == [chat.id]  # the newest chat she is in
    assert form.fields["conversation"].options[chat.id] == "Anna · Support · 0 min"
    done = await desk.forms.complete(desk.bot, form, "end", {"conversation": chat.id})
    kind, text = done.note
    assert (done.status, kind) == ("completed", "info") and text.startswith("Chat ended after")
    ended = await chat.visitor.wait("ended")
    assert ended["by"] == "agent"
    assert await room_notice(desk, chat, "Alice (form): !end") == f"Alice (form): !end\n{text}"


async def test_transfer(desk: Desk, new_chat: Callable[..., Awaitable[Chat]]) -> None:
    chat = await new_chat()
    async with asyncio.timeout(10):  # Bob's presence reaches the bridge after subscribing
        while "bob" not in (await desk.forms.execute(desk.bot, "transfer")).fields[
                "target"].options:
            await asyncio.sleep(0.1)
    form = await desk.forms.execute(desk.bot, "transfer")
    assert form.fields["target"].options == {"support": "Queue: Support", "sales": "Queue: Sales",
                                             "bob": "Agent: bob"}
    done = await desk.forms.complete(desk.bot, form, "transfer", {
        "conversation": chat.id, "target": "bob", "note": "billing question"})
    # Whatever `!transfer` does (hand over, or offer), its reply is the form's note.
    kind, text = done.note
    assert kind == "info" and text and not text.startswith("internal error")
    shown = await room_notice(desk, chat, "Alice (form): !transfer bob billing question")
    assert shown == f"Alice (form): !transfer bob billing question\n{text}"
    assert "billing question" in text


async def test_canned_reply(desk: Desk, new_chat: Callable[..., Awaitable[Chat]]) -> None:
    chat = await new_chat("Zoë")
    form = await desk.forms.execute(desk.bot, "c")
    assert form.fields["canned"].options == {
        "greeting": "greeting — Hello {visitor}, I'm {agent} from {queue}."}
    done = await desk.forms.complete(desk.bot, form, "c", {"conversation": chat.id,
                                                           "canned": "greeting"})
    assert done.note == ("info", "Done: !c greeting")
    line = await chat.visitor.wait("message", lambda f: f["from"] == "agent")
    assert line["text"] == "Hello Zoë, I'm Alice from Support."
    await room_notice(desk, chat, "Alice (form): !c greeting")
    # The same submission again: the session is over, a new form comes, nothing is sent.
    again = await desk.forms.complete(desk.bot, form, "c", {"conversation": chat.id,
                                                            "canned": "greeting"})
    assert again.status == "executing"
    await asyncio.sleep(0.3)
    assert len([f for f in chat.visitor.of("message") if f["from"] == "agent"]) == 1


async def test_note_stays_with_the_agents(desk: Desk,
                                          new_chat: Callable[..., Awaitable[Chat]]) -> None:
    chat = await new_chat()
    assert (await desk.forms.execute(desk.bot, "note")).fields["note"].kind == "text-multi"
    text = "VIP customer\ndon't rush them"
    done = await desk.run("note", {"conversation": chat.id, "note": text})
    assert done.note == ("info", f"📝 Note saved (agents only): {text}")
    await room_notice(desk, chat, f"Alice (form): !note {text}")
    notes = [e["detail"] for e in desk.bridge.store.events(chat.id) if e["kind"] == "note"]
    assert notes == [text]
    assert not any("VIP" in str(f) for f in chat.visitor.frames)


async def test_callback(desk: Desk, new_chat: Callable[..., Awaitable[Chat]]) -> None:
    chat = await new_chat()
    done = await desk.run("callback", {"conversation": chat.id})
    kind, text = done.note
    assert kind == "info" and text.startswith("Asked Anna for a phone number")
    asked = await chat.visitor.wait("callback")
    assert asked["name"] == "Alice"


async def test_claim_a_waiting_chat(desk: Desk,
                                    new_chat: Callable[..., Awaitable[Chat]]) -> None:
    chat = await new_chat("Bea", join=False)
    form = await desk.forms.execute(desk.bot, "claim")
    assert form.fields["waiting"].options[chat.id] == "Bea · Support · waiting 0 min"
    done = await desk.forms.complete(desk.bot, form, "claim", {"waiting": chat.id})
    assert done.note == ("info", "Invited you to the chat with Bea.")
    conversation = desk.bridge.store.conversation(chat.id)
    assert conversation is not None and conversation.agent_id == "alice"
    await desk.alice.until(lambda: chat.room in desk.alice.invites)


async def test_break_and_back(desk: Desk) -> None:
    taken = await desk.run("break")  # no fields: it runs as it is opened
    assert taken.status == "completed" and taken.note[1].startswith("You are on a break")
    assert desk.bridge.store.on_break("alice")
    back = await desk.run("back")
    assert back.note == ("info", "Welcome back: you take new chats again.")
    assert not desk.bridge.store.on_break("alice")


async def test_stats(desk: Desk) -> None:
    kind, text = (await desk.run("stats")).note
    assert kind == "info" and text.startswith("Today (UTC): ")


async def test_a_bad_choice_gets_an_error_and_changes_nothing(
        desk: Desk, new_chat: Callable[..., Awaitable[Chat]]) -> None:
    chat = await new_chat()
    done = await desk.run("note", {"conversation": "no-such-chat", "note": "lost"})
    assert done.note == ("error", "Chat: 'no-such-chat' is not one of the choices (it may "
                                  "have changed meanwhile; open the form again).")
    empty = await desk.run("note", {"conversation": chat.id, "note": ""})
    assert empty.note == ("error", "Note: this field is required.")
    assert desk.bridge.store.events(chat.id) == []


async def test_commands_work_after_a_reconnect(desk: Desk) -> None:
    """A new session (the server forgot the old one, as after its restart) may bind
    another resource: the commands are there at whichever the bot has."""
    backend = desk.bridge.backend
    sessions = backend.sessions_started  # type: ignore[attr-defined]
    client = backend._link.client  # type: ignore[attr-defined]
    client.plugin["xep_0198"].sm_id = None  # nothing to resume: a new session
    client.abort()  # the stream breaks
    async with asyncio.timeout(20):
        while backend.sessions_started == sessions:  # type: ignore[attr-defined]
            await asyncio.sleep(0.05)
    bot = str(client.boundjid)
    assert bot != desk.bot  # Prosody bound another resource
    roster = desk.forms.client.client_roster
    async with asyncio.timeout(15):  # polled: this client's roster wakes no test agent
        while not roster.presence(client.boundjid.bare).get(client.boundjid.resource):
            await asyncio.sleep(0.05)
    assert await desk.forms.commands(bot) == MENU
    assert (await desk.forms.run(bot, "stats")).note[1].startswith("Today (UTC): ")
