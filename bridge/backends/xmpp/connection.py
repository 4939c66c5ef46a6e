"""The bot's connection to its server: building the client, connecting, reconnecting, and
the session's life as one explicit state.

    IDLE          -> CONNECTING    start: the first attempt
    CONNECTING    -> ONLINE        a session started (new) or resumed (stream management)
    CONNECTING    -> IDLE          the first attempt failed (start raises why)
    CONNECTING    -> RECONNECTING  a later attempt failed: the loop tries again
    ONLINE        -> RECONNECTING  the stream was lost: the reconnect loop starts
    RECONNECTING  -> CONNECTING    the loop's next attempt, after a growing pause
    any           -> STOPPING -> IDLE   stop

CONNECTING is one attempt in flight. Only ONLINE -> RECONNECTING starts the reconnect loop,
and the loop runs until ONLINE again, so a second disconnect while it runs starts no other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from slixmpp import JID

from bridge.backends.base import BackendError, BackendUnavailable
from bridge.backends.xmpp.fastpath import BotClient
from bridge.config import XmppConfig
from bridge.startup import xmpp_connect_problem
from bridge.tasks import TaskGroup, backoff_delays

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 15.0
# Ask the server to acknowledge our stanzas (XEP-0198 <r/>) after this many, not after every
# 5th (slixmpp's default): an ack round trip costs both sides work while a line is in flight.
# Delivery never rests on these acks (a line counts once the room reflects it); they only
# bound what a resumed stream sends again.
SM_ACK_WINDOW = 50
_PLUGINS = ("xep_0030", "xep_0045", "xep_0085", "xep_0199", "xep_0203", "xep_0249",
            "xep_0308", "xep_0359", "xep_0004", "xep_0050")
AUTH_FAILED = "authentication failed"


class LinkState(Enum):
    IDLE = "idle"  # not started, or stopped
    CONNECTING = "connecting"  # one connection attempt in flight
    ONLINE = "online"  # a session, new or resumed
    RECONNECTING = "reconnecting"  # the stream was lost; the loop waits for its next attempt
    STOPPING = "stopping"


_NEXT: dict[LinkState, frozenset[LinkState]] = {
    LinkState.IDLE: frozenset({LinkState.CONNECTING, LinkState.STOPPING}),
    LinkState.CONNECTING: frozenset({LinkState.ONLINE, LinkState.IDLE, LinkState.RECONNECTING,
                                     LinkState.STOPPING}),
    LinkState.ONLINE: frozenset({LinkState.RECONNECTING, LinkState.STOPPING}),
    LinkState.RECONNECTING: frozenset({LinkState.CONNECTING, LinkState.STOPPING}),
    LinkState.STOPPING: frozenset({LinkState.IDLE}),
}


@dataclass(frozen=True)
class SessionHooks:
    """What the backend does as the session comes and goes (called in the transition)."""

    started: Callable[[int], None]  # a new session, numbered from 1: presence, rooms again
    resumed: Callable[[], None]  # stream management resumed the old one: nothing was lost
    lost: Callable[[], None]  # the stream is gone; the reconnect loop starts


def build_client(config: XmppConfig) -> BotClient:
    """A client with the plugins the backend uses and the configured transport security."""
    client = BotClient(config.jid, config.password)
    for plugin in _PLUGINS:
        client.register_plugin(plugin)
    client.register_plugin("xep_0198", pconfig={"window": SM_ACK_WINDOW})
    client.plugin["xep_0199"].enable_keepalive(interval=60, timeout=15)
    client.enable_direct_tls = False
    if config.plaintext:
        # Loopback test servers only: no TLS at all, SCRAM over the plain stream.
        client.enable_starttls = False
        client.enable_plaintext = True
        client.plugin["feature_mechanisms"].unencrypted_scram = True
    else:
        client.enable_plaintext = False
        if config.ca_file is not None:
            client.ca_certs = config.ca_file
        if not config.verify_tls:
            client.ssl_context.check_hostname = False
            client.ssl_context.verify_mode = ssl.CERT_NONE
    # Presence subscriptions: agents only; anyone else is neither asked nor accepted.
    client.auto_authorize = None
    client.auto_subscribe = False
    return client


class Connection:
    """One client's connection, reconnected until stopped."""

    def __init__(self, config: XmppConfig, hooks: SessionHooks, tasks: TaskGroup) -> None:
        self.config = config
        self.state = LinkState.IDLE
        self.session_number = 0  # new sessions so far (a resumed one is not new)
        self._hooks = hooks
        self._tasks = tasks
        self._client: BotClient | None = None
        self._online = asyncio.Event()  # set exactly while ONLINE
        self._failure: Any = None  # why the current attempt failed, the first reason
        self._attempt_failed = asyncio.Event()

    @property
    def client(self) -> BotClient:
        if self._client is None:
            raise BackendUnavailable("xmpp: not started")
        return self._client

    @property
    def started(self) -> bool:
        return self._client is not None

    def _enter(self, state: LinkState) -> None:
        """The one place the state changes."""
        if state not in _NEXT[self.state]:
            raise RuntimeError(f"xmpp: no way from {self.state.name} to {state.name}")
        log.debug("xmpp: %s -> %s", self.state.name, state.name)
        self.state = state
        if state is LinkState.ONLINE:
            self._online.set()
        else:
            self._online.clear()

    def attach(self, client: BotClient) -> None:
        """The client to connect with, its connection events handled here."""
        self._client = client
        for event, handler in (("session_start", self._on_session_start),
                               ("session_resumed", self._on_session_resumed),
                               ("failed_auth", self._on_failed_auth),
                               ("connection_failed", self._on_connection_failed),
                               ("ssl_invalid_chain", self._on_invalid_certificate),
                               ("disconnected", self._on_disconnected)):
            client.add_event_handler(event, handler)

    async def start(self) -> bool:
        """Connect once; False when that failed (`failure` says why)."""
        return await self._attempt(fallback=LinkState.IDLE)

    def failure(self) -> BackendError:
        """Why the first attempt failed, naming the key to fix."""
        jid = JID(self.config.jid)
        if self._failure == AUTH_FAILED:
            return BackendError(f"xmpp.password: {jid} could not log in (wrong password?)")
        return BackendUnavailable(xmpp_connect_problem(
            self.config.host, self.config.port, str(jid), self._failure))

    async def stop(self) -> None:
        if self.state is LinkState.STOPPING:
            return
        self._enter(LinkState.STOPPING)
        client = self._client
        if client is not None:
            client.cancel_connection_attempt()
            if client.transport is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.disconnect(wait=1.0), 3.0)
            client.abort()
        self._client = None
        self._enter(LinkState.IDLE)

    async def wait_online(self) -> None:
        try:
            await asyncio.wait_for(self._online.wait(), CONNECT_TIMEOUT_S)
        except TimeoutError:
            raise BackendUnavailable("xmpp: not connected") from None

    # -- attempts ------------------------------------------------------------------------

    async def _attempt(self, fallback: LinkState) -> bool:
        """One connection attempt with a deadline; True once a session is up.

        A refused connection, a certificate that does not verify or a refused password
        ends the attempt at once, with the reason kept for the error message.
        """
        client = self.client
        self._enter(LinkState.CONNECTING)
        self._failure = None
        self._attempt_failed = asyncio.Event()
        if self.config.host:
            client.connect(self.config.host, self.config.port)
        else:
            client.connect()  # the domain's SRV records
        waiters = [asyncio.ensure_future(self._online.wait()),
                   asyncio.ensure_future(self._attempt_failed.wait())]
        _, pending = await asyncio.wait(waiters, timeout=CONNECT_TIMEOUT_S,
                                        return_when=asyncio.FIRST_COMPLETED)
        for waiter in pending:
            waiter.cancel()
        if self.state is LinkState.ONLINE:
            return True
        if self.state is LinkState.CONNECTING:
            self._enter(fallback)
        client.cancel_connection_attempt()
        client.abort()
        return False

    async def _reconnect(self) -> None:
        """The one reconnect loop, from a lost stream until online again (or stopped)."""
        delays = backoff_delays(first=0.5, cap=15.0)
        while self.state is LinkState.RECONNECTING:
            await asyncio.sleep(next(delays))
            if self.state is not LinkState.RECONNECTING:
                return
            if await self._attempt(fallback=LinkState.RECONNECTING):
                return

    def _attempt_ended(self, reason: Any) -> None:
        self._failure = self._failure or reason  # the first reason is the real one
        self._attempt_failed.set()

    # -- slixmpp's events ----------------------------------------------------------------

    async def _on_session_start(self, _event: Any) -> None:
        if self.state is not LinkState.CONNECTING:
            return  # an attempt given up already, or stopping
        self.session_number += 1
        self._enter(LinkState.ONLINE)
        log.info("xmpp: session started as %s", self.client.boundjid)
        self._hooks.started(self.session_number)

    def _on_session_resumed(self, _event: Any) -> None:
        if self.state is not LinkState.CONNECTING:
            return
        self._enter(LinkState.ONLINE)
        log.info("xmpp: session resumed")
        self._hooks.resumed()

    def _on_disconnected(self, reason: Any) -> None:
        if self.state is LinkState.CONNECTING:
            self._attempt_ended(reason)
        elif self.state is LinkState.ONLINE:
            log.warning("xmpp: disconnected (%s); reconnecting", reason)
            self._enter(LinkState.RECONNECTING)
            self._hooks.lost()
            self._tasks.spawn(self._reconnect(), name="xmpp-reconnect")
        # Otherwise: stopping, or the end of an attempt already given up.

    def _on_failed_auth(self, _event: Any) -> None:
        # The most telling reason there is: it replaces whatever came before.
        self._failure = AUTH_FAILED
        self._attempt_ended(AUTH_FAILED)

    def _on_connection_failed(self, reason: Any) -> None:
        if self.state is LinkState.CONNECTING:
            self._attempt_ended(reason)

    def _on_invalid_certificate(self, error: Exception) -> None:
        # Handling this event keeps slixmpp from disconnecting quietly: we end the attempt.
        # Before the first session, start() reports it in one line naming the key to fix.
        log.log(logging.ERROR if self.session_number else logging.DEBUG,
                "xmpp: the server's certificate does not verify: %s", error)
        self._attempt_ended(error)
        self.client.abort()
