"""The admin page /stats over HTTP: the real web app (create_app) on a real SQLite store
seeded like the report tests, served by aiohttp's test server. No messenger is needed: the
backend is built but never started."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bridge.app import build_hub, make_backend, web_app
from bridge.config import parse_config
from bridge.core.models import (
    AgentId,
    ConversationId,
    ItemKind,
    Page,
    QueueId,
    Sender,
    Status,
    VisitorInfo,
)
from bridge.report import build_report, cell_text, render_table
from bridge.store import Store
from bridge.tasks import TaskGroup
from bridge.tickets import Tickets
from bridge.web.stats import TOTALS
from tests.unit.test_report import D1, HOUR, seed

TOKEN = "stats-admin-token-4f2a9c1e77b0"
NOW = datetime(2026, 3, 2, 12, tzinfo=UTC).timestamp()  # default period: 2026-02-01..03-02
HOSTILE_QUEUE = "<script>alert('queue')</script>"
HOSTILE_AGENT = "<script>alert('agent')</script>"
CSP = ("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
       "frame-ancestors 'none'")
ONE_DAY = {"since": "2026-03-01", "until": "2026-03-02"}

Client = TestClient[web.Request, web.Application]



def seed_hostile(store: Store) -> None:
    """A chat on 2026-02-20 whose queue and agent ids are markup: answered after 20 s by
    the agent, ended after 200 s, rated 4, one text line."""
    at = D1 - 9 * 24 * HOUR
    cid = ConversationId("h1")
    store.create_conversation(cid, QueueId(HOSTILE_QUEUE), VisitorInfo(name="V", email="v@x.org"),
                              Page(url="https://www.example.com/"), "hash-h1", at)
    store.set_agent(cid, AgentId(HOSTILE_AGENT))
    store.set_status(cid, Status.ACTIVE)
    store.append_item(cid, ItemKind.TEXT, Sender.AGENT, "A", "hi", at + 20,
                      sender_id=HOSTILE_AGENT, delivered=True)
    store.set_first_response(cid, at + 20)
    store.set_status(cid, Status.ENDED, ended_at=at + 200)
    store.set_rating(cid, 4, "")


@asynccontextmanager
async def serve(tmp_path: Path, admin_token: str = TOKEN) -> AsyncIterator[Client]:
    config = parse_config({
        "server": {"admin_token": admin_token} if admin_token else {},
        "storage": {"path": str(tmp_path / "live.sqlite3")},
        "backend": {"type": "matrix"},
        "matrix": {"homeserver": "https://matrix.invalid", "user_id": "@support:matrix.invalid",
                   "password": "bot-pw-1"},
        "agents": [{"id": "alice", "address": "@alice:matrix.invalid"}],
        "queues": [{"id": "support", "name": "Support", "agents": ["alice"]}],
    })
    store = Store(config.storage.path)
    seed(store)
    seed_hostile(store)
    hub = build_hub(config, store, make_backend(config, store), clock=lambda: NOW)
    tasks = TaskGroup()
    app = web_app(config, hub, Tickets(config, store, None, tasks))
    try:
        async with TestClient(TestServer(app)) as client:
            yield client
    finally:
        await hub.stop()
        await tasks.close()
        store.close()


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[Client]:
    async with serve(tmp_path) as test_client:
        yield test_client


def expected_report(since: float | None, until: float | None, by: str,
                    tmp_path: Path) -> dict[str, Any]:
    """What `livechat-bridge report` computes for the same store and period."""
    store = Store(tmp_path / "live.sqlite3")
    try:
        chats, tickets = store.report_records(since, until)
    finally:
        store.close()
    return build_report(chats, tickets, by)


class Tables(HTMLParser):
    """The text of every table cell, per table and row; the inline SVG's texts are ignored."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th") and self.tables:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def tables(page: str) -> list[list[list[str]]]:
    parser = Tables()
    parser.feed(page)
    return parser.tables


def assert_security_headers(response: Any) -> None:
    assert response.headers["Content-Security-Policy"] == CSP
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- switched off and signing in -----------------------------------------------------------


async def test_without_admin_token_the_page_does_not_exist(tmp_path: Path) -> None:
    async with serve(tmp_path, admin_token="") as client:
        for response in (await client.get("/stats", headers=bearer()),
                         await client.get("/stats"),
                         await client.post("/stats", data={"token": TOKEN})):
            assert response.status == 404
            assert "statistics" not in await response.text()


async def test_a_browser_without_the_header_gets_the_form(client: Client) -> None:
    response = await client.get("/stats?since=2026-03-01")
    assert response.status == 401
    assert_security_headers(response)
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="livechat-bridge stats"'
    page = await response.text()
    assert '<form method="post" action="stats">' in page
    assert '<input type="password" name="token" required' in page
    assert 'name="since" value="2026-03-01"' in page
    assert "By queue" not in page and "<svg" not in page and 'class="error"' not in page


@pytest.mark.parametrize("header", [f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", "Bearer x"])
async def test_a_wrong_bearer_token_is_refused(client: Client, header: str) -> None:
    response = await client.get("/stats", headers={"Authorization": header})
    assert response.status == 401
    assert_security_headers(response)
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    page = await response.text()
    assert "Wrong token." in page and "By queue" not in page


async def test_a_wrong_or_missing_form_token_is_refused(client: Client) -> None:
    wrong = await client.post("/stats", data={"token": "not-the-token", **ONE_DAY})
    assert wrong.status == 401
    assert_security_headers(wrong)
    page = await wrong.text()
    assert '<p class="error" role="alert">Wrong token.</p>' in page
    assert 'name="since" value="2026-03-01"' in page  # the period survives a typo
    assert "not-the-token" not in page
    empty = await client.post("/stats", data={"token": ""})
    assert empty.status == 401 and "Enter the admin token." in await empty.text()


async def test_the_token_is_never_taken_from_the_address(client: Client) -> None:
    response = await client.get(f"/stats?token={TOKEN}")
    assert response.status == 401
    page = await response.text()
    assert "never accepted in the address" in page and "By queue" not in page
    assert TOKEN not in page


# -- the page ------------------------------------------------------------------------------


async def test_bearer_gets_the_page_with_the_cli_figures(client: Client,
                                                         tmp_path: Path) -> None:
    response = await client.get("/stats", params=ONE_DAY, headers=bearer())
    assert response.status == 200
    assert_security_headers(response)
    page = await response.text()
    assert "2026-03-01 to 2026-03-01, UTC days, both included (1 days)" in page
    since, until = D1, D1 + 24 * HOUR
    by_queue = expected_report(since, until, "queue", tmp_path)
    by_agent = expected_report(since, until, "agent", tmp_path)
    queue_table, agent_table = tables(page)
    # each row reads exactly as the CLI's text table prints it
    assert [cells for cells in queue_table[1:]] == [
        line.split() for line in render_table(by_queue).splitlines()[2:] if "--" not in line]
    assert [cells for cells in agent_table[1:]] == [
        line.split() for line in render_table(by_agent).splitlines()[2:] if "--" not in line]
    assert queue_table[0][0] == "queue" and agent_table[0][0] == "agent"
    # the report tests' numbers for 1 March, independently of the renderer
    assert queue_table[2] == ["support", "2", "0", "1", "5", "1m00s", "1m30s", "1m00s",
                              "7m45s", "4.00", "0/0/1/0/1"]
    assert queue_table[-1][:5] == ["total", "3", "1", "1", "6"]
    for title, name in TOTALS:
        assert f"<dt>{title}</dt><dd>{cell_text(name, by_queue['total'][name])}</dd>" in page


async def test_post_form_gets_the_page(client: Client, tmp_path: Path) -> None:
    response = await client.post("/stats", data={"token": TOKEN, **ONE_DAY})
    assert response.status == 200
    assert_security_headers(response)
    page = await response.text()
    assert "--since 2026-03-01 --until 2026-03-02" in page
    assert tables(page)[0][-1][:4] == ["total", "3", "1", "1"]
    assert TOKEN not in page  # the "another period" form starts empty
    # the period may also come in the address of the POST
    query = await client.post("/stats?since=2026-03-02&until=2026-03-03", data={"token": TOKEN})
    assert tables(await query.text())[0][-1][:4] == ["total", "2", "0", "1"]


async def test_default_period_is_the_last_30_days(client: Client, tmp_path: Path) -> None:
    page = await (await client.get("/stats", headers=bearer())).text()
    assert "2026-02-01 to 2026-03-02, UTC days, both included (30 days)" in page
    first, last = (datetime(2026, 2, 1, tzinfo=UTC).timestamp(),
                   datetime(2026, 3, 3, tzinfo=UTC).timestamp())
    total = expected_report(first, last, "queue", tmp_path)["total"]
    assert (total["chats"], total["tickets"]) == (7, 3)  # everything seeded
    assert tables(page)[0][-1] == render_table(
        expected_report(first, last, "queue", tmp_path)).splitlines()[-1].split()
    day_chart = page.split("<svg")[1]
    assert day_chart.count("<g>") == 30
    assert "<title>2026-03-01: 3 chats, 2 answered, 1 missed, 0 pending</title>" in day_chart
    assert "<title>2026-03-02: 2 chats, 1 answered, 0 missed, 1 pending</title>" in day_chart
    rating_chart = page.split("<svg")[2]
    assert [f"<title>rating {n}: {count}</title>" in rating_chart
            for n, count in ((1, 1), (2, 0), (3, 1), (4, 1), (5, 1))] == [True] * 5


async def test_ids_from_the_database_are_escaped(client: Client) -> None:
    page = await (await client.get("/stats", headers=bearer())).text()
    assert "<script" not in page.lower()
    escaped_queue = "&lt;script&gt;alert(&#x27;queue&#x27;)&lt;/script&gt;"
    escaped_agent = "&lt;script&gt;alert(&#x27;agent&#x27;)&lt;/script&gt;"
    assert f'<th scope="row">{escaped_queue}</th>' in page
    assert f'<th scope="row">{escaped_agent}</th>' in page
    queue_table, agent_table = tables(page)
    assert [HOSTILE_QUEUE, "1", "0", "0", "1"] == queue_table[1][:5]  # sorts first: "<"
    assert [HOSTILE_AGENT, "1", "0", "0", "1"] == agent_table[2][:5]  # after "-"


@pytest.mark.parametrize(
    ("params", "message"),
    [({"since": "2026-02-30"}, "since &#x27;2026-02-30&#x27; is not a date"),
     ({"until": "<script>"}, "until &#x27;&lt;script&gt;&#x27; is not a date"),
     ({"since": "2026-03-02", "until": "2026-03-01"}, "must be a later day"),
     ({"since": "2024-01-01", "until": "2026-01-01"}, "731 days is too long")],
)
async def test_bad_dates_get_400_with_a_reason(client: Client, params: dict[str, str],
                                               message: str) -> None:
    response = await client.get("/stats", params=params, headers=bearer())
    assert response.status == 400
    assert_security_headers(response)
    page = await response.text()
    assert "Bad period: " in page and message in page and "<script" not in page
    posted = await client.post("/stats", data={"token": TOKEN, **params})
    assert posted.status == 400 and message in await posted.text()
    # without the token, nothing is said about the dates
    anonymous = await client.get("/stats", params=params)
    assert anonymous.status == 401 and "Bad period" not in await anonymous.text()
