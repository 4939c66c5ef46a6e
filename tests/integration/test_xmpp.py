"""XMPP-only behaviour: TLS verification, wrong passwords, agents that do not exist."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.app import Bridge
from bridge.backends.base import BackendError, BackendUnavailable
from bridge.config import parse_config
from bridge.devserver.ports import free_port
from bridge.devserver.prosody import ProsodyServer, prepare_prosody
from tests.conftest import XmppServer
from tests.integration.conftest import room_of
from tests.integration.xmpp_agent import XmppAgent


@pytest.fixture
def tls_server(require_prosody: None, tmp_path: Path) -> Iterator[ProsodyServer]:
    server = prepare_prosody(tmp_path / "prosody-tls", tls=True)
    server.start()
    try:
        for name in ("support", "alice"):
            server.register(name, f"{name}-pw-1")
        yield server
    finally:
        server.stop()


def xmpp_config(tmp_path: Path, xmpp: dict, agents: list[dict]) -> object:
    port = free_port()
    return parse_config({
        "server": {"listen": f"127.0.0.1:{port}", "public_url": f"http://127.0.0.1:{port}"},
        "storage": {"path": str(tmp_path / "livechat.sqlite3")},
        "backend": {"type": "xmpp"},
        "xmpp": {"muc_service": "muc.localhost", "host": "127.0.0.1", **xmpp},
        "agents": agents,
        "queues": [{"id": "support", "name": "Support", "agents": [a["id"] for a in agents]}],
    })


async def test_tls_with_a_verified_certificate(tls_server: ProsodyServer, tmp_path: Path,
                                               visitors) -> None:
    config = xmpp_config(tmp_path, {
        "jid": "support@localhost", "password": "support-pw-1", "port": tls_server.c2s_port,
        "ca_file": str(tls_server.ca_file)},
        [{"id": "alice", "address": "alice@localhost"}])
    bridge = Bridge(config)
    await bridge.start()
    alice = await XmppAgent("alice@localhost", "alice-pw-1", tls_server.c2s_port,
                            "support@localhost", "Alice", ca_file=tls_server.ca_file).start()
    try:
        visitor = await visitors(bridge.base_url)
        started = await visitor.start()
        room = await room_of(bridge, started["conversation"])
        await alice.join(room)
        await visitor.say("over TLS")
        await alice.wait_text(room, "over TLS")
    finally:
        await alice.close()
        await bridge.stop()


async def test_an_unverifiable_certificate_is_refused(tls_server: ProsodyServer,
                                                      tmp_path: Path) -> None:
    config = xmpp_config(tmp_path, {
        "jid": "support@localhost", "password": "support-pw-1", "port": tls_server.c2s_port},
        [{"id": "alice", "address": "alice@localhost"}])
    bridge = Bridge(config)
    with pytest.raises(BackendUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
        await bridge.start()
    bridge.store.close()


async def test_a_wrong_password_is_a_clear_error(xmpp_server: XmppServer,
                                                 tmp_path: Path) -> None:
    config = xmpp_config(tmp_path, {
        "jid": "support@localhost", "password": "not-the-password",
        "port": xmpp_server.server.c2s_port, "plaintext": True},
        [{"id": "alice", "address": "alice@localhost"}])
    bridge = Bridge(config)
    with pytest.raises(BackendError, match="could not log in"):
        await bridge.start()
    bridge.store.close()


async def test_an_agent_that_does_not_exist_breaks_nothing(xmpp_server: XmppServer,
                                                           tmp_path: Path, visitors) -> None:
    config = xmpp_config(tmp_path, {
        "jid": "support@localhost", "password": xmpp_server.passwords["support@localhost"],
        "port": xmpp_server.server.c2s_port, "plaintext": True},
        [{"id": "ghost", "address": "ghost@localhost"},
         {"id": "alice", "address": "alice@localhost"}])
    bridge = Bridge(config)
    await bridge.start()
    alice = await XmppAgent("alice@localhost", xmpp_server.passwords["alice@localhost"],
                            xmpp_server.server.c2s_port, "support@localhost", "Alice").start()
    try:
        visitor = await visitors(bridge.base_url)
        started = await visitor.start()
        room = await room_of(bridge, started["conversation"])
        await alice.join(room)
        await visitor.say("is anyone there?")
        await alice.wait_text(room, "is anyone there?")
        await alice.say(room, "yes, Alice here")
        answer = await visitor.wait("message", lambda f: f["from"] == "agent")
        assert answer["text"] == "yes, Alice here"
    finally:
        await alice.close()
        await bridge.stop()
