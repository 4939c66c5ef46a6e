"""The fast layer: everything here runs without a server, marked `fast` (`pytest -m fast`,
`make test-fast`). The hub tests get the real ring on the project's fakes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from bridge.store import Store
from tests.fakes.backend import RecordingBackend
from tests.fakes.clock import FakeClock
from tests.fakes.hub import HubHarness, Tweak, start_harness

HERE = Path(__file__).parent
HUB_TEST_TIMEOUT_S = 5  # a hang guard; each of these tests takes milliseconds

MakeHub = Callable[..., Awaitable[HubHarness]]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Every conftest sees every item: mark only those below this directory.
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.fast)
            if item.path.name.startswith("test_hub_"):
                item.add_marker(pytest.mark.timeout(HUB_TEST_TIMEOUT_S))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def make_hub(clock: FakeClock) -> AsyncIterator[MakeHub]:
    """Start a hub ring from the small config edited by `tweak`; stopped after the test.
    `store` and `backend` replace the fresh ones (a restart on what the last ring left)."""
    started: list[HubHarness] = []

    async def make(tweak: Tweak | None = None, *, store: Store | None = None,
                   backend: RecordingBackend | None = None) -> HubHarness:
        harness = await start_harness(tweak, clock=clock, store=store, backend=backend)
        started.append(harness)
        return harness

    yield make
    for harness in reversed(started):  # a restarted ring shares its store with the first
        await harness.stop()


@pytest.fixture
async def ring(make_hub: MakeHub) -> HubHarness:
    """The ring on the default small config."""
    return await make_hub()
