"""How agents are named to visitors and in rooms."""

from __future__ import annotations

from typing import Protocol


class Named(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str: ...


def agent_name(agent: Named, shown_name: str) -> str:
    """The configured name, else the name the messenger shows, else the agent's id."""
    return agent.name or shown_name or agent.id
