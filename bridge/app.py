"""The composition root: builds the store, the backend, the hub and the web app, and runs them."""

from __future__ import annotations

import logging

from aiohttp import web

from bridge.backends.base import Backend, BackendError
from bridge.config import Config
from bridge.hub import Hub
from bridge.mail import Mailer
from bridge.startup import RUN_LISTEN_HINT, check_listen_free, listen_error, open_store
from bridge.store import Store, StoreBackendState
from bridge.tasks import TaskGroup
from bridge.tickets import Tickets
from bridge.web.app import create_app

log = logging.getLogger(__name__)


def make_backend(config: Config, store: Store) -> Backend:
    if config.backend == "matrix" and config.matrix is not None:
        from bridge.backends.matrix import MatrixBackend

        return MatrixBackend(config.matrix, StoreBackendState(store, "matrix"),
                             tuple(agent.address for agent in config.agents))
    if config.backend == "xmpp" and config.xmpp is not None:
        try:
            from bridge.backends.xmpp import XmppBackend
        except ImportError as exc:
            raise BackendError(
                "the XMPP backend needs slixmpp: pip install -e '.[xmpp]' in a checkout"
            ) from exc

        return XmppBackend(config.xmpp, tuple(agent.address for agent in config.agents),
                           catch_up_since=store.catch_up_since)
    raise ValueError(f"backend {config.backend!r} is not available in this version")


class Bridge:
    """One running bridge: start() returns when it serves visitors; stop() undoes it all."""

    def __init__(self, config: Config, backend: Backend | None = None) -> None:
        self.config = config
        self.store = open_store(config.storage.path)
        self.backend = backend or make_backend(config, self.store)
        mailer = Mailer(config.smtp) if config.smtp is not None else None
        self._ticket_tasks = TaskGroup()
        self.tickets = Tickets(config, self.store, mailer, self._ticket_tasks, self.backend)
        self.hub = Hub(config, self.store, self.backend, mailer=mailer, tickets=self.tickets)
        self.app = create_app(config, self.hub, self.tickets)
        self._runner: web.AppRunner | None = None
        self.port = config.server.port

    async def start(self, listen_hint: str = RUN_LISTEN_HINT) -> None:
        """Serve visitors; on failure, undo what was started and raise (StartupError or
        BackendError: one line naming the key to fix). `listen_hint` says how to pick
        another port."""
        try:
            await self._start(listen_hint)
        except BaseException:
            await self.stop()  # nothing left open behind the error: sessions, tasks, store
            raise

    async def _start(self, listen_hint: str) -> None:
        host, port = self.config.server.host, self.config.server.port
        check_listen_free(host, port, listen_hint)  # before the slow login to the messenger
        await self.hub.start()
        self.tickets.resume()
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        try:
            await site.start()
        except OSError as exc:  # taken meanwhile, after the check
            raise listen_error(exc, host, port, listen_hint) from None
        server = site._server
        if server is not None and server.sockets:
            self.port = server.sockets[0].getsockname()[1]
        log.info("serving visitors on http://%s:%d (widget: %s/widget.js)",
                 self.config.server.host, self.port, self.config.server.public_url)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.hub.stop()
        await self._ticket_tasks.close()
        self.store.close()

    @property
    def base_url(self) -> str:
        return f"http://{self.config.server.host}:{self.port}"
