"""Offline messages become tickets: stored first, then mailed to the queue's help desk
(Reply-To: the visitor), POSTed to its webhook and posted to its agents in their messenger,
each retried until it went through (`bridge.ticket_routing` says which apply)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import asdict

import aiohttp

from bridge.backends.base import Backend, BackendUnavailable
from bridge.config import Config, QueueConfig
from bridge.core.models import Conversation, Ticket
from bridge.core.protocol import OfflineMessage, ProtocolError
from bridge.mail import Mailer, MailError, build_message
from bridge.store import Store
from bridge.tasks import TaskGroup, backoff_delays
from bridge.ticket_routing import AgentPoster, Routes, routes_for

log = logging.getLogger(__name__)

PER_IP_PER_HOUR = 10
PER_EMAIL_PER_HOUR = 3
WEBHOOK_TIMEOUT_S = 10.0
RETRY_CAP_S = 300.0
SIGNATURE_HEADER = "X-Livechat-Signature"


class WebhookRefused(Exception):
    """The webhook answered, but not with a success status."""


class Flooded(Exception):
    """Too many offline messages from this address or email lately (HTTP 429)."""


def _ticket_id() -> str:
    return f"T-{secrets.token_hex(4).upper()}"


def signature(secret: str, body: bytes) -> str:
    """The webhook header value: sha256=<hex HMAC of the raw body>."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Tickets:
    """Takes offline messages and makes sure each reaches a person."""

    def __init__(self, config: Config, store: Store, mailer: Mailer | None,
                 tasks: TaskGroup, backend: Backend | None = None) -> None:
        self.config = config
        self.store = store
        self.mailer = mailer
        self._tasks = tasks
        self._agents = None if backend is None else AgentPoster(config, store, backend)

    def resume(self) -> None:
        """Deliver what a previous run left undelivered."""
        for ticket, mail, webhook in self.store.pending_tickets():
            self._spawn(ticket, mail=mail, webhook=webhook)
        for ticket in self.store.tickets_for_messenger():
            self._spawn(ticket, messenger=True)

    def routes(self, queue_id: str) -> Routes:
        """The channels the queue's tickets go through (what the visitor may be told)."""
        routes = routes_for(self.config.queue(queue_id), mail_ready=self.mailer is not None)
        return Routes(routes.mail, routes.webhook, routes.messenger and self._agents is not None)

    def submit(self, message: OfflineMessage, ip: str, now: float) -> Ticket:
        queue = self.config.queue(message.topic) if message.topic else self.config.queues[0]
        if queue is None:
            raise ProtocolError("unknown_topic", "no such topic; see /v1/status")
        hour_ago = now - 3600
        if (self.store.count_tickets(ip=ip, since=hour_ago) >= PER_IP_PER_HOUR
                or self.store.count_tickets(email=message.email, since=hour_ago)
                >= PER_EMAIL_PER_HOUR):
            raise Flooded()
        ticket = Ticket(id=_ticket_id(), created_at=now, queue_id=queue.id, name=message.name,
                        email=message.email.lower(), text=message.text, ip=ip)
        self._file(ticket, queue)
        log.info("ticket %s: offline message for queue %s", ticket.id, queue.id)
        return ticket

    def from_chat(self, conversation: Conversation, transcript: str, now: float) -> Ticket:
        """An unanswered chat as a ticket: its transcript goes to the help desk. One per
        chat; asking again returns the same ticket."""
        existing = self.store.ticket_of_conversation(conversation.id)
        if existing is not None:
            return existing
        ticket = Ticket(id=_ticket_id(), created_at=now, queue_id=conversation.queue_id,
                        name=conversation.visitor.name, email=conversation.visitor.email,
                        text=transcript, conversation_id=conversation.id)
        self._file(ticket, self.config.queue(conversation.queue_id))
        log.info("conversation %s: unanswered; became ticket %s", conversation.id, ticket.id)
        return ticket

    def _file(self, ticket: Ticket, queue: QueueConfig | None) -> None:
        """Store the ticket (durably, before anyone is told its number), then deliver it."""
        routes = self.routes(queue.id) if queue else Routes(False, False, False)
        if not (routes.helpdesk or routes.messenger):
            log.error("ticket %s: queue %s sends tickets nowhere; only stored", ticket.id,
                      ticket.queue_id)
        self.store.add_ticket(ticket, mail=routes.mail, webhook=routes.webhook,
                              messenger=routes.messenger)
        self._spawn(ticket, mail=routes.mail, webhook=routes.webhook,
                    messenger=routes.messenger)

    def _spawn(self, ticket: Ticket, *, mail: bool = False, webhook: bool = False,
               messenger: bool = False) -> None:
        queue = self.config.queue(ticket.queue_id)
        if queue is None:
            log.warning("ticket %s: queue %s is gone from the config; kept undelivered",
                        ticket.id, ticket.queue_id)
            return
        if mail:
            self._tasks.spawn(self._retry(ticket, "mail", self._mail, queue),
                              name=f"ticket-mail-{ticket.id}")
        if webhook:
            self._tasks.spawn(self._retry(ticket, "webhook", self._webhook, queue),
                              name=f"ticket-webhook-{ticket.id}")
        if messenger and self._agents is not None:
            self._tasks.spawn(self._retry(ticket, "messenger", self._messenger, queue),
                              name=f"ticket-messenger-{ticket.id}")

    async def _retry(self, ticket: Ticket, what: str,
                     attempt: Callable[[Ticket, QueueConfig], Awaitable[None]],
                     queue: QueueConfig) -> None:
        delays = backoff_delays(first=1.0, cap=RETRY_CAP_S)
        while True:
            try:
                await attempt(ticket, queue)
            except (MailError, aiohttp.ClientError, TimeoutError, WebhookRefused,
                    BackendUnavailable) as exc:
                delay = next(delays)
                log.warning("ticket %s: %s failed (%s); retry in %.0fs", ticket.id, what,
                            exc, delay)
                await asyncio.sleep(delay)
                continue
            self.store.ticket_delivered(ticket.id, what)
            log.info("ticket %s: %s delivered", ticket.id, what)
            return

    async def _mail(self, ticket: Ticket, queue: QueueConfig) -> None:
        assert self.mailer is not None
        message = build_message(
            self.mailer.cfg, queue.helpdesk_email,
            f"[{ticket.id}] {'Unanswered chat' if ticket.conversation_id else 'Offline message'}"
            f": {queue.name}",
            f"From: {ticket.name} <{ticket.email}>\nQueue: {queue.name}\n\n{ticket.text}\n",
            reply_to=(ticket.name, ticket.email),
        )
        await self.mailer.send(message)

    async def _messenger(self, ticket: Ticket, queue: QueueConfig) -> None:
        assert self._agents is not None
        await self._agents.post(ticket, queue, self.routes(queue.id))

    async def _webhook(self, ticket: Ticket, queue: QueueConfig) -> None:
        body = json.dumps({"ticket": asdict(ticket) | {"ip": None}, "queue": queue.id},
                          ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json",
                   SIGNATURE_HEADER: signature(queue.webhook_secret, body)}
        timeout = aiohttp.ClientTimeout(total=WEBHOOK_TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout) as http, \
                http.post(queue.webhook_url, data=body, headers=headers) as response:
            if response.status >= 300:
                raise WebhookRefused(f"HTTP {response.status}")
