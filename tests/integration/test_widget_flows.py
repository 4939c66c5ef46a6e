"""The visitor's first hour in Chromium: busy is not offline, the place in line stays, the
end is confirmed, and the widget speaks its own (translatable) words."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from playwright.async_api import Browser, Page, expect

from bridge.app import Bridge
from tests.integration.conftest import room_of
from tests.integration.helpers import Visitor
from tests.integration.test_widget_browser import open_chat, send_line

SMTP = {"host": "127.0.0.1", "starttls": False, "from": "Support <support@example.com>"}


async def get(url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert response.status == 200
        return await response.json()


async def states(bridge: Bridge) -> dict[str, str]:
    answer = await get(f"{bridge.base_url}/v1/status")
    return {q["id"]: q["state"] for q in answer["queues"]}


async def occupy(bridge: Bridge, visitors, topic: str) -> Visitor:
    """A chat of `topic` that its only agent is invited to (and so counts as theirs)."""
    visitor = await visitors(bridge.base_url)
    started = await visitor.start(topic=topic)
    await room_of(bridge, started["conversation"])
    return visitor


async def test_status_says_why_a_chat_can_or_cannot_start(make_matrix_bridge, visitors
                                                          ) -> None:
    today = datetime.now(UTC).date()
    bridge = await make_matrix_bridge(
        agents={"alice": {"max_chats": 1}, "bob": {"max_chats": 1}},
        queues=[{"id": "support", "name": "Support", "agents": ["alice"]},
                {"id": "sales", "name": "Sales", "agents": ["bob"]},
                {"id": "tiny", "name": "Tiny", "agents": ["bob"], "max_waiting": 1},
                {"id": "shut", "name": "Shut", "agents": ["alice"],
                 "holidays": [str(today), str(today + timedelta(days=1))]}])
    assert await states(bridge) == {"support": "available", "sales": "available",
                                    "tiny": "available", "shut": "closed"}
    alice = bridge.config.agent("alice")
    assert alice is not None
    await bridge.hub.parts.assignment.on_presence(alice, False)  # her client stopped syncing
    assert (await states(bridge))["support"] == "busy"  # still on duty: the chat can wait
    await bridge.hub.parts.assignment.on_presence(alice, True)

    await occupy(bridge, visitors, "support")  # alice has her one chat
    answer = await get(f"{bridge.base_url}/v1/status")
    support = answer["queues"][0]
    assert support["state"] == "busy" and support["available"] is False
    assert support["open"] is True and support["waiting"] == 1

    await occupy(bridge, visitors, "sales")  # bob is full too
    await occupy(bridge, visitors, "tiny")  # waits: its line (of one) is full now
    assert await states(bridge) == {"support": "busy", "sales": "busy", "tiny": "full",
                                    "shut": "closed"}
    bridge.store.set_break("bob", True)  # nobody on duty: offline, though the line is full
    assert await states(bridge) == {"support": "busy", "sales": "nobody", "tiny": "nobody",
                                    "shut": "closed"}


async def test_config_says_whether_transcripts_can_be_mailed(make_matrix_bridge,
                                                             start_server) -> None:
    without = await make_matrix_bridge()
    assert (await get(f"{without.base_url}/v1/config"))["mail"] is False
    smtp = start_server()
    with_mail = await make_matrix_bridge(smtp={**SMTP, "port": smtp.port})
    assert (await get(f"{with_mail.base_url}/v1/config"))["mail"] is True


async def test_a_busy_queue_offers_the_waiting_line_and_it_stays(
    make_matrix_bridge, visitors, browser: Browser
) -> None:
    bridge = await make_matrix_bridge(agents={"alice": {"max_chats": 1}}, queues=[
        {"id": "support", "name": "Support", "agents": ["alice"]}])
    await occupy(bridge, visitors, "support")
    page = await browser.new_page()
    await page.goto(f"{bridge.base_url}/demo")
    await expect(page.locator("button.lcb-launcher")).to_have_text("Chat with us")
    await page.locator("button.lcb-launcher").click()
    form = page.locator("form.lcb-form")
    await expect(form.locator("button[type=submit]")).to_have_text("Start chat")
    await expect(form.locator(".lcb-off")).to_have_text(
        "All agents are busy; you will be number 2 in line")
    await expect(form.locator(".lcb-to-offline")).to_be_visible()  # the second choice
    await expect(page.locator("form.lcb-offline")).to_be_hidden()

    await form.locator("input[name=name]").fill("Anna")
    await form.locator("input[name=email]").fill("anna@example.com")
    await form.locator("button[type=submit]").click()
    status = page.locator(".lcb-status")
    await expect(status).to_have_text("You are number 2 in line")
    await send_line(page, "Hello, anyone?")
    await expect(page.locator(".lcb-msg.lcb-visitor.lcb-pending")).to_have_count(0)
    await page.wait_for_timeout(300)
    await expect(status).to_have_text("You are number 2 in line")  # still, until an agent joins

    bridge.store.set_break("alice", True)  # nobody on duty at all: that is offline
    later = await browser.new_page()
    await later.goto(f"{bridge.base_url}/demo")
    await expect(later.locator("button.lcb-launcher")).to_have_text("Leave a message")
    await later.locator("button.lcb-launcher").click()
    offline = later.locator("form.lcb-offline")
    await expect(offline.locator(".lcb-off")).to_contain_text("We are offline right now.")
    await expect(offline.locator(".lcb-to-chat")).to_be_hidden()
    await expect(later.locator("form.lcb-form")).to_be_hidden()


async def test_end_is_confirmed_and_a_new_chat_knows_the_visitor(
    make_matrix_bridge, browser: Browser
) -> None:
    bridge = await make_matrix_bridge()  # no [smtp]: the transcript can only be downloaded
    page = await browser.new_page()
    await open_chat(page, f"{bridge.base_url}/demo", "Anna", "anna@example.com")
    await expect(page.locator(".lcb-msg.lcb-system").first).to_contain_text("Hi Anna")
    confirm = page.locator(".lcb-confirm:not(.lcb-editing)")  # the editing bar looks alike
    await expect(confirm).to_be_hidden()
    await page.locator("button.lcb-end").click()
    await expect(confirm).to_contain_text("End this chat?")
    await confirm.get_by_role("button", name="Keep chatting").click()
    await expect(confirm).to_be_hidden()
    assert bridge.store.open_conversations() != []

    await page.locator("button.lcb-end").click()
    await confirm.get_by_role("button", name="End chat").click()
    await expect(page.locator(".lcb-msg.lcb-system").filter(has_text="The chat has ended."))\
        .to_have_count(1)
    await expect(page.locator("form.lcb-compose")).to_be_hidden()
    faces = page.locator("form.lcb-survey button.lcb-rate")
    await expect(faces).to_have_count(5)
    await expect(faces.locator("svg")).to_have_count(5)
    assert [await face.text_content() for face in await faces.all()] == [""] * 5  # no emoji
    await expect(page.locator(".lcb-transcript button.lcb-download")).to_be_visible()
    await expect(page.locator("form.lcb-mail")).to_be_hidden()

    await page.reload()  # the panel was open: it opens again by itself
    await page.locator("button.lcb-new").click()
    form = page.locator("form.lcb-form")
    await expect(form.locator("input[name=name]")).to_have_value("Anna")
    await expect(form.locator("input[name=email]")).to_have_value("anna@example.com")


async def offline_form(page: Page, url: str) -> None:
    await page.goto(url)
    await page.locator("button.lcb-launcher").click()
    await page.locator("form.lcb-form .lcb-to-offline").click()


async def test_after_a_message_the_visitor_can_still_chat(make_matrix_bridge, start_server,
                                                          browser: Browser
                                                          ) -> None:
    smtp = start_server()
    bridge = await make_matrix_bridge(smtp={**SMTP, "port": smtp.port}, queues=[
        {"id": "support", "name": "Support", "agents": ["alice"],
         "helpdesk_email": "helpdesk@example.com"}])
    page = await browser.new_page()
    await offline_form(page, f"{bridge.base_url}/demo")
    offline = page.locator("form.lcb-offline")
    # chosen, not forced: nobody is told we are offline
    await expect(offline.locator(".lcb-off")).to_have_text(
        "Leave a message and we will get back to you.")
    await offline.locator("input[name=name]").fill("Anna")
    await offline.locator("input[name=email]").fill("anna@example.com")
    await offline.locator("textarea[name=text]").fill("Do you ship to Iceland?")
    await offline.locator("button[type=submit]").click()
    ticket = page.locator(".lcb-ticket")
    await expect(ticket).to_contain_text("T-")
    await ticket.get_by_role("button", name="Chat with us").click()
    form = page.locator("form.lcb-form")
    await expect(form.locator("button[type=submit]")).to_have_text("Start chat")
    await expect(form.locator("input[name=name]")).to_have_value("Anna")
    await expect(ticket).to_have_count(0)


async def test_errors_are_the_widgets_own_translatable_words(make_matrix_bridge,
                                                             browser: Browser
                                                             ) -> None:
    bridge = await make_matrix_bridge(
        widget={"strings": {"de": {"error_bad_email": "Bitte die E-Mail-Adresse prüfen."}}})
    page = await browser.new_page()
    await offline_form(page, f"{bridge.base_url}/demo")
    offline = page.locator("form.lcb-offline")
    await offline.locator("input[name=name]").fill("Anna")
    await offline.locator("input[name=email]").fill("anna@localhost")  # the browser takes it
    await offline.locator("textarea[name=text]").fill("Hello")
    await offline.locator("button[type=submit]").click()
    await expect(page.locator(".lcb-status")).to_have_text("Please check the email address.")

    german = await browser.new_page()
    await german.add_init_script("window.LivechatBridge = {lang: 'de'}")
    await open_chat(german, f"{bridge.base_url}/demo", "Anna", "anna@localhost")
    await expect(german.locator(".lcb-status")).to_have_text("Bitte die E-Mail-Adresse prüfen.")


async def test_an_idle_chat_is_kept_open_with_one_click(make_matrix_bridge, matrix_agent,
                                                        browser: Browser) -> None:
    # 4.8 s; warned in the last 1.2 s, looked at every 0.4 s
    bridge = await make_matrix_bridge(idle_timeout_minutes=0.08)
    page = await browser.new_page()
    await open_chat(page, f"{bridge.base_url}/demo", "Anna", "anna@example.com")
    await send_line(page, "one moment, looking for my order number")
    keep = page.locator("button.lcb-extend")
    await expect(keep).to_be_visible(timeout=10_000)
    await expect(keep).to_have_text("Keep the chat open")
    await expect(page.locator(".lcb-status")).to_contain_text("this chat ends in 1 min")
    await keep.click()
    await expect(keep).to_be_hidden()
    # Past the end the silence would have brought: the click came at most 1.2 s before it,
    # so 2 s after the click are two of the bridge's looks past it; the next warning comes
    # 3.6 s after the click.
    await page.wait_for_timeout(2000)
    await expect(page.locator("form.lcb-compose")).to_be_visible()
    await expect(keep).to_be_visible(timeout=10_000)  # warned again, as often as it takes
