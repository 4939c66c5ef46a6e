"""KeyValueRepository, and the namespaced slice of it a backend gets."""

from __future__ import annotations

from bridge.store import StoreBackendState
from bridge.store.contracts import StoreRepositories


async def test_values_are_kept_replaced_and_flushed(repos: StoreRepositories) -> None:
    kv = repos.kv
    assert kv.get("matrix:since") is None
    kv.set("matrix:since", "s1")
    kv.set("matrix:since", "s2", durable=False)  # a sync token: fetched again if lost
    assert kv.get("matrix:since") == "s2"
    await repos.flush()
    assert kv.get("matrix:since") == "s2"
    kv.set("empty", "")
    assert kv.get("empty") == ""


def test_each_backend_sees_only_its_own_keys(repos: StoreRepositories) -> None:
    matrix = StoreBackendState(repos, "matrix")
    xmpp = StoreBackendState(repos, "xmpp")
    matrix.set("since", "m1")
    xmpp.set("since", "x1", durable=False)
    assert (matrix.get("since"), xmpp.get("since")) == ("m1", "x1")
    assert matrix.get("other") is None
    assert repos.kv.get("matrix:since") == "m1"
