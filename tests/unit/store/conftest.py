"""The engines every store contract runs against: each test here runs once per engine.

A new engine (PostgreSQL is next) adds an entry to ENGINES that opens a fresh, empty store
satisfying `bridge.store.contracts.StoreRepositories`, and must pass every test unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bridge.core.models import Conversation, ConversationId, Page, QueueId, VisitorInfo
from bridge.store import Store
from bridge.store.contracts import StoreRepositories

ANN = VisitorInfo(name="Ann", email="ann@example.com", lang="en", user_agent="UA/1")
PAGE = Page(url="https://shop.example.com/cart", title="Cart", referrer="https://ref.example/")

ENGINES: dict[str, Callable[[Path], StoreRepositories]] = {
    "sqlite-memory": lambda _tmp: Store(":memory:"),
    "sqlite-wal-file": lambda tmp: Store(tmp / "state" / "livechat.sqlite3"),
}


@pytest.fixture(params=sorted(ENGINES))
def repos(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreRepositories]:
    store = ENGINES[request.param](tmp_path)
    yield store
    store.close()


def open_chat(repos: StoreRepositories, cid: str = "c1", *, queue: str = "support",
              now: float = 100.0, visitor: VisitorInfo = ANN) -> Conversation:
    return repos.conversations.create_conversation(
        ConversationId(cid), QueueId(queue), visitor, PAGE, f"hash-{cid}", now)
