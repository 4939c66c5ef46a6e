"""Untrusted JSON and strings, made safe to hand to the rest of the bridge.

Python's json module accepts input that later code chokes on: nesting deep enough to exhaust
the recursion limit, NaN and Infinity, integers of thousands of digits and strings with lone
surrogates (valid JSON escapes that UTF-8, SQLite and hashing refuse). Pure: no I/O.
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any

# A real frame nests 3 levels; deeper JSON is refused before anything walks it recursively.
MAX_DEPTH = 32
# SQLite stores signed 64-bit integers; a larger number would overflow there.
MAX_INT = 2**63 - 1
# An integer literal this long is far beyond 64 bits: it is not converted digit by digit
# (Python refuses to convert more than 4300 digits, and converting is quadratic).
_MAX_INT_CHARS = 30
# Control characters (except tab/newline), surrogates, private-use and unassigned code points,
# and bidi controls, which can hide or reorder text in an agent's client. Other format
# characters stay: ZWJ/ZWNJ shape emoji and Persian script, tag characters build flags.
_DROP_CATEGORIES = {"Cc", "Cs", "Co", "Cn"}
_BIDI_CONTROLS = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                     "\u2066\u2067\u2068\u2069\ufeff")


class ProtocolError(ValueError):
    """A frame the server refuses; `code` goes into the `error` frame."""

    def __init__(self, code: str, message: str, client_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.client_id = client_id


def is_encodable(text: str) -> bool:
    """False for a string with a lone surrogate, which JSON can carry but UTF-8 cannot."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def clean_text(text: str, *, multiline: bool = True) -> str:
    """Normalise untrusted text: NFC, no control characters or bidi controls, trimmed.

    Keeps newlines (and tabs) in multi-line text; other format characters stay.
    """
    if text.isprintable():
        # The common case, checked in C: printable text has no control, format (bidi
        # controls are format characters), separator, surrogate, private-use or unassigned
        # character, so there is nothing to drop or turn into a newline.
        return unicodedata.normalize("NFC", text).strip()
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    kept = []
    for ch in text:
        if ch in "\n\t\u2028\u2029":  # line and paragraph separators count as newlines
            kept.append(("\n" if ch != "\t" else ch) if multiline else " ")
        elif ch not in _BIDI_CONTROLS and unicodedata.category(ch) not in _DROP_CATEGORIES:
            kept.append(ch)
    return "".join(kept).strip()


def is_blank(text: str) -> bool:
    """True when nothing would be visible: only spaces and invisible format characters."""
    return all(ch.isspace() or unicodedata.category(ch) == "Cf" for ch in text)


def field_of(data: dict[str, Any], key: str, kind: type, *, required: bool = True) -> Any:
    """`data[key]` if it is a `kind` (`missing_field`, `bad_field` otherwise; integers
    within SQLite's range). A `null` counts as absent."""
    value = data.get(key)
    if value is None:
        if required:
            raise ProtocolError("missing_field", f"field {key!r} is required")
        return None
    if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
        raise ProtocolError("bad_field", f"field {key!r} must be {kind.__name__}")
    if isinstance(value, int) and not -MAX_INT - 1 <= value <= MAX_INT:
        raise ProtocolError("bad_field", f"field {key!r} is out of range")
    return value


def line_text(raw: str, max_text: int, client_id: str | None = None) -> str:
    """A chat line as the visitor sent it (a message, or the new text of one): at most
    `max_text` characters (`too_long`), cleaned, not blank (`empty`)."""
    if len(raw) > max_text:
        raise ProtocolError("too_long", f"message is longer than {max_text} characters",
                            client_id)
    text = clean_text(raw)
    if is_blank(text):
        raise ProtocolError("empty", "message is empty", client_id)
    return text


def load_json(raw: str | bytes, what: str = "frame") -> Any:
    """json.loads for untrusted input: every problem is a ProtocolError.

    Refused: invalid JSON or UTF-8 and the non-JSON literals NaN and Infinity (`bad_json`),
    nesting deeper than MAX_DEPTH (`bad_frame`). Integer literals too long for 64 bits come
    out as 2**64 (negated for negative ones), so range checks refuse them without Python
    converting thousands of digits.
    """
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        data = json.loads(text, parse_constant=_no_constant, parse_int=_parse_int)
    except RecursionError:
        raise _too_deep(what) from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ProtocolError("bad_json", f"{what} is not valid JSON") from None
    if _depth_over(data, MAX_DEPTH):
        raise _too_deep(what)
    return data


def _too_deep(what: str) -> ProtocolError:
    return ProtocolError("bad_frame", f"{what} nests deeper than {MAX_DEPTH} levels")


def _no_constant(name: str) -> Any:
    raise ProtocolError("bad_json", f"{name} is not valid JSON")


def _parse_int(digits: str) -> int:
    if len(digits) > _MAX_INT_CHARS:
        return -(2**64) if digits.startswith("-") else 2**64
    return int(digits)


def _depth_over(data: Any, limit: int) -> bool:
    """Whether arrays/objects nest more than `limit` levels (walked level by level, since
    recursion is what the limit guards against)."""
    level = [data] if isinstance(data, dict | list) else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        level = [child for node in level
                 for child in (node.values() if isinstance(node, dict) else node)
                 if isinstance(child, dict | list)]
    return False
