"""The visitor WebSocket protocol: parse and validate client frames (see docs/protocol.md).

Parsing is pure: a raw text frame goes in, a typed frame or a ProtocolError comes out.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bridge.core.line_edits import DeleteFrame, EditFrame, parse_delete, parse_edit
from bridge.core.models import Page, VisitorInfo
from bridge.core.untrusted import (
    ProtocolError,
    clean_text,
    is_blank,
    is_encodable,
    line_text,
    load_json,
)
from bridge.core.untrusted import field_of as _field

# Offered here too: the protocol's error, parser and text cleaning, and the frames that
# change a line.
__all__ = ["DeleteFrame", "EditFrame", "ProtocolError", "clean_text", "is_blank",
           "load_json"]

MAX_NAME = 80
MAX_EMAIL = 254
MAX_URL = 2048
MAX_TITLE = 300
MAX_TOPIC = 64
MAX_IDENTITY = 128
MAX_COMMENT = 1000
SURVEY_SCALE = 5
MAX_PHONE = 40
MAX_WHEN = 100
MIN_PHONE_DIGITS = 5
MAX_TOKEN = 128
PHONE_RE = re.compile(r"\+?[0-9 ()./\-]+")
EMAIL_RE = re.compile(r"^[^@\s<>\"',;]+@[^@\s<>\"',;]+\.[^@\s<>\"',;]+$")
CLIENT_ID_RE = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
LANG_RE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")


@dataclass(frozen=True)
class Identity:
    """Who the host site says the visitor is; `hash` proves it (HMAC of the id)."""

    id: str
    name: str
    email: str
    hash: str


@dataclass(frozen=True)
class StartFrame:
    visitor: VisitorInfo
    topic: str | None
    page: Page
    identity: Identity | None = None


def _identity(data: dict[str, Any]) -> Identity | None:
    raw = _field(data, "identity", dict, required=False)
    if raw is None:
        return None
    user_id = _bounded(_field(raw, "id", str), MAX_IDENTITY, "identity.id")
    if not user_id:
        raise ProtocolError("missing_field", "field 'identity.id' must not be empty")
    return Identity(
        id=user_id,
        name=_bounded(_field(raw, "name", str, required=False) or "", MAX_NAME, "identity.name"),
        email=_bounded(_field(raw, "email", str, required=False) or "", MAX_EMAIL,
                       "identity.email"),
        hash=_bounded(_field(raw, "hash", str), 128, "identity.hash").lower(),
    )


def hash_token(token: str) -> str:
    """How a conversation token is stored: only its SHA-256 ever touches the disk."""
    # surrogatepass: a header value aiohttp decoded with surrogateescape still hashes (to
    # a digest no stored token has) instead of raising.
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def identity_verified(secret: str, identity: Identity) -> bool:
    """hash = hex HMAC-SHA256(secret, id), compared in constant time.

    A hash that cannot be a hex digest is simply wrong (compare_digest raises on non-ASCII
    str): the chat still starts, unverified.
    """
    if not secret or not identity.hash.isascii() or not is_encodable(identity.id):
        return False
    expected = hmac.new(secret.encode(), identity.id.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, identity.hash)


@dataclass(frozen=True)
class ResumeFrame:
    token: str
    after: int


@dataclass(frozen=True)
class MessageFrame:
    client_id: str
    text: str


@dataclass(frozen=True)
class TypingFrame:
    active: bool


@dataclass(frozen=True)
class ReadFrame:
    seq: int


@dataclass(frozen=True)
class EndFrame:
    pass


@dataclass(frozen=True)
class PingFrame:
    pass


@dataclass(frozen=True)
class LeaveMessageFrame:
    """Stop waiting: what the visitor wrote becomes a help-desk ticket, answered by email."""


@dataclass(frozen=True)
class DraftFrame:
    """What the visitor is typing, unsent ("" when the box was cleared): shown to agents
    only in queues with `peek`, never stored."""

    text: str


@dataclass(frozen=True)
class ExtendFrame:
    """Keep an idle chat open (after an `idle` warning, or at any time)."""


@dataclass(frozen=True)
class SurveyFrame:
    rating: int
    comment: str


@dataclass(frozen=True)
class TranscriptFrame:
    email: str | None = None  # None: the conversation's own address (the only one allowed)


@dataclass(frozen=True)
class CallbackFrame:
    phone: str
    time: str


ClientFrame = (
    StartFrame | ResumeFrame | MessageFrame | TypingFrame | ReadFrame | EndFrame | PingFrame
    | SurveyFrame | TranscriptFrame | CallbackFrame | LeaveMessageFrame | ExtendFrame
    | DraftFrame | EditFrame | DeleteFrame
)


def parse_frame(raw: str, *, max_text: int, user_agent: str = "") -> ClientFrame:
    """Turn one text frame into a typed frame; raises ProtocolError with a stable code."""
    data = load_json(raw)
    if not isinstance(data, dict):
        raise ProtocolError("bad_frame", "frame must be a JSON object")
    kind = data.get("type")
    parser = _PARSERS.get(kind) if isinstance(kind, str) else None
    if parser is None:
        # Only a short, escaped excerpt goes back: the message must stay small and printable.
        raise ProtocolError("unknown_type", f"unknown frame type {kind[:40]!r}"
                            if isinstance(kind, str) else "field 'type' must be a string")
    return parser(data, max_text, user_agent)


def _topic(data: dict[str, Any]) -> str | None:
    """A queue id as sent; one that cannot be an id (too long, not valid Unicode) is unknown."""
    topic: str | None = _field(data, "topic", str, required=False)
    if topic is not None and (len(topic) > MAX_TOPIC or not is_encodable(topic)):
        raise ProtocolError("unknown_topic", "no such topic; see /v1/status")
    return topic


def _bounded(value: str, limit: int, key: str, *, multiline: bool = False) -> str:
    if len(value) > limit:
        raise ProtocolError("too_long", f"field {key!r} is longer than {limit} characters")
    return clean_text(value, multiline=multiline)


def _start(data: dict[str, Any], max_text: int, user_agent: str) -> StartFrame:
    identity = _identity(data)
    # A visitor the host site vouches for is not asked again: the form may be skipped.
    visitor = _field(data, "visitor", dict, required=identity is None) or {}
    raw_name = _field(visitor, "name", str, required=identity is None)
    raw_email = _field(visitor, "email", str, required=identity is None)
    name = _bounded(raw_name or (identity.name if identity else ""), MAX_NAME, "visitor.name")
    if is_blank(name):
        raise ProtocolError("missing_field", "field 'visitor.name' must not be empty")
    email = _bounded(raw_email or (identity.email if identity else ""), MAX_EMAIL,
                     "visitor.email")
    if not EMAIL_RE.fullmatch(email):
        raise ProtocolError("bad_email", "field 'visitor.email' is not an email address")
    page = _field(data, "page", dict, required=False) or {}
    lang = _field(data, "lang", str, required=False) or ""
    topic = _topic(data)
    return StartFrame(
        visitor=VisitorInfo(
            name=name,
            email=email,
            lang=lang if LANG_RE.fullmatch(lang) else "",
            user_agent=clean_text(user_agent[:MAX_TITLE], multiline=False),
        ),
        identity=identity,
        topic=topic,
        page=Page(
            url=_bounded(_field(page, "url", str, required=False) or "", MAX_URL, "page.url"),
            title=_bounded(
                _field(page, "title", str, required=False) or "", MAX_TITLE, "page.title"
            ),
            referrer=_bounded(
                _field(page, "referrer", str, required=False) or "", MAX_URL, "page.referrer"
            ),
        ),
    )


def _resume(data: dict[str, Any], max_text: int, user_agent: str) -> ResumeFrame:
    token = _field(data, "token", str)
    # Refused before it is hashed or looked up: no stored token is that long or has a lone
    # surrogate.
    if len(token) > MAX_TOKEN or not is_encodable(token):
        raise ProtocolError("bad_token", "unknown conversation token")
    after = _field(data, "after", int, required=False) or 0
    if after < 0:
        raise ProtocolError("bad_field", "field 'after' must not be negative")
    return ResumeFrame(token=token, after=after)


def _message(data: dict[str, Any], max_text: int, user_agent: str) -> MessageFrame:
    client_id = _field(data, "client_id", str)
    if not CLIENT_ID_RE.fullmatch(client_id):
        raise ProtocolError("bad_field", "field 'client_id' must be 1-64 of A-Z a-z 0-9 _ -")
    try:
        raw = _field(data, "text", str)
    except ProtocolError as exc:
        exc.client_id = client_id
        raise
    return MessageFrame(client_id=client_id, text=line_text(raw, max_text, client_id))


def _typing(data: dict[str, Any], max_text: int, user_agent: str) -> TypingFrame:
    return TypingFrame(active=_field(data, "active", bool))


def _read(data: dict[str, Any], max_text: int, user_agent: str) -> ReadFrame:
    seq = _field(data, "seq", int)
    if seq < 0:
        raise ProtocolError("bad_field", "field 'seq' must not be negative")
    return ReadFrame(seq=seq)


def _bare(frame: Callable[[], ClientFrame]) -> Callable[[dict[str, Any], int, str], ClientFrame]:
    """The parser of a frame with no fields (any others are ignored, as everywhere)."""
    return lambda data, max_text, user_agent: frame()


def _draft(data: dict[str, Any], max_text: int, user_agent: str) -> DraftFrame:
    text = _bounded(_field(data, "text", str), max_text, "text", multiline=True)
    return DraftFrame(text="" if is_blank(text) else text)


def _survey(data: dict[str, Any], max_text: int, user_agent: str) -> SurveyFrame:
    rating = _field(data, "rating", int)
    if not 1 <= rating <= SURVEY_SCALE:
        raise ProtocolError("bad_field", f"field 'rating' must be 1-{SURVEY_SCALE}")
    comment = _field(data, "comment", str, required=False) or ""
    comment = _bounded(comment, MAX_COMMENT, "comment", multiline=True)
    return SurveyFrame(rating=rating, comment="" if is_blank(comment) else comment)


def _transcript(data: dict[str, Any], max_text: int, user_agent: str) -> TranscriptFrame:
    raw = _field(data, "email", str, required=False)
    if raw is None:
        return TranscriptFrame()
    email = _bounded(raw, MAX_EMAIL, "email")
    if not EMAIL_RE.fullmatch(email):
        raise ProtocolError("bad_email", "field 'email' is not an email address")
    return TranscriptFrame(email=email)


def _callback(data: dict[str, Any], max_text: int, user_agent: str) -> CallbackFrame:
    phone = _bounded(_field(data, "phone", str), MAX_PHONE, "phone")
    if not PHONE_RE.fullmatch(phone) or sum(ch.isdigit() for ch in phone) < MIN_PHONE_DIGITS:
        raise ProtocolError("bad_phone", "that does not look like a phone number")
    when = _bounded(_field(data, "time", str, required=False) or "", MAX_WHEN, "time")
    return CallbackFrame(phone=phone, time=when)


_PARSERS: dict[str, Callable[[dict[str, Any], int, str], ClientFrame]] = {
    "start": _start,
    "resume": _resume,
    "message": _message,
    "typing": _typing,
    "read": _read,
    "end": _bare(EndFrame),
    "ping": _bare(PingFrame),
    "survey": _survey,
    "transcript": _transcript,
    "callback": _callback,
    "leave_message": _bare(LeaveMessageFrame),
    "extend": _bare(ExtendFrame),
    "draft": _draft,
    "edit": parse_edit,
    "delete": parse_delete,
}


@dataclass(frozen=True)
class OfflineMessage:
    name: str
    email: str
    topic: str | None
    text: str


def parse_offline(data: Any, *, max_text: int) -> OfflineMessage:
    """The body of POST /v1/offline; ProtocolError (answered with 400) when unusable."""
    if not isinstance(data, dict):
        raise ProtocolError("bad_frame", "the body must be a JSON object")
    name = _bounded(_field(data, "name", str), MAX_NAME, "name")
    if is_blank(name):
        raise ProtocolError("missing_field", "field 'name' must not be empty")
    email = _bounded(_field(data, "email", str), MAX_EMAIL, "email")
    if not EMAIL_RE.fullmatch(email):
        raise ProtocolError("bad_email", "field 'email' is not an email address")
    text = line_text(_field(data, "text", str), max_text)
    topic = _topic(data)
    return OfflineMessage(name=name, email=email, topic=topic or None, text=text)
