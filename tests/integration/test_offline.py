"""Offline messages: tickets mailed to the help desk and POSTed to a signed webhook."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from bridge import tickets
from bridge.devserver.ports import free_port
from bridge.tickets import signature

SECRET = "webhook-secret-1"


class Receiver:
    """A real HTTP endpoint on loopback playing the help desk's webhook."""

    def __init__(self, statuses: list[int], stalls: int = 0) -> None:
        self.statuses = statuses
        self.stalls = stalls  # this many first calls never answer in time
        self.calls: list[tuple[bytes, str]] = []
        self.port = free_port()
        self.runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.calls.append((body, request.headers.get("X-Livechat-Signature", "")))
        if self.stalls:
            self.stalls -= 1
            await asyncio.sleep(2)  # far past the (shortened) webhook timeout
        status = self.statuses.pop(0) if self.statuses else 200
        return web.Response(status=status)

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    hook = await Receiver([500]).start()  # the first delivery fails: it must be retried
    yield hook
    assert hook.runner is not None
    await hook.runner.cleanup()


def offline_queues(hook_url: str, *, mail: bool = True) -> list[dict]:
    """`mail`: with a helpdesk_email (the bridge then needs [smtp])."""
    desk = {"helpdesk_email": "helpdesk@example.com"} if mail else {}
    return [{"id": "support", "name": "Support", "agents": ["alice"], "webhook_url": hook_url,
             "webhook_secret": SECRET, **desk}]


async def post(base_url: str, body: object, origin: str | None = None) -> tuple[int, dict]:
    headers = {"Origin": origin} if origin else {}
    async with aiohttp.ClientSession() as http, http.post(
        f"{base_url}/v1/offline", data=json.dumps(body) if not isinstance(body, bytes) else body,
        headers={"Content-Type": "application/json", **headers},
    ) as response:
        return response.status, await response.json()


MESSAGE = {"name": "Łukasz\r\nBcc: victim@example.com", "email": "lukasz@example.com",
           "topic": "support", "text": "Where is my order 1234?\nThanks"}


async def test_an_offline_message_reaches_the_help_desk_by_mail_and_webhook(
    make_matrix_bridge, start_server, receiver: Receiver
) -> None:
    smtp = start_server()
    bridge = await make_matrix_bridge(
        smtp={"host": "127.0.0.1", "port": smtp.port, "starttls": False,
              "from": "Support <support@example.com>"},
        queues=offline_queues(receiver.url))
    status, answer = await post(bridge.base_url, MESSAGE, origin="https://shop.example.com")
    assert status == 201 and answer["ticket"].startswith("T-")
    # A help desk has it: the widget may say "we will answer by email"; the agents get it too.
    assert (answer["helpdesk"], answer["routes"]) == (True, ["mail", "webhook", "messenger"])

    async with asyncio.timeout(15):
        while len(receiver.calls) < 2 or not smtp.handler.received:
            await asyncio.sleep(0.1)
    mail = smtp.handler.received[0]
    assert mail.envelope.rcpt_tos == ["helpdesk@example.com"]
    message = mail.message
    assert [a.addr_spec for a in message["Reply-To"].addresses] == ["lukasz@example.com"]
    assert "Bcc" not in message and answer["ticket"] in message["Subject"]
    assert "Where is my order 1234?" in message.get_content()

    body, signed = receiver.calls[-1]
    assert signed == signature(SECRET, body)
    payload = json.loads(body)
    assert payload["ticket"]["id"] == answer["ticket"]
    assert payload["ticket"]["text"] == "Where is my order 1234?\nThanks"
    assert payload["ticket"]["ip"] is None
    async with asyncio.timeout(5):  # marked delivered once the bridge read the answer
        while bridge.store.pending_tickets():
            await asyncio.sleep(0.05)


async def test_bad_offline_messages_are_refused(make_matrix_bridge) -> None:
    bridge = await make_matrix_bridge()
    cases = [
        (b"{not json", 400, "bad_json"),
        ({"email": "a@example.com", "text": "hi"}, 400, "missing_field"),
        ({**MESSAGE, "email": "not-an-email"}, 400, "bad_email"),
        ({**MESSAGE, "text": "x" * 5000}, 400, "too_long"),
        ({**MESSAGE, "text": "  "}, 400, "empty"),
        ({**MESSAGE, "topic": "nope"}, 400, "unknown_topic"),
    ]
    for body, status, code in cases:
        got_status, answer = await post(bridge.base_url, body)
        assert (got_status, answer["error"]["code"]) == (status, code), body
    status, answer = await post(bridge.base_url, MESSAGE, origin="https://evil.example.net")
    assert status == 403
    for _ in range(3):
        assert (await post(bridge.base_url, MESSAGE))[0] == 201
    status, answer = await post(bridge.base_url, MESSAGE)
    assert (status, answer["error"]["code"]) == (429, "rate_limited")


async def test_a_ticket_waits_for_a_help_desk_that_is_down(make_matrix_bridge) -> None:
    bridge = await make_matrix_bridge(
        smtp={"host": "127.0.0.1", "port": free_port(), "starttls": False,
              "from": "Support <support@example.com>", "timeout": 1},
        queues=offline_queues(f"http://127.0.0.1:{free_port()}/hook"))
    status, answer = await post(bridge.base_url, MESSAGE)
    assert status == 201
    await asyncio.sleep(0.5)
    pending = bridge.store.pending_tickets()
    assert [(t.id, mail, hook) for t, mail, hook in pending] == [(answer["ticket"], True, True)]


async def test_a_webhook_that_times_out_is_retried_and_blocks_nothing(
    make_matrix_bridge, visitors, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tickets, "WEBHOOK_TIMEOUT_S", 0.5)
    hook = await Receiver([], stalls=1).start()
    try:
        bridge = await make_matrix_bridge(queues=offline_queues(hook.url, mail=False))
        started = asyncio.get_running_loop().time()
        status, answer = await post(bridge.base_url, MESSAGE)
        assert status == 201 and asyncio.get_running_loop().time() - started < 0.5
        visitor = await visitors(bridge.base_url)  # chats go on meanwhile
        await visitor.start()
        await visitor.say("hello while the help desk hangs")
        async with asyncio.timeout(10):  # timed out once, then delivered by the retry
            while len(hook.calls) < 2 or bridge.store.pending_tickets():
                await asyncio.sleep(0.05)
        assert json.loads(hook.calls[1][0])["ticket"]["id"] == answer["ticket"]
    finally:
        assert hook.runner is not None
        await hook.runner.cleanup()
