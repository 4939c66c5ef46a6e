"""The composition root: builds the store, the backend, every part of the hub ring with the
narrow collaborators it needs, and the web app; starts and stops them in pairs."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from aiohttp import web

from bridge.aftercare import Aftercare
from bridge.backends.base import Backend, BackendError
from bridge.blobs import Blobs
from bridge.chat_actions import ChatActions
from bridge.command_forms import CommandForms, FormsBackend
from bridge.command_tools import CommandTools
from bridge.commands import Commands
from bridge.config import Config
from bridge.core.models import Conversation
from bridge.corrections import Corrections
from bridge.files import Files
from bridge.hub import Hub, HubParts
from bridge.i18n import visitor_strings
from bridge.idle import IdleChats
from bridge.inbound import Inbound
from bridge.lobby_claims import LobbyClaims
from bridge.mail import Mailer
from bridge.notices import Notices
from bridge.opening_rooms import OpeningRooms
from bridge.outbox import Outbox
from bridge.peek import Peeks
from bridge.read_states import ReadStates
from bridge.routing.assignment import Assignment
from bridge.routing.availability import Availability, Invitations
from bridge.routing.lobbies import Lobbies
from bridge.routing.waiting_line import WaitingLine
from bridge.sinks import Sinks
from bridge.startup import RUN_LISTEN_HINT, check_listen_free, listen_error, open_store
from bridge.store import Store, StoreBackendState
from bridge.tasks import TaskGroup
from bridge.tickets import Tickets
from bridge.timeline import Timeline
from bridge.transfers import TransferOffers
from bridge.unanswered import UnansweredTickets
from bridge.visitor_edits import VisitorEdits
from bridge.web.app import VisitorSide, create_app

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
                           catch_up_since=store.catch_up_since,
                           state=StoreBackendState(store, "xmpp"))
    raise ValueError(f"backend {config.backend!r} is not available in this version")


def build_hub(config: Config, store: Store, backend: Backend, *,
              mailer: Mailer | None = None, tickets: Tickets | None = None,
              clock: Callable[[], float] = time.time) -> Hub:
    """Every part of the hub ring, each given only what it uses."""
    tasks = TaskGroup()

    def spawn(coroutine: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        return tasks.spawn(coroutine, name=name)

    sinks = Sinks()
    notices = Notices(backend)
    invitations = Invitations(store)
    availability = Availability(config, store, invitations, backend.presence_default, clock)
    line = WaitingLine(config, store, availability, sinks, clock)
    lobbies = Lobbies(config, store, backend, clock)
    assignment = Assignment(config, store, backend, availability, invitations, line, lobbies,
                            notices, spawn)
    opening = OpeningRooms()
    outbox = Outbox(config, store, backend, tasks, assignment.invitees, assignment.room_opened,
                    opening, lambda: inbound.replay_held(), lambda item: files.outgoing(item))
    survey = visitor_strings(config, config.widget.default_lang)["survey"]
    timeline = Timeline(store, sinks, outbox.kick, survey)
    files = Files(config.files, config.server.public_url, Blobs(config.storage.files_dir),
                  store, store.kv, timeline, backend.fetch_file, clock)
    unanswered = UnansweredTickets(config, store, tickets, sinks, notices, clock)
    reads = ReadStates(store, backend.mark_read, sinks, notices, spawn, clock)

    async def chat_ended(conversation: Conversation) -> None:  # what else an end tells
        await reads.chat_ended(conversation)
        await offers.chat_ended(conversation)

    actions = ChatActions(config, store, backend, timeline, notices, assignment, line,
                          unanswered, clock, chat_ended)
    aftercare = Aftercare(config, store, timeline, notices, mailer, clock,
                          lambda file: files.link(file.id))
    offers = TransferOffers(config, store, store.offers, actions, notices, backend, clock)
    commands = Commands(CommandTools(config, store, actions, aftercare, assignment,
                                     availability, offers, clock))
    inbound = Inbound(config, store, backend, sinks, timeline, notices, actions, assignment,
                      lobbies, commands, outbox.wake, opening, files, reads,
                      Corrections(store, timeline, clock), offers,
                      LobbyClaims(lobbies, store, actions, clock), clock)
    if isinstance(backend, FormsBackend):  # XMPP's ad-hoc commands: the same commands
        backend.serve_forms(CommandForms(config, store, commands, notices, availability,
                                         inbound.turn, clock))
    idle = IdleChats(config.server.idle_timeout_minutes * 60, store, sinks, actions.end, clock)
    peeks = Peeks(config, store, backend, spawn)
    parts = HubParts(sinks=sinks, timeline=timeline, outbox=outbox, availability=availability,
                     assignment=assignment, line=line, lobbies=lobbies, actions=actions,
                     aftercare=aftercare, idle=idle, peeks=peeks, inbound=inbound,
                     edits=VisitorEdits(store, timeline, config.chats.visitor_edit_seconds,
                                        clock),
                     files=files, reads=reads, offers=offers, tasks=tasks)
    return Hub(config, store, backend, parts, clock=clock)


def web_app(config: Config, hub: Hub, tickets: Tickets) -> web.Application:
    """The visitors' and admins' HTTP side, on the hub's parts."""
    parts = hub.parts
    visitors = VisitorSide(hub, parts.line.status, parts.aftercare.transcript_for_token,
                           parts.files)
    return create_app(config, visitors, tickets, hub.store, hub.clock)


class Bridge:
    """One running bridge: start() returns when it serves visitors; stop() undoes it all."""

    def __init__(self, config: Config, backend: Backend | None = None) -> None:
        self.config = config
        self.store = open_store(config.storage.path)
        self.backend = backend or make_backend(config, self.store)
        mailer = Mailer(config.smtp) if config.smtp is not None else None
        self._ticket_tasks = TaskGroup()
        self.tickets = Tickets(config, self.store, mailer, self._ticket_tasks, self.backend)
        self.hub = build_hub(config, self.store, self.backend, mailer=mailer,
                             tickets=self.tickets)
        self.app = web_app(config, self.hub, self.tickets)
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
        bound = self._runner.addresses  # the port the kernel picked for port 0
        if bound:
            self.port = int(bound[0][1])
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
