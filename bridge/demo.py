"""`livechat-bridge demo`: a private messenger server, the bridge and a demo shop page,
all on loopback. Matrix runs a private Synapse; XMPP runs a private Prosody."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.app import Bridge
from bridge.backends.base import BackendError
from bridge.cli import wait_for_signal
from bridge.config import parse_config
from bridge.devserver import prosody, synapse
from bridge.startup import StartupError, check_listen_free

log = logging.getLogger(__name__)

DEMO_LISTEN_HINT = "--listen HOST:PORT, or make demo LISTEN=HOST:PORT"
WELCOME = "Hi {visitor}, thanks for writing! Someone will be with you shortly."


@dataclass
class DemoServer:
    """A started private server and what the demo config and the agent need to know."""

    stop: Any
    backend: dict[str, Any]
    agent_address: str
    login_help: str


def _credentials(state: Path) -> dict[str, str]:
    """Demo passwords, made once per state folder so a restarted demo keeps its accounts."""
    path = state / "demo-accounts.json"
    if path.exists():
        return json.loads(path.read_text())
    creds = {name: secrets.token_urlsafe(12) for name in ("admin", "bot", "agent")}
    path.write_text(json.dumps(creds))
    path.chmod(0o600)
    return creds


def _start_synapse(state: Path) -> DemoServer:
    state.mkdir(parents=True, exist_ok=True)
    server = synapse.prepare_synapse(state / "synapse")
    server.start()
    creds = _credentials(state)
    _, admin_token = server.register("admin", creds["admin"], admin=True)
    bot_id, _ = server.register("support", creds["bot"], displayname="Support bot")
    server.register("agent", creds["agent"], displayname="Alice")
    # The bot posts for many visitors at once; the default message rate would throttle it.
    server.override_ratelimit(admin_token, bot_id)
    return DemoServer(
        stop=server.stop,
        backend={"backend": {"type": "matrix"},
                 "matrix": {"homeserver": server.base_url, "user_id": bot_id,
                            "password": creds["bot"]}},
        agent_address="@agent:localhost",
        login_help=(
            "  Answer as the agent from any Matrix client (Element: 'Edit' the homeserver):\n"
            f"    homeserver  {server.base_url}\n"
            "    user        agent   (@agent:localhost)\n"
            f"    password    {creds['agent']}\n"
        ),
    )


def _start_prosody(state: Path) -> DemoServer:
    state.mkdir(parents=True, exist_ok=True)
    server = prosody.prepare_prosody(state / "prosody")
    server.start()
    creds = _credentials(state)
    bot = server.register("support", creds["bot"])
    agent = server.register("agent", creds["agent"])
    return DemoServer(
        stop=server.stop,
        backend={"backend": {"type": "xmpp"},
                 "xmpp": {"jid": bot, "password": creds["bot"],
                          "muc_service": server.muc_domain, "host": "127.0.0.1",
                          "port": server.c2s_port, "plaintext": True}},
        agent_address=agent,
        login_help=(
            "  Answer as the agent from any XMPP client (Gajim, Dino, ...):\n"
            f"    account     {agent}   password {creds['agent']}\n"
            f"    server      127.0.0.1 port {server.c2s_port}, no TLS (a loopback-only\n"
            "                demo server: allow unencrypted connections for this account)\n"
            "  Each chat arrives as an invitation to a group chat.\n"
        ),
    )


STARTERS = {"matrix": (_start_synapse, synapse), "xmpp": (_start_prosody, prosody)}


def demo_config(state: Path, listen: str, server: DemoServer) -> dict[str, Any]:
    return {
        "server": {"listen": listen, "public_url": f"http://{listen}"},
        "storage": {"path": str(state / "livechat.sqlite3")},
        **server.backend,
        "agents": [{"id": "alice", "address": server.agent_address, "name": "Alice"}],
        "queues": [{"id": "support", "name": "Support", "topic": "Orders and delivery",
                    "agents": ["alice"], "welcome": WELCOME}],
    }


def _installed(module: Any) -> bool:
    return bool(module.synapse_installed() if module is synapse else module.prosody_installed())


async def run_demo(state: Path, listen: str, backend: str = "matrix") -> int:
    start_server, module = STARTERS[backend]
    if not _installed(module):
        print(f"The {backend} demo needs its server: {module.INSTALL_HINT}")
        return 1
    host, _, port = listen.rpartition(":")
    try:
        # Before the slow server start: a busy port is said at once, with the way out.
        check_listen_free(host.strip("[]"), int(port), DEMO_LISTEN_HINT)
    except StartupError as exc:
        print(f"livechat-bridge demo: cannot start: {exc}", file=sys.stderr)
        return 1
    state = state / backend
    print(f"Starting a private {backend} server…", flush=True)
    server = await asyncio.to_thread(start_server, state)
    bridge = None
    try:
        config = parse_config(demo_config(state, listen, server))
        bridge = Bridge(config)
        try:
            await bridge.start(DEMO_LISTEN_HINT)
        except (BackendError, StartupError) as exc:
            bridge = None  # a failed start has closed all it opened
            print(f"livechat-bridge demo: cannot start: {exc}", file=sys.stderr)
            return 1
        print(
            "\nlivechat-bridge demo is running.\n"
            f"  Shop page with the widget:  {config.server.public_url}/demo\n"
            f"{server.login_help}"
            "Press Ctrl-C to stop.\n",
            flush=True,
        )
        await wait_for_signal()
    finally:
        if bridge is not None:
            await bridge.stop()
        await asyncio.to_thread(server.stop)
    return 0
