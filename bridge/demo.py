"""`livechat-bridge demo`: a private Synapse, the bridge and a demo shop page, all on loopback."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from pathlib import Path

from bridge.app import Bridge
from bridge.cli import wait_for_signal
from bridge.config import parse_config
from bridge.devserver.synapse import INSTALL_HINT, SynapseServer, prepare_synapse, synapse_installed

log = logging.getLogger(__name__)


def _credentials(state: Path) -> dict[str, str]:
    """Demo passwords, made once per state folder so a restarted demo keeps its accounts."""
    path = state / "demo-accounts.json"
    if path.exists():
        return json.loads(path.read_text())
    creds = {name: secrets.token_urlsafe(12) for name in ("admin", "bot", "agent")}
    path.write_text(json.dumps(creds))
    path.chmod(0o600)
    return creds


def _start_homeserver(state: Path) -> tuple[SynapseServer, dict[str, str]]:
    state.mkdir(parents=True, exist_ok=True)
    server = prepare_synapse(state / "synapse")
    server.start()
    creds = _credentials(state)
    _, admin_token = server.register("admin", creds["admin"], admin=True)
    bot_id, _ = server.register("support", creds["bot"], displayname="Support bot")
    server.register("agent", creds["agent"], displayname="Alice")
    # The bot posts for many visitors at once; the default message rate would throttle it.
    server.override_ratelimit(admin_token, bot_id)
    return server, creds


def demo_config(state: Path, listen: str, homeserver: str, bot_password: str) -> dict:
    return {
        "server": {"listen": listen, "public_url": f"http://{listen}"},
        "storage": {"path": str(state / "livechat.sqlite3")},
        "backend": {"type": "matrix"},
        "matrix": {
            "homeserver": homeserver,
            "user_id": "@support:localhost",
            "password": bot_password,
        },
        "agents": [{"id": "alice", "address": "@agent:localhost", "name": "Alice"}],
        "queues": [{
            "id": "support",
            "name": "Support",
            "topic": "Orders and delivery",
            "agents": ["alice"],
            "welcome": "Hi {visitor}, thanks for writing! Someone will be with you shortly.",
        }],
    }


async def run_demo(state: Path, listen: str) -> int:
    if not synapse_installed():
        print(f"The demo needs a Matrix homeserver: {INSTALL_HINT}")
        return 1
    print("Starting a private Synapse homeserver…", flush=True)
    server, creds = await asyncio.to_thread(_start_homeserver, state)
    bridge = None
    try:
        config = parse_config(demo_config(state, listen, server.base_url, creds["bot"]))
        bridge = Bridge(config)
        await bridge.start()
        print(
            "\nlivechat-bridge demo is running.\n"
            f"  Shop page with the widget:  {config.server.public_url}/demo\n"
            "  Answer as the agent from any Matrix client (Element: 'Edit' the homeserver):\n"
            f"    homeserver  {server.base_url}\n"
            "    user        agent   (@agent:localhost)\n"
            f"    password    {creds['agent']}\n"
            "Press Ctrl-C to stop.\n",
            flush=True,
        )
        await wait_for_signal()
    finally:
        if bridge is not None:
            await bridge.stop()
        await asyncio.to_thread(server.stop)
    return 0
