"""Reading TOML tables into typed values, with every problem reported by its key path.

Shared by the sections of `bridge.config` and by the `[smtp]` section in `bridge.mail`. A
`check_*` function takes a value of the right type and returns what is wrong with it (in
the words the admin sees after the key path), or None.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator
from typing import Any, TypeVar, overload
from urllib.parse import urlsplit

MATRIX_USER_RE = re.compile(r"^@[a-z0-9._=\-/+]+:[A-Za-z0-9.\-]+(:[0-9]{1,5})?$")
BARE_JID_RE = re.compile(r"^[^@/\s\"&'/:<>]+@[A-Za-z0-9.\-]+$")
ID_RE = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,31}$")
COLOR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")
PLACEHOLDER_SECRETS = {"", "...", "change-me", "changeme", "secret", "password"}
LANG_RE = re.compile(r"[a-z]{2,3}")  # a translation's key: the primary language subtag

T = TypeVar("T")


class Reader:
    """Reads typed values out of nested TOML tables, collecting problems with key paths."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    def table(self, data: dict[str, Any], key: str, path: str, required: bool) -> dict[str, Any]:
        value = data.get(key)
        if value is None:
            if required:
                self.fail(path, "missing table (expected [" + path + "])")
            return {}
        if not isinstance(value, dict):
            self.fail(path, f"expected a table, got {type(value).__name__}")
            return {}
        return value

    # With a default the answer is always a T (the default stands in for a bad value,
    # which is reported); without one it may be None.
    @overload
    def get(self, data: dict[str, Any], key: str, path: str, kind: type[T], default: T, *,
            required: bool = False, check: Callable[[T], str | None] | None = None) -> T: ...

    @overload
    def get(self, data: dict[str, Any], key: str, path: str, kind: type[T],
            default: None = None, *, required: bool = False,
            check: Callable[[T], str | None] | None = None) -> T | None: ...

    @overload  # a number of seconds or minutes, whole or not
    def get(self, data: dict[str, Any], key: str, path: str,
            kind: tuple[type[int], type[float]], default: float, *, required: bool = False,
            check: Callable[[float], str | None] | None = None) -> float: ...

    def get(
        self,
        data: dict[str, Any],
        key: str,
        path: str,
        kind: Any,
        default: Any = None,
        *,
        required: bool = False,
        check: Callable[[Any], str | None] | None = None,
    ) -> Any:
        full = f"{path}.{key}" if path else key
        if key not in data:
            if required:
                self.fail(full, f"missing (expected {kind_name(kind)})")
            return default
        value = data[key]
        if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
            self.fail(full, f"expected {kind_name(kind)}, got {value!r}")
            return default
        if check is not None:
            problem = check(value)
            if problem:
                self.fail(full, problem)
                return default
        return value

    def tables(self, items: list[Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """Each entry of an array of tables with its key path; an entry that is not a table
        is reported and skipped."""
        for i, t in enumerate(items):
            p = f"{path}[{i}]"
            if isinstance(t, dict):
                yield p, t
            else:
                self.fail(p, "expected a table")

    def unknown_keys(self, data: dict[str, Any], known: set[str], path: str) -> None:
        for key in sorted(set(data) - known):
            self.fail(f"{path}.{key}" if path else key, "unknown key" + _did_you_mean(key, known))


def _did_you_mean(key: str, known: set[str]) -> str:
    """A typo's nearest known key (max_chat -> max_chats), or nothing when none is close."""
    # A str key only: TOML keys are strings, but a table built in code may hold anything.
    close = difflib.get_close_matches(str(key), sorted(known), n=1)
    return f"; did you mean {close[0]}?" if close else ""


def kind_name(kind: type | tuple[type, ...]) -> str:
    if isinstance(kind, tuple):
        return "a number"
    return {str: "a string", int: "an integer", bool: "true or false", list: "a list"}.get(
        kind, kind.__name__
    )


def check_http_url(value: str) -> str | None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return f"{value!r} is not an http(s) URL (expected e.g. https://chat.example.com)"
    return None


def check_origin(value: str) -> str | None:
    parts = urlsplit(value)
    if (
        parts.scheme not in ("http", "https")
        or not parts.netloc
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or "#" in value
        or "?" in value
    ):
        return f"{value!r} is not an origin (expected scheme://host[:port], no path)"
    return None


def check_listen(value: str) -> str | None:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) < 65536:
        return f"{value!r} is not host:port (expected e.g. 127.0.0.1:8080)"
    return None


def check_secret(value: str) -> str | None:
    if value.strip().lower() in PLACEHOLDER_SECRETS:
        return "is a placeholder (expected the real secret)"
    return None


def check_ident(value: str) -> str | None:
    if not ID_RE.fullmatch(value):
        return f"{value!r} is not an id (expected lowercase letters, digits, - or _)"
    return None


def check_port(value: int) -> str | None:
    return None if 0 < value < 65536 else f"{value} is not a port (expected 1-65535)"


def check_not_negative(value: float) -> str | None:
    if value >= 0:
        return None
    return f"{value} is negative (expected a number >= 0; 0 switches it off)"


def check_positive(value: int) -> str | None:
    return None if value > 0 else f"{value} is not positive (expected an integer > 0)"


def check_matrix_user(value: str) -> str | None:
    if MATRIX_USER_RE.fullmatch(value):
        return None
    return f"{value!r} is not a Matrix user id (expected @user:server)"


def check_bare_jid(value: str) -> str | None:
    if BARE_JID_RE.fullmatch(value):
        return None
    return f"{value!r} is not a bare JID (expected user@server)"


def address_check(backend: str) -> Callable[[str], str | None]:
    return check_matrix_user if backend == "matrix" else check_bare_jid


def check_mailbox(value: str) -> str | None:
    if re.fullmatch(r"[^@\s<>\"',;]+@[^@\s<>\"',;]+\.[^@\s<>\"',;]+", value):
        return None
    return f"{value!r} is not an email address (expected e.g. helpdesk@example.com)"


def check_one_line(value: str) -> str | None:
    if any(ch in value for ch in "\r\n\u2028\u2029") or not value.strip():
        return "must be one non-empty line (expected e.g. \"Chat with us\")"
    return None


def check_color(value: str) -> str | None:
    return None if COLOR_RE.fullmatch(value) else f"{value!r} is not a color (expected #rrggbb)"
