"""Files in the widget, in Debian's Chromium against the bridge and Synapse, on a shop's page of
another origin (so every upload and download crosses origins, as on a real site): a visitor's
file by the paperclip, by paste and by drop reaches the agent's own Matrix client byte for
byte; an upload shows its thumbnail and progress and can be cancelled; refusals are told in
words; an agent's image shows in the chat and an agent's PDF is downloaded, never opened. The
token only ever travels in a header."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import struct
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, Request, Route, expect

from bridge.app import Bridge
from bridge.core.models import RoomRef
from tests.integration.conftest import TestAgent
from tests.integration.helpers import MatrixAgent
from tests.integration.test_widget_a11y import TARGETS, TEXT_CONTRAST, host_site, page_with_tag
from tests.integration.test_widget_browser import open_chat
from tests.integration.test_widget_features import agent_in_chat, strings

PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
EN = strings("en")

# Sends `files` ([name, type, base64]) to the widget as the browser would on a paste or a
# drop: the event, with a DataTransfer holding them, dispatched on the text box.
GIVE = """([kind, files]) => {
  const data = new DataTransfer();
  for (const [name, type, b64] of files)
    data.items.add(new File([Uint8Array.from(atob(b64), c => c.charCodeAt(0))], name, {type}));
  const box = document.querySelector('livechat-bridge').shadowRoot
    .querySelector('form.lcb-compose textarea');
  box.focus();
  const init = {bubbles: true, cancelable: true, composed: true};
  const event = kind == 'paste' ? new ClipboardEvent('paste', {...init, clipboardData: data})
    : new DragEvent('drop', {...init, dataTransfer: data});
  box.dispatchEvent(event);
  return event.defaultPrevented;
}"""


def png(width: int, height: int, shade: int = 0) -> bytes:
    """A real PNG a browser decodes, a gradient (it compresses well: a small file)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))
    rows = b"".join(b"\x00" + bytes((x * 7 + y * 13 + shade) % 256 for x in range(width * 3))
                    for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


@dataclass
class Chat:
    bridge: Bridge
    page: Page
    room: RoomRef
    agent: MatrixAgent
    requests: list[Request]  # every request of the page


Shop = Callable[..., Awaitable[Chat]]


@pytest.fixture
async def shop(make_matrix_bridge, matrix_agent: TestAgent, browser: Browser
               ) -> AsyncIterator[Shop]:
    """Starts a bridge (with the `[files]` settings given) and a chat on a page of the shop,
    Alice joined."""
    async with host_site() as (site, pages):
        async def chat(**files: Any) -> Chat:
            bridge = await make_matrix_bridge(allowed_origins=[site], files=files or None)
            pages["/shop"] = page_with_tag(bridge.base_url)
            page = await browser.new_page()
            requests: list[Request] = []
            page.on("request", lambda request: requests.append(request))
            await open_chat(page, f"{site}/shop", "Anna", "anna@example.com")
            room = await agent_in_chat(bridge, page, matrix_agent)
            assert isinstance(matrix_agent, MatrixAgent)
            return Chat(bridge, page, room, matrix_agent, requests)

        yield chat


async def token_of(bridge: Bridge, page: Page) -> str:
    entry = await page.evaluate("k => localStorage.getItem(k)", f"lcb:{bridge.base_url}")
    token: str = json.loads(entry)["token"]
    return token


async def choose(page: Page, name: str, data: bytes, mimetype: str,
                 keyboard: bool = False) -> None:
    """The visitor clicks the paperclip (or, from the text box, goes back to it and presses
    Enter) and picks one file."""
    async with page.expect_file_chooser() as chosen:
        if keyboard:
            await page.locator("form.lcb-compose textarea").focus()
            await page.keyboard.press("Shift+Tab")
            await expect(page.locator("button.lcb-att")).to_be_focused()
            await page.keyboard.press("Enter")
        else:
            await page.locator("button.lcb-att").click()
    chooser = await chosen.value
    await chooser.set_files({"name": name, "mimeType": mimetype, "buffer": data})


def encoded(name: str, mimetype: str, data: bytes) -> list[str]:
    return [name, mimetype, base64.b64encode(data).decode()]


async def natural_width(page: Page, selector: str) -> int:
    """The width of an image of the chat once loaded (its src is a blob: URL, made from
    what the page fetched with the token in a header)."""
    image = page.locator(selector)
    await expect(image).to_have_attribute("src", re.compile("^blob:"))
    width: int = await image.evaluate("""i => new Promise((ok, no) => {
      if (i.complete) return ok(i.naturalWidth);
      i.addEventListener('load', () => ok(i.naturalWidth));
      i.addEventListener('error', no);
    })""")
    return width


async def files_in(agent: MatrixAgent, room: RoomRef, count: int) -> list[tuple[str, bytes]]:
    """The files the agent's client got in the room (name, bytes from its homeserver), once
    there are `count`; each must be an image message for a PNG."""
    await agent.until(lambda: len([f for f in agent.files if f[0] == room]) >= count)
    found = []
    for _room, name, url, content in [f for f in agent.files if f[0] == room]:
        found.append((name, await agent.download(url)))
        if name.endswith(".png"):
            assert content["msgtype"] == "m.image", content
    return found


def no_token_in_urls(requests: list[Request], token: str) -> None:
    leaked = [r.url for r in requests if token in r.url]
    assert leaked == []


async def test_a_file_by_the_paperclip_reaches_the_agent(shop: Shop) -> None:
    chat = await shop()
    page = chat.page
    attach = page.locator("button.lcb-att")
    await expect(attach).to_be_visible()
    await expect(attach).to_have_attribute("aria-label", EN["attach"])
    assert await page.locator("input[type=file]").get_attribute("accept") == (
        "application/pdf,image/gif,image/jpeg,image/png,image/webp,text/plain")

    photo = png(48, 32)
    await choose(page, "photo.png", photo, "image/png", keyboard=True)
    shown = ".lcb-msg.lcb-visitor img[alt='photo.png']"
    assert await natural_width(page, shown) == 48
    await expect(page.locator(".lcb-msg.lcb-pending")).to_have_count(0)
    assert await files_in(chat.agent, chat.room, 1) == [("photo.png", photo)]
    await expect(page.locator(".lcb-sr")).to_contain_text("photo.png")  # progress, politely

    upload = next(r for r in chat.requests if r.method == "POST")
    headers = await upload.all_headers()
    token = await token_of(chat.bridge, page)
    assert headers["x-livechat-token"] == token
    assert headers["x-livechat-filename"] == "photo.png"
    assert any("/v1/files/" in r.url for r in chat.requests)  # shown from what the server kept
    no_token_in_urls(chat.requests, token)

    await page.reload()  # the upload comes back with the chat, once
    await expect(page.locator(".lcb-msg.lcb-visitor img")).to_have_count(1)
    assert await natural_width(page, shown) == 48


async def test_an_image_by_paste_and_a_file_by_drop(shop: Shop) -> None:
    chat = await shop()
    page = chat.page
    shot = png(20, 10, shade=90)
    taken = await page.evaluate(GIVE, ["paste", [encoded("shot.png", "image/png", shot)]])
    assert taken is True
    assert await natural_width(page, ".lcb-msg.lcb-visitor img[alt='shot.png']") == 20
    assert await files_in(chat.agent, chat.room, 1) == [("shot.png", shot)]

    note = b"Order 1234: two bags of green tea.\n"
    await page.evaluate(GIVE, ["drop", [encoded("order.txt", "text/plain", note)]])
    download = page.locator(".lcb-msg.lcb-visitor .lcb-text button")
    await expect(download).to_have_text("order.txt (0.1 kB)")
    assert await files_in(chat.agent, chat.room, 2) == [("shot.png", shot), ("order.txt", note)]

    # A paste of text stays a paste: the widget takes only files.
    plain = await page.evaluate("""() => {
      const data = new DataTransfer();
      data.setData('text/plain', 'just words');
      const event = new ClipboardEvent('paste', {clipboardData: data, bubbles: true,
                                                 cancelable: true, composed: true});
      document.querySelector('livechat-bridge').shadowRoot
        .querySelector('form.lcb-compose textarea').dispatchEvent(event);
      return event.defaultPrevented;
    }""")
    assert plain is False


async def hold_uploads(page: Page) -> tuple[asyncio.Event, list[Route]]:
    """Uploads wait in the browser until the event is set, then are dropped: what a page
    cancelled meanwhile must never be sent (Playwright would otherwise send it on)."""
    release = asyncio.Event()
    held: list[Route] = []

    async def wait(route: Route) -> None:
        if route.request.method != "POST":
            await route.continue_()  # the CORS preflight
            return
        held.append(route)
        await release.wait()
        with contextlib.suppress(Exception):  # the page may have cancelled it meanwhile
            await route.abort()

    await page.route("**/v1/uploads", wait)
    return release, held


async def test_an_upload_shows_its_thumbnail_and_can_be_cancelled(shop: Shop) -> None:
    chat = await shop()
    page = chat.page
    release, held = await hold_uploads(page)
    await choose(page, "first.png", png(30, 30, shade=10), "image/png")
    pending = page.locator(".lcb-msg.lcb-visitor.lcb-pending")
    await expect(pending).to_have_count(1)
    await expect(pending.locator(".lcb-text")).to_have_text("first.png")
    await expect(pending.locator("progress")).to_have_attribute("aria-label", "first.png")
    thumbnail = ".lcb-msg.lcb-pending img"
    assert await natural_width(page, thumbnail) == 30  # from the visitor's own file
    local = await page.locator(thumbnail).get_attribute("src")
    # Made from the File, let go once shown.
    assert await page.evaluate(
        "u => fetch(u).then(() => 'kept', () => 'revoked')", local) == "revoked"
    await page.wait_for_timeout(200)
    assert len(held) == 1  # still in the browser

    await pending.get_by_role("button", name=EN["cancel"]).click()
    await expect(pending).to_have_count(0)
    await expect(page.locator("form.lcb-compose textarea")).to_be_focused()
    release.set()
    await page.unroute_all(behavior="wait")  # the held upload is dropped, not sent on

    posted: list[str] = []
    page.on("request", lambda request: posted.append(
        request.headers.get("x-livechat-filename", "")) if request.method == "POST" else None)
    second = png(16, 16, shade=200)
    await choose(page, "second.png", second, "image/png")
    assert await natural_width(page, ".lcb-msg.lcb-visitor img[alt='second.png']") == 16
    # The cancelled file is not sent again (no retry of what the visitor cancelled).
    assert posted == ["second.png"]
    assert await files_in(chat.agent, chat.room, 1) == [("second.png", second)]
    await expect(page.locator(".lcb-msg.lcb-visitor img")).to_have_count(1)


async def test_refusals_are_told_in_words(shop: Shop) -> None:
    chat = await shop(max_bytes=2000, per_hour=1)
    page = chat.page
    status = page.locator(".lcb-status")

    def posts() -> list[Request]:
        return [r for r in chat.requests if r.method == "POST"]

    huge = png(60, 60)[:-12] + os.urandom(3000) + png(1, 1)[-12:]  # over 2000 bytes
    await choose(page, "huge.png", huge, "image/png")
    await expect(status).to_have_text(EN["error_too_large"].replace("{max}", "2 kB"))
    assert posts() == []  # refused at once

    # The server finds the kind by content, whatever the name says.
    await choose(page, "fake.png", b"\x00\x01\x02\x03" * 50, "image/png")
    await expect(status).to_have_text(EN["error_bad_type"])
    [post] = posts()
    answer = await post.response()
    assert answer is not None and answer.status == 415
    await expect(page.locator(".lcb-msg.lcb-visitor")).to_have_count(0)
    await choose(page, "notes.docx", b"PK\x03\x04 not allowed", "application/msword")
    await page.wait_for_timeout(300)
    await expect(status).to_have_text(EN["error_bad_type"])
    assert len(posts()) == 1

    await choose(page, "small.png", png(8, 8), "image/png")
    await expect(page.locator(".lcb-msg.lcb-visitor img[alt='small.png']")).to_have_count(1)
    await expect(status).to_have_text("")
    await choose(page, "another.png", png(8, 8, shade=50), "image/png")
    # A refusal the widget has no words for: the server's own message.
    await expect(status).to_have_text("at most 1 files an hour in one chat")
    await expect(page.locator(".lcb-msg.lcb-visitor")).to_have_count(1)
    assert [name for name, _ in await files_in(chat.agent, chat.room, 1)] == ["small.png"]


async def test_no_paperclip_when_files_are_off(shop: Shop) -> None:
    chat = await shop(enabled=False)
    page = chat.page
    await expect(page.locator("form.lcb-compose textarea")).to_be_visible()
    await expect(page.locator("button.lcb-att")).to_be_hidden()
    taken = await page.evaluate(GIVE, ["paste", [encoded("shot.png", "image/png", png(4, 4))]])
    assert taken is True  # not pasted as text, and not sent either
    await page.wait_for_timeout(500)
    await expect(page.locator(".lcb-msg.lcb-visitor")).to_have_count(0)
    assert not [r for r in chat.requests if r.url.endswith("/v1/uploads")]


async def test_an_agents_image_shows_in_the_chat(shop: Shop) -> None:
    chat = await shop()
    page = chat.page
    await chat.agent.send_file(chat.room, "from-alice.png", png(40, 24), "image/png")
    image = ".lcb-msg.lcb-agent img[alt='from-alice.png']"
    assert await natural_width(page, image) == 40
    await expect(page.locator(".lcb-msg.lcb-agent .lcb-name")).to_have_text(["Alice"])
    fetched = [r for r in chat.requests if "/v1/files/" in r.url and r.method == "GET"]
    assert fetched
    for request in fetched:
        assert (await request.all_headers()).get("x-livechat-token")
    no_token_in_urls(chat.requests, await token_of(chat.bridge, page))


async def test_an_agents_pdf_is_downloaded_not_opened(shop: Shop, tmp_path: Path) -> None:
    chat = await shop()
    page = chat.page
    name = "Tea &amp; cake.pdf"  # shown as written, never read as markup
    await chat.agent.send_file(chat.room, name, PDF, "application/pdf")
    button = page.locator(".lcb-msg.lcb-agent .lcb-text button")
    await expect(button).to_have_text(f"{name} (0.1 kB)")
    async with page.expect_download() as downloading:
        await button.click()
    download = await downloading.value
    assert download.suggested_filename == name
    saved = tmp_path / "saved.pdf"
    await download.save_as(saved)
    assert saved.read_bytes() == PDF
    await page.wait_for_timeout(300)
    assert page.context.pages == [page]  # no tab opened for it


async def test_file_lines_keep_the_contrast_and_size_promises(shop: Shop, tmp_path: Path
                                                              ) -> None:
    """WCAG 1.4.3, 1.4.11 and 2.5.8 for what files add: the paperclip, a file to download in
    both kinds of bubble, an upload's progress and its cancel button, in light and dark."""
    chat = await shop()
    page = chat.page
    await chat.agent.send_file(chat.room, "manual.pdf", PDF, "application/pdf")
    await choose(page, "order.txt", b"Order 1234\n", "text/plain")
    await expect(page.locator(".lcb-msg .lcb-text button")).to_have_count(2)
    release, _held = await hold_uploads(page)
    await choose(page, "photo.png", png(30, 30), "image/png")
    await natural_width(page, ".lcb-msg.lcb-pending img")
    low: list[Any] = []
    for scheme in ("light", "dark"):
        await page.emulate_media(color_scheme=scheme)
        measured = await page.evaluate(TEXT_CONTRAST, ".lcb-panel")
        assert {"button.lcb-link", "button.lcb-att svg"} <= {m["what"] for m in measured}
        low += [(scheme, m) for m in measured if m["ratio"] < m["need"]]
        await page.screenshot(path=str(tmp_path / f"files-{scheme}.png"))
    assert low == [], low
    small = [t for t in await page.evaluate(TARGETS)
             if t["width"] < 24 or t["height"] < 24]
    assert small == []
    release.set()
