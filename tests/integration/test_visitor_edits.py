"""The visitor edits or deletes their own last line, against the bridge on a real Synapse and
a real Prosody, the agent on a client of their own: the room gets a real edit (an `m.replace`
of the bot's event; an XEP-0308 correction naming the bot's line by its id) and a real
deletion (a redaction; an XEP-0424 retraction naming it by the room's id), every tab of the
visitor the same `edit` and `delete` frames; a change that comes too late, to a line that is
not the last, or to another chat's line gets an error and changes nothing anywhere."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from nio import RedactionEvent, RoomMessageText

from bridge.app import Bridge
from bridge.core.models import RoomRef, Sender
from tests.integration.conftest import TestAgent, chat_with_agent
from tests.integration.helpers import Visitor
from tests.integration.xmpp_agent import XmppAgent

# Long enough for a change that should not come to have come.
QUIET_S = 0.5


class Watch:
    """What the agent's own client saw happen to lines in one room: edits (the line's id as
    that network names it, the new text) and deletions (the line's id)."""

    def __init__(self, agent: TestAgent, room: RoomRef) -> None:
        self.agent = agent
        self.room = room
        self.edits: list[tuple[str, str, str]] = []  # room, line, new text
        self.deletions: list[tuple[str, str]] = []  # room, line
        if not isinstance(agent, XmppAgent):  # Matrix: nio hands each synced event here
            agent.client.add_event_callback(self._on_matrix, (RoomMessageText, RedactionEvent))

    def _on_matrix(self, room: Any, event: Any) -> None:
        if isinstance(event, RedactionEvent):
            self.deletions.append((room.room_id, event.redacts))
            return
        relates = event.source.get("content", {}).get("m.relates_to", {})
        new = event.source.get("content", {}).get("m.new_content", {})
        if relates.get("rel_type") == "m.replace":
            self.edits.append((room.room_id, relates.get("event_id", ""), new.get("body", "")))

    def seen_edits(self) -> list[tuple[str, str]]:
        edits = self.agent.corrections if isinstance(self.agent, XmppAgent) else self.edits
        return [(line, text) for room, line, text in edits if room == self.room]

    def seen_deletions(self) -> list[str]:
        gone = self.agent.retracted if isinstance(self.agent, XmppAgent) else self.deletions
        return [line for room, line in gone if room == self.room]

    async def until(self, check: Any, timeout: float = 15.0) -> None:
        async with asyncio.timeout(timeout):
            while not check():
                await asyncio.sleep(0.02)

    async def nothing_more(self, edits: int, deletions: int) -> None:
        await asyncio.sleep(QUIET_S)
        assert (len(self.seen_edits()), len(self.seen_deletions())) == (edits, deletions), (
            self.seen_edits(), self.seen_deletions())


async def line_ids(bridge: Bridge, room: RoomRef, text: str, agent: TestAgent
                   ) -> tuple[str, str]:
    """How the agent's client names the bot's line `text`: for an edit (Matrix: the event
    id; XMPP: the id the bot gave the message) and for a deletion (Matrix: the event id;
    XMPP: the room's id), once the bridge knows it (an XMPP agent may see the line before
    the room reflects it to the bot)."""
    conversation = bridge.store.conversation_by_room(room)
    assert conversation is not None
    async with asyncio.timeout(15):
        while True:
            [item] = [i for i in bridge.store.items_after(conversation.id, 0)
                      if i.sender is Sender.VISITOR and i.text == text]
            if item.event_id is not None:
                break
            await asyncio.sleep(0.02)
    assert item.txn_id is not None
    if isinstance(agent, XmppAgent):
        return item.txn_id, item.event_id
    return item.event_id, item.event_id


async def line_in_room(visitor: Visitor, agent: TestAgent, room: RoomRef, text: str) -> int:
    """The visitor says `text`; its seq, once the agent's client has the line."""
    ack = await visitor.say(text)
    await agent.wait_text(room, text)
    return int(ack["seq"])


async def refused(visitor: Visitor, frame: dict[str, Any], code: str) -> None:
    start = len(visitor.frames)
    await visitor.send(frame)
    error = await visitor.wait("error", start=start)
    assert error["code"] == code, error


async def test_the_room_gets_a_real_edit_and_deletion(make_bridge, visitors,
                                                      agent: TestAgent) -> None:
    bridge, visitor, started, room = await chat_with_agent(make_bridge, visitors, agent)
    watch = Watch(agent, room)
    async with aiohttp.ClientSession() as http, http.get(f"{bridge.base_url}/v1/config") as got:
        assert (await got.json())["edit_seconds"] == 120  # the widget's window
    other_tab = await visitors(bridge.base_url)
    await other_tab.send({"type": "resume", "token": started["token"]})
    await other_tab.wait("resumed")
    seq = await line_in_room(visitor, agent, room, "Where is my ordr?")
    edit_id, delete_id = await line_ids(bridge, room, "Where is my ordr?", agent)

    await visitor.send({"type": "edit", "seq": seq, "text": "Where is my order?"})
    for tab in (visitor, other_tab):
        edit = await tab.wait("edit")
        assert (edit["seq"], edit["text"]) == (seq, "Where is my order?")
    await watch.until(lambda: watch.seen_edits())
    assert watch.seen_edits() == [(edit_id, "Where is my order?")]

    await visitor.send({"type": "edit", "seq": seq, "text": "Where is my order?"})  # again
    await visitor.wait("edit", lambda f: len(visitor.of("edit")) == 2)
    await visitor.send({"type": "delete", "seq": seq})
    for tab in (visitor, other_tab):
        assert await tab.wait("delete") == {"type": "delete", "seq": seq}
    await watch.until(lambda: watch.seen_deletions())
    assert watch.seen_deletions() == [delete_id]
    await visitor.send({"type": "delete", "seq": seq})  # again: answered, nothing sent
    await visitor.wait("delete", lambda f: len(visitor.of("delete")) == 2)
    await watch.nothing_more(edits=1, deletions=1)
    assert len(other_tab.of("edit")) == len(other_tab.of("delete")) == 1

    conversation = bridge.store.conversation_by_room(room)
    assert conversation is not None
    changes = bridge.store.item_changes(conversation.id)
    assert [(c.by, c.kind, c.previous) for c in changes] == [
        ("visitor", "edit", "Where is my ordr?"), ("visitor", "delete", "Where is my order?")]
    replay = await visitors(bridge.base_url)
    await replay.send({"type": "resume", "token": started["token"]})
    line = await replay.wait("message", lambda f: f["seq"] == seq)
    assert (line["deleted"], line["text"]) == (True, "")


async def test_late_earlier_and_foreign_lines_are_refused(make_bridge, visitors,
                                                          agent: TestAgent) -> None:
    bridge, visitor, _started, room = await chat_with_agent(make_bridge, visitors, agent)
    watch = Watch(agent, room)
    other = await visitors(bridge.base_url)  # another visitor's chat, on the same bridge
    await other.start(name="Bea", email="bea@example.com")
    for n in range(3):
        await other.say(f"Bea's line {n}")
    foreign = int((await other.say("Bea's last line"))["seq"])  # beyond Anna's chat
    first = await line_in_room(visitor, agent, room, "first line")
    last = await line_in_room(visitor, agent, room, "last line")
    assert foreign not in (first, last)

    await refused(visitor, {"type": "edit", "seq": first, "text": "changed"}, "not_editable")
    await refused(visitor, {"type": "delete", "seq": first}, "not_editable")
    await refused(visitor, {"type": "delete", "seq": foreign}, "not_editable")
    await refused(visitor, {"type": "edit", "seq": last, "text": " "}, "empty")
    conversation = bridge.store.conversation_by_room(room)
    assert conversation is not None
    # The line was sent long ago, as far as the bridge's clock can tell.
    bridge.store.db.execute("UPDATE items SET ts = ts - 3600 WHERE conversation_id = ?",
                            (conversation.id,))
    await refused(visitor, {"type": "edit", "seq": last, "text": "changed"}, "too_late")
    await refused(visitor, {"type": "delete", "seq": last}, "too_late")

    await watch.nothing_more(edits=0, deletions=0)
    assert bridge.store.item_changes(conversation.id) == []
    assert visitor.of("edit") == visitor.of("delete") == other.of("delete") == []
    bea = bridge.store.conversation(other.of("started")[0]["conversation"])
    assert bea is not None and bridge.store.item_changes(bea.id) == []
    texts = [i.text for i in bridge.store.items_after(conversation.id, 0)
             if i.sender is Sender.VISITOR]
    assert texts == ["first line", "last line"]
