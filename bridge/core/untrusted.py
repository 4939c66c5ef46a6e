"""Untrusted JSON and strings, made safe to hand to the rest of the bridge.

Python's json module accepts input that later code chokes on: nesting deep enough to exhaust
the recursion limit, NaN and Infinity, integers of thousands of digits and strings with lone
surrogates (valid JSON escapes that UTF-8, SQLite and hashing refuse). Pure: no I/O.
"""

from __future__ import annotations

import json
from typing import Any

# A real frame nests 3 levels; deeper JSON is refused before anything walks it recursively.
MAX_DEPTH = 32
# SQLite stores signed 64-bit integers; a larger number would overflow there.
MAX_INT = 2**63 - 1
# An integer literal this long is far beyond 64 bits: it is not converted digit by digit
# (Python refuses to convert more than 4300 digits, and converting is quadratic).
_MAX_INT_CHARS = 30


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
