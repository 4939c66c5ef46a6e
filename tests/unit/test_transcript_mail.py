"""The pure rules for emailing a transcript: whose address, how many, what the mail says."""

from __future__ import annotations

import json

import pytest

from bridge.core.protocol import ProtocolError, TranscriptFrame, parse_frame
from bridge.core.transcript import (
    MAILS_PER_CHAT,
    MAILS_PER_RECIPIENT,
    mail_body,
    mail_refusal,
    mail_subject,
    visitor_recipient,
)


def parse(frame: dict[str, object]) -> TranscriptFrame:
    parsed = parse_frame(json.dumps({"type": "transcript", **frame}), max_text=4000)
    assert isinstance(parsed, TranscriptFrame)
    return parsed


# --- the frame -----------------------------------------------------------------------------


@pytest.mark.parametrize("frame", [{}, {"email": None}])
def test_the_frame_needs_no_address(frame: dict[str, object]) -> None:
    assert parse(frame) == TranscriptFrame(email=None)


def test_a_given_address_is_cleaned() -> None:
    assert parse({"email": "  Anna@Example.com "}) == TranscriptFrame(email="Anna@Example.com")


@pytest.mark.parametrize(
    ("email", "code"),
    [("", "bad_email"), ("not an address", "bad_email"), (7, "bad_field"),
     ("a" * 250 + "@x.com", "too_long")],
)
def test_a_bad_address_is_still_refused(email: object, code: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse({"email": email})
    assert caught.value.code == code


# --- whose address -------------------------------------------------------------------------


@pytest.mark.parametrize("asked", [None, "anna@example.com", " ANNA@example.COM "])
def test_a_visitor_gets_their_own_address(asked: str | None) -> None:
    assert visitor_recipient("Anna@example.com", asked) == "Anna@example.com"


@pytest.mark.parametrize("asked", ["victim@example.org", "anna@example.com.evil.org",
                                   "anna+x@example.com"])
def test_a_visitor_cannot_name_another_address(asked: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        visitor_recipient("anna@example.com", asked)
    assert caught.value.code == "mail_address"
    assert "address given when the chat started" in caught.value.message


@pytest.mark.parametrize("asked", [None, "anna@example.com"])
def test_a_chat_without_an_address_gets_no_mail(asked: str | None) -> None:
    with pytest.raises(ProtocolError) as caught:
        visitor_recipient("  ", asked)
    assert caught.value.code == "mail_address"


# --- how many ------------------------------------------------------------------------------


def test_within_both_limits_the_mail_goes() -> None:
    assert mail_refusal(in_chat=MAILS_PER_CHAT - 1, to_recipient=MAILS_PER_RECIPIENT - 1,
                        by_agent=False) is None


@pytest.mark.parametrize("by_agent", [False, True])
def test_the_chat_limit_holds_for_everyone(by_agent: bool) -> None:
    refusal = mail_refusal(in_chat=MAILS_PER_CHAT, to_recipient=0, by_agent=by_agent)
    assert refusal == f"this transcript was already emailed {MAILS_PER_CHAT} times"


def test_the_recipient_limit_holds_for_visitors() -> None:
    refusal = mail_refusal(in_chat=0, to_recipient=MAILS_PER_RECIPIENT, by_agent=False)
    assert refusal is not None and "last 24 hours" in refusal


def test_agents_are_not_held_to_the_recipient_limit() -> None:
    assert mail_refusal(in_chat=0, to_recipient=MAILS_PER_RECIPIENT + 5, by_agent=True) is None


# --- what the mail says --------------------------------------------------------------------


def test_the_subject_names_only_the_site() -> None:
    assert mail_subject("www.example.com") == "Your chat transcript from www.example.com"


@pytest.mark.parametrize(("by_agent", "how"), [
    (False, "It was requested in that chat, for the email address given there."),
    (True, "An agent sent it to you from that chat."),
])
def test_the_body_starts_with_a_fixed_preface(by_agent: bool, how: str) -> None:
    transcript = "Chat with Eve <eve@example.com>\n[00:00] Eve: click http://evil.example\n"
    body = mail_body("www.example.com", transcript, by_agent=by_agent)
    preface, rest = body.split("-" * 60 + "\n\n")
    assert preface == (f"This is a transcript of a chat on www.example.com. {how}\n"
                       "It contains what was written in the chat, by the visitor and by the "
                       "staff.\nIf you did not ask for it, you can ignore this email.\n\n")
    assert rest == transcript
