"""A real SMTP server for tests (aiosmtpd on loopback) that records what it accepts."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from bridge.devserver.ports import free_port
from bridge.mail import SmtpConfig

SENDER = "Support <support@example.com>"


@dataclass
class Received:
    envelope: Envelope
    authenticated: bool

    @property
    def message(self) -> EmailMessage:
        msg = email.message_from_bytes(self.envelope.content, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        return msg


class Recorder:
    """aiosmtpd handler that keeps every accepted message."""

    def __init__(self) -> None:
        self.received: list[Received] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.received.append(Received(envelope, bool(session.authenticated)))
        return "250 OK"


@dataclass
class SmtpServer:
    port: int
    handler: Recorder

    def config(self, **overrides: Any) -> SmtpConfig:
        values: dict[str, Any] = {
            "host": "127.0.0.1", "port": self.port, "starttls": False, "sender": SENDER,
            "timeout": 5.0,
        }
        return SmtpConfig(**(values | overrides))


StartServer = Callable[..., SmtpServer]


@pytest.fixture
def start_server() -> Iterator[StartServer]:
    """Start aiosmtpd servers on free loopback ports (extra kwargs go to the Controller)."""
    controllers: list[Controller] = []

    def start(**kwargs: Any) -> SmtpServer:
        handler = Recorder()
        port = free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port, **kwargs)
        controller.start()
        controllers.append(controller)
        return SmtpServer(port, handler)

    yield start
    for controller in controllers:
        controller.stop()


