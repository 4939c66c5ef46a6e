"""Agents' corrections (XEP-0308) and retractions (XEP-0424) on a real Prosody, the XMPP
backend driven directly and a slixmpp client as the agent's: a correction arrives as an
AgentMessage naming the line it corrects by the event id the backend reported for it; a
retraction, by the room's id or (older clients) by the message's own id in a fastening,
as an AgentRetracted with that event id; the bot's own retraction of a draft preview as
nothing; both again from the archive after a restart. (Prosody 0.12 has no moderation,
XEP-0425: tests/unit/test_xmpp_edits.py feeds it raw.)"""

from __future__ import annotations

import asyncio
import time
import xml.etree.ElementTree as ET

import pytest
from slixmpp import JID

from bridge.backends.base import AgentMessage, AgentRetracted, InboundEvent
from bridge.backends.xmpp.corrections import APPLY_TO, RETRACT
from bridge.backends.xmpp.stanzas import STORE_HINT
from bridge.core.models import RoomRef
from tests.conftest import XmppServer
from tests.integration import test_xmpp_files
from tests.integration.test_xmpp_files import Bot, BotFactory, chat, config_for
from tests.integration.xmpp_agent import XmppAgent

bots = test_xmpp_files.bots  # the fixture that starts backends, used here as well

# Long enough for an event that should not come to have come.
QUIET_S = 0.5
FALLBACK_TEXT = "/me retracted a previous message, but it's unsupported by your client."


def retract(agent: XmppAgent, room: str, line_id: str, *, fallback: bool = False) -> None:
    """A retraction (XEP-0424) as Conversations sends one in a group chat: the line named by
    the room's id, archived, with a fallback text for clients that know none."""
    message = agent.client.make_message(mto=JID(room), mtype="groupchat",
                                        mbody=FALLBACK_TEXT if fallback else None)
    message.xml.append(ET.Element(RETRACT, {"id": line_id}))
    if fallback:
        message.xml.append(ET.Element("{urn:xmpp:fallback:0}fallback",
                                      {"for": "urn:xmpp:message-retract:1"}))
    message.xml.append(ET.Element(STORE_HINT))
    message.send()


def retract_fastened(agent: XmppAgent, room: str, message_id: str) -> None:
    """The older form (XEP-0424 0.2 on XEP-0422): the line named by its sender's id."""
    message = agent.client.make_message(mto=JID(room), mtype="groupchat")
    apply_to = ET.SubElement(message.xml, APPLY_TO, {"id": message_id})
    ET.SubElement(apply_to, "{urn:xmpp:message-retract:0}retract")
    message.xml.append(ET.Element(STORE_HINT))
    message.send()


async def agent_line(bot: Bot, agent: XmppAgent, room: str, text: str
                     ) -> tuple[str, AgentMessage]:
    """The agent's line: the id its client gave it, and the event the bot reported."""
    message_id = await agent.say(room, text)
    event = await bot.event(lambda e: isinstance(e, AgentMessage) and e.text == text)
    assert isinstance(event, AgentMessage)
    return message_id, event


async def message(bot: Bot, text: str) -> AgentMessage:
    event = await bot.event(lambda e: isinstance(e, AgentMessage) and e.text == text)
    assert isinstance(event, AgentMessage)
    return event


def retractions(events: list[InboundEvent]) -> list[AgentRetracted]:
    return [e for e in events if isinstance(e, AgentRetracted)]


async def seen_retracted(agent: XmppAgent, count: int, timeout: float = 15.0) -> None:
    """The agent's client has received this many retractions (its record of them wakes no
    waiter: polled)."""
    async with asyncio.timeout(timeout):
        while len(agent.retracted) < count:
            await asyncio.sleep(0.02)


async def show_and_clear_draft(bot: Bot, agent: XmppAgent, room: RoomRef, text: str) -> str:
    """The visitor's draft previewed, then the box cleared: the preview retracted once the
    room gave it an id (the bot retracts by it). The preview's id."""
    await bot.backend.show_draft(room, text)
    state = bot.backend._rooms.rooms[room]
    async with asyncio.timeout(15):
        while (preview := agent.archive_ids.get((room, f"✍ {text}"))) is None \
                or preview not in state.delivered.values():
            await asyncio.sleep(0.02)
    await bot.backend.show_draft(room, "")
    return preview


async def started(xmpp_server: XmppServer, bots: BotFactory, fast_path: bool) -> Bot:
    bot = await bots(config_for(xmpp_server.server, xmpp_server.passwords["support@localhost"]))
    if not fast_path:  # what reaches the bot goes through slixmpp's handlers
        bot.backend._link.client.take = None
    return bot


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "slixmpp"])
async def test_a_correction_names_the_line_it_corrects(
        xmpp_server: XmppServer, xmpp_agent: XmppAgent, bots: BotFactory,
        fast_path: bool) -> None:
    bot = await started(xmpp_server, bots, fast_path)
    room, _spec = await chat(bot, xmpp_agent)
    message_id, first = await agent_line(bot, xmpp_agent, room, "Ihre Bestellung kommt Montag")
    assert (first.edited, first.replaces) == (False, None)

    await xmpp_agent.correct(room, message_id, "Ihre Bestellung kommt Dienstag")

    fixed = await message(bot, "Ihre Bestellung kommt Dienstag")
    assert (fixed.sender, fixed.edited, fixed.replaces) == (
        "alice@localhost", True, first.event_id)
    assert fixed.event_id != first.event_id  # the room's id of the correction itself
    # Corrected again, naming the first line (as XEP-0308 asks): still that line.
    await xmpp_agent.correct(room, message_id, "Ihre Bestellung kommt Mittwoch")
    assert (await message(bot, "Ihre Bestellung kommt Mittwoch")).replaces == first.event_id


async def test_a_correction_of_an_unknown_line_replaces_nothing(
        xmpp_server: XmppServer, xmpp_agent: XmppAgent, bots: BotFactory) -> None:
    bot = await started(xmpp_server, bots, fast_path=True)
    room, _spec = await chat(bot, xmpp_agent)
    await xmpp_agent.correct(room, "never-sent-1", "Tippfehler korrigiert")
    fixed = await message(bot, "Tippfehler korrigiert")
    assert (fixed.edited, fixed.replaces) == (True, None)


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "slixmpp"])
async def test_a_retraction_takes_back_the_line_the_backend_reported(
        xmpp_server: XmppServer, xmpp_agent: XmppAgent, bots: BotFactory,
        fast_path: bool) -> None:
    bot = await started(xmpp_server, bots, fast_path)
    room, _spec = await chat(bot, xmpp_agent)
    _id, wrong = await agent_line(bot, xmpp_agent, room, "Falscher Kunde, sorry")
    _id, also = await agent_line(bot, xmpp_agent, room, "Das auch nicht")
    await xmpp_agent.until(lambda: (room, also.text) in xmpp_agent.archive_ids)
    # The agent's client knows its lines by the room's ids, as the bot reported them.
    assert xmpp_agent.archive_ids[(room, wrong.text)] == wrong.event_id

    retract(xmpp_agent, room, wrong.event_id)
    retract(xmpp_agent, room, also.event_id, fallback=True)

    await bot.event(lambda e: isinstance(e, AgentRetracted) and e.event_id == also.event_id)
    assert retractions(bot.events) == [
        AgentRetracted(room, "alice@localhost", wrong.event_id),
        AgentRetracted(room, "alice@localhost", also.event_id)]
    # The fallback text is no line of the agent's.
    assert not [e for e in bot.events if isinstance(e, AgentMessage) and "retracted" in e.text]


async def test_the_older_retraction_names_the_line_by_its_own_id(
        xmpp_server: XmppServer, xmpp_agent: XmppAgent, bots: BotFactory) -> None:
    bot = await started(xmpp_server, bots, fast_path=True)
    room, _spec = await chat(bot, xmpp_agent)
    message_id, line = await agent_line(bot, xmpp_agent, room, "Bitte ignorieren")

    retract_fastened(xmpp_agent, room, message_id)

    retracted = await bot.event(lambda e: isinstance(e, AgentRetracted))
    assert retracted == AgentRetracted(room, "alice@localhost", line.event_id)


async def test_a_corrected_line_retracted_is_the_line(
        xmpp_server: XmppServer, xmpp_agent: XmppAgent, bots: BotFactory) -> None:
    bot = await started(xmpp_server, bots, fast_path=True)
    room, _spec = await chat(bot, xmpp_agent)
    message_id, line = await agent_line(bot, xmpp_agent, room, "Erste Fassung")
    await xmpp_agent.correct(room, message_id, "Zweite Fassung")
    fixed = await message(bot, "Zweite Fassung")

    retract(xmpp_agent, room, fixed.event_id)  # by the id of the correction the client shows

    retracted = await bot.event(lambda e: isinstance(e, AgentRetracted))
    assert retracted == AgentRetracted(room, "alice@localhost", line.event_id)


async def test_the_bot_s_own_retraction_of_a_draft_preview_is_not_reported(
        xmpp_server: XmppServer, xmpp_agent: XmppAgent, bots: BotFactory) -> None:
    bot = await started(xmpp_server, bots, fast_path=True)
    room, _spec = await chat(bot, xmpp_agent)
    preview = await show_and_clear_draft(bot, xmpp_agent, room, "Wie lange dauert")

    await seen_retracted(xmpp_agent, 1)
    assert xmpp_agent.retracted == [(room, preview)]
    await agent_line(bot, xmpp_agent, room, "Noch da?")  # what came after it has come
    await asyncio.sleep(QUIET_S)
    assert retractions(bot.events) == []


async def test_corrections_and_retractions_come_again_from_the_archive(
        xmpp_server: XmppServer, xmpp_agent: XmppAgent, bots: BotFactory) -> None:
    config = config_for(xmpp_server.server, xmpp_server.passwords["support@localhost"])
    first = await bots(config)
    room, spec = await chat(first, xmpp_agent)
    since = time.time()
    message_id, line = await agent_line(first, xmpp_agent, room, "Lieferung am Montag")
    await xmpp_agent.correct(room, message_id, "Lieferung am Dienstag")
    fixed = await message(first, "Lieferung am Dienstag")
    _id, other = await agent_line(first, xmpp_agent, room, "Falsches Fenster")
    retract(xmpp_agent, room, other.event_id)
    await first.event(lambda e: isinstance(e, AgentRetracted))
    await show_and_clear_draft(first, xmpp_agent, room, "Hallo")
    await seen_retracted(xmpp_agent, 2)
    await first.backend.stop()

    # A restart: the archive's lines from `since` on come again, with the same ids.
    second = await bots(config, since=since)
    await second.backend.attach_rooms({room: spec})
    again = await message(second, "Lieferung am Dienstag")
    assert (again.event_id, again.edited, again.replaces) == (
        fixed.event_id, True, line.event_id)
    await second.event(lambda e: isinstance(e, AgentRetracted))
    await asyncio.sleep(QUIET_S)
    # The agent's retraction once; the bot's own of its draft preview not at all.
    assert retractions(second.events) == [
        AgentRetracted(room, "alice@localhost", other.event_id)]
