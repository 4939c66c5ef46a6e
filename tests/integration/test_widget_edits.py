"""The visitor edits and deletes their last line in Debian's Chromium, against the bridge
and Synapse, the agent on a Matrix client of their own: "Edit" and "Delete" under the last
line only (buttons, reached by keyboard), editing puts its text in the box with a visible
"Editing" bar that Cancel and Escape take away, the line then reads " · edited" or "Message
deleted" like an agent's, the agent's client gets a real edit and a redaction, and a reload
keeps it all."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from nio import RedactionEvent, RoomMessageText
from playwright.async_api import Page, expect

from bridge.core.models import Sender
from tests.integration import test_widget_files
from tests.integration.test_widget_a11y import TARGETS, TEXT_CONTRAST
from tests.integration.test_widget_browser import send_line
from tests.integration.test_widget_features import strings
from tests.integration.test_widget_files import Chat, Shop
from tests.integration.test_widget_states import bots_event, visitor_lines

shop = test_widget_files.shop  # the fixture: a chat on a shop's page, Alice joined

EN = strings("en")
EDITED = f" · {EN['edited']}"


def controls(page: Page) -> Any:
    return page.locator(".lcb-msg.lcb-visitor .lcb-eds")


def watch(chat: Chat) -> tuple[list[tuple[str, str]], list[str]]:
    """What the agent's client sees done to lines of the chat's room: (edited event, new
    text), redacted events."""
    edits: list[tuple[str, str]] = []
    redacted: list[str] = []

    def seen(room: Any, event: Any) -> None:
        if room.room_id != chat.room:  # the agent's account is in earlier tests' rooms too
            return
        if isinstance(event, RedactionEvent):
            redacted.append(event.redacts)
            return
        content = event.source.get("content", {})
        relates = content.get("m.relates_to", {})
        if relates.get("rel_type") == "m.replace":
            edits.append((relates.get("event_id"), content["m.new_content"]["body"]))

    chat.agent.client.add_event_callback(seen, (RoomMessageText, RedactionEvent))
    return edits, redacted


async def test_the_visitor_edits_and_deletes_the_last_line(shop: Shop, tmp_path: Path) -> None:
    chat = await shop()
    page = chat.page
    edits, redacted = watch(chat)
    box = page.locator("form.lcb-compose textarea[name=text]")
    bar = page.locator(".lcb-editing")
    await send_line(page, "Do you ship to Malta?")
    first = await bots_event(chat, "Do you ship to Malta?")
    await send_line(page, "And to Cyprus?")
    last = await bots_event(chat, "And to Cyprus?")
    # Only under the last line, and only once it is the server's: buttons with their names.
    await expect(controls(page)).to_have_count(1)
    await expect(visitor_lines(page).last.locator(".lcb-eds button")).to_have_text(
        [EN["edit"], EN["delete"]])
    await expect(bar).to_be_hidden()
    await page.screenshot(path=str(tmp_path / "edit-controls.png"))
    sizes = [t for t in await page.evaluate(TARGETS) if "lcb-link" in t["what"]]
    assert sizes and all(t["width"] >= 24 and t["height"] >= 24 for t in sizes), sizes
    for scheme in ("light", "dark"):  # WCAG 1.4.3: the controls' text on the log
        await page.emulate_media(color_scheme=scheme)
        low = [m for m in await page.evaluate(TEXT_CONTRAST, ".lcb-eds")
               if m["ratio"] < m["need"]]
        assert low == [], (scheme, low)

    # Edit, by keyboard; Escape leaves the editing and keeps the panel open.
    edit = visitor_lines(page).last.get_by_role("button", name=EN["edit"])
    await edit.focus()
    await page.keyboard.press("Enter")
    await expect(box).to_have_value("And to Cyprus?")
    await expect(box).to_be_focused()
    await expect(bar).to_be_visible()
    await expect(bar).to_contain_text(EN["editing"])
    await expect(page.locator(".lcb-sr")).to_have_text(EN["editing"])  # said, too
    await box.press("Escape")
    await expect(bar).to_be_hidden()
    await expect(box).to_have_value("")
    await expect(page.locator(".lcb-panel")).to_be_visible()

    await edit.click()
    await expect(bar).to_be_visible()
    await page.screenshot(path=str(tmp_path / "editing.png"))
    await box.fill("And to Crete?")
    await box.press("Enter")
    line = visitor_lines(page).last
    await expect(line.locator(".lcb-text")).to_have_text("And to Crete?")
    await expect(line.locator(".lcb-time")).to_have_text(re.compile(re.escape(EDITED)))
    await expect(bar).to_be_hidden()
    await expect(box).to_have_value("")
    await chat.agent.until(lambda: edits)
    assert edits == [(last, "And to Crete?")]  # the bot's own line, edited
    await expect(visitor_lines(page).first.locator(".lcb-eds")).to_have_count(0)

    await line.get_by_role("button", name=EN["delete"]).click()
    await expect(line.locator(".lcb-text")).to_have_text(EN["deleted"])
    await expect(controls(page)).to_have_count(0)  # nothing left to change
    await expect(box).to_be_focused()
    await chat.agent.until(lambda: redacted)
    assert redacted == [last] and first != last

    conversation = chat.bridge.store.conversation_by_room(chat.room)
    assert conversation is not None
    assert [i.text for i in chat.bridge.store.items_after(conversation.id, 0)
            if i.sender is Sender.VISITOR] == ["Do you ship to Malta?", ""]

    await page.reload()  # the panel was open: it opens again
    await expect(visitor_lines(page).locator(".lcb-text")).to_have_text(
        ["Do you ship to Malta?", EN["deleted"]])
    await expect(controls(page)).to_have_count(0)
    await send_line(page, "Thanks!")  # a new last line is editable again
    await expect(visitor_lines(page).last.locator(".lcb-eds")).to_have_count(1)
