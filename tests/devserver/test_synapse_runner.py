"""The private Synapse runner: config, lifecycle, registration, restart on old data."""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import urllib.request
from pathlib import Path

import pytest

from bridge.devserver.ports import free_port
from bridge.devserver.synapse import (
    SynapseError,
    SynapseServer,
    prepare_synapse,
)

logger = logging.getLogger(__name__)

pytestmark = pytest.mark.usefixtures("require_synapse")


def _get_json(url: str, token: str | None = None) -> dict:
    req = urllib.request.Request(url)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=10) as resp:
        return json.loads(resp.read())


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_every_ratelimiter_is_lifted(tmp_path: Path) -> None:
    """Guard against a Synapse upgrade adding a limiter that our config misses."""
    import yaml
    from synapse.config.ratelimiting import RatelimitConfig, RatelimitSettings

    server = prepare_synapse(tmp_path / "hs")
    ratelimits = RatelimitConfig(root_config=None)  # type: ignore[arg-type]
    ratelimits.read_config(yaml.safe_load(server.config_path.read_text()))
    settings = {
        name: value
        for name, value in vars(ratelimits).items()
        if isinstance(value, RatelimitSettings) and value.key.startswith("rc_")
    }
    assert settings, "RatelimitConfig shape changed"
    too_low = {name: s.per_second for name, s in settings.items() if s.per_second < 1000}
    assert not too_low


def test_prepare_reuses_existing_config(tmp_path: Path) -> None:
    first = prepare_synapse(tmp_path / "hs", free_port())
    again = prepare_synapse(tmp_path / "hs")
    assert (again.port, again.registration_secret) == (first.port, first.registration_secret)
    assert again.base_url == f"http://127.0.0.1:{first.port}"


def test_start_refuses_busy_port(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        server = prepare_synapse(tmp_path / "hs", busy.getsockname()[1])
        with pytest.raises(SynapseError, match="already in use"):
            server.start()
    assert not server.running


def test_start_register_restart_stop(tmp_path: Path) -> None:
    server: SynapseServer = prepare_synapse(tmp_path / "hs")
    try:
        t0 = time.monotonic()
        server.start()
        cold_start = time.monotonic() - t0
        assert server.running
        assert "versions" in _get_json(server.base_url + "/_matrix/client/versions")

        t0 = time.monotonic()
        admin_id, admin_token = server.register("admin", "admin-pw", admin=True)
        bob_id, bob_token = server.register("bob", "bob-pw", displayname="Bob")
        register_two = time.monotonic() - t0
        assert (admin_id, bob_id) == ("@admin:localhost", "@bob:localhost")

        server.override_ratelimit(admin_token, bob_id)
        override = _get_json(
            f"{server.base_url}/_synapse/admin/v1/users/{bob_id}/override_ratelimit",
            admin_token,
        )
        assert override == {"messages_per_second": 0, "burst_count": 0}

        old_pid = server.pid
        assert old_pid is not None
        t0 = time.monotonic()
        server.restart()
        warm_restart = time.monotonic() - t0
        assert _process_gone(old_pid)
        assert server.whoami(bob_token) == bob_id
        # Registering again on old data falls back to a password login.
        again_id, again_token = server.register("bob", "bob-pw")
        assert again_id == bob_id and again_token != bob_token

        pid = server.pid
        assert pid is not None
    finally:
        server.stop()
    assert not server.running
    assert _process_gone(pid)
    server.stop()  # idempotent
    logger.info(
        "cold start %.2fs, two registers %.2fs, restart %.2fs",
        cold_start,
        register_two,
        warm_restart,
    )
