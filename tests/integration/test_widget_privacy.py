"""What the widget does on a visitor's device before and after the first click, measured in
Debian's Chromium on the demo page (hostile CSS and all): docs/privacy.md is this test in
words."""

from __future__ import annotations

import json
from typing import Any

from playwright.async_api import Browser, Page, expect

from tests.unit.test_widget_size import LOADER_BUDGET

# The fields docs/privacy.md lists, and no others.
STORED_FIELDS = {"token", "conversation", "seq", "open", "name", "email", "queue", "pending",
                 "ended", "rated", "callback"}

# Counts every way a page can write to the device or open a socket, from before any script.
WATCH = """
window.__writes = [];
const note = what => window.__writes.push(what);
for (const name of ['setItem', 'removeItem', 'clear']) {
  const real = Storage.prototype[name];
  Storage.prototype[name] = function (...a) { note('storage.' + name); return real.apply(this, a) };
}
const cookie = Object.getOwnPropertyDescriptor(Document.prototype, 'cookie');
Object.defineProperty(Document.prototype, 'cookie', {
  get() { return cookie.get.call(this) },
  set(v) { note('cookie'); cookie.set.call(this, v) },
});
const open = IDBFactory.prototype.open;
IDBFactory.prototype.open = function (...a) { note('indexedDB'); return open.apply(this, a) };
if (window.CacheStorage) {
  const cache = CacheStorage.prototype.open;
  CacheStorage.prototype.open = function (...a) { note('caches'); return cache.apply(this, a) };
}
if (navigator.serviceWorker) {
  const register = navigator.serviceWorker.register.bind(navigator.serviceWorker);
  navigator.serviceWorker.register = (...a) => { note('serviceWorker'); return register(...a) };
}
const RealSocket = WebSocket;
window.WebSocket = function (...a) { note('websocket'); return new RealSocket(...a) };
window.__shifts = 0;
window.__longTasks = [];
new PerformanceObserver(l => l.getEntries().forEach(e => { window.__shifts += e.value }))
  .observe({ type: 'layout-shift', buffered: true });
new PerformanceObserver(l => l.getEntries().forEach(e => window.__longTasks.push(e.duration)))
  .observe({ type: 'longtask', buffered: true });
"""


async def device_state(page: Page) -> dict[str, Any]:
    state: dict[str, Any] = await page.evaluate("""async () => ({
        writes: window.__writes, shifts: window.__shifts, longTasks: window.__longTasks,
        cookie: document.cookie, local: Object.keys(localStorage),
        session: Object.keys(sessionStorage),
        databases: (await indexedDB.databases()).map(d => d.name)})""")
    state["cookies"] = await page.context.cookies()
    return state


async def test_nothing_before_the_first_click(make_matrix_bridge, browser: Browser) -> None:
    bridge = await make_matrix_bridge()
    page = await browser.new_page()
    await page.add_init_script(WATCH)
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    await page.goto(f"{bridge.base_url}/demo")
    await expect(page.locator("button.lcb-launcher")).to_be_visible()
    await page.wait_for_timeout(2000)  # anything late would show by now

    before = await device_state(page)
    assert [u.removeprefix(bridge.base_url) for u in requests] == [
        "/demo", "/widget.js", "/v1/status?lang=en-US,en"]
    assert before == {"writes": [], "shifts": 0, "longTasks": [], "cookie": "", "local": [],
                      "session": [], "databases": [], "cookies": []}

    await page.locator("button.lcb-launcher").click()
    await expect(page.locator("form.lcb-form")).to_be_visible()
    opened = await device_state(page)
    assert opened["writes"] == [] and opened["local"] == []  # opening is not chatting
    assert "/panel.js" in [u.removeprefix(bridge.base_url) for u in requests]

    form = page.locator("form.lcb-form")
    await form.locator("input[name=name]").fill("Anna")
    await form.locator("input[name=email]").fill("anna@example.com")
    await form.locator("button[type=submit]").click()
    await expect(page.locator("form.lcb-compose")).to_be_visible()
    await page.wait_for_function("Object.keys(localStorage).length == 1")
    chatting = await device_state(page)
    [key] = chatting["local"]
    stored = json.loads(await page.evaluate("k => localStorage.getItem(k)", key))
    assert key == f"lcb:{bridge.base_url}"
    assert set(stored) <= STORED_FIELDS
    assert "websocket" in chatting["writes"]
    assert chatting["cookies"] == [] and chatting["session"] == []


async def test_the_loader_costs_at_most_4_kb(make_matrix_bridge, browser: Browser) -> None:
    bridge = await make_matrix_bridge()
    page = await browser.new_page()
    responses = []
    page.on("response", lambda response: responses.append(response))
    await page.goto(f"{bridge.base_url}/demo")
    await expect(page.locator("button.lcb-launcher")).to_be_visible()
    loader = next(r for r in responses if r.url.endswith("/widget.js"))
    sizes = await loader.request.sizes()
    assert loader.headers.get("content-encoding") in ("gzip", "deflate")
    assert 0 < sizes["responseBodySize"] <= LOADER_BUDGET
