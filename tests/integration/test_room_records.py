"""What the room records for the agents, on a real Synapse: a reply in a thread is a note
that never reaches the visitor (the transcript mail's record is in test_mail.py)."""

from __future__ import annotations

import asyncio

from tests.integration.conftest import TestAgent, chat_with_agent


async def test_a_thread_reply_is_a_note_not_a_line_for_the_visitor(
        make_matrix_bridge, visitors, matrix_agent: TestAgent) -> None:
    bridge, visitor, started, room = await chat_with_agent(make_matrix_bridge, visitors,
                                                           matrix_agent)
    root = await matrix_agent.say(room, "Let me check your order")
    await visitor.wait("message", lambda f: f["text"] == "Let me check your order")
    await matrix_agent.say_in_thread(room, root, "Bob: he is the one from last week")
    await matrix_agent.wait_text(room, "📝 Note saved (agents only): Bob: he is the one "
                                 "from last week", notice=True)
    await matrix_agent.say(room, "Found it")
    await visitor.wait("message", lambda f: f["text"] == "Found it")
    await asyncio.sleep(0.5)
    assert [f["text"] for f in visitor.of("message") if f["from"] == "agent"] == [
        "Let me check your order", "Found it"]
    notes = [e["detail"] for e in bridge.store.events(started["conversation"])
             if e["kind"] == "note"]
    assert notes == ["Bob: he is the one from last week"]
