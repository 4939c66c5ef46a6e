"""The demo's mail sink: a loopback SMTP server whose mails show on `/demo/mail`.

Transcripts and offline tickets are mailed in a real deployment; in the demo they go to
this sink (aiosmtpd, the `demo` extra), so every flow completes without a mail relay and
the person trying the demo sees what would have been sent. Only `livechat-bridge demo`
installs the page; a bridge started with `run` never serves it.
"""

from __future__ import annotations

import email
import email.policy
import threading
import time
from collections import deque
from dataclasses import dataclass
from email.message import EmailMessage
from html import escape

from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from bridge.devserver.ports import free_port

MAIL_PATH = "/demo/mail"
KEEP = 200  # a demo runs for minutes; the oldest mails make room for new ones
SENDER = "Demo Shop <support@example.com>"
HELPDESK = "helpdesk@example.com"
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class Mail:
    """One accepted mail, as the page shows it."""

    received: float
    sender: str
    recipients: tuple[str, ...]
    subject: str
    body: str


class _Keeper:
    """aiosmtpd handler: accepts every mail and keeps it (the SMTP thread writes, the
    bridge's loop reads, hence the lock)."""

    def __init__(self) -> None:
        self._mails: deque[Mail] = deque(maxlen=KEEP)
        self._lock = threading.Lock()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.content if isinstance(envelope.content, bytes) else b""
        message = email.message_from_bytes(content, policy=email.policy.default)
        mail = Mail(time.time(), str(envelope.mail_from or ""),
                    tuple(envelope.rcpt_tos), str(message.get("Subject", "")), _text(message))
        with self._lock:
            self._mails.append(mail)
        return "250 OK"

    def mails(self) -> list[Mail]:
        with self._lock:
            return list(self._mails)


def _text(message: object) -> str:
    if not isinstance(message, EmailMessage):
        return ""
    part = message.get_body(("plain",))
    return part.get_content() if isinstance(part, EmailMessage) else "(no plain text part)"


class MailSink:
    """An SMTP server on 127.0.0.1 in its own thread; `smtp_table` is its `[smtp]`."""

    def __init__(self) -> None:
        self.port = free_port()
        self._keeper = _Keeper()
        self._controller = Controller(self._keeper, hostname="127.0.0.1", port=self.port)

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    def smtp_table(self) -> dict[str, object]:
        # Loopback and no TLS: the sink is on this machine only.
        return {"host": "127.0.0.1", "port": self.port, "starttls": False, "from": SENDER}

    def install(self, app: web.Application) -> None:
        """Serve the page on the bridge's (not yet started) app."""
        app.router.add_get(MAIL_PATH, self._page)

    async def _page(self, request: web.Request) -> web.Response:
        response = web.Response(text=render(self._keeper.mails()), content_type="text/html",
                                charset="utf-8")
        response.headers.update(PAGE_HEADERS)
        return response


def render(mails: list[Mail]) -> str:
    """The page: newest first; every text came from a visitor or agent, so all is escaped."""
    items = "".join(_item(mail) for mail in reversed(mails)) or (
        "<p>No mail yet. End a chat and ask for the transcript by email, or leave a "
        "message while no agent is online.</p>")
    return (
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<title>Demo mail</title><style>body{font:15px/1.5 sans-serif;max-width:860px;"
        "margin:24px auto;padding:0 16px}article{border:1px solid #ccc;border-radius:6px;"
        "padding:8px 16px;margin:12px 0}pre{white-space:pre-wrap}</style></head><body>"
        f"<h1>Mails the demo sent</h1><p>{len(mails)} received by the demo's SMTP sink "
        "(nothing leaves this machine). Reload to see new ones.</p>"
        f"{items}</body></html>"
    )


def _item(mail: Mail) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(mail.received))
    return (
        f"<article><h2>{escape(mail.subject) or '(no subject)'}</h2>"
        f"<p>{escape(when)} · from {escape(mail.sender)} · to "
        f"{escape(', '.join(mail.recipients))}</p><pre>{escape(mail.body)}</pre></article>"
    )
