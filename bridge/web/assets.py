"""The widget's files as they are served: scripts without comments and spaces (rjsmin, which
leaves template literals, and so the CSS and markup in them, exactly as written), read once."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import rjsmin

STATIC = Path(__file__).parent / "static"


@cache
def served(name: str) -> bytes:
    """The bytes sent for a static file: `.js` minified, anything else as it is."""
    data = (STATIC / name).read_bytes()
    if name.endswith(".js"):
        return str(rjsmin.jsmin(data.decode("utf-8"))).encode("utf-8")
    return data
