"""The demo's config file: a real `config.toml` the demo writes, loads and prints, so
`livechat-bridge check -c` and `report -c` work on it as on a production one."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bridge.demo_mail import HELPDESK
from bridge.demo_servers import DemoServer

CONFIG_NAME = "config.toml"
WELCOME = "Hi {visitor}, thanks for writing! Someone will be with you shortly."
CANNED = {
    "greeting": "Hello {visitor}, I'm {agent}. How can I help?",
    "shipping": "Orders leave within one working day; shipping is €4.90, free over €40.",
    "bye": "Thanks for chatting with {queue}, {visitor}. Have a nice day!",
}
HEADER = (
    "# Written by `livechat-bridge demo` at each start (edits are overwritten): the\n"
    "# demo's own servers, accounts and secrets. config.example.toml documents every key.\n\n"
)


def demo_settings(state: Path, listen: str, server: DemoServer, admin_token: str,
                  smtp: Mapping[str, Any]) -> dict[str, Any]:
    agents = [{"id": a.id, "address": a.address, "name": a.name} for a in server.agents]
    return {
        "server": {"listen": listen, "public_url": f"http://{listen}",
                   "admin_token": admin_token},
        "storage": {"path": str(state / "livechat.sqlite3")},
        **server.backend,
        "smtp": dict(smtp),
        "agents": agents,
        "queues": [{"id": "support", "name": "Support", "topic": "Orders and delivery",
                    "agents": [a["id"] for a in agents], "welcome": WELCOME,
                    "helpdesk_email": HELPDESK}],
        "canned": CANNED,
    }


def write_config(state: Path, settings: Mapping[str, Mapping[str, Any] | list[Any]]) -> Path:
    """Write `state/config.toml` (readable by its owner only: it holds passwords)."""
    path = state / CONFIG_NAME
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(HEADER + to_toml(settings), encoding="utf-8")
    return path


def to_toml(settings: Mapping[str, Mapping[str, Any] | list[Any]]) -> str:
    """Flat tables and arrays of tables, the only shapes the demo config has."""
    blocks = []
    for name, content in settings.items():
        if isinstance(content, list):
            blocks += [_table(f"[[{name}]]", entry) for entry in content]
        else:
            blocks.append(_table(f"[{name}]", content))
    return "\n".join(blocks)


def _table(header: str, content: Mapping[str, Any]) -> str:
    return header + "\n" + "".join(f"{key} = {_value(v)}\n" for key, v in content.items())


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | str):
        # A JSON string is a valid TOML basic string (same escapes).
        return json.dumps(value, ensure_ascii=False) if isinstance(value, str) else str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    raise TypeError(f"no TOML form for {value!r} in the demo config")
