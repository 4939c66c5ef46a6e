"""What becomes of lines after they are shown, in Debian's Chromium against the bridge and
Synapse, the agent on a real Matrix client: "Seen" under the visitor's newest line the
agent's client has read (one at a time, moving down, back after a reload, readable in the
log but never announced); an agent's correction changes its line in place, marked "edited"
(a change to a line the widget lacks changes nothing); a line the agent takes back (text or
file) becomes "Message deleted". Live and after a reload, which
rebuilds the chat from the server's replay."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

from playwright.async_api import Locator, Page, WebSocketRoute, expect

from bridge.core.models import Sender
from tests.integration import test_widget_files
from tests.integration.test_widget_a11y import TEXT_CONTRAST
from tests.integration.test_widget_browser import send_line
from tests.integration.test_widget_features import strings
from tests.integration.test_widget_files import PDF, Chat, Shop, png

shop = test_widget_files.shop  # the fixture: a chat on a shop's page, Alice joined

EN = strings("en")
SEEN = f" · {EN['seen']}"
EDITED = f" · {EN['edited']}"


async def bots_event(chat: Chat, text: str) -> str:
    """The id of the event the bot posted for the visitor's line `text`, once the agent's
    client has it (the bridge records the id when the homeserver takes the line)."""
    await chat.agent.wait_text(chat.room, text)
    conversation = chat.bridge.store.conversation_by_room(chat.room)
    assert conversation is not None
    async with asyncio.timeout(15):
        while True:
            for item in chat.bridge.store.items_after(conversation.id, 0):
                if item.sender is Sender.VISITOR and item.text == text and item.event_id:
                    return item.event_id
            await asyncio.sleep(0.05)


async def agent_reads(chat: Chat, event_id: str) -> None:
    """The agent's client marks the room read up to there (a read receipt and marker)."""
    response = await chat.agent.client.room_read_markers(chat.room, event_id, event_id)
    assert not hasattr(response, "status_code"), response


async def agent_says(chat: Chat, text: str) -> str:
    event_id = await chat.agent.say(chat.room, text)
    await expect(agent_lines(chat.page).filter(has_text=text)).to_have_count(1)
    return event_id


def agent_lines(page: Page) -> Locator:
    return page.locator(".lcb-msg.lcb-agent")


def visitor_lines(page: Page) -> Locator:
    return page.locator(".lcb-msg.lcb-visitor")


async def seen_under(page: Page, index: int) -> None:
    """One "Seen" in the whole chat, after the time of the visitor's line `index`."""
    await expect(page.locator(".lcb-time", has_text=EN["seen"])).to_have_count(1)
    time = visitor_lines(page).nth(index).locator(".lcb-time")
    await expect(time).to_have_text(re.compile(re.escape(SEEN) + "$"))
    await expect(agent_lines(page).locator(".lcb-time", has_text=EN["seen"])).to_have_count(0)


async def texts(page: Page) -> list[str]:
    """The chat's lines in order, as shown (system lines left out)."""
    shown: list[str] = await page.locator(
        ".lcb-msg:not(.lcb-system) .lcb-text").all_text_contents()
    return shown


async def settled(page: Page) -> None:
    """Until the widget's animations are over (the panel fades in after a reload)."""
    await page.evaluate("""() => Promise.all(document.querySelector('livechat-bridge')
      .shadowRoot.getAnimations().map(a => a.finished))""")


async def read_in_log(page: Page, needle: str) -> list[str]:
    """The texts containing `needle` that a screen reader finds inside the chat log (in
    Chromium's accessibility tree, as it gives them to screen readers)."""
    cdp = await page.context.new_cdp_session(page)
    tree: dict[str, Any] = await cdp.send("Accessibility.getFullAXTree")
    await cdp.detach()
    nodes = {node["nodeId"]: node for node in tree["nodes"]}

    def in_log(node: dict[str, Any]) -> bool:
        while (node := nodes.get(node.get("parentId", ""), {})):
            if node.get("role", {}).get("value") == "log":
                return True
        return False

    return [node["name"]["value"] for node in tree["nodes"]
            if node.get("role", {}).get("value") == "StaticText" and not node["ignored"]
            and needle in node["name"]["value"] and in_log(node)]


async def test_seen_goes_under_the_newest_line_the_agent_read(shop: Shop, tmp_path: Path
                                                              ) -> None:
    chat = await shop()
    page = chat.page
    await send_line(page, "Is the green tea in stock?")
    first = await bots_event(chat, "Is the green tea in stock?")
    await expect(page.locator(".lcb-time", has_text=EN["seen"])).to_have_count(0)

    await agent_reads(chat, first)
    await seen_under(page, 0)
    # Plain text of the line, so it is read with the log; but not announced: it sits in a
    # region of its own with aria-live="off" inside the polite log.
    assert await read_in_log(page, EN["seen"]) == [SEEN]
    seen = visitor_lines(page).nth(0).locator(".lcb-time span")
    await expect(seen).to_have_attribute("aria-live", "off")

    await send_line(page, "And the cups?")
    await agent_says(chat, "Both are in stock.")
    await expect(visitor_lines(page)).to_have_count(2)
    await seen_under(page, 0)  # the agent has not read the new line yet

    await page.reload()  # from `resumed.read`
    await expect(visitor_lines(page)).to_have_count(2)
    await seen_under(page, 0)

    await agent_reads(chat, await bots_event(chat, "And the cups?"))
    await seen_under(page, 1)  # moved down, still one
    assert await read_in_log(page, EN["seen"]) == [SEEN]
    await settled(page)
    await page.screenshot(path=str(tmp_path / "seen.png"))

    await send_line(page, "Thanks!")
    await page.reload()
    await expect(visitor_lines(page)).to_have_count(3)
    await seen_under(page, 1)


async def test_an_agents_correction_changes_the_line_in_place(shop: Shop) -> None:
    chat = await shop()
    page = chat.page
    await send_line(page, "How much is the tea?")
    said = await agent_says(chat, "It is 5 euro.")
    await send_line(page, "And shipping?")
    await expect(visitor_lines(page)).to_have_count(2)
    line = agent_lines(page)
    await expect(line.locator(".lcb-time")).not_to_contain_text(EN["edited"])
    await line.evaluate("e => e.id = 'corrected'")  # the same element afterwards

    correction = "It is <b>4</b> euro: https://shop.example.com/tea"
    await chat.agent.correct(chat.room, said, correction)
    await expect(line.locator(".lcb-text")).to_have_text(correction)
    await expect(line).to_have_id("corrected")
    await expect(line.locator(".lcb-time")).to_have_text(re.compile(re.escape(EDITED) + "$"))
    await expect(line.locator(".lcb-text a")).to_have_attribute(
        "href", "https://shop.example.com/tea")
    await expect(line.locator(".lcb-text b")).to_have_count(0)  # text, never markup
    assert await texts(page) == ["How much is the tea?", correction, "And shipping?"]

    await chat.agent.correct(chat.room, said, "It is 3 euro.")  # again: still one mark
    await expect(line.locator(".lcb-text")).to_have_text("It is 3 euro.")
    await expect(line.locator(".lcb-time")).to_have_text(re.compile(re.escape(EDITED) + "$"))
    await expect(line.locator(".lcb-time")).not_to_have_text(
        re.compile(re.escape(EDITED) * 2))

    # After a reload, through a socket the test can add frames to: changes of lines the
    # widget does not have change nothing (the visitor's own lines change by their own
    # edits: tests/integration/test_widget_edits.py).
    sockets: list[WebSocketRoute] = []

    def through(socket: WebSocketRoute) -> None:
        socket.connect_to_server()  # everything passes both ways
        sockets.append(socket)

    await page.route_web_socket(re.compile(r"/v1/ws$"), through)
    await page.reload()
    await expect(visitor_lines(page)).to_have_count(2)
    assert await texts(page) == ["How much is the tea?", "It is 3 euro.", "And shipping?"]
    await expect(agent_lines(page).locator(".lcb-time")).to_have_text(
        re.compile(re.escape(EDITED) + "$"))

    for frame in ({"type": "edit", "seq": 999, "text": "Not here", "ts": 0},
                  {"type": "delete", "seq": 999}):
        sockets[-1].send(json.dumps(frame))
    await chat.agent.correct(chat.room, said, "It is 2 euro.")  # after those, on the socket
    await expect(agent_lines(page).locator(".lcb-text")).to_have_text(["It is 2 euro."])
    assert await texts(page) == ["How much is the tea?", "It is 2 euro.", "And shipping?"]
    await expect(visitor_lines(page).locator(".lcb-time", has_text=EN["edited"])) \
        .to_have_count(0)


async def test_a_line_taken_back_shows_as_deleted(shop: Shop, tmp_path: Path) -> None:
    chat = await shop()
    page = chat.page
    await send_line(page, "Can I see the tea?")
    wrong = await agent_says(chat, "Here is the price list of our competitor.")
    photo = await chat.agent.send_file(chat.room, "tea.png", png(24, 16), "image/png")
    manual = await chat.agent.send_file(chat.room, "manual.pdf", PDF, "application/pdf")
    kept = await agent_says(chat, "Sorry, wrong chat!")
    await expect(page.locator(".lcb-msg.lcb-agent img[alt='tea.png']")).to_have_count(1)
    await expect(page.locator(".lcb-msg.lcb-agent .lcb-text button")).to_have_count(1)
    await chat.agent.correct(chat.room, kept, "Sorry, wrong picture!")
    await expect(agent_lines(page).last.locator(".lcb-time")).to_contain_text(EN["edited"])

    for event_id in (wrong, photo, manual):
        response = await chat.agent.client.room_redact(chat.room, event_id)
        assert not hasattr(response, "status_code"), response

    async def shows_deletions() -> None:
        await expect(agent_lines(page)).to_have_count(4)
        await expect(agent_lines(page).locator(".lcb-text")).to_have_text(
            [EN["deleted"]] * 3 + ["Sorry, wrong picture!"])
        await expect(page.locator(".lcb-msg img, .lcb-msg .lcb-text button")).to_have_count(0)
        await expect(agent_lines(page).locator(".lcb-name")).to_have_text(["Alice"] * 4)
        await expect(agent_lines(page).locator(".lcb-time", has_text=EN["edited"])) \
            .to_have_count(1)
        deleted = page.locator(".lcb-del")
        await expect(deleted).to_have_count(3)
        # Muted: the colour of other quiet text (the times), in italics.
        style = await deleted.first.evaluate("""e => {
          const s = getComputedStyle(e), t = getComputedStyle(e.parentNode.querySelector('time'));
          return [s.color == t.color, s.fontStyle];
        }""")
        assert style == [True, "italic"]
        assert await texts(page) == ["Can I see the tea?", *[EN["deleted"]] * 3,
                                     "Sorry, wrong picture!"]

    await shows_deletions()
    fetched: list[str] = []
    page.on("request", lambda request: fetched.append(request.url))
    await page.reload()
    await shows_deletions()
    assert not [url for url in fetched if "/v1/files/" in url]  # nothing left to fetch

    # WCAG 1.4.3 for the quiet texts: deleted, edited and seen, in light and dark.
    await agent_reads(chat, await bots_event(chat, "Can I see the tea?"))
    await seen_under(page, 0)
    await settled(page)
    low: list[Any] = []
    for scheme in ("light", "dark"):
        await page.emulate_media(color_scheme=scheme)
        measured = await page.evaluate(TEXT_CONTRAST, ".lcb-log")
        shown = [m["text"] for m in measured]
        assert EN["deleted"] in shown and SEEN.strip() in shown, shown
        assert any(text.endswith(EDITED) for text in shown), shown
        low += [(scheme, m) for m in measured if m["ratio"] < m["need"]]
        await page.screenshot(path=str(tmp_path / f"states-{scheme}.png"))
    assert low == [], low
