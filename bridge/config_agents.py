"""`[[agents]]`: who answers chats (read by bridge/config.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bridge.config_reader import Reader, address_check, check_ident, check_positive


@dataclass(frozen=True)
class AgentConfig:
    id: str
    address: str
    name: str
    max_chats: int = 3


def parse_agents(r: Reader, items: Any, backend: str) -> list[AgentConfig]:
    if not isinstance(items, list):
        r.fail("agents", "expected an array of tables ([[agents]])")
        return []
    agents: list[AgentConfig] = []
    seen: set[str] = set()
    addresses: set[str] = set()
    for p, t in r.tables(items, "agents"):
        r.unknown_keys(t, {"id", "address", "name", "max_chats"}, p)
        agent_id = r.get(t, "id", p, str, "", required=True, check=check_ident)
        if agent_id and agent_id in seen:
            r.fail(f"{p}.id", f"{agent_id!r} is declared twice (expected unique ids)")
        seen.add(agent_id)
        address = r.get(t, "address", p, str, "", required=True, check=address_check(backend))
        if address and address in addresses:
            r.fail(f"{p}.address", f"{address!r} belongs to another agent (expected one agent "
                   "per address)")
        addresses.add(address)
        agents.append(
            AgentConfig(
                id=agent_id,
                address=address,
                name=r.get(t, "name", p, str, ""),
                max_chats=r.get(t, "max_chats", p, int, 3, check=check_positive),
            )
        )
    return agents
