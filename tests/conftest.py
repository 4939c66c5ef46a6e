"""Shared fixtures: real servers are started here, once per session, and always stopped."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from bridge.devserver import prosody, synapse
from bridge.devserver.prosody import ProsodyServer, prepare_prosody, prosody_installed
from bridge.devserver.synapse import SynapseServer, prepare_synapse, synapse_installed

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="session")
def require_synapse() -> None:
    # A missing real part fails loudly: a skipped integration test is not a passed one.
    if not synapse_installed():
        pytest.fail(f"matrix-synapse is not installed: {synapse.INSTALL_HINT}", pytrace=False)


@pytest.fixture(scope="session")
def require_prosody() -> None:
    if not prosody_installed():
        pytest.fail(f"prosody is not installed: {prosody.INSTALL_HINT}", pytrace=False)


@pytest.fixture(scope="session")
def require_chromium() -> str:
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.fail(
            "Debian chromium is missing: apt-get install -y --no-install-recommends chromium",
            pytrace=False,
        )
    return CHROMIUM


@dataclass
class Homeserver:
    server: SynapseServer
    admin_token: str
    bot_id: str
    bot_password: str
    agent_id: str
    agent_token: str
    agent2_id: str
    agent2_token: str
    stranger_id: str
    stranger_token: str

    @property
    def url(self) -> str:
        return self.server.base_url


@contextmanager
def running_homeserver(data_dir: Path, *, rate_limits_lifted: bool = True
                       ) -> Iterator[Homeserver]:
    """A private Synapse on loopback with a bot, two agents and a stranger; with its rate
    limits lifted the bot is exempt from message limits too, as the README tells admins."""
    server = prepare_synapse(data_dir, rate_limits_lifted=rate_limits_lifted)
    server.start()
    try:
        _, admin_token = server.register("admin", "admin-pw-1", admin=True)
        bot_id, _ = server.register("support", "bot-pw-1", displayname="Support bot")
        agent_id, agent_token = server.register("alice", "alice-pw-1", displayname="Alice")
        agent2_id, agent2_token = server.register("bob", "bob-pw-1", displayname="Bob")
        stranger_id, stranger_token = server.register("eve", "eve-pw-1", displayname="Eve")
        if rate_limits_lifted:
            server.override_ratelimit(admin_token, bot_id)
        yield Homeserver(
            server=server,
            admin_token=admin_token,
            bot_id=bot_id,
            bot_password="bot-pw-1",
            agent_id=agent_id,
            agent_token=agent_token,
            agent2_id=agent2_id,
            agent2_token=agent2_token,
            stranger_id=stranger_id,
            stranger_token=stranger_token,
        )
    finally:
        server.stop()


# The session's homeserver while it runs: the integration tests shut its rooms after each
# test (tests/integration/conftest.py), whether a test asked for it by name or through
# `messenger`.
session_homeservers: list[Homeserver] = []


@pytest.fixture(scope="session")
def homeserver(
    require_synapse: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Homeserver]:
    with running_homeserver(tmp_path_factory.mktemp("synapse")) as hs:
        session_homeservers.append(hs)
        try:
            yield hs
        finally:
            session_homeservers.remove(hs)


@pytest.fixture
def homeserver_as_shipped(require_synapse: None, tmp_path: Path) -> Iterator[Homeserver]:
    """A Synapse with its default rate limits, for the one test that is about them."""
    with running_homeserver(tmp_path / "synapse", rate_limits_lifted=False) as hs:
        yield hs


@dataclass
class XmppServer:
    server: ProsodyServer
    passwords: dict[str, str]  # bare JID -> password

    def jid(self, localpart: str) -> str:
        return f"{localpart}@{self.server.domain}"


@pytest.fixture(scope="session")
def xmpp_server(
    require_prosody: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[XmppServer]:
    """A private plaintext Prosody on loopback with a bot, two agents and a stranger."""
    server = prepare_prosody(tmp_path_factory.mktemp("prosody"))
    server.start()
    try:
        passwords = {
            server.register(name, f"{name}-pw-1"): f"{name}-pw-1"
            for name in ("support", "alice", "bob", "eve")
        }
        yield XmppServer(server=server, passwords=passwords)
    finally:
        server.stop()
