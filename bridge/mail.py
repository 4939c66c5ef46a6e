"""Outgoing email (transcripts, offline tickets) over SMTP.

Recipients, subjects and Reply-To addresses come from visitors, so every header value is
checked before a message is built: no line breaks (header injection) and exactly one plain
address. Sending runs blocking `smtplib` in a worker thread; any failure becomes `MailError`
with a message safe to show, and the real reason goes to the log (never the password).
"""

from __future__ import annotations

import asyncio
import email.policy
import logging
import re
import smtplib
import ssl
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, getaddresses, make_msgid, parseaddr
from typing import Any

from bridge.config_reader import Reader, check_port, check_secret

log = logging.getLogger(__name__)

# Characters that end a line for SMTP or for str.splitlines(); none may appear in a header.
LINE_BREAKS = frozenset("\r\n\v\f\x00\x1c\x1d\x1e\x85\u2028\u2029")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
DOMAIN_RE = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")
SEND_FAILED = "could not send the email"

# An address given either as one string ("Name <a@example.com>" or "a@example.com") or as a
# (display name, address) pair; the pair form needs no quoting by the caller.
Recipient = str | tuple[str, str]


@dataclass(frozen=True)
class SmtpConfig:
    """The `[smtp]` section: where and how to hand mail to a relay."""

    host: str
    port: int = 587
    starttls: bool = True  # or tls = True for port 465; neither on a loopback test server
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sender: str = ""  # the "from" key, e.g. "Support <support@example.com>"
    timeout: float = 20.0


class MailError(Exception):
    """Mail could not be built or sent; the message is safe to show to a visitor or agent."""


class BadAddress(MailError):
    """An address is malformed, ambiguous or tries to inject headers."""


# --- configuration -------------------------------------------------------------------------


def parse_smtp(r: Reader, table: dict[str, Any], path: str = "smtp") -> SmtpConfig:
    """Read an `[smtp]` table; problems are recorded on `r` as "smtp.key: what is wrong"."""
    r.unknown_keys(
        table,
        {"host", "port", "starttls", "tls", "username", "password", "from", "timeout"},
        path,
    )
    host = r.get(table, "host", path, str, "", required=True, check=_host)
    tls = r.get(table, "tls", path, bool, False)
    starttls = r.get(table, "starttls", path, bool, not tls)
    if tls and starttls:
        r.fail(f"{path}.tls", "cannot be combined with starttls (expected one of them)")
    port = r.get(table, "port", path, int, 465 if tls else 587, check=check_port)
    username = r.get(table, "username", path, str, None, check=_single_line)
    password = r.get(table, "password", path, str, None, check=check_secret)
    if username is not None and "password" not in table:
        r.fail(f"{path}.password", "missing (expected a string, needed with username)")
    if password is not None and "username" not in table:
        r.fail(f"{path}.username", "missing (expected a string, needed with password)")
    sender = r.get(table, "from", path, str, "", required=True, check=_sender)
    timeout = 20.0
    if "timeout" in table:
        value = table["timeout"]
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            r.fail(f"{path}.timeout", f"expected a positive number of seconds, got {value!r}")
        else:
            timeout = float(value)
    return SmtpConfig(
        host=host,
        port=port,
        starttls=starttls,
        tls=tls,
        username=username,
        password=password,
        sender=sender,
        timeout=timeout,
    )


def _host(value: str) -> str | None:
    if not value.strip() or any(ch.isspace() or ch in LINE_BREAKS for ch in value):
        return f"{value!r} is not a host name (expected e.g. smtp.example.com)"
    return None


def _single_line(value: str) -> str | None:
    return "contains a line break (expected one line)" if _has_break(value) else None


def _sender(value: str) -> str | None:
    try:
        parse_address(value)
    except BadAddress:
        return f"{value!r} is not an address (expected e.g. \"Support <support@example.com>\")"
    return None


# --- building messages ---------------------------------------------------------------------


def _has_break(value: str) -> bool:
    return any(ch in LINE_BREAKS for ch in value)


def parse_address(value: Recipient) -> Address:
    """One untrusted address as an `Address`, or `BadAddress`.

    A string must hold exactly one mailbox on which `email.utils` and the `email`
    header parser agree; line breaks anywhere are refused. IDN domains are punycoded;
    non-ASCII mailbox names (which need SMTPUTF8) are refused.
    """
    bad = BadAddress("not a valid email address")
    if isinstance(value, tuple):
        name, addr = value
        if _has_break(name) or _has_break(addr) or parseaddr(addr) != ("", addr):
            raise bad
    else:
        if _has_break(value) or len(getaddresses([value])) != 1:
            raise bad
        name, addr = parseaddr(value)
        try:
            header = email.policy.default.header_factory("To", value)
            parsed = header.addresses
        except Exception as exc:  # the header parser raises several kinds on junk
            raise bad from exc
        if header.defects or len(parsed) != 1 or parsed[0].addr_spec != addr:
            raise bad
    local, at, domain = addr.rpartition("@")
    if not at or not local or not local.isascii():
        raise bad
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise bad from exc
    if not DOMAIN_RE.fullmatch(domain):
        raise bad
    try:
        return Address(display_name=name, addr_spec=f"{local}@{domain}")
    except (ValueError, IndexError) as exc:  # addr_spec did not parse as a whole
        raise bad from exc


def build_message(
    cfg: SmtpConfig,
    to: Recipient,
    subject: str,
    body: str,
    *,
    reply_to: Recipient | None = None,
    automatic: bool = False,
) -> EmailMessage:
    """A text/plain UTF-8 message from the configured sender; refuses injected headers.

    Line endings in `body` are normalized and a final newline is added if missing.
    `automatic` marks a message the bridge sends by itself (RFC 3834), so that mail systems
    treat it as such and vacation responders do not answer it.
    """
    if _has_break(subject):
        raise MailError("the subject must be a single line")
    sender = parse_address(cfg.sender)
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = sender
    msg["To"] = parse_address(to)
    if reply_to is not None:
        msg["Reply-To"] = parse_address(reply_to)
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid(domain=sender.domain)
    if automatic:
        msg["Auto-Submitted"] = "auto-generated"
        msg["X-Auto-Response-Suppress"] = "All"  # the same for Exchange, which ignores RFC 3834
    msg.set_content(body, charset="utf-8", cte="quoted-printable")
    return msg


# --- sending -------------------------------------------------------------------------------


class Mailer:
    """Sends built messages through the configured SMTP relay, one connection per message."""

    def __init__(self, cfg: SmtpConfig) -> None:
        self.cfg = cfg

    async def send(self, message: EmailMessage) -> str:
        """Deliver to the relay; returns the relay's answer to the message ("250 2.0.0 Ok:
        queued as …"), for the record agents see. Raises `MailError` on any SMTP, TLS or
        network failure."""
        return await asyncio.to_thread(self._send, message)

    def _send(self, message: EmailMessage) -> str:
        cfg = self.cfg
        try:
            context = ssl.create_default_context()
            smtp: smtplib.SMTP
            if cfg.tls:
                smtp = smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=cfg.timeout, context=context)
            else:
                smtp = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout)
            with smtp:
                if cfg.starttls:
                    smtp.starttls(context=context)
                if cfg.username:
                    smtp.login(cfg.username, cfg.password or "")
                answer = _deliver(smtp, *_envelope(message), _wire_bytes(message))
        except (smtplib.SMTPException, OSError, UnicodeError) as exc:
            log.warning(
                "sending email %s via %s:%d failed: %s",
                message.get("Message-ID", "?"), cfg.host, cfg.port, _reason(exc),
            )
            raise MailError(SEND_FAILED) from exc
        return answer


def _deliver(smtp: smtplib.SMTP, sender: str, recipients: list[str], data: bytes) -> str:
    """One message through an open connection, step by step (smtplib's sendmail drops the
    relay's answer to DATA, which is the record of the mail being taken)."""
    smtp.ehlo_or_helo_if_needed()
    code, reply = smtp.mail(sender)
    if code != 250:
        raise smtplib.SMTPSenderRefused(code, reply, sender)
    refused = {}
    for recipient in recipients:
        code, reply = smtp.rcpt(recipient)
        if code not in (250, 251):
            refused[recipient] = (code, reply)
    if len(refused) == len(recipients):
        raise smtplib.SMTPRecipientsRefused(refused)
    code, reply = smtp.data(data)
    if code != 250:
        raise smtplib.SMTPDataError(code, reply)
    if refused:
        log.warning("email refused for %s", sorted(refused))
    return f"{code} {reply.decode('utf-8', 'replace')}"[:200]


def _envelope(message: EmailMessage) -> tuple[str, list[str]]:
    """Envelope sender (From) and recipients (To and Cc) of a message."""
    from_addr = parseaddr(str(message.get("From", "")))[1]
    fields = [str(v) for name in ("To", "Cc") for v in message.get_all(name, [])]
    return from_addr, [addr for _, addr in getaddresses(fields) if addr]


def _wire_bytes(message: EmailMessage) -> bytes:
    # Not smtp.send_message(): its generator turns body lines "From ..." into ">From ...".
    return message.as_bytes(policy=email.policy.SMTP)


def _reason(exc: BaseException) -> str:
    # A UnicodeError from login() would quote part of the credentials; name only its type.
    if isinstance(exc, UnicodeError):
        return type(exc).__name__
    return f"{type(exc).__name__}: {exc}"
