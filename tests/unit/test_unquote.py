"""`!canned add NAME "text"`: quotes around the whole text group it; they are not part of it."""

from __future__ import annotations

import pytest

from bridge.core.commands import unquote


@pytest.mark.parametrize(("typed", "kept"), [
    ('"Hello {visitor}!"', "Hello {visitor}!"),
    ("'Hello'", "Hello"),
    ("“Hello”", "Hello"),
    ("„Guten Tag“", "Guten Tag"),
    ("«Bonjour»", "Bonjour"),
    ('  "padded"  ', "padded"),
    ('Thanks, have a "great" day!', 'Thanks, have a "great" day!'),
    ('"a" and "b"', '"a" and "b"'),
    ('"unbalanced', '"unbalanced'),
    ('"', '"'),
    ("plain", "plain"),
])
def test_unquote(typed: str, kept: str) -> None:
    assert unquote(typed) == kept
