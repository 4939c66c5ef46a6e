"""Outgoing mail against a real local SMTP server (aiosmtpd), plus `[smtp]` config parsing."""

from __future__ import annotations

import asyncio
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
from tests.integration.conftest import TestAgent, room_of
from tests.integration.smtp_server import SENDER, SmtpServer, StartServer
from tests.integration.test_after_end import smtp_settings
from tests.integration.test_commands import notice

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
        (MINIMAL | {"hots": "x"}, ["smtp.hots: unknown key; did you mean host?"]),
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


# --- transcripts through a running bridge ----------------------------------------------------


async def mailed_chat(bridge: Any, visitors: Any, email: str, name: str = "Anna") -> Any:
    """A visitor in a chat of their own who wrote one line."""
    visitor = await visitors(bridge.base_url)
    await visitor.start(name=name, email=email)
    await visitor.say("Where is my order?")
    return visitor


async def transcript_answer(visitor: Any) -> dict[str, Any]:
    """The answer to the visitor's one `transcript` frame: `transcript` or an `error`."""
    async with asyncio.timeout(15):
        while not (visitor.of("transcript") or visitor.of("error")):
            await asyncio.sleep(0.05)
    return (visitor.of("transcript") or visitor.of("error"))[0]


async def test_a_visitor_cannot_mail_another_address(make_matrix_bridge, visitors,
                                                     start_server: StartServer) -> None:
    smtp = start_server()
    bridge = await make_matrix_bridge(smtp=smtp_settings(smtp.port))
    visitor = await mailed_chat(bridge, visitors, "anna@example.com")
    for other in ("victim@example.org", "anna@example.com.example.org"):
        before = len(visitor.frames)
        await visitor.send({"type": "transcript", "email": other})
        error = await visitor.wait("error", start=before)
        assert error["code"] == "mail_address"
    assert smtp.handler.received == []

    # Without an address, or with the chat's own in another letter case, it goes to the
    # address of the pre-chat form.
    for frame in ({"type": "transcript"}, {"type": "transcript", "email": " ANNA@example.com"}):
        before = len(visitor.frames)
        await visitor.send(frame)
        assert (await visitor.wait("transcript", start=before))["sent"] is True
    assert [m.envelope.rcpt_tos for m in smtp.handler.received] == [["anna@example.com"]] * 2


async def test_many_chats_cannot_mail_one_address_more_than_the_limit(
    make_matrix_bridge, visitors, start_server: StartServer
) -> None:
    smtp = start_server()
    bridge = await make_matrix_bridge(smtp=smtp_settings(smtp.port))
    # Five chats naming the same (someone else's) address, all asking at the same moment.
    addresses = ["victim@example.org", "Victim@Example.org", "victim@example.org",
                 "VICTIM@example.org", "victim@example.org"]
    chats = [await mailed_chat(bridge, visitors, address) for address in addresses]
    await asyncio.gather(*(visitor.send({"type": "transcript", "email": address})
                           for visitor, address in zip(chats, addresses, strict=True)))
    answers = await asyncio.gather(*map(transcript_answer, chats))
    assert sorted(a.get("code", "sent") for a in answers) == ["mail_limit"] * 2 + ["sent"] * 3
    assert len(smtp.handler.received) == 3

    # The limit is counted from the database: a restarted bridge still holds it.
    await bridge.stop()
    bridge = await make_matrix_bridge(smtp=smtp_settings(smtp.port))
    visitor = await mailed_chat(bridge, visitors, "victim@example.org")
    await visitor.send({"type": "transcript"})
    error = await visitor.wait("error")
    assert error["code"] == "mail_limit" and "24 hours" in error["message"]
    assert len(smtp.handler.received) == 3


async def test_an_agent_may_mail_any_address(make_bridge, agent: TestAgent, visitors,
                                             start_server: StartServer) -> None:
    smtp = start_server()
    bridge = await make_bridge(smtp=smtp_settings(smtp.port))
    # The address had its visitors' share already; an agent is trusted past it.
    for _ in range(3):
        visitor = await mailed_chat(bridge, visitors, "boss@example.org")
        await visitor.send({"type": "transcript", "email": "boss@example.org"})
        assert (await transcript_answer(visitor))["type"] == "transcript"
        await visitor.send({"type": "end"})  # Alice can hold only three chats
        await visitor.wait("ended")
    visitor = await mailed_chat(bridge, visitors, "anna@example.com")
    started = visitor.of("started")[0]
    room = await room_of(bridge, started["conversation"])
    await agent.join(room)
    await agent.say(room, "!transcript Boss@example.org")
    await notice(agent, room, "Transcript sent to Boss@example.org.")
    assert smtp.handler.received[-1].envelope.rcpt_tos == ["Boss@example.org"]
    body = wire_text(smtp.handler.received[-1].message)
    assert body.startswith("This is a transcript of a chat on shop.example.com. "
                           "An agent sent it to you from that chat.\n")

    # The visitor of that chat still cannot send it there, only to their own address.
    await visitor.send({"type": "transcript", "email": "boss@example.org"})
    assert (await visitor.wait("error"))["code"] == "mail_address"
    await visitor.send({"type": "transcript"})
    await visitor.wait("transcript")
    assert smtp.handler.received[-1].envelope.rcpt_tos == ["anna@example.com"]
    assert len(smtp.handler.received) == 5
    # The room keeps the record: to whom, when, asked by whom, what the mail server said.
    def mail_records() -> list[str]:
        return [t for t in agent.texts(room, notice=True) if t.startswith("📧 ")]

    await agent.until(lambda: len(mail_records()) >= 2)
    records = mail_records()
    assert records[0].startswith("📧 Transcript emailed to Boss@example.org at ")
    assert "(asked by an agent); the mail server answered: 250 " in records[0]
    assert records[1].startswith("📧 Transcript emailed to anna@example.com at ")
    assert "(asked by Anna); the mail server answered: 250 " in records[1]


async def test_the_mail_is_plainly_a_transcript_from_the_site(make_matrix_bridge, visitors,
                                                              start_server: StartServer) -> None:
    smtp = start_server()
    bridge = await make_matrix_bridge(smtp=smtp_settings(smtp.port))
    lure = "Your account is locked: call +1 555 0100"
    visitor = await mailed_chat(bridge, visitors, "anna@example.com", name=lure)
    await visitor.send({"type": "transcript", "email": "anna@example.com"})
    await visitor.wait("transcript")
    [got] = smtp.handler.received
    m = got.message
    assert m["Subject"] == "Your chat transcript from shop.example.com"
    assert m["Auto-Submitted"] == "auto-generated"
    assert m["From"].addresses[0].display_name == "Support"
    assert [(a.display_name, a.addr_spec) for a in m["To"].addresses] == [
        ("", "anna@example.com")]
    assert lure not in str(m["Subject"]) + str(m["From"]) + str(m["To"])
    assert not m.is_multipart() and m.get_content_type() == "text/plain"
    body = wire_text(m)
    assert body.startswith(
        "This is a transcript of a chat on shop.example.com. It was requested in that chat, "
        "for the email address given there.\nIt contains what was written in the chat, by the "
        "visitor and by the staff.\nIf you did not ask for it, you can ignore this email.\n")
    assert f"{lure}: Where is my order?" in body

    # A page the site does not own is not named: the bridge's own address stands instead.
    visitor = await visitors(bridge.base_url)
    await visitor.send({"type": "start", "visitor": {"name": "Eve", "email": "eve@example.com"},
                        "page": {"url": "https://evil.example/pay-here"}})
    await visitor.wait("started")
    await visitor.send({"type": "transcript"})
    await visitor.wait("transcript")
    site = bridge.config.server.public_url.partition("://")[2]
    assert smtp.handler.received[-1].message["Subject"] == f"Your chat transcript from {site}"
    assert "evil.example" not in wire_text(smtp.handler.received[-1].message)
