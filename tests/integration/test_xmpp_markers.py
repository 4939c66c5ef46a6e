"""Read states as displayed markers (XEP-0333) on a real Prosody, the XMPP backend driven
directly and a slixmpp client as the agent's: the agent's marker for a visitor line arrives
as an AgentRead with the id post_text returned; mark_read reaches the agent's client as the
bot's marker naming the agent's line by the room's stanza-id; the bot's lines are markable;
markers read back from the archive after a restart are no reads."""

from __future__ import annotations

import asyncio
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import pytest
from slixmpp import JID, Message
from slixmpp.xmlstream import StanzaBase
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from bridge.backends.base import AgentMessage, AgentRead
from bridge.backends.xmpp.archive import ArchivedLine
from bridge.backends.xmpp.stanzas import DISPLAYED, MARKABLE, STORE_HINT
from tests.conftest import XmppServer
from tests.integration import test_xmpp_files
from tests.integration.test_xmpp_files import Bot, BotFactory, chat, config_for
from tests.integration.xmpp_agent import XmppAgent

bots = test_xmpp_files.bots  # the fixture that starts backends, used here as well

BOT_NICK = "Vera (visitor)"
# Long enough for a marker that should not come to have come.
QUIET_S = 0.5


@dataclass(frozen=True)
class SeenMarker:
    room: str
    nick: str
    marked: str  # the id it names
    has_body: bool
    stored: bool  # carries the store hint


class Markers:
    """The displayed markers the agent's client receives (they have no body: slixmpp's group
    chat events pass them by)."""

    def __init__(self, agent: XmppAgent) -> None:
        self.seen: list[SeenMarker] = []
        agent.client.register_handler(Callback(
            "test markers", MatchXPath(f"{{jabber:client}}message/{DISPLAYED}"), self._on_marker))

    def _on_marker(self, stanza: StanzaBase) -> None:
        xml = stanza.xml
        marker = xml.find(DISPLAYED)
        assert marker is not None
        sender = stanza["from"]
        self.seen.append(SeenMarker(sender.bare, sender.resource, marker.get("id", ""),
                                    xml.find("{jabber:client}body") is not None,
                                    xml.find(STORE_HINT) is not None))

    def from_nick(self, room: str, nick: str) -> list[SeenMarker]:
        return [m for m in self.seen if m.room == room and m.nick == nick]

    async def wait(self, room: str, nick: str, count: int, timeout: float = 15.0
                   ) -> list[SeenMarker]:
        async with asyncio.timeout(timeout):
            while len(found := self.from_nick(room, nick)) < count:
                await asyncio.sleep(0.02)
        return found


def send_marker(agent: XmppAgent, room: str, marked: str) -> None:
    """A displayed marker as Conversations sends one in a group chat."""
    message = agent.client.make_message(mto=JID(room), mtype="groupchat")
    message.xml.append(ET.Element(DISPLAYED, {"id": marked}))
    message.xml.append(ET.Element(STORE_HINT))
    message.send()


async def agent_line(bot: Bot, agent: XmppAgent, room: str, text: str) -> AgentMessage:
    await agent.say(room, text)
    event = await bot.event(lambda e: isinstance(e, AgentMessage) and e.text == text)
    assert isinstance(event, AgentMessage)
    return event


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "slixmpp"])
async def test_an_agent_s_marker_arrives_with_the_id_post_text_returned(
        xmpp_server: XmppServer, xmpp_agent: XmppAgent, bots: BotFactory,
        fast_path: bool) -> None:
    bot = await bots(config_for(xmpp_server.server, xmpp_server.passwords["support@localhost"]))
    if not fast_path:  # what reaches the bot goes through slixmpp's handlers
        bot.backend._link.client.take = None
    room, _spec = await chat(bot, xmpp_agent)
    first = await bot.backend.post_text(room, "Hallo, ich habe eine Frage", key="v-1")
    second = await bot.backend.post_text(room, "Zur Rechnung", key="v-2")
    await xmpp_agent.until(lambda: (room, "Zur Rechnung") in xmpp_agent.archive_ids)
    # The agent's client names the line by the room's id, which is what post_text returned.
    assert xmpp_agent.archive_ids[(room, "Hallo, ich habe eine Frage")] == first

    send_marker(xmpp_agent, room, first)
    read = await bot.event(lambda e: isinstance(e, AgentRead))
    assert read == AgentRead(room, "alice@localhost", first)
    # A client without the room's ids names the line by the id the bot gave it.
    send_marker(xmpp_agent, room, "v-2")
    await bot.event(lambda e: isinstance(e, AgentRead) and e.event_id == second)
    assert [e for e in bot.events if isinstance(e, AgentRead)] == [
        AgentRead(room, "alice@localhost", first), AgentRead(room, "alice@localhost", second)]


async def test_a_marker_on_the_visitor_s_draft_preview_reads_the_line_before_it(
        xmpp_server: XmppServer, xmpp_agent: XmppAgent, bots: BotFactory) -> None:
    # While the visitor types, the newest line an agent's client shows is the preview,
    # which Conversations then marks displayed; the hub knows only the line before it.
    bot = await bots(config_for(xmpp_server.server, xmpp_server.passwords["support@localhost"]))
    room, _spec = await chat(bot, xmpp_agent)
    line_id = await bot.backend.post_text(room, "Noch eine Frage", key="d-1")
    await bot.backend.show_draft(room, "Wie lange dauert")
    await xmpp_agent.until(lambda: (room, "✍ Wie lange dauert") in xmpp_agent.archive_ids)

    send_marker(xmpp_agent, room, xmpp_agent.archive_ids[(room, "✍ Wie lange dauert")])

    read = await bot.event(lambda e: isinstance(e, AgentRead))
    assert read == AgentRead(room, "alice@localhost", line_id)


async def test_mark_read_shows_the_agent_s_client_the_bot_s_marker(
        xmpp_server: XmppServer, xmpp_agent: XmppAgent,
        bots: BotFactory) -> None:
    bot = await bots(config_for(xmpp_server.server, xmpp_server.passwords["support@localhost"]))
    markers = Markers(xmpp_agent)
    room, _spec = await chat(bot, xmpp_agent)
    earlier = await agent_line(bot, xmpp_agent, room, "Guten Tag!")
    answer = await agent_line(bot, xmpp_agent, room, "Die Rechnung kommt morgen.")
    await xmpp_agent.until(lambda: (room, answer.text) in xmpp_agent.archive_ids)
    # The agent's client knows its own line by the room's id, as the bot reported it.
    assert xmpp_agent.archive_ids[(room, answer.text)] == answer.event_id

    await bot.backend.mark_read(room, answer.event_id)

    [seen] = await markers.wait(room, BOT_NICK, 1)
    assert seen == SeenMarker(room, BOT_NICK, answer.event_id, has_body=False, stored=True)
    # Again, or back to an earlier line: the marker stays where it is.
    await bot.backend.mark_read(room, answer.event_id)
    await bot.backend.mark_read(room, earlier.event_id)
    await asyncio.sleep(QUIET_S)
    assert len(markers.from_nick(room, BOT_NICK)) == 1
    # The bot's own marker coming back from the room is no agent's read.
    assert not [e for e in bot.events if isinstance(e, AgentRead)]


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "slixmpp"])
async def test_the_bot_s_lines_ask_for_markers(
        xmpp_server: XmppServer, xmpp_agent: XmppAgent, bots: BotFactory,
        fast_path: bool) -> None:
    bot = await bots(config_for(xmpp_server.server, xmpp_server.passwords["support@localhost"]))
    assert bot.backend._fast is not None
    bot.backend._fast.enabled = fast_path  # off: the line goes through slixmpp's queue
    markable: dict[str, bool] = {}

    def on_line(message: Message) -> None:
        if message["from"].resource == BOT_NICK:
            markable[str(message["body"])] = message.xml.find(MARKABLE) is not None

    xmpp_agent.client.add_event_handler("groupchat_message", on_line)
    room, _spec = await chat(bot, xmpp_agent)
    await bot.backend.post_text(room, "Eine Frage", key="m-1")
    await bot.backend.post_notice(room, "Vera hat die Seite gewechselt", key="m-2")
    await xmpp_agent.until(lambda: len(markable) == 2)
    assert markable == {"Eine Frage": True, "ℹ️ Vera hat die Seite gewechselt": True}


async def test_archived_markers_are_not_read_again_after_a_restart(
        xmpp_server: XmppServer, xmpp_agent: XmppAgent,
        bots: BotFactory) -> None:
    config = config_for(xmpp_server.server, xmpp_server.passwords["support@localhost"])
    first = await bots(config)
    markers = Markers(xmpp_agent)
    room, spec = await chat(first, xmpp_agent)
    since = time.time()
    visitor_line = await first.backend.post_text(room, "Danke", key="r-1")
    answer = await agent_line(first, xmpp_agent, room, "Gern geschehen")
    await first.backend.mark_read(room, answer.event_id)
    send_marker(xmpp_agent, room, visitor_line)
    await first.event(lambda e: isinstance(e, AgentRead))
    await markers.wait(room, BOT_NICK, 1)
    await first.backend.stop()

    second = await bots(config, since=since)
    archived: list[ArchivedLine] = []
    receiver = second.backend._receiver
    read_archived = receiver.archived_line

    def spy(room: str, state: object, line: ArchivedLine) -> None:
        archived.append(line)
        read_archived(room, state, line)  # type: ignore[arg-type]

    receiver.archived_line = spy  # type: ignore[assignment,method-assign]
    await second.backend.attach_rooms({room: spec})
    await second.event(lambda e: isinstance(e, AgentMessage) and e.text == "Gern geschehen")
    await asyncio.sleep(QUIET_S)
    # Both markers were archived (the store hint), and neither is read as a new one.
    nicks = {line.message.get("from", "").partition("/")[2] for line in archived
             if line.message.find(DISPLAYED) is not None}
    assert nicks == {BOT_NICK, "Alice"}
    assert not [e for e in second.events if isinstance(e, AgentRead)]
    # Nor is the bot's own marker taken for a line of its own; the visitor's line is one.
    assert second.backend._rooms.rooms[room].delivered == {"r-1": visitor_line}
    assert await second.backend.post_text(room, "Danke", key="r-1") == visitor_line
