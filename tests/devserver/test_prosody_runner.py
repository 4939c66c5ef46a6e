"""The private Prosody runner: config, lifecycle, accounts, real slixmpp clients, TLS."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from slixmpp import JID, ClientXMPP, Message

from bridge.devserver.ports import free_port
from bridge.devserver.prosody import (
    ProsodyError,
    ProsodyServer,
    prepare_prosody,
)

logger = logging.getLogger(__name__)

pytestmark = pytest.mark.usefixtures("require_prosody")

CONNECT_TIMEOUT = 10.0
EVENT_TIMEOUT = 10.0
SID_NS = "{urn:xmpp:sid:0}stanza-id"


@pytest.fixture
def plain_server(tmp_path: Path) -> Iterator[ProsodyServer]:
    server = prepare_prosody(tmp_path / "xmpp")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[ProsodyServer]:
    server = prepare_prosody(tmp_path / "xmpp-tls", tls=True)
    try:
        yield server
    finally:
        server.stop()


# -- slixmpp helpers -------------------------------------------------------------------


class ConnectFailed(Exception):
    def __init__(self, reason: object):
        super().__init__(f"no session: {reason!r}")
        self.reason = reason


def _make_client(jid: str, password: str, *, tls: bool, ca_file: Path | None) -> ClientXMPP:
    client = ClientXMPP(jid, password)
    for plugin in ("xep_0030", "xep_0045", "xep_0199"):
        client.register_plugin(plugin)
    client.enable_direct_tls = False
    if not tls:
        # The plaintext server offers no STARTTLS; SCRAM over plain TCP on loopback.
        client.enable_starttls = False
        client.enable_plaintext = True
        client.plugin["feature_mechanisms"].unencrypted_scram = True
    else:
        # STARTTLS, verified against ca_file (else the system trust store) with the
        # JID's domain as the expected host name.
        client.enable_starttls = True
        client.enable_plaintext = False
        if ca_file is not None:
            client.ca_certs = ca_file
    return client


async def _connect(
    server: ProsodyServer,
    jid: str,
    password: str,
    *,
    tls: bool = False,
    ca_file: Path | None = None,
) -> ClientXMPP:
    """A client with a started session, or ConnectFailed (and nothing left connected)."""
    client = _make_client(jid, password, tls=tls, ca_file=ca_file)
    outcome: asyncio.Future[object] = asyncio.get_running_loop().create_future()

    def settle(value: object) -> None:
        if not outcome.done():
            outcome.set_result(value)

    client.add_event_handler("session_start", lambda _event: settle(None))
    client.add_event_handler("failed_auth", lambda _event: settle("failed_auth"))
    # Handling this event stops slixmpp from disconnecting by itself; we do it below.
    client.add_event_handler("ssl_invalid_chain", settle)
    client.add_event_handler("connection_failed", settle)
    client.add_event_handler("disconnected", lambda reason: settle(f"disconnected: {reason}"))
    client.connect("127.0.0.1", server.c2s_port)
    try:
        reason = await asyncio.wait_for(outcome, CONNECT_TIMEOUT)
    except TimeoutError:
        reason = f"timeout after {CONNECT_TIMEOUT:.0f}s"
    if reason is not None:
        await _disconnect(client)
        raise ConnectFailed(reason)
    client.send_presence()
    # A round trip: the session works, and the presence has left the send queue (else
    # an early disconnect over TLS logs a NotConnectedError from slixmpp's queue).
    await client.plugin["xep_0199"].ping(server.domain, timeout=EVENT_TIMEOUT)
    return client


async def _disconnect(client: ClientXMPP) -> None:
    client.cancel_connection_attempt()
    await asyncio.wait_for(client.disconnect(wait=1.0), 5.0)


def _proc_gone(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists()


# -- tests -----------------------------------------------------------------------------


def test_prepare_reuses_existing_config(tmp_path: Path) -> None:
    port = free_port()
    first = prepare_prosody(tmp_path / "xmpp", c2s_port=port)
    again = prepare_prosody(tmp_path / "xmpp", tls=True, c2s_port=free_port())
    assert (again.c2s_port, again.tls, again.ca_file) == (port, False, None)
    assert first == again
    config = again.config_path.read_text()
    assert 'modules_disabled = { "s2s", "tls" }' in config
    assert '"smacks"' in config and '"mam"' not in config
    assert (again.data_dir / "certificates").is_dir()
    # The upload service is on by default, on a loopback HTTP port of its own.
    assert again.upload_domain == "upload.localhost" and again.http_port is not None
    assert again.upload_url == f"http://127.0.0.1:{again.http_port}/file_share/"
    assert again.websocket_url is None  # web=False: no WebSocket on that port
    assert 'Component "upload.localhost" "http_file_share"' in config


def test_a_server_without_upload(tmp_path: Path) -> None:
    server = prepare_prosody(tmp_path / "xmpp", upload=False)
    assert (server.upload_domain, server.upload_url, server.http_port) == (None, None, None)
    assert "http_file_share" not in server.config_path.read_text()
    # Reading the config back keeps it so, whatever the caller asks for.
    again = prepare_prosody(tmp_path / "xmpp")
    assert again == server


async def test_upload_service_stores_and_serves_files(tmp_path: Path) -> None:
    """XEP-0363 on mod_http_file_share: a slot, a PUT of more than Prosody's default HTTP
    body limit (10 MB), the exact bytes back from the GET URL on the loopback port, the
    file stored under the data directory; WebSocket still served on the same port."""
    server = prepare_prosody(tmp_path / "xmpp", web=True)
    server.start()
    client: ClientXMPP | None = None
    try:
        alice = server.register("alice", "alice-pw")
        client = await _connect(server, alice, "alice-pw")
        client.register_plugin("xep_0363")
        upload = client.plugin["xep_0363"]
        payload = (bytes(range(256)) * 4096 * 12)[:12_000_001]
        source = tmp_path / "big file.bin"
        source.write_bytes(payload)
        url = await upload.upload_file(source, domain=JID(server.domain), timeout=EVENT_TIMEOUT)
        assert str(upload.upload_service) == "upload.localhost"
        assert upload.max_file_size >= 50 * 1024 * 1024
        assert server.upload_url is not None and url.startswith(server.upload_url)
        assert url.endswith("/big%20file.bin")
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as response:
                assert response.status == 200
                assert await response.read() == payload
            assert server.websocket_url is not None
            async with http.get(server.websocket_url.replace("ws://", "http://")) as response:
                assert response.status == 200  # the websocket path answers plain GETs
        assert server.uploaded_files() == 1
    finally:
        if client is not None:
            await _disconnect(client)
        server.stop()


def test_start_refuses_busy_port(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        server = prepare_prosody(tmp_path / "xmpp", c2s_port=busy.getsockname()[1])
        with pytest.raises(ProsodyError, match="already in use"):
            server.start()
    assert not server.running


def test_early_exit_reports_log_tail(tmp_path: Path) -> None:
    server = prepare_prosody(tmp_path / "xmpp")
    with server.config_path.open("a") as config:
        config.write("\nthis is not lua (\n")
    with pytest.raises(ProsodyError, match="exited with code") as info:
        server.start()
    assert "prosody.cfg.lua" in str(info.value)
    assert not server.running


def test_start_stops_leftover(tmp_path: Path) -> None:
    """A server orphaned by a crashed parent is found by its pid file and stopped."""
    orphan = prepare_prosody(tmp_path / "xmpp")
    successor = prepare_prosody(tmp_path / "xmpp")
    try:
        orphan.start()
        leftover = orphan.pid
        assert leftover is not None and orphan.pid_path.read_text().strip() == str(leftover)
        successor.start()
        assert successor.pid != leftover
        assert orphan._proc is not None and orphan._proc.wait(5) is not None
    finally:
        successor.stop()
        orphan.stop()


async def test_groupchat_restart_and_stop(plain_server: ProsodyServer) -> None:
    server = plain_server
    t0 = time.monotonic()
    server.start()
    cold_start = time.monotonic() - t0
    alice = server.register("alice", "alice-pw")
    bob = server.register("bob", "bob-pw")
    assert (alice, bob) == ("alice@localhost", "bob@localhost")
    assert server.register("bob", "bob-pw") == bob  # idempotent

    t0 = time.monotonic()
    alice_client = await _connect(server, alice, "alice-pw")
    bob_client = await _connect(server, bob, "bob-pw")
    connect_two = time.monotonic() - t0
    try:
        room = f"lobby@{server.muc_domain}"
        await alice_client.plugin["xep_0045"].join_muc_wait(
            room, "Alice", maxstanzas=0, timeout=EVENT_TIMEOUT
        )
        await bob_client.plugin["xep_0045"].join_muc_wait(
            room, "Bob", maxstanzas=0, timeout=EVENT_TIMEOUT
        )
        received: asyncio.Future[Message] = asyncio.get_running_loop().create_future()

        def on_groupchat(msg: Message) -> None:
            if msg["mucnick"] == "Alice" and not received.done():
                received.set_result(msg)

        bob_client.add_event_handler("groupchat_message", on_groupchat)
        alice_client.send_message(mto=room, mbody="hello from alice", mtype="groupchat")
        msg = await asyncio.wait_for(received, EVENT_TIMEOUT)
        assert msg["body"] == "hello from alice"
        # muc_mam stamps each group chat message with the room's archive id.
        stanza_id = msg.xml.find(SID_NS)
        assert stanza_id is not None and stanza_id.get("by") == room
    finally:
        await _disconnect(alice_client)
        await _disconnect(bob_client)

    old_pid = server.pid
    assert old_pid is not None
    t0 = time.monotonic()
    server.restart()
    restart = time.monotonic() - t0
    assert _proc_gone(old_pid)
    again = await _connect(server, alice, "alice-pw")
    await _disconnect(again)
    with pytest.raises(ConnectFailed):
        await _connect(server, alice, "wrong-pw")

    pid = server.pid
    assert pid is not None
    server.stop()
    assert not server.running and server.pid is None
    assert _proc_gone(pid)
    assert not server.pid_path.exists()
    server.stop()  # idempotent
    logger.info(
        "cold start %.2fs, two clients connected %.2fs, restart %.2fs",
        cold_start,
        connect_two,
        restart,
    )


async def test_tls_needs_the_ca(tls_server: ProsodyServer) -> None:
    server = tls_server
    assert server.ca_file is not None and server.ca_file.is_file()
    # Registering before start works too: prosodyctl writes the account store.
    alice = server.register("alice", "alice-pw")
    server.start()

    client = await _connect(server, alice, "alice-pw", tls=True, ca_file=server.ca_file)
    try:
        assert client.transport is not None
        ssl_object = client.transport.get_extra_info("ssl_object")
        assert ssl_object is not None
        assert ssl_object.getpeercert()["subject"] == ((("commonName", "localhost"),),)
    finally:
        await _disconnect(client)

    # The system trust store does not know our self-signed certificate.
    with pytest.raises(ConnectFailed) as info:
        await _connect(server, alice, "alice-pw", tls=True)
    assert "CERTIFICATE_VERIFY_FAILED" in str(info.value.reason)
