"""The widget's features in Debian's Chromium: its languages, proactive invitations, the
`LiveChat` API for the host page, the unread badge, links and times in the chat, sneak
peek."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, Page, expect

from bridge.app import Bridge
from bridge.core.models import RoomRef
from tests.integration.conftest import TestAgent
from tests.integration.test_widget_a11y import chat_room, host_site, page_with_tag
from tests.integration.test_widget_browser import open_chat, send_line

STRINGS = Path(__file__).parents[2] / "bridge" / "web" / "strings"
BUILT_IN = ("en", "de", "hu", "pl", "lv", "tr")
INVITE_DELAY_S = 1
INVITE = {"text": "Questions?", "pages": ["/demo*"], "delay_seconds": INVITE_DELAY_S}

# When (ms after the navigation began) the invitation bubble first showed, watched from the
# page's first script on.
BUBBLE_CLOCK = """(() => {
  window.__bubbleAt = null;
  const watch = setInterval(() => {
    const b = document.querySelector('livechat-bridge')?.shadowRoot?.querySelector('.lcb-invite');
    if (b && !b.hidden) { window.__bubbleAt = performance.now(); clearInterval(watch) }
  }, 10);
})()"""

# What the page hears through LiveChat.on().
LISTEN = """() => {
  window.__heard = [];
  for (const e of ['open', 'message', 'ended'])
    LiveChat.on(e, d => window.__heard.push(d === undefined ? [e] : [e, d]));
}"""


def strings(lang: str) -> dict[str, str]:
    texts: dict[str, str] = json.loads((STRINGS / f"{lang}.json").read_text("utf-8"))
    return texts


async def page_in(browser: Browser, url: str, init: str | None = None) -> Page:
    page = await browser.new_page()
    if init:
        await page.add_init_script(init)
    await page.goto(url)
    await expect(page.locator("button.lcb-launcher")).to_be_visible()
    return page


async def untranslated(page: Page) -> list[str]:
    """Keys whose element in the panel came out empty: a text (data-s) or a label (data-a)."""
    empty: list[str] = await page.evaluate("""() => {
      const W = document.querySelector('livechat-bridge').shadowRoot;
      return [...W.querySelectorAll('.lcb-panel [data-s]')].filter(e => !e.textContent.trim())
          .map(e => 's:' + e.dataset.s)
        .concat([...W.querySelectorAll('.lcb-panel [data-a]')]
          .filter(e => !(e.getAttribute('aria-label') || '').trim()).map(e => 'a:' + e.dataset.a));
    }""")
    return empty


async def test_each_language_speaks_its_own_words(make_matrix_bridge, browser: Browser) -> None:
    bridge = await make_matrix_bridge(widget={"strings": {"ar": {"start": "ابدأ"}}})
    for lang in BUILT_IN:
        texts = strings(lang)
        page = await page_in(browser, f"{bridge.base_url}/demo",
                             f"window.LivechatBridge = {{lang: '{lang}'}}")
        await expect(page.locator("button.lcb-launcher")).to_have_text(texts["chat"])
        await page.locator("button.lcb-launcher").click()
        form = page.locator("form.lcb-form")
        await expect(form.locator("button[type=submit]")).to_have_text(texts["start"])
        await expect(form.locator("label.lcb-who span").first).to_have_text(texts["name"])
        await expect(page.locator(".lcb-title")).to_have_text(texts["title"])
        assert await untranslated(page) == [], lang
        widget = page.locator("div.lcb")
        await expect(widget).to_have_attribute("lang", lang)
        await expect(widget).to_have_attribute("dir", "ltr")
        await page.close()

    arabic = await page_in(browser, f"{bridge.base_url}/demo",
                           "window.LivechatBridge = {lang: 'ar'}")
    await arabic.locator("button.lcb-launcher").click()
    await expect(arabic.locator("form.lcb-form button[type=submit]")).to_have_text("ابدأ")
    widget = arabic.locator("div.lcb")
    await expect(widget).to_have_attribute("dir", "rtl")
    await expect(widget).to_have_attribute("lang", "ar")
    assert await untranslated(arabic) == []  # English for what the admin did not write
    direction = await arabic.evaluate("""() => getComputedStyle(document.querySelector(
      'livechat-bridge').shadowRoot.querySelector('.lcb-form')).direction""")
    assert direction == "rtl"


async def bubble_time(page: Page) -> float:
    await page.wait_for_function("() => window.__bubbleAt !== null", timeout=5000)
    at: float = await page.evaluate("window.__bubbleAt")
    return at


async def never_shows(page: Page) -> None:
    """No bubble, waited out on the page's own clock: the widget sets its invitation's timer
    (1 s here) when /v1/status answers, before it shows the launcher that `page_in` waited
    for, so a timer of the same delay set now fires after it; 200 ms more are 20 looks of
    BUBBLE_CLOCK."""
    wait_ms = INVITE_DELAY_S * 1000 + 200
    await page.evaluate("ms => new Promise(done => setTimeout(done, ms))", wait_ms)
    assert await page.evaluate("window.__bubbleAt") is None
    await expect(page.locator(".lcb-invite")).to_be_hidden()


async def test_an_invitation_shows_after_its_delay_and_opens_the_chat(
    make_matrix_bridge, browser: Browser
) -> None:
    bridge = await make_matrix_bridge(widget={"invitations": [INVITE]})
    page = await page_in(browser, f"{bridge.base_url}/demo", BUBBLE_CLOCK)
    shown = await bubble_time(page)
    assert 800 <= shown <= 3000, shown
    bubble = page.locator(".lcb-invite")
    announced = page.locator(".lcb-sr")  # a status region there from the start
    await expect(announced).to_have_attribute("role", "status")
    await expect(announced).to_have_text("Questions?")
    await expect(bubble.locator("button.lcb-inv")).to_have_text("Questions?")
    await bubble.locator("button.lcb-inv").click()
    await expect(page.locator("form.lcb-form")).to_be_visible()
    await expect(bubble).to_be_hidden()


async def test_a_dismissed_invitation_stays_away_in_the_tab(make_matrix_bridge,
                                                            browser: Browser) -> None:
    bridge = await make_matrix_bridge(widget={"invitations": [INVITE]})
    page = await page_in(browser, f"{bridge.base_url}/demo", BUBBLE_CLOCK)
    await bubble_time(page)
    await page.locator(".lcb-invite button.lcb-x").click()
    await expect(page.locator(".lcb-invite")).to_be_hidden()
    await expect(page.locator("button.lcb-launcher")).to_be_focused()
    assert await page.evaluate("Object.keys(sessionStorage)") == [f"lcb:{bridge.base_url}"]
    await page.reload()
    await expect(page.locator("button.lcb-launcher")).to_be_visible()
    await never_shows(page)


async def test_no_invitation_on_excluded_pages(make_matrix_bridge, browser: Browser) -> None:
    excluded = await make_matrix_bridge(widget={"invitations": [
        {**INVITE, "pages": ["*"], "exclude": ["/demo*"]}]})
    demo = await page_in(browser, f"{excluded.base_url}/demo", BUBBLE_CLOCK)

    async with host_site() as (site, pages):
        bridge = await make_matrix_bridge(allowed_origins=[site], widget={"invitations": [
            {**INVITE, "pages": ["*"]}]})  # the default exclude: /checkout*
        pages["/checkout"] = page_with_tag(bridge.base_url, title="Checkout")
        pages["/cart"] = page_with_tag(bridge.base_url, title="Cart")
        checkout = await page_in(browser, f"{site}/checkout", BUBBLE_CLOCK)
        # Each page waits on its own clock: the two waits at once.
        await asyncio.gather(never_shows(demo), never_shows(checkout))
        cart = await page_in(browser, f"{site}/cart", BUBBLE_CLOCK)
        assert await bubble_time(cart) >= 800


async def test_no_invitation_while_nobody_can_take_a_chat(
        make_matrix_bridge, matrix_agent: TestAgent, browser: Browser) -> None:
    """Alice's client syncs meanwhile (matrix_agent): online, she is taken off only by the
    closed queue, then by her break."""
    today = datetime.now(UTC).date()
    closed = await make_matrix_bridge(widget={"invitations": [INVITE]}, queues=[
        {"id": "support", "name": "Support", "agents": ["alice"],
         "holidays": [str(today), str(today + timedelta(days=1))]}])
    holiday = await page_in(browser, f"{closed.base_url}/demo", BUBBLE_CLOCK)

    bridge = await make_matrix_bridge(widget={"invitations": [INVITE]}, queues=[
        {"id": "support", "name": "Support", "agents": ["alice"]}])
    bridge.store.set_break("alice", True)  # her only agent is on a break
    on_break = await page_in(browser, f"{bridge.base_url}/demo", BUBBLE_CLOCK)
    # Each page has asked /v1/status (its launcher shows) and waits on its own clock.
    await asyncio.gather(never_shows(holiday), never_shows(on_break))
    bridge.store.set_break("alice", False)
    back = await page_in(browser, f"{bridge.base_url}/demo", BUBBLE_CLOCK)
    assert await bubble_time(back) >= 800


async def test_the_page_invites_on_its_own(make_matrix_bridge, browser: Browser) -> None:
    bridge = await make_matrix_bridge()
    page = await page_in(browser, f"{bridge.base_url}/demo")
    await expect(page.locator(".lcb-invite")).to_be_hidden()
    await page.evaluate("LiveChat.invite('Hi there')")
    await expect(page.locator(".lcb-invite button.lcb-inv")).to_have_text("Hi there")
    await expect(page.locator(".lcb-invite")).to_be_visible()


async def heard(page: Page) -> list[list[Any]]:
    events: list[list[Any]] = await page.evaluate("window.__heard")
    return events


async def agent_in_chat(bridge: Bridge, page: Page, agent: TestAgent) -> RoomRef:
    """The agent joins the room of the page's chat (once the visitor sees it): the room."""
    room = await chat_room(bridge, page)
    await agent.join(room)
    await expect(page.locator(".lcb-msg.lcb-system").filter(has_text="Alice joined")) \
        .to_have_count(1)
    return room


async def test_the_javascript_api(make_matrix_bridge, matrix_agent: TestAgent,
                                  browser: Browser) -> None:
    bridge = await make_matrix_bridge()
    page = await page_in(browser, f"{bridge.base_url}/demo")
    await page.evaluate(LISTEN)
    panel = page.locator(".lcb-panel")
    await page.evaluate("LiveChat.open()")
    await expect(panel).to_be_visible()
    assert await heard(page) == [["open"]]
    await page.evaluate("LiveChat.close()")
    await expect(panel).to_be_hidden()
    await expect(page.locator("button.lcb-launcher")).to_have_attribute("aria-expanded", "false")

    await page.evaluate("LiveChat.open()")
    await expect(panel).to_be_visible()
    form = page.locator("form.lcb-form")
    await form.locator("input[name=name]").fill("Anna")
    await form.locator("input[name=email]").fill("anna@example.com")
    await form.locator("button[type=submit]").click()
    room = await agent_in_chat(bridge, page, matrix_agent)
    await matrix_agent.say(room, "Hello from Alice")
    await page.wait_for_function("() => window.__heard.some(e => e[1]?.from == 'agent')")
    agent_lines = [e[1] for e in await heard(page) if e[0] == "message"
                   and e[1]["from"] == "agent"]
    assert [(m["from"], m["text"]) for m in agent_lines] == [("agent", "Hello from Alice")]
    await matrix_agent.say(room, "!end")
    await page.wait_for_function("() => window.__heard.some(e => e[0] == 'ended')")
    events = [e[0] for e in await heard(page)]
    assert events.count("open") == 2 and events.count("ended") == 1
    assert events.index("ended") > events.index("message")


async def test_unread_badge(make_matrix_bridge, matrix_agent: TestAgent, browser: Browser
                            ) -> None:
    bridge = await make_matrix_bridge()
    page = await browser.new_page()
    await open_chat(page, f"{bridge.base_url}/demo", "Anna", "anna@example.com")
    room = await agent_in_chat(bridge, page, matrix_agent)
    launcher = page.locator("button.lcb-launcher")
    badge = launcher.locator(".lcb-badge")
    await page.evaluate("LiveChat.close()")
    await expect(page.locator(".lcb-panel")).to_be_hidden()
    await expect(badge).to_be_hidden()

    await matrix_agent.say(room, "Are you still there?")
    await expect(badge).to_be_visible()
    await expect(badge).to_have_text("1")
    label = await launcher.get_attribute("aria-label") or ""
    assert "1 unread" in label, label

    await launcher.click()
    await expect(page.locator(".lcb-msg.lcb-agent .lcb-text")).to_have_text(
        ["Are you still there?"])
    await expect(badge).to_be_hidden()
    assert "unread" not in (await launcher.get_attribute("aria-label") or "")


async def test_links_and_times_in_the_chat(make_matrix_bridge, matrix_agent: TestAgent,
                                           browser: Browser) -> None:
    bridge = await make_matrix_bridge()
    page = await browser.new_page()
    await open_chat(page, f"{bridge.base_url}/demo", "Anna", "anna@example.com")
    await send_line(page, "Where is the size guide?")
    room = await agent_in_chat(bridge, page, matrix_agent)
    line = "see https://example.com/a?b=1 and javascript:alert(1) and mailto:x@example.com."
    await matrix_agent.say(room, line)
    text = page.locator(".lcb-msg.lcb-agent .lcb-text")
    await expect(text).to_have_text([line])
    links = await text.evaluate("""t => [...t.querySelectorAll('a')].map(a => ({
      href: a.getAttribute('href'), text: a.textContent, rel: a.rel.split(' '),
      target: a.target}))""")
    assert [(a["href"], a["text"]) for a in links] == [
        ("https://example.com/a?b=1", "https://example.com/a?b=1"),
        ("mailto:x@example.com", "mailto:x@example.com")]
    assert all("noopener" in a["rel"] and a["target"] == "_blank" for a in links), links
    assert await text.evaluate("t => t.textContent") == line

    await expect(page.locator(".lcb-msg.lcb-visitor.lcb-pending")).to_have_count(0)
    times = await page.evaluate("""() => [...document.querySelector('livechat-bridge').shadowRoot
      .querySelectorAll('.lcb-msg.lcb-agent, .lcb-msg.lcb-visitor')].map(m => {
        const t = m.querySelectorAll('time.lcb-time');
        return {kind: m.classList.contains('lcb-agent') ? 'agent' : 'visitor', count: t.length,
                datetime: t[0]?.getAttribute('datetime') || '', shown: t[0]?.textContent || ''};
      })""")
    assert [t["kind"] for t in times] == ["visitor", "agent"]
    now = datetime.now(UTC)
    for t in times:
        assert t["count"] == 1 and t["shown"].strip(), t
        stamp = datetime.fromisoformat(t["datetime"].replace("Z", "+00:00"))
        assert abs((now - stamp).total_seconds()) < 120, t


async def test_sneak_peek_tells_the_visitor_and_shows_the_agent(
        make_matrix_bridge, matrix_agent: TestAgent, browser: Browser) -> None:
    bridge = await make_matrix_bridge(queues=[
        {"id": "support", "name": "Support", "agents": ["alice"], "peek": True}])
    page = await browser.new_page()
    await open_chat(page, f"{bridge.base_url}/demo", "Anna", "anna@example.com")
    room = await agent_in_chat(bridge, page, matrix_agent)
    await expect(page.locator(".lcb-peek")).to_have_text(strings("en")["peek"])
    await page.locator("form.lcb-compose textarea").press_sequentially("Where is my parcel")
    # The first keystroke's preview, then (edited in place) the whole draft.
    await matrix_agent.until(lambda: any(text.endswith("✍ Where is my parcel")
                                         for text in matrix_agent.texts(room, notice=True)),
                             timeout=10)

    await bridge.stop()  # the next one runs on the same database and bot account
    plain = await make_matrix_bridge()  # peek off: no note, no drafts
    other = await browser.new_page()
    await open_chat(other, f"{plain.base_url}/demo", "Ben", "ben@example.com")
    await expect(other.locator("form.lcb-compose")).to_be_visible()
    await expect(other.locator(".lcb-peek")).to_be_hidden()


async def test_the_consent_line_must_be_ticked_in_the_visitors_language(
        make_matrix_bridge, browser: Browser) -> None:
    bridge = await make_matrix_bridge(widget={"strings": {
        "consent": "I agree that my messages are stored.",
        "de": {"consent": "Ich bin einverstanden, dass meine Nachrichten gespeichert werden."}}})
    page = await page_in(browser, f"{bridge.base_url}/demo", "window.LivechatBridge = {lang: 'de'}")
    await page.locator("button.lcb-launcher").click()
    form = page.locator("form.lcb-form")
    await expect(form.locator(".lcb-consent")).to_contain_text("Ich bin einverstanden")
    await form.locator("input[name=name]").fill("Jana")
    await form.locator("input[name=email]").fill("jana@example.com")
    await form.locator("button[type=submit]").click()
    await page.wait_for_timeout(500)
    assert await page.evaluate("Object.keys(localStorage)") == []  # not started unticked
    await form.locator("input[name=consent]").check()
    await form.locator("button[type=submit]").click()
    await expect(page.locator("form.lcb-compose")).to_be_visible()


async def test_the_tag_presets_language_and_topic(make_matrix_bridge, browser: Browser) -> None:
    async with host_site() as (site, pages):
        bridge = await make_matrix_bridge(allowed_origins=[site], queues=[
            {"id": "support", "name": "Support", "agents": ["alice"]},
            {"id": "sales", "name": "Sales", "agents": ["bob"]}])
        pages["/shop"] = page_with_tag(bridge.base_url, {"lang": "pl", "queue": "sales"})
        page = await page_in(browser, f"{site}/shop")
        await page.locator("button.lcb-launcher").click()
        form = page.locator("form.lcb-form")
        await expect(form.locator("button[type=submit]")).to_have_text(strings("pl")["start"])
        await expect(form.locator("select[name=topic]")).to_have_value("sales")


# Counts the tones the widget plays (an AudioContext each), from the page's first script.
COUNT_TONES = """(() => {
  window.__tones = 0;
  const Real = window.AudioContext;
  window.AudioContext = function (...a) { window.__tones++; return new Real(...a) };
})()"""


async def test_a_tone_for_an_agent_line_only_when_switched_on(
        make_matrix_bridge, matrix_agent: TestAgent, browser: Browser) -> None:
    for sound, tones in ((True, 1), (False, 0)):
        bridge = await make_matrix_bridge(widget={"sound": sound})
        page = await browser.new_page()
        await page.add_init_script(COUNT_TONES)
        await open_chat(page, f"{bridge.base_url}/demo", "Anna", "anna@example.com")
        room = await agent_in_chat(bridge, page, matrix_agent)
        await page.evaluate("LiveChat.close()")
        await expect(page.locator(".lcb-panel")).to_be_hidden()
        await matrix_agent.say(room, f"Back in a minute ({sound})")
        await expect(page.locator(".lcb-badge")).to_have_text("1", timeout=20_000)
        assert await page.evaluate("window.__tones") == tones, sound
        await page.close()
        await bridge.stop()  # the next one runs on the same database and bot account


async def test_phone_fields_do_not_make_the_page_zoom(make_matrix_bridge, browser: Browser
                                                      ) -> None:
    """iOS zooms into a focused field under 16 px; the panel's fields are 16 px there."""
    bridge = await make_matrix_bridge()
    page = await browser.new_page(viewport={"width": 375, "height": 700})
    await page.goto(f"{bridge.base_url}/demo")
    await page.locator("button.lcb-launcher").click()
    form = page.locator("form.lcb-form")
    await expect(form).to_be_visible()
    sizes = await form.locator("input, select").evaluate_all(
        "els => els.filter(e => e.checkVisibility())"
        ".map(e => parseFloat(getComputedStyle(e).fontSize))")
    assert sizes and min(sizes) >= 16, sizes
