"""The widget in Debian's Chromium, driven by Playwright, against the bridge and Synapse."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from pathlib import Path

from playwright.async_api import Browser, Page, expect

from tests.integration.conftest import Messenger, TestAgent, room_of
from tests.integration.helpers import seed_answered


async def open_chat(page: Page, url: str, name: str, email: str) -> None:
    await page.goto(url)
    await page.locator("button.lcb-launcher").click()
    form = page.locator("form.lcb-form")
    await form.locator("input[name=name]").fill(name)
    await form.locator("input[name=email]").fill(email)
    await form.locator("button[type=submit]").click()


async def send_line(page: Page, text: str) -> None:
    box = page.locator("form.lcb-compose textarea[name=text]")
    await box.fill(text)
    await box.press("Enter")


async def test_visitor_chats_with_an_agent_in_chromium(
    make_bridge, agent: TestAgent, browser: Browser, tmp_path: Path
) -> None:
    bridge = await make_bridge()
    page = await browser.new_page()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    await page.goto(f"{bridge.base_url}/demo")
    await expect(page.locator("button.lcb-launcher")).to_be_visible()
    # Until the visitor opens the chat the widget costs one cacheable status fetch.
    assert [u.removeprefix(bridge.base_url) for u in requests] == [
        "/demo", "/widget.js", "/v1/status?lang=en-US,en"]

    await open_chat(page, f"{bridge.base_url}/demo", "Anna <b>Test</b>", "anna@example.com")
    await send_line(page, "Hello from the browser <i>really</i>")
    visitor_line = page.locator(".lcb-msg.lcb-visitor .lcb-text").last
    await expect(visitor_line).to_have_text("Hello from the browser <i>really</i>")
    await expect(page.locator(".lcb-msg.lcb-visitor.lcb-pending")).to_have_count(0)

    conversation = bridge.store.open_conversations()[-1]
    room = await room_of(bridge, conversation.id)
    await agent.join(room)
    await agent.wait_text(room, "Hello from the browser <i>really</i>")
    await expect(page.locator(".lcb-msg.lcb-system").filter(has_text="Alice joined")) \
        .to_have_count(1)

    await agent.set_typing(room, True)
    await expect(page.locator(".lcb-typing")).to_contain_text("Alice")
    await agent.say(room, "Hi Anna, how can I help?")
    answer = page.locator(".lcb-msg.lcb-agent").last
    await expect(answer.locator(".lcb-text")).to_have_text("Hi Anna, how can I help?")
    await expect(answer.locator(".lcb-name")).to_have_text("Alice")
    await page.screenshot(path=str(tmp_path / "widget-chat.png"))

    # A reload mid-chat resumes from localStorage: nothing missing, nothing twice.
    await page.reload()
    await expect(page.locator(".lcb-msg.lcb-agent .lcb-text")).to_have_text(
        ["Hi Anna, how can I help?"])
    await expect(page.locator(".lcb-msg.lcb-visitor .lcb-text")).to_have_text(
        ["Hello from the browser <i>really</i>"])
    await send_line(page, "after reload")
    await agent.wait_text(room, "after reload")
    assert agent.texts(room).count("Hello from the browser <i>really</i>") == 1
    await page.screenshot(path=str(tmp_path / "widget-after-reload.png"))
    assert (tmp_path / "widget-after-reload.png").stat().st_size > 0


async def test_end_of_chat_in_chromium(make_bridge, agent: TestAgent, browser: Browser,
                                       start_server, tmp_path: Path) -> None:
    smtp = start_server()
    bridge = await make_bridge(smtp={"host": "127.0.0.1", "port": smtp.port, "starttls": False,
                                     "from": "Support <support@example.com>"})
    page = await browser.new_page()
    await open_chat(page, f"{bridge.base_url}/demo", "Anna", "anna@example.com")
    await send_line(page, "Is the green tea in stock?")
    conversation = bridge.store.open_conversations()[-1]
    room = await room_of(bridge, conversation.id)
    await agent.join(room)
    await agent.wait_text(room, "Is the green tea in stock?")
    await agent.say(room, "Yes, ships tomorrow.")
    await expect(page.locator(".lcb-msg.lcb-agent .lcb-text")).to_have_text(
        ["Yes, ships tomorrow."])
    await agent.say(room, "!end")

    survey = page.locator("form.lcb-survey")
    await expect(survey).to_be_visible()
    await survey.locator("button.lcb-rate[data-rating='5']").click()
    await survey.locator("textarea[name=comment]").fill("Fast <b>and</b> friendly")
    await survey.locator("button.lcb-rate-send").click()
    await expect(page.locator(".lcb-msg.lcb-system").filter(has_text="Thank you")) \
        .to_have_count(1)
    await agent.until(lambda: any("rated the chat 5/5: Fast <b>and</b> friendly" in t
                                  for t in agent.texts(room, notice=True)))

    async with page.expect_download() as download_info:
        await page.locator("button.lcb-download").click()
    download = await download_info.value
    saved = tmp_path / "transcript.txt"
    await download.save_as(saved)
    text = saved.read_text()
    assert "Anna: Is the green tea in stock?" in text and "Yes, ships tomorrow." in text

    mail_form = page.locator("form.lcb-mail")
    await expect(mail_form.locator("input[name=mail]")).to_have_value("anna@example.com")
    await mail_form.locator("input[name=mail]").press("Enter")
    await expect(page.locator(".lcb-msg.lcb-system").filter(
        has_text="Transcript sent to anna@example.com")).to_have_count(1)
    assert [m.envelope.rcpt_tos for m in smtp.handler.received] == [["anna@example.com"]]
    await page.screenshot(path=str(tmp_path / "widget-ended.png"))

    await page.reload()  # rated already: the survey does not come back
    await page.locator("button.lcb-launcher").click()
    await expect(page.locator(".lcb-msg.lcb-agent .lcb-text")).to_have_text(
        ["Yes, ships tomorrow."])
    await expect(page.locator("form.lcb-survey")).to_have_count(0)


async def test_callback_and_transfer_notice_in_chromium(make_bridge, agent: TestAgent,
                                                        browser: Browser,
                                                        messenger: Messenger) -> None:
    bridge = await make_bridge()
    page = await browser.new_page()
    await open_chat(page, f"{bridge.base_url}/demo", "Anna", "anna@example.com")
    await send_line(page, "Please call me")
    conversation = bridge.store.open_conversations()[-1]
    room = await room_of(bridge, conversation.id)
    await agent.join(room)
    await agent.say(room, "!callback")
    form = page.locator("form.lcb-callback")
    await expect(form).to_be_visible()
    await form.locator("input[name=phone]").fill("+36 1 234 5678")
    await form.locator("input[name=when]").fill("after 5pm")
    await form.locator("button[type=submit]").click()
    await expect(page.locator(".lcb-msg.lcb-system").filter(has_text="+36 1 234 5678")) \
        .to_have_count(1)
    await agent.until(lambda: any("asks to be called at +36 1 234 5678 (after 5pm)" in t
                                  for t in agent.texts(room, notice=True)))
    bob = await messenger.agent("bob", "Bob")
    try:
        await bob.set_away(False)
        await asyncio.sleep(0.3)  # XMPP reports presence once subscribed
        await agent.say(room, "!transfer bob")
        await agent.until(lambda: any(t.startswith("Offered to bob")
                                      for t in agent.texts(room, notice=True)))
        talking = page.locator(".lcb-msg.lcb-system").filter(
            has_text="You are now talking with bob")
        await expect(talking).to_have_count(0)  # an offer: not yet, and maybe never
        await bob.join(room)
        await expect(talking).to_have_count(1)
    finally:
        await bob.close()


async def test_offline_form_and_signed_identity_in_chromium(
    make_matrix_bridge, matrix_agent: TestAgent, browser: Browser, start_server
) -> None:
    smtp = start_server()
    today = datetime.now(UTC).date()
    bridge = await make_matrix_bridge(
        smtp={"host": "127.0.0.1", "port": smtp.port, "starttls": False,
              "from": "Support <support@example.com>"},
        identity="shop-secret",
        queues=[{"id": "support", "name": "Support", "agents": ["alice"],
                 "holidays": [str(today), str(today + timedelta(days=1))],
                 "helpdesk_email": "helpdesk@example.com"},
                {"id": "sales", "name": "Sales", "agents": ["alice"]}])
    digest = hmac.new(b"shop-secret", b"cust-7", hashlib.sha256).hexdigest()
    page = await browser.new_page()
    await page.add_init_script(
        "window.LivechatBridge = {identity: {id: 'cust-7', name: 'Vera', "
        f"email: 'vera@example.com', hash: '{digest}'}}}}")
    await page.goto(f"{bridge.base_url}/demo")
    await page.locator("button.lcb-launcher").click()
    form = page.locator("form.lcb-form")
    await expect(form.locator("input[name=name]")).to_have_value("Vera")
    await form.locator("select[name=topic]").select_option("support")  # closed today
    await form.locator("button[type=submit]").click()

    offline = page.locator("form.lcb-offline")
    await expect(offline).to_be_visible()
    await offline.locator("textarea[name=text]").fill("Please call me about my order")
    await offline.locator("button[type=submit]").click()
    ticket = page.locator(".lcb-ticket")
    await expect(ticket).to_contain_text("T-")
    async with asyncio.timeout(15):
        while not smtp.handler.received:
            await asyncio.sleep(0.1)
    assert "Please call me about my order" in smtp.handler.received[0].message.get_content()

    await page.evaluate("localStorage.clear()")
    await page.reload()
    await page.locator("button.lcb-launcher").click()
    form = page.locator("form.lcb-form")
    await form.locator("select[name=topic]").select_option("sales")
    await form.locator("button[type=submit]").click()
    await send_line(page, "hello from a logged-in user")
    conversation = bridge.store.open_conversations()[-1]
    assert conversation.visitor.verified and conversation.visitor.identity_id == "cust-7"


async def test_waiting_estimate_and_leaving_a_message_in_chromium(
    make_matrix_bridge, browser: Browser, start_server
) -> None:
    smtp = start_server()
    bridge = await make_matrix_bridge(
        smtp={"host": "127.0.0.1", "port": smtp.port, "starttls": False,
              "from": "Support <support@example.com>"},
        queues=[{"id": "support", "name": "Support", "agents": ["alice"],
                 "helpdesk_email": "helpdesk@example.com",
                 "offer_message_after_minutes": 0.03}])
    seed_answered(bridge, "support", [200, 240, 300])  # median 4 min
    page = await browser.new_page()
    await open_chat(page, f"{bridge.base_url}/demo", "Anna", "anna@example.com")
    status = page.locator(".lcb-status")
    await expect(status).to_have_text("You are number 1 in line · about 4 min")
    instead = page.locator("button.lcb-instead")
    await expect(instead).to_be_hidden()

    await expect(instead).to_be_visible()  # offered after 1.8 s of waiting
    await instead.click()  # nothing written yet: the widget asks for the message first
    await expect(status).to_have_text("Write your message first, then leave it.")
    await send_line(page, "Please send the invoice again")
    await expect(page.locator(".lcb-msg.lcb-visitor.lcb-pending")).to_have_count(0)
    await instead.click()
    ticket = page.locator(".lcb-ticket")
    await expect(ticket).to_contain_text("T-")
    await expect(page.locator(".lcb-rate")).to_have_count(0)  # no survey after a ticket
    await expect(page.locator("button.lcb-new")).to_be_visible()
    async with asyncio.timeout(15):
        while not smtp.handler.received:
            await asyncio.sleep(0.1)
    mail = smtp.handler.received[0].message
    assert (await ticket.text_content() or "").count(mail["Subject"][1:11]) == 1
    assert "Anna: Please send the invoice again" in mail.get_content()
