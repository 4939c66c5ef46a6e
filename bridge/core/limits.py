"""Per-address limits: which address a request counts against, and counters per address.

Pure: no sockets, no clock. The address comes from the peer and, only behind a trusted
reverse proxy, from X-Forwarded-For; the counters are told the time and forget addresses
that went quiet, so a flood from many addresses cannot grow memory without bound.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# An IPv6 host usually holds a whole /64 and can pick a fresh address in it for each
# request: counting single addresses would not limit it at all.
IPV6_PREFIX = 64
# Addresses a window limiter keeps at once; beyond that the least recently counted ones are
# forgotten (they start afresh), so memory stays bounded whatever arrives.
MAX_ADDRESSES = 100_000


def parse_address(text: str) -> IPAddress | None:
    """An IP address, IPv4-mapped IPv6 (`::ffff:10.0.0.1`) as the IPv4 it carries; None for
    anything else (ports, brackets, names, garbage)."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def parse_network(text: str) -> Network | None:
    """An address or a CIDR network ("127.0.0.1", "10.0.0.0/8", "fd00::/8"); None when it
    is neither, or has bits set after the prefix (a typo more often than not)."""
    try:
        return ipaddress.ip_network(text.strip())
    except ValueError:
        return None


def is_trusted(address: IPAddress, trusted: Iterable[Network]) -> bool:
    return any(address.version == net.version and address in net for net in trusted)


def client_address(peer: str, forwarded_for: Iterable[str], trusted: tuple[Network, ...]
                   ) -> str:
    """The address a request counts against.

    The peer, unless it is a trusted proxy: then the right-most X-Forwarded-For entry that
    is not a trusted proxy (all of them trusted: the left-most). Entries left of that one
    were written by the client and are never looked at, so garbage there cannot move the
    count anywhere; garbage among the entries the proxies wrote falls back to the peer.
    `forwarded_for` holds each X-Forwarded-For header's value, in the order received.
    """
    peer_ip = parse_address(peer)
    if peer_ip is None:
        return peer
    if not is_trusted(peer_ip, trusted):
        return str(peer_ip)
    hops = [hop for value in forwarded_for for hop in value.split(",")]
    chosen = peer_ip
    for hop in reversed(hops):
        address = parse_address(hop)
        if address is None:
            return str(peer_ip)
        chosen = address
        if not is_trusted(address, trusted):
            break
    return str(chosen)


def limit_key(address: str) -> str:
    """What the counters count by: the IPv4 address, or the /64 an IPv6 address is in."""
    ip = parse_address(address)
    if ip is None or ip.version == 4:
        return address
    return str(ipaddress.ip_network(f"{ip}/{IPV6_PREFIX}", strict=False))


@dataclass
class WindowLimiter:
    """At most `limit` events per key in any `window_s` seconds (a sliding window); a
    `limit` of 0 allows everything. Refused attempts are not counted, so a client that
    keeps hammering is let in again as soon as its oldest counted event leaves the window."""

    limit: int
    window_s: float
    max_keys: int = MAX_ADDRESSES
    # Keys in the order of their latest event: the idle ones are at the front.
    _events: OrderedDict[str, deque[float]] = field(default_factory=OrderedDict, init=False,
                                                     repr=False)

    def take(self, key: str, now: float) -> bool:
        """Count one event for `key` if it is below the limit; False if it is not."""
        if self.limit <= 0:
            return True
        self._forget_idle(now)
        events = self._events.setdefault(key, deque())
        while events and events[0] <= now - self.window_s:
            events.popleft()
        if len(events) >= self.limit:
            return False
        events.append(now)
        self._events.move_to_end(key)
        while len(self._events) > self.max_keys:
            self._events.popitem(last=False)
        return True

    def give_back(self, key: str, taken_at: float) -> None:
        """Uncount an event that `take` allowed at `taken_at` but that did not happen."""
        events = self._events.get(key)
        if events is not None and taken_at in events:
            events.remove(taken_at)

    def retry_after(self, key: str, now: float) -> float:
        """Seconds until `key` may have one more event (0: now)."""
        events = self._events.get(key)
        if self.limit <= 0 or events is None or len(events) < self.limit:
            return 0.0
        return max(0.0, events[-self.limit] + self.window_s - now)

    def __len__(self) -> int:
        return len(self._events)

    def _forget_idle(self, now: float) -> None:
        while self._events:
            key, events = next(iter(self._events.items()))
            if events and events[-1] > now - self.window_s:
                return
            del self._events[key]


@dataclass
class ConcurrencyLimiter:
    """At most `limit` things open at once per key (0: no limit). Only keys with something
    open are kept, so memory follows what is open."""

    limit: int
    _open: dict[str, int] = field(default_factory=dict, init=False, repr=False)

    def acquire(self, key: str) -> bool:
        count = self._open.get(key, 0)
        if 0 < self.limit <= count:
            return False
        self._open[key] = count + 1
        return True

    def release(self, key: str) -> None:
        count = self._open.get(key, 0) - 1
        if count > 0:
            self._open[key] = count
        else:
            self._open.pop(key, None)

    def count(self, key: str) -> int:
        return self._open.get(key, 0)

    def __len__(self) -> int:
        return len(self._open)
