"""The `[limits]` table and `[server] trusted_proxies`: how much one client address may open.

One address that opens hundreds of sockets or dozens of chats (each a room on the homeserver)
should be refused before it costs anything, without touching other visitors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bridge.config_reader import Reader
from bridge.core.limits import Network, parse_network


@dataclass(frozen=True)
class LimitsConfig:
    """Per client address; 0 switches a limit off."""

    sockets_per_address: int = 20
    chats_per_address: int = 10
    chats_window_minutes: float = 10.0
    transcripts_per_hour: int = 5
    uploads_per_hour: int = 20  # POST /v1/uploads, all chats of the address together


def _count(value: int) -> str | None:
    if value < 0:
        return f"{value} is negative (expected an integer >= 0; 0 switches the limit off)"
    return None


def _minutes(value: float) -> str | None:
    return None if value > 0 else f"{value} is not positive (expected minutes > 0)"


def parse_limits(r: Reader, t: dict[str, Any]) -> LimitsConfig:
    p = "limits"
    counts = ("sockets_per_address", "chats_per_address", "transcripts_per_hour",
              "uploads_per_hour")
    r.unknown_keys(t, {*counts, "chats_window_minutes"}, p)
    defaults = LimitsConfig()
    values = {key: r.get(t, key, p, int, getattr(defaults, key), check=_count) for key in counts}
    window = r.get(t, "chats_window_minutes", p, (int, float), defaults.chats_window_minutes,
                   check=_minutes)
    return LimitsConfig(chats_window_minutes=float(window), **values)


def parse_trusted_proxies(r: Reader, t: dict[str, Any]) -> tuple[str, ...]:
    """`[server] trusted_proxies`: addresses or CIDR networks whose X-Forwarded-For is
    believed."""
    entries = r.get(t, "trusted_proxies", "server", list, [])
    proxies: list[str] = []
    for i, entry in enumerate(entries):
        path = f"server.trusted_proxies[{i}]"
        if not isinstance(entry, str):
            r.fail(path, f"expected a string, got {entry!r}")
        elif parse_network(entry) is None:
            r.fail(path, f"{entry!r} is not an IP address or network (expected e.g. "
                   "\"127.0.0.1\" or \"10.0.0.0/8\", no bits set after the prefix)")
        else:
            proxies.append(entry.strip())
    return tuple(proxies)


def proxy_networks(proxies: tuple[str, ...]) -> tuple[Network, ...]:
    """The validated `trusted_proxies` as networks."""
    return tuple(net for net in map(parse_network, proxies) if net is not None)
