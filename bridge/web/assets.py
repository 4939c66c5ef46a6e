"""The widget's files as they are served: scripts without comments and spaces (rjsmin), and
the CSS and markup in their template literals without the line breaks they are written with
(`unwrap`), read once."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import rjsmin

STATIC = Path(__file__).parent / "static"

# rjsmin strips the indentation of every line outside template literals, so a line break
# followed by indentation in its output is one inside a template: CSS or markup written
# over several lines (or the code of a `${…}` in one, which is an expression).
_INDENTED_BREAK = re.compile(r"\n[ \t]+")
# Where CSS and HTML need no space at all: after these, or before `_BEFORE_NOTHING`.
_AFTER_NOTHING = frozenset("`>{};,(")
_BEFORE_NOTHING = frozenset("<}`)")


def unwrap(script: str) -> str:
    """An indented line break in a template becomes nothing where nothing is needed
    (`a{\\n  color:red;\\n}`, `>\\n  <`), else one space (`<div\\n  class=x>`, words)."""

    def join(match: re.Match[str]) -> str:
        start, end = match.span()
        before = script[start - 1] if start else ""
        after = script[end] if end < len(script) else ""
        return "" if before in _AFTER_NOTHING or after in _BEFORE_NOTHING else " "

    return _INDENTED_BREAK.sub(join, script)


@cache
def served(name: str) -> bytes:
    """The bytes sent for a static file: `.js` minified, anything else as it is."""
    data = (STATIC / name).read_bytes()
    if name.endswith(".js"):
        return unwrap(str(rjsmin.jsmin(data.decode("utf-8")))).encode("utf-8")
    return data
