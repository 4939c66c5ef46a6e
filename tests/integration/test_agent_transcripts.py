"""The transcripts in docs/agent-transcripts.md are what agents' clients really show: one
chat is played on a real Synapse and on a real Prosody, the agents' own clients record the
room (and Bob's direct chat with the bot), and the page must hold exactly that, the same on
both networks. When the bridge's wording changes, this test fails with the new transcript
to paste in."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from tests.integration.conftest import Messenger, TestAgent, room_of
from tests.integration.helpers import MatrixAgent

PAGE = Path(__file__).resolve().parents[2] / "docs" / "agent-transcripts.md"
NOTICE = "ℹ️"


def shown(agent: TestAgent, room: str, names: dict[str, str]) -> list[str]:
    """The room as the agent's client lists it: who wrote each line (a notice marked ℹ️),
    and the text. Times that differ from run to run are fixed."""
    lines = []
    for line_room, sender, notice, body in agent.messages:
        if line_room != room:
            continue
        who = NOTICE if notice else names.get(sender, sender)
        text = re.sub(r"after \d+\.\d min", "after 1.5 min", body)
        lines.append(f"{who:<16} {text}".rstrip())
    return lines


def transcript_in_page(name: str) -> list[str]:
    """The lines of the code block under `<!-- transcript: {name} -->` on the page."""
    page = PAGE.read_text(encoding="utf-8")
    found = re.search(rf"<!-- transcript: {name} -->\n```text\n(.*?)\n```", page, re.S)
    assert found, f"{PAGE.name} has no transcript block {name!r}"
    return found.group(1).splitlines()


async def notice(agent: TestAgent, room: str, fragment: str) -> None:
    await agent.until(lambda: any(fragment in t for t in agent.texts(room, notice=True)))


async def test_the_agents_transcripts_are_what_their_clients_show(
        make_bridge, agent: TestAgent, visitors, messenger: Messenger) -> None:
    bob = await messenger.agent("bob", "Bob")
    try:
        await bob.set_away(False)
        bridge = await make_bridge()
        visitor = await visitors(bridge.base_url)
        started = await visitor.start()
        await visitor.say("Hi! My parcel has not arrived yet.")
        room = await room_of(bridge, started["conversation"])
        await agent.join(room)
        await agent.wait_text(room, "Hi! My parcel has not arrived yet.")
        await visitor.wait("agent", lambda f: f["event"] == "joined")
        await asyncio.sleep(0.3)  # presence settles (XMPP reports it after subscription)
        await agent.say(room, "Hello Anna, let me check. What is your order number?")
        hello = await visitor.wait("message", lambda f: f["text"].startswith("Hello Anna"))
        await visitor.send({"type": "read", "seq": hello["seq"]})  # as the widget does
        await visitor.say("1234")
        await agent.wait_text(room, "1234")
        await agent.say(room, "!note she called yesterday too")
        await notice(agent, room, "Note saved")
        await agent.say(room, "!transfer bob order 1234, courier question --stay")
        await notice(agent, room, "Offered to bob")
        await bob.join(room)
        await notice(agent, room, "bob took over the chat")
        await visitor.wait("agent", lambda f: f["event"] == "transferred")
        await bob.say(room, "Hi Anna, I'm Bob from shipping. It is with the courier.")
        bobs = await visitor.wait("message", lambda f: f["text"].startswith("Hi Anna, I'm Bob"))
        await visitor.send({"type": "read", "seq": bobs["seq"]})
        await visitor.say("Thanks!")
        await agent.wait_text(room, "Thanks!")
        await bob.say(room, "!end")
        await notice(agent, room, "Chat ended after")

        if isinstance(agent, MatrixAgent):
            names = {messenger.bot: "Anna (visitor)", agent.address: "Alice",
                     messenger.address("bob"): "Bob"}
            direct = bridge.store.kv_get(f"matrix:direct:{messenger.address('bob')}")
            assert direct  # the direct chat the bot opened with Bob for the offer
            await bob.join(direct)
            await bob.until(lambda: bob.direct_texts(direct))
            offer = bob.direct_texts(direct)
        else:
            names = {"Alice": "Alice", "Bob": "Bob"}
            offer = bob.direct_texts(messenger.bot)
        # From the offer on: a server may first hand over what the bot wrote to Bob while he
        # was offline in an earlier test (XMPP offline messages).
        offer = offer[next(n for n, t in enumerate(offer) if "offers you the chat" in t):]
        actual = {
            "room": shown(agent, room, names),
            "offer": [f"{'support (bot)':<16} {text}" for text in offer],
        }
        failures = []
        for name, lines in actual.items():
            if transcript_in_page(name) != lines:
                failures.append(f"block {name!r} should read:\n" + "\n".join(lines))
        assert not failures, "docs/agent-transcripts.md differs:\n" + "\n\n".join(failures)
    finally:
        await bob.close()
