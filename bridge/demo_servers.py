"""The demo's private messenger server: Synapse or Prosody, a bot and two agent accounts."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.devserver import prosody, synapse

# (config id, account localpart, display name): two agents, so `!transfer bob` works.
AGENTS = (("alice", "agent", "Alice"), ("bob", "bob", "Bob"))
SECRETS = ("admin", "bot", "agent", "bob", "admin_token")


@dataclass(frozen=True)
class DemoAgent:
    id: str
    name: str
    address: str
    login: str  # what to type as the user name
    password: str


@dataclass
class DemoServer:
    """A started private server and what the demo config and the agents need to know."""

    stop: Callable[[], None]
    backend: dict[str, Any]
    agents: list[DemoAgent]
    login_help: str


def credentials(state: Path) -> dict[str, str]:
    """Demo secrets, made once per state folder so a restarted demo keeps its accounts;
    a file from an older demo gains the secrets it lacks."""
    path = state / "demo-accounts.json"
    creds: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    missing = [name for name in SECRETS if name not in creds]
    for name in missing:
        creds[name] = secrets.token_urlsafe(24 if name == "admin_token" else 12)
    if missing:
        path.write_text(json.dumps(creds))
        path.chmod(0o600)
    return creds


def start_synapse(state: Path) -> DemoServer:
    state.mkdir(parents=True, exist_ok=True)
    server = synapse.prepare_synapse(state / "synapse")
    server.start()
    creds = credentials(state)
    _, admin_token = server.register("admin", creds["admin"], admin=True)
    bot_id, _ = server.register("support", creds["bot"], displayname="Support bot")
    agents = []
    for agent_id, localpart, name in AGENTS:
        user_id, _ = server.register(localpart, creds[localpart], displayname=name)
        agents.append(DemoAgent(agent_id, name, user_id, localpart, creds[localpart]))
    # The bot posts for many visitors at once; the default message rate would throttle it.
    server.override_ratelimit(admin_token, bot_id)
    lines = [f"    {a.name:<6} user {a.login:<6} {'(' + a.address + ')':<19} password {a.password}"
             for a in agents]
    return DemoServer(
        stop=server.stop,
        backend={"backend": {"type": "matrix"},
                 "matrix": {"homeserver": server.base_url, "user_id": bot_id,
                            "password": creds["bot"]}},
        agents=agents,
        login_help=(
            "  Answer as an agent from a Matrix client that can reach 127.0.0.1\n"
            "  (Element Desktop: Sign in, 'Edit' the homeserver):\n"
            f"    homeserver  {server.base_url}\n" + "\n".join(lines) + "\n"
        ),
    )


def _prepare_prosody(state: Path) -> prosody.ProsodyServer:
    server = prosody.prepare_prosody(state / "prosody", tls=True, web=True)
    if server.tls and server.http_port is not None and server.upload_domain is not None:
        return server
    # A demo folder from before TLS, WebSocket or file upload: the config is derived, the
    # accounts and rooms (under data/) stay.
    server.config_path.unlink()
    return prosody.prepare_prosody(state / "prosody", tls=True, web=True,
                                   c2s_port=server.c2s_port)


def start_prosody(state: Path) -> DemoServer:
    state.mkdir(parents=True, exist_ok=True)
    server = _prepare_prosody(state)
    server.start()
    creds = credentials(state)
    bot = server.register("support", creds["bot"])
    agents = [DemoAgent(agent_id, name, server.register(localpart, creds[localpart]),
                        f"{localpart}@{server.domain}", creds[localpart])
              for agent_id, localpart, name in AGENTS]
    return DemoServer(
        stop=server.stop,
        backend={"backend": {"type": "xmpp"},
                 "xmpp": {"jid": bot, "password": creds["bot"],
                          "muc_service": server.muc_domain, "host": "127.0.0.1",
                          "port": server.c2s_port, "ca_file": str(server.ca_file)}},
        agents=agents,
        login_help=_xmpp_help(server, agents),
    )


def _xmpp_help(server: prosody.ProsodyServer, agents: list[DemoAgent]) -> str:
    lines = [f"    {a.name:<6} JID {a.login:<16} password {a.password}" for a in agents]
    return (
        "  Answer as an agent from an XMPP client:\n" + "\n".join(lines) + "\n"
        f"    Gajim        add the account with 'Advanced' ticked: custom host 127.0.0.1,\n"
        f"                 port {server.c2s_port} (STARTTLS)\n"
        f"    Converse.js  websocket_url: '{server.websocket_url}'\n"
        f"                 (BOSH: {server.bosh_url})\n"
        "    The server's TLS certificate is self-signed: accept it when the client asks\n"
        f"    (or trust {server.ca_file}).\n"
        "  Each chat arrives as an invitation to a group chat.\n"
    )


STARTERS: dict[str, tuple[Callable[[Path], DemoServer], Any]] = {
    "matrix": (start_synapse, synapse),
    "xmpp": (start_prosody, prosody),
}


def installed(backend: str) -> bool:
    module = STARTERS[backend][1]
    return bool(module.synapse_installed() if module is synapse else module.prosody_installed())
