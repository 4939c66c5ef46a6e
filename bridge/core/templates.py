"""Render admin-written texts with placeholders such as {visitor}, {agent}, {queue}."""

from __future__ import annotations

import re
from collections.abc import Mapping

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([a-z_]+)\}|[{}]")


class TemplateError(ValueError):
    pass


def language_key(tag: str) -> str:
    """The key translations are filed under: the primary subtag, lowercase ("de-AT" → "de")."""
    return tag.split("-")[0].lower()


def placeholders(template: str) -> set[str]:
    return {m.group(1) for m in _PLACEHOLDER.finditer(template) if m.group(1)}


def render(template: str, values: Mapping[str, str]) -> str:
    """Fill `{name}` placeholders; `{{` and `}}` are literal braces.

    Values are inserted as they are, never re-parsed, so a visitor named "{agent}" stays
    "{agent}". Raises TemplateError naming an unknown placeholder or a stray brace.
    """

    def fill(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        name = match.group(1)
        if name is None:
            raise TemplateError(f"stray {token!r} at position {match.start()} (write {token * 2})")
        if name not in values:
            known = ", ".join("{" + k + "}" for k in sorted(values))
            raise TemplateError(f"unknown placeholder {{{name}}} (known: {known})")
        return values[name]

    return _PLACEHOLDER.sub(fill, template)
