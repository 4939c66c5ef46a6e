"""WCAG 2.2 AA promises of the widget, measured in Debian's Chromium on the demo page (whose
hostile CSS must not reach the widget), in light and dark, on a desktop and a phone width."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp import web
from playwright.async_api import Browser, Page, expect

from bridge.app import Bridge
from bridge.core.models import RoomRef
from tests.integration.conftest import TestAgent, room_of

Box = dict[str, Any]

# The deepest focused element: document.activeElement is only the shadow host.
FOCUSED = """() => {
  let e = document.activeElement;
  while (e && e.shadowRoot && e.shadowRoot.activeElement) e = e.shadowRoot.activeElement;
  if (!e || e === document.body || e === document.documentElement) return {where: 'none'};
  return {where: e.getRootNode() === document ? 'page' : 'widget', tag: e.tagName.toLowerCase(),
          cls: e.getAttribute('class') || '', name: e.getAttribute('name') || '',
          text: (e.textContent || '').trim().slice(0, 40)};
}"""

# Contrast as WCAG computes it, from computed colours: backgrounds are composited from the
# element up to the first opaque one, and group opacity is applied on the way up.
COLOURS = r"""
const W = document.querySelector('livechat-bridge').shadowRoot;
const up = e => e.parentElement || (e.parentNode instanceof ShadowRoot ? e.parentNode.host : null);
const parse = s => {
  const m = /rgba?\(([^)]*)\)/.exec(s || '');
  if (!m) return [0, 0, 0, 0];
  const p = m[1].split(/[\s,\/]+/).filter(Boolean).map(Number.parseFloat);
  return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
};
const mix = (c, d, o) => [0, 1, 2].map(i => c[i] * o + d[i] * (1 - o)).concat(1);
const over = (top, under) => mix(top, under, top[3]);
const inside = e => {
  const layers = [];
  for (let a = e; a; a = up(a)) {
    const c = parse(getComputedStyle(a).backgroundColor);
    if (c[3] > 0) layers.push(c);
    if (c[3] >= 1) break;
  }
  return layers.reverse().reduce((under, c) => over(c, under), [255, 255, 255, 1]);
};
const seen = (e, c) => {
  for (let a = e; a; a = up(a)) {
    const o = +getComputedStyle(a).opacity;
    if (o < 1) c = mix(c, inside(up(a) || a), o);
  }
  return c;
};
const linear = v => (v /= 255) <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
const lum = c => 0.2126 * linear(c[0]) + 0.7152 * linear(c[1]) + 0.0722 * linear(c[2]);
const ratio = (a, b) => {
  const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p);
  return (x + 0.05) / (y + 0.05);
};
const contrast = (e, colour, bg = inside(e)) =>
  ratio(seen(e, over(parse(colour), bg)), seen(e, bg));
const name = e => e.tagName.toLowerCase() + [...e.classList].map(c => '.' + c).join('');
"""

# Every visible text in a part of the widget (own text nodes, field values, placeholders)
# and every icon, each with the contrast it needs.
TEXT_CONTRAST = "selector => {" + COLOURS + r"""
  const out = [];
  for (const e of W.querySelectorAll(selector + ', ' + selector + ' *')) {
    if (!e.checkVisibility({visibilityProperty: true}) || e.closest(':disabled')) continue;
    const style = getComputedStyle(e);
    if (parseFloat(style.fontSize) == 0 || !e.getClientRects().length) continue;
    const field = e.matches('input:not([type=checkbox]), textarea, select');
    const own = [...e.childNodes].some(n => n.nodeType == 3 && n.textContent.trim());
    const text = (field ? e.value : e.textContent).trim().slice(0, 40), need = 4.5;
    if (own || field && e.value) out.push({what: name(e), text, need,
      ratio: contrast(e, style.color)});
    if (field && !e.value && e.placeholder) out.push({what: name(e) + '::placeholder', need,
      text: e.placeholder, ratio: contrast(e, getComputedStyle(e, '::placeholder').color)});
    if (e.matches('svg')) out.push({what: name(up(e)) + ' svg', text: '', need: 3,
      ratio: contrast(e, style.stroke)});  // an icon: 3:1 (1.4.11)
  }
  return out;
}"""

# The launcher's label and icon against the launcher.
LAUNCHER_CONTRAST = "() => {" + COLOURS + r"""
  const b = W.querySelector('.lcb-launcher');
  return {label: contrast(b.querySelector('span'), getComputedStyle(b.querySelector('span')).color),
          icon: contrast(b, getComputedStyle(b.querySelector('svg')).stroke),
          text: b.textContent.trim()};
}"""

# The focused control's outline against what surrounds it (the panel, or the header).
FOCUS_RING = "selector => {" + COLOURS + r"""
  const e = W.querySelector(selector);
  e.focus();
  const s = getComputedStyle(e);
  return {visible: e.matches(':focus-visible'), style: s.outlineStyle,
          width: parseFloat(s.outlineWidth), ratio: contrast(e, s.outlineColor, inside(up(e)))};
}"""

# Every visible target in the widget, but links inside message text (inline, exempt).
TARGETS = """() => {
  const W = document.querySelector('livechat-bridge').shadowRoot;
  return [...W.querySelectorAll('button, input, select, textarea, a[href]')]
    .filter(e => e.checkVisibility({visibilityProperty: true}) && !e.closest('.lcb-text'))
    .map(e => {
      // a checkbox is clicked through its whole label
      const r = (e.type == 'checkbox' && e.closest('label') || e).getBoundingClientRect();
      return {what: e.tagName.toLowerCase() + '.' + (e.className || e.name || e.type),
              width: r.width, height: r.height};
    });
}"""

# The host page's focused element: how much of it the widget leaves visible.
HOST_FOCUS = """() => {
  const e = document.activeElement;
  if (!e || e === document.body || e.shadowRoot) return null;
  const r = e.getBoundingClientRect();
  const l = document.querySelector('livechat-bridge').shadowRoot
    .querySelector('.lcb-launcher').getBoundingClientRect();
  const points = [[.5, .5], [0, 0], [1, 0], [0, 1], [1, 1]]
    .map(([x, y]) => [r.left + 1 + x * (r.width - 2), r.top + 1 + y * (r.height - 2)]);
  return {what: e.tagName.toLowerCase() + ' ' + e.textContent.trim().slice(0, 30),
          shown: points.filter(([x, y]) => {
            const hit = document.elementFromPoint(x, y);
            return hit && (hit === e || e.contains(hit));
          }).length,
          under_launcher: r.left >= l.left && r.right <= l.right && r.top >= l.top
            && r.bottom <= l.bottom};
}"""

# The panel's opening animation (if any) is over.
SETTLED = """() => document.querySelector('livechat-bridge').shadowRoot.querySelector('.lcb-panel')
  .getAnimations().length == 0"""

# What does not fit the screen's width: a part of the panel that scrolls sideways, or an
# element of the panel reaching past the viewport's edges (the widget is fixed: what sticks
# out is cut off, not scrolled to).
SIDEWAYS = """() => {
  const W = document.querySelector('livechat-bridge').shadowRoot;
  const vw = document.documentElement.clientWidth, all = W.querySelectorAll('.lcb-panel *');
  return [...W.querySelectorAll('.lcb-panel, .lcb-panel > *')]
    .filter(e => e.scrollWidth > e.clientWidth).map(e => 'scrolls: ' + e.className)
    .concat([...all].filter(e => e.checkVisibility()).filter(e => {
      const r = e.getBoundingClientRect();
      return r.width && (r.left < -0.5 || r.right > vw + 0.5);
    }).map(e => 'cut off: ' + e.tagName.toLowerCase() + ' ' + e.getAttribute('class')));
}"""

# A part of the widget: its box and whether its centre is itself (nothing over it).
PLACED = """selector => {
  const W = document.querySelector('livechat-bridge').shadowRoot;
  const e = W.querySelector(selector), r = e.getBoundingClientRect();
  const hit = W.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
  return {left: r.left, top: r.top, right: r.right, bottom: r.bottom,
          on_top: !!hit && (hit === e || e.contains(hit)),
          vw: document.documentElement.clientWidth, vh: document.documentElement.clientHeight};
}"""


async def demo_page(browser: Browser, bridge: Bridge, width: int = 1280, height: int = 800,
                    scale: float = 1, **context: Any) -> Page:
    ctx = await browser.new_context(viewport={"width": width, "height": height},
                                    device_scale_factor=scale, **context)
    page = await ctx.new_page()
    await page.goto(f"{bridge.base_url}/demo")
    await expect(page.locator("button.lcb-launcher")).to_be_visible()
    return page


async def open_form(page: Page) -> None:
    await page.locator("button.lcb-launcher").click()
    await expect(page.locator("form.lcb-form input[name=name]")).to_be_focused()
    await page.wait_for_function(SETTLED)


async def start_chat(page: Page, name: str = "Anna") -> None:
    form = page.locator("form.lcb-form")
    await form.locator("input[name=name]").fill(name)
    await form.locator("input[name=email]").fill("anna@example.com")
    await form.locator("button[type=submit]").click()
    await expect(page.locator("form.lcb-compose")).to_be_visible()


async def focused(page: Page) -> dict[str, str]:
    found: dict[str, str] = await page.evaluate(FOCUSED)
    return found


async def ax_roles(page: Page) -> list[str]:
    """The roles in Chromium's accessibility tree (what a screen reader is told about)."""
    cdp = await page.context.new_cdp_session(page)
    tree = await cdp.send("Accessibility.getFullAXTree")
    await cdp.detach()
    return [n["role"]["value"] for n in tree["nodes"] if not n.get("ignored") and "role" in n]


async def chat_room(bridge: Bridge, page: Page) -> RoomRef:
    """The room of the page's chat: its id is in the widget's entry once the chat started."""
    started = await page.wait_for_function(
        "key => JSON.parse(localStorage.getItem(key) || '{}').conversation",
        arg=f"lcb:{bridge.base_url}")
    return await room_of(bridge, str(await started.json_value()))


def size(path: Path) -> int:
    return path.stat().st_size


async def shot(page: Page, path: Path) -> None:
    await page.screenshot(path=str(path))
    assert size(path) > 0


async def test_the_log_and_the_status_line_are_live_regions_from_the_start(
    make_matrix_bridge, browser: Browser, tmp_path: Path
) -> None:
    bridge = await make_matrix_bridge()
    page = await demo_page(browser, bridge)
    await open_form(page)
    await shot(page, tmp_path / "pre-chat-light.png")
    regions = page.locator(".lcb-panel [role=log], .lcb-panel [role=status]")
    await expect(regions).to_have_count(3)  # the log, the status line, the typing line
    await expect(page.locator(".lcb-panel [role=log]")).to_have_attribute("aria-live", "polite")
    assert await page.locator(".lcb-msg").count() == 0
    # A live region is watched only once it is in the accessibility tree: the status line
    # (which also carries the pre-chat form's errors) must be there, empty, before it speaks.
    roles_on_opening = await ax_roles(page)

    await page.evaluate("""() => {
      const log = document.querySelector('livechat-bridge').shadowRoot.querySelector('.lcb-log');
      window.__logShownAtFirstLine = null;
      new MutationObserver((_, o) => {
        window.__logShownAtFirstLine = log.checkVisibility();
        o.disconnect();
      }).observe(log, {childList: true});
    }""")
    await start_chat(page)
    await expect(page.locator(".lcb-msg.lcb-system").first).to_contain_text("Hi Anna")
    assert await page.evaluate("window.__logShownAtFirstLine") is True
    roles = await ax_roles(page)
    assert "log" in roles and "status" in roles
    assert "status" in roles_on_opening, "the status line is not in the accessibility tree"


async def test_keyboard_only_journey(make_matrix_bridge, browser: Browser) -> None:
    bridge = await make_matrix_bridge()
    page = await demo_page(browser, bridge)
    keys = page.keyboard
    for _ in range(12):  # the page's own links and buttons come first
        await keys.press("Tab")
        if (await focused(page))["cls"] == "lcb-launcher":
            break
    assert await focused(page) == {"where": "widget", "tag": "button", "cls": "lcb-launcher",
                                   "name": "", "text": "Chat with us"}

    await keys.press("Enter")
    await expect(page.locator(".lcb-panel")).to_be_visible()
    await expect(page.locator("form.lcb-form input[name=name]")).to_be_focused()
    await keys.type("Anna")
    await keys.press("Tab")
    assert (await focused(page))["name"] == "email"
    await keys.type("anna@example.com")
    await keys.press("Enter")
    await expect(page.locator("form.lcb-compose textarea")).to_be_focused()
    await keys.type("Hello by keyboard")
    await keys.press("Enter")
    await expect(page.locator(".lcb-msg.lcb-visitor .lcb-text")).to_have_text(
        ["Hello by keyboard"])
    await expect(page.locator(".lcb-msg.lcb-visitor.lcb-pending")).to_have_count(0)

    await keys.press("Escape")
    await expect(page.locator(".lcb-panel")).to_be_hidden()
    assert (await focused(page))["cls"] == "lcb-launcher"
    await expect(page.locator("button.lcb-launcher")).to_have_attribute("aria-expanded", "false")

    await keys.press("Enter")  # back in, on the compose box
    await expect(page.locator("form.lcb-compose textarea")).to_be_focused()
    path = []
    for _ in range(10):  # forwards: the send button, the launcher, then out to the page
        await keys.press("Tab")
        now = await focused(page)
        path.append(now)
        if now["where"] != "widget":
            break
    assert path[-1]["where"] != "widget", path
    assert any(p["cls"] == "lcb-launcher" for p in path)
    for _ in range(12):  # and the page's own controls are reached again
        if (await focused(page))["where"] == "page":
            break
        await keys.press("Tab")
    assert (await focused(page))["where"] == "page"

    await page.locator("button.lcb-end").focus()  # backwards out of the panel's first control
    for _ in range(6):
        await keys.press("Shift+Tab")
        if (await focused(page))["where"] == "page":
            break
    assert (await focused(page))["where"] == "page"


async def test_targets_are_at_least_24_px(make_matrix_bridge, matrix_agent: TestAgent,
                                          browser: Browser) -> None:
    bridge = await make_matrix_bridge(widget={"strings": {"consent": "I agree."}})
    small: list[tuple[int, Box]] = []
    for width in (1280, 375):
        page = await demo_page(browser, bridge, width=width)
        await page.evaluate("LiveChat.invite('Questions? Ask us.')")
        await expect(page.locator(".lcb-invite")).to_be_visible()
        measured = await page.evaluate(TARGETS)
        await open_form(page)
        measured += await page.evaluate(TARGETS)
        await page.locator("form.lcb-form input[name=consent]").check()
        await start_chat(page)
        await page.locator("form.lcb-compose textarea").fill("see https://example.com")
        await page.locator("form.lcb-compose textarea").press("Enter")
        room = await chat_room(bridge, page)
        await matrix_agent.join(room)
        await matrix_agent.say(room, "Look at https://example.com/size-guide please")
        await expect(page.locator(".lcb-msg.lcb-agent a")).to_have_count(1)
        await page.locator("button.lcb-end").click()  # the confirmation bar's buttons too
        measured += await page.evaluate(TARGETS)
        kinds = {m["what"] for m in measured}
        assert {"button.lcb-launcher", "button.lcb-x", "button.lcb-inv", "input.name",
                "input.consent", "button.lcb-min", "textarea.text", "button.lcb-end",
                "button.lcb-link"} <= kinds, kinds
        small += [(width, m) for m in measured if m["width"] < 24 or m["height"] < 24]
    assert small == []


async def text_contrast(page: Page, selector: str) -> list[Box]:
    found: list[Box] = await page.evaluate(TEXT_CONTRAST, selector)
    assert found, f"no text measured in {selector}"
    return found


async def test_contrast_of_text_icons_and_focus(make_matrix_bridge, matrix_agent: TestAgent,
                                                browser: Browser, tmp_path: Path) -> None:
    bridge = await make_matrix_bridge()
    page = await demo_page(browser, bridge)
    await page.evaluate("LiveChat.invite('Questions? Ask us.')")
    low: list[Any] = []
    for scheme in ("light", "dark"):
        await page.emulate_media(color_scheme=scheme)
        launcher = await page.evaluate(LAUNCHER_CONTRAST)
        assert launcher["text"] == "Chat with us"
        if min(launcher["label"], launcher["icon"]) < 4.5:
            low.append((scheme, "launcher", launcher))
        low += [(scheme, t) for t in await text_contrast(page, ".lcb-invite")
                if t["ratio"] < t["need"]]

    await open_form(page)
    rings: list[tuple[str, str, Box]] = []
    for scheme in ("light", "dark"):
        await page.emulate_media(color_scheme=scheme)
        low += [(scheme, t) for t in await text_contrast(page, ".lcb-panel")
                if t["ratio"] < t["need"]]
        await page.keyboard.press("Shift")  # focus from the keyboard: the ring shows
        for control in ("form.lcb-form input[name=name]", "form.lcb-form button[type=submit]",
                        ".lcb-to-offline", "button.lcb-min"):
            rings.append((scheme, control, await page.evaluate(FOCUS_RING, control)))

    await page.emulate_media(color_scheme="light")
    await start_chat(page)
    await page.locator("form.lcb-compose textarea").fill("Is the tea organic?")
    await page.locator("form.lcb-compose textarea").press("Enter")
    await expect(page.locator(".lcb-status")).to_have_text("You are number 1 in line")
    for scheme in ("light", "dark"):  # the waiting line's status
        await page.emulate_media(color_scheme=scheme)
        low += [(scheme, t) for t in await text_contrast(page, ".lcb-status")
                if t["ratio"] < t["need"]]
    await page.emulate_media(color_scheme="light")
    room = await chat_room(bridge, page)
    await matrix_agent.join(room)
    await matrix_agent.say(room, "Yes, all of it: https://example.com/tea")
    await expect(page.locator(".lcb-msg.lcb-agent")).to_have_count(1)
    await expect(page.locator(".lcb-msg.lcb-visitor.lcb-pending")).to_have_count(0)
    await matrix_agent.set_typing(room, True)
    await expect(page.locator(".lcb-typing")).to_contain_text("Alice")
    for scheme in ("light", "dark"):
        await page.emulate_media(color_scheme=scheme)
        measured = await text_contrast(page, ".lcb-panel")
        assert {"div.lcb-name", "time.lcb-time", "div.lcb-typing",
                "textarea::placeholder"} <= {t["what"] for t in measured}, measured
        low += [(scheme, t) for t in measured if t["ratio"] < t["need"]]
        await page.keyboard.press("Shift")
        for control in ("form.lcb-compose textarea", "form.lcb-compose button",
                        "button.lcb-end"):
            rings.append((scheme, control, await page.evaluate(FOCUS_RING, control)))
    await shot(page, tmp_path / "chat-dark.png")

    assert low == [], "\n".join(map(str, low))
    assert all(r["visible"] and r["style"] != "none" and r["width"] >= 2 for _, _, r in rings), \
        rings
    assert [(s, c, round(r["ratio"], 2)) for s, c, r in rings if r["ratio"] < 3] == []


async def tab_through_host_page(page: Page) -> list[Box]:
    """Tabs from the top until the widget has the focus; each host control as it was."""
    seen: list[Box] = []
    for _ in range(15):
        await page.keyboard.press("Tab")
        if (await focused(page))["where"] == "widget":
            return seen
        state = await page.evaluate(HOST_FOCUS)
        if state is not None:
            seen.append(state)
    raise AssertionError(f"the launcher was never reached: {seen}")


async def test_reflow_and_focus_not_hidden_by_the_launcher(
    make_matrix_bridge, browser: Browser, tmp_path: Path
) -> None:
    bridge = await make_matrix_bridge()
    # A phone at 320 CSS px, and a 1280 × 1024 desktop at 400 % zoom. Browser zoom shrinks the
    # viewport in CSS px (here to 320 × 256) at four device pixels each: media queries, vw/dvh
    # and the fixed shadow host see exactly that. CSS `zoom` on the page's root would instead
    # scale boxes inside an unchanged 1280 px viewport, so the widget's narrow-screen layout
    # would never apply; hence the viewport emulation.
    for width, height, scale in ((320, 640, 1), (320, 256, 4)):
        page = await demo_page(browser, bridge, width=width, height=height, scale=scale)
        host = await tab_through_host_page(page)
        assert len(host) == 6, host  # three nav links, two buttons, the mail page link
        hidden = [h for h in host if h["shown"] == 0 or h["under_launcher"]]
        assert hidden == [], f"at {width} x {height}: {hidden}"

        await open_form(page)
        await start_chat(page)
        panel = await page.evaluate(PLACED, ".lcb-panel")
        assert (panel["left"], panel["top"]) == (0, 0)
        assert await page.evaluate(SIDEWAYS) == []
        assert (panel["right"], panel["bottom"]) == (panel["vw"], panel["vh"]), panel
        for part in ("form.lcb-compose textarea", "form.lcb-compose button"):
            box = await page.evaluate(PLACED, part)
            assert box["on_top"], (part, box)
            assert box["left"] >= 0 and box["top"] >= 0, (part, box)
            assert box["right"] <= box["vw"] and box["bottom"] <= box["vh"], (part, box)
        await expect(page.locator("button.lcb-launcher")).to_be_hidden()  # under the panel
        await page.locator("form.lcb-compose textarea").fill("typed on a phone")
        await page.locator("form.lcb-compose button").click()
        await expect(page.locator(".lcb-msg.lcb-visitor .lcb-text")).to_have_text(
            ["typed on a phone"])
        if scale == 1:
            await shot(page, tmp_path / "mobile-full-screen.png")


async def test_reduced_motion_opens_without_animation(make_matrix_bridge, browser: Browser
                                                     ) -> None:
    bridge = await make_matrix_bridge()
    moving = await demo_page(browser, bridge, reduced_motion="no-preference")
    await open_form(moving)
    assert await moving.evaluate("""() => getComputedStyle(document.querySelector('livechat-bridge')
      .shadowRoot.querySelector('.lcb-panel')).animationName""") == "lcb-in"

    still = await demo_page(browser, bridge, reduced_motion="reduce")
    await still.locator("button.lcb-launcher").click()
    await expect(still.locator(".lcb-panel")).to_be_visible()
    state = await still.evaluate("""() => {
      const W = document.querySelector('livechat-bridge').shadowRoot;
      const panel = W.querySelector('.lcb-panel');
      return {running: W.getAnimations().length + panel.getAnimations({subtree: true}).length,
              names: [panel, ...panel.querySelectorAll('*')]
                .map(e => getComputedStyle(e).animationName).filter(n => n != 'none')};
    }""")
    assert state == {"running": 0, "names": []}


def identity_hash(secret: str, user: str) -> str:
    return hmac.new(secret.encode(), user.encode(), hashlib.sha256).hexdigest()


async def verified_form_starts(page: Page, bridge: Bridge, user: str) -> None:
    """The pre-chat form asks nothing the site vouched for, and the chat starts verified."""
    await page.locator("button.lcb-launcher").click()
    form = page.locator("form.lcb-form")
    await expect(form.locator(".lcb-verified")).to_have_text("Chatting as Vera")
    await expect(form.locator("input[name=name]")).to_be_hidden()
    await expect(form.locator("input[name=email]")).to_be_hidden()
    await expect(form.locator(".lcb-who")).to_have_count(2)
    assert await form.locator(".lcb-who:visible").count() == 0
    await form.locator("button[type=submit]").click()
    await expect(page.locator("form.lcb-compose")).to_be_visible()
    await page.locator("form.lcb-compose textarea").fill("hello as Vera")
    await page.locator("form.lcb-compose textarea").press("Enter")
    await expect(page.locator(".lcb-msg.lcb-visitor.lcb-pending")).to_have_count(0)
    conversation = next(c for c in bridge.store.open_conversations()
                        if c.visitor.identity_id == user)
    assert conversation.visitor.verified
    assert (conversation.visitor.name, conversation.visitor.email) == ("Vera",
                                                                       "vera@example.com")


@asynccontextmanager
async def host_site() -> AsyncIterator[tuple[str, dict[str, str]]]:
    """A site of its own on loopback (another origin than the bridge's): its origin, and its
    pages by path, to be filled in once the bridge (which must allow the origin) runs."""
    pages: dict[str, str] = {}

    async def serve(request: web.Request) -> web.Response:
        if request.path not in pages:
            raise web.HTTPNotFound()
        return web.Response(text=pages[request.path], content_type="text/html")

    app = web.Application()
    app.router.add_get("/{tail:.*}", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}", pages
    finally:
        await runner.cleanup()


def page_with_tag(base_url: str, data: dict[str, str] | None = None, title: str = "Shop") -> str:
    """A page of the site with the widget tag (and its data- attributes)."""
    attributes = " ".join(f'data-{k}="{v}"' for k, v in (data or {}).items())
    return (f"<!doctype html><html lang='en'><title>{title}</title><h1>{title}</h1>"
            "<p><a href='#top'>Back to the top</a></p>"
            f"<script src='{base_url}/widget.js' {attributes} async></script>")


async def test_a_verified_visitor_is_not_asked_again(make_matrix_bridge, browser: Browser
                                                    ) -> None:
    secret = "shop-secret-for-the-widget"
    async with host_site() as (site, pages):
        bridge = await make_matrix_bridge(identity=secret, allowed_origins=[site])
        page = await browser.new_page()
        await page.add_init_script(
            "window.LivechatBridge = {identity: {id: 'cust-7', name: 'Vera', "
            f"email: 'vera@example.com', hash: '{identity_hash(secret, 'cust-7')}'}}}}")
        await page.goto(f"{bridge.base_url}/demo")
        await verified_form_starts(page, bridge, "cust-7")

        # The same from the widget tag's data- attributes, on a page of the site.
        pages["/account"] = page_with_tag(bridge.base_url, {
            "id": "cust-8", "name": "Vera", "email": "vera@example.com",
            "hash": identity_hash(secret, "cust-8")}, title="My account")
        tagged = await browser.new_page()
        await tagged.goto(f"{site}/account")
        await verified_form_starts(tagged, bridge, "cust-8")
