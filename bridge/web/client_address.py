"""Who a request comes from, and what that address may still open (`[limits]`).

The decisions are in `bridge.core.limits`; this is the aiohttp side: reading the peer and
X-Forwarded-For off a request, and one set of counters per web application.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from bridge.config import Config
from bridge.config_limits import LimitsConfig, proxy_networks
from bridge.core.limits import (
    ConcurrencyLimiter,
    Network,
    WindowLimiter,
    client_address,
    limit_key,
)

HOUR_S = 3600.0


@dataclass
class AddressLimits:
    """The counters of one running bridge, keyed by client address (IPv6: by /64)."""

    trusted: tuple[Network, ...] = ()
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    sockets: ConcurrencyLimiter = field(init=False)
    chats: WindowLimiter = field(init=False)
    transcripts: WindowLimiter = field(init=False)
    uploads: WindowLimiter = field(init=False)  # POST /v1/uploads

    def __post_init__(self) -> None:
        cfg = self.limits
        self.sockets = ConcurrencyLimiter(cfg.sockets_per_address)
        self.chats = WindowLimiter(cfg.chats_per_address, cfg.chats_window_minutes * 60)
        self.transcripts = WindowLimiter(cfg.transcripts_per_hour, HOUR_S)
        self.uploads = WindowLimiter(cfg.uploads_per_hour, HOUR_S)

    @classmethod
    def from_config(cls, config: Config) -> AddressLimits:
        return cls(proxy_networks(config.server.trusted_proxies), config.limits)

    def address(self, request: web.Request) -> str:
        return client_address(request.remote or "", request.headers.getall("X-Forwarded-For", ()),
                              self.trusted)

    def key(self, request: web.Request) -> str:
        """What the counters count `request` against."""
        return limit_key(self.address(request))


LIMITS = web.AppKey("address_limits", AddressLimits)


def install(app: web.Application, config: Config) -> None:
    app[LIMITS] = AddressLimits.from_config(config)


def limits_of(request: web.Request) -> AddressLimits:
    """The application's counters (fresh, unshared ones if `install` was not called)."""
    return request.app.get(LIMITS) or AddressLimits()


def request_address(request: web.Request) -> str:
    """The client's address: the peer, or what a trusted proxy says it forwarded."""
    return limits_of(request).address(request)
