"""Outgoing mail against a real local SMTP server (aiosmtpd), plus `[smtp]` config parsing."""

from __future__ import annotations

import time
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from bridge.config_reader import Reader
from bridge.devserver.ports import free_port
from bridge.mail import (
    BadAddress,
    Mailer,
    MailError,
    SmtpConfig,
    build_message,
    parse_smtp,
)
from tests.integration.smtp_server import SENDER, SmtpServer, StartServer

# The login tests use AUTH without TLS on purpose (loopback only); aiosmtpd warns about it.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

USER, PASSWORD = "bridge", "correct horse battery staple"


def authenticator(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (
        auth_data.login == USER.encode() and auth_data.password == PASSWORD.encode()
    )
    # handled=False: aiosmtpd itself answers 535 to a failed login.
    return AuthResult(success=ok, handled=False)


def wire_text(msg: EmailMessage) -> str:
    """The decoded text body; SMTP carries CRLF line ends, the sender wrote LF."""
    text = msg.get_content()
    assert isinstance(text, str)
    return text.replace("\r\n", "\n")


@pytest.fixture
def server(start_server: StartServer) -> SmtpServer:
    return start_server()


# --- delivery ------------------------------------------------------------------------------


async def test_message_arrives_with_headers_and_exact_body(server: SmtpServer) -> None:
    body = (
        "Dzień dobry, Łukasz!\n"
        "Árvíztűrő tükörfúrógép — ünïcødé ✓ 😀\n"
        ".\n"  # a lone dot must survive SMTP dot-stuffing
        "From the start of a line\n"
        + "long line " * 30 + "\n"
    )
    msg = build_message(
        server.config(),
        ("Łukasz Żółć", "lukasz@example.com"),
        "Transcript: Árvíztűrő tükörfúrógép",
        body,
        reply_to="Árvíztűrő Tükörfúrógép <visitor@example.org>",
    )
    await Mailer(server.config()).send(msg)

    [got] = server.handler.received
    assert got.envelope.mail_from == "support@example.com"
    assert got.envelope.rcpt_tos == ["lukasz@example.com"]
    m = got.message
    assert m["From"].addresses[0].display_name == "Support"
    assert m["From"].addresses[0].addr_spec == "support@example.com"
    [to] = m["To"].addresses
    assert (to.display_name, to.addr_spec) == ("Łukasz Żółć", "lukasz@example.com")
    [reply] = m["Reply-To"].addresses
    assert (reply.display_name, reply.addr_spec) == (
        "Árvíztűrő Tükörfúrógép", "visitor@example.org")
    assert m["Subject"] == "Transcript: Árvíztűrő tükörfúrógép"
    assert m["Date"].datetime is not None
    assert m["Message-ID"].endswith("@example.com>")
    assert m.get_content_type() == "text/plain"
    assert m.get_content_charset() == "utf-8"
    assert wire_text(m) == body
    assert "Bcc" not in m


async def test_display_names_with_commas_and_quotes_round_trip(server: SmtpServer) -> None:
    names = ['Doe, John "Johnny" <x@evil.example>', 'Żółć, Łukasz "Ł"']
    for name in names:
        msg = build_message(
            server.config(), "helpdesk@example.com", "Offline message", "Hi\n",
            reply_to=(name, "visitor@example.org"),
        )
        await Mailer(server.config()).send(msg)
    assert len(server.handler.received) == len(names)
    for got, name in zip(server.handler.received, names, strict=True):
        assert got.envelope.rcpt_tos == ["helpdesk@example.com"]
        [reply] = got.message["Reply-To"].addresses
        assert (reply.display_name, reply.addr_spec) == (name, "visitor@example.org")


async def test_body_line_endings_are_normalized(server: SmtpServer) -> None:
    await Mailer(server.config()).send(
        build_message(server.config(), "a@example.com", "s", "one\r\ntwo\rthree")
    )
    assert wire_text(server.handler.received[0].message) == "one\ntwo\nthree\n"


# --- header injection ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("to", "subject", "reply_to"),
    [
        ("a@example.com\r\nBcc: victim@example.com", "Hello", None),
        ("a@example.com\nBcc: victim@example.com", "Hello", None),
        ("a@example.com", "Hello\nBcc: victim@example.com", None),
        ("a@example.com", "Hello\r\nBcc: victim@example.com", None),
        ("a@example.com", "Hello\u2028Bcc: victim@example.com", None),
        ("a@example.com", "Hello", ("Eve\r\nBcc: victim@example.com", "eve@example.org")),
        ("a@example.com", "Hello", "Eve\r\nBcc: victim@example.com <eve@example.org>"),
        ("a@example.com", "Hello", ("Eve", "eve@example.org\r\nBcc: victim@example.com")),
        ("a@example.com, victim@example.com", "Hello", None),
        ("Doe, John <a@example.com>", "Hello", None),
        ("a@example.com", "Hello", "eve@example.org, victim@example.com"),
        ("alice@example.org)<victim@example.com>", "Hello", None),
        ("not an address", "Hello", None),
        ("", "Hello", None),
    ],
)
async def test_injection_and_bad_addresses_are_refused_before_sending(
    server: SmtpServer, to: str, subject: str, reply_to: str | tuple[str, str] | None
) -> None:
    with pytest.raises(MailError) as caught:
        msg = build_message(server.config(), to, subject, "body\n", reply_to=reply_to)
        await Mailer(server.config()).send(msg)
    assert "victim" not in str(caught.value)
    assert server.handler.received == []


def test_address_errors_are_bad_address_and_safe_to_show() -> None:
    cfg = SmtpConfig(host="127.0.0.1", sender=SENDER)
    with pytest.raises(BadAddress, match=r"^not a valid email address$"):
        build_message(cfg, "a@example.com\r\nBcc: x@example.com", "s", "b")
    with pytest.raises(MailError, match=r"^the subject must be a single line$") as caught:
        build_message(cfg, "a@example.com", "s\nBcc: x@example.com", "b")
    assert not isinstance(caught.value, BadAddress)


# --- failures ------------------------------------------------------------------------------


async def test_unreachable_server_raises_promptly(caplog: pytest.LogCaptureFixture) -> None:
    cfg = SmtpConfig(host="127.0.0.1", port=free_port(), starttls=False, sender=SENDER,
                     timeout=2.0)
    start = time.monotonic()
    with pytest.raises(MailError, match=r"^could not send the email$"):
        await Mailer(cfg).send(build_message(cfg, "a@example.com", "s", "b"))
    assert time.monotonic() - start < 3
    assert "ConnectionRefusedError" in caplog.text


async def test_starttls_required_but_not_offered_fails(server: SmtpServer) -> None:
    cfg = server.config(starttls=True)
    with pytest.raises(MailError):
        await Mailer(cfg).send(build_message(cfg, "a@example.com", "s", "b"))
    assert server.handler.received == []


async def test_login(start_server: StartServer) -> None:
    server = start_server(authenticator=authenticator, auth_require_tls=False,
                          auth_required=True)
    cfg = server.config(username=USER, password=PASSWORD)
    await Mailer(cfg).send(build_message(cfg, "a@example.com", "s", "b"))
    [got] = server.handler.received
    assert got.authenticated
    assert got.envelope.rcpt_tos == ["a@example.com"]


async def test_wrong_password_fails_without_logging_it(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    server = start_server(authenticator=authenticator, auth_require_tls=False,
                          auth_required=True)
    cfg = server.config(username=USER, password="wrong-password-123")
    with pytest.raises(MailError, match=r"^could not send the email$"):
        await Mailer(cfg).send(build_message(cfg, "a@example.com", "s", "b"))
    assert server.handler.received == []
    assert "SMTPAuthenticationError" in caplog.text
    assert "wrong-password-123" not in caplog.text
    assert "wrong-password-123" not in repr(cfg)


async def test_unauthenticated_send_is_refused(start_server: StartServer) -> None:
    server = start_server(authenticator=authenticator, auth_require_tls=False,
                          auth_required=True)
    cfg = server.config()
    with pytest.raises(MailError):
        await Mailer(cfg).send(build_message(cfg, "a@example.com", "s", "b"))
    assert server.handler.received == []


# --- [smtp] config -------------------------------------------------------------------------


def parse(table: dict[str, Any], path: str = "smtp") -> tuple[SmtpConfig, list[str]]:
    r = Reader()
    cfg = parse_smtp(r, table, path)
    return cfg, r.problems


MINIMAL = {"host": "smtp.example.com", "from": SENDER}


def test_parse_minimal_defaults() -> None:
    cfg, problems = parse(MINIMAL)
    assert problems == []
    assert cfg == SmtpConfig(host="smtp.example.com", port=587, starttls=True, tls=False,
                             sender=SENDER, timeout=20.0)


def test_parse_full() -> None:
    cfg, problems = parse(MINIMAL | {"port": 2525, "starttls": False, "username": "u",
                                     "password": "s3cret-value", "timeout": 5})
    assert problems == []
    assert (cfg.port, cfg.starttls, cfg.tls, cfg.username, cfg.password, cfg.timeout) == (
        2525, False, False, "u", "s3cret-value", 5.0)


def test_parse_tls_defaults_to_port_465_without_starttls() -> None:
    cfg, problems = parse(MINIMAL | {"tls": True})
    assert problems == []
    assert (cfg.tls, cfg.starttls, cfg.port) == (True, False, 465)


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ({}, ["smtp.host: missing (expected a string)", "smtp.from: missing (expected a string)"]),
        (MINIMAL | {"tls": True, "starttls": True},
         ["smtp.tls: cannot be combined with starttls (expected one of them)"]),
        (MINIMAL | {"port": "587"}, ["smtp.port: expected an integer, got '587'"]),
        (MINIMAL | {"port": 70000}, ["smtp.port: 70000 is not a port (expected 1-65535)"]),
        (MINIMAL | {"starttls": "yes"}, ["smtp.starttls: expected true or false, got 'yes'"]),
        (MINIMAL | {"hots": "x"}, ["smtp.hots: unknown key"]),
        (MINIMAL | {"host": "smtp example.com"}, ["smtp.host: 'smtp example.com' is not a host"
                                                  " name (expected e.g. smtp.example.com)"]),
        (MINIMAL | {"timeout": "20"},
         ["smtp.timeout: expected a positive number of seconds, got '20'"]),
        (MINIMAL | {"timeout": 0}, ["smtp.timeout: expected a positive number of seconds, got 0"]),
        (MINIMAL | {"timeout": True},
         ["smtp.timeout: expected a positive number of seconds, got True"]),
        (MINIMAL | {"username": "u"},
         ["smtp.password: missing (expected a string, needed with username)"]),
        (MINIMAL | {"password": "s3cret-value"},
         ["smtp.username: missing (expected a string, needed with password)"]),
        (MINIMAL | {"username": "u", "password": "..."},
         ["smtp.password: is a placeholder (expected the real secret)"]),
    ],
)
def test_parse_errors_name_the_key(table: dict[str, Any], expected: list[str]) -> None:
    assert parse(table)[1] == expected


@pytest.mark.parametrize(
    "sender",
    [
        "support",
        "Support <support@example.com>\r\nBcc: victim@example.com",
        "a@example.com, b@example.com",
        "Support <support@>",
    ],
)
def test_parse_bad_from(sender: str) -> None:
    [problem] = parse(MINIMAL | {"from": sender})[1]
    assert problem.startswith(f"smtp.from: {sender!r} is not an address (expected e.g. ")


def test_parse_errors_use_the_given_path() -> None:
    assert parse({"from": SENDER}, "mail.smtp")[1] == [
        "mail.smtp.host: missing (expected a string)"
    ]
