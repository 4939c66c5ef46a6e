"""`[widget]`: how the widget looks and speaks, and when it invites a visitor to chat."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bridge.config_reader import (
    LANG_RE,
    Reader,
    check_color,
    check_not_negative,
    check_one_line,
)
from bridge.core.templates import language_key

DEFAULT_EXCLUDE = ("/checkout*",)  # nobody wants a chat bubble over the payment form
MAX_INVITATION = 200


@dataclass(frozen=True)
class Invitation:
    """A proactive invitation: after `delay_seconds` on a matching page, a small bubble."""

    text: str
    pages: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE
    delay_seconds: float = 15.0
    queue: str | None = None  # the topic the chat starts with when the bubble is clicked
    translations: dict[str, str] = field(default_factory=dict)  # language -> text

    def text_in(self, lang: str) -> str:
        return self.translations.get(language_key(lang), self.text)


@dataclass(frozen=True)
class WidgetConfig:
    title: str = ""  # empty: the built-in "Chat with us" in the visitor's language
    site: str = ""  # the site's name for {site}; empty: the host of the chat's page
    color: str = "#2563eb"
    position: str = "right"
    default_lang: str = "en"  # for visitors whose languages the widget does not speak
    sound: bool = False  # a short tone for an agent's line while the panel is out of sight
    strings: dict[str, str] = field(default_factory=dict)
    strings_by_lang: dict[str, dict[str, str]] = field(default_factory=dict)  # [widget.strings.de]
    invitations: tuple[Invitation, ...] = ()

    def shared_strings(self) -> dict[str, str]:
        """The admin's texts written in the default language (`title` among them)."""
        return {**({"title": self.title} if self.title else {}), **self.strings}

    def strings_in(self, lang: str) -> dict[str, str]:
        """The admin's texts for a visitor's language: that language's over the shared ones."""
        return {**self.shared_strings(), **self.strings_by_lang.get(language_key(lang), {})}


def parse_widget(r: Reader, t: dict[str, Any], queue_ids: set[str]) -> WidgetConfig:
    p = "widget"
    r.unknown_keys(t, {"title", "site", "color", "position", "strings", "default_lang", "sound",
                       "invitations"}, p)
    strings = r.table(t, "strings", "widget.strings", False)
    by_lang: dict[str, dict[str, str]] = {}
    for key, value in strings.items():
        if isinstance(value, dict) and LANG_RE.fullmatch(key):
            by_lang[key] = _strings(r, value, f"widget.strings.{key}")
        elif isinstance(value, dict):
            r.fail(f"widget.strings.{key}", "is not a language code (expected e.g. "
                   "[widget.strings.de])")
        elif not isinstance(value, str):
            r.fail(f"widget.strings.{key}", f"expected a string, got {value!r}")
    position = r.get(t, "position", p, str, "right")
    if position not in ("left", "right"):
        r.fail("widget.position", f"{position!r} is not a side (expected left or right)")
    default_lang = r.get(t, "default_lang", p, str, "en")
    if not LANG_RE.fullmatch(default_lang):
        r.fail("widget.default_lang", f"{default_lang!r} is not a language code (expected a "
               "lowercase code such as \"en\" or \"de\")")
    return WidgetConfig(
        title=r.get(t, "title", p, str, "", check=check_one_line),
        site=r.get(t, "site", p, str, "", check=check_one_line),
        color=r.get(t, "color", p, str, "#2563eb", check=check_color),
        position=position,
        default_lang=default_lang,
        sound=r.get(t, "sound", p, bool, False),
        strings={k: v for k, v in strings.items() if isinstance(v, str)},
        strings_by_lang=by_lang,
        invitations=_invitations(r, t.get("invitations", []), queue_ids),
    )


def _strings(r: Reader, t: dict[str, Any], path: str) -> dict[str, str]:
    for key, value in t.items():
        if not isinstance(value, str):
            r.fail(f"{path}.{key}", f"expected a string, got {value!r}")
    return {k: v for k, v in t.items() if isinstance(v, str)}


def _invitations(r: Reader, raw: Any, queue_ids: set[str]) -> tuple[Invitation, ...]:
    if not isinstance(raw, list):
        r.fail("widget.invitations", "expected a list of tables ([[widget.invitations]])")
        return ()
    found: list[Invitation] = []
    for n, t in enumerate(raw):
        p = f"widget.invitations[{n}]"
        if not isinstance(t, dict):
            r.fail(p, "expected a table ([[widget.invitations]])")
            continue
        r.unknown_keys(t, {"text", "pages", "exclude", "delay_seconds", "queue",
                           "translations"}, p)
        queue = r.get(t, "queue", p, str, None)
        if queue is not None and queue not in queue_ids:
            r.fail(f"{p}.queue", f"{queue!r} is not a queue id (expected one of "
                   f"{sorted(queue_ids)})")
        found.append(Invitation(
            text=r.get(t, "text", p, str, "", required=True, check=_invitation_text),
            pages=_patterns(r, t, "pages", p, ("*",)),
            exclude=_patterns(r, t, "exclude", p, DEFAULT_EXCLUDE),
            delay_seconds=float(r.get(t, "delay_seconds", p, (int, float), 15,
                                      check=check_not_negative)),
            queue=queue,
            translations=_translations(r, r.table(t, "translations", f"{p}.translations", False),
                                       f"{p}.translations"),
        ))
    return tuple(found)


def _invitation_text(value: str) -> str | None:
    if not value.strip() or "\n" in value or len(value) > MAX_INVITATION:
        return f"expected one line of 1 to {MAX_INVITATION} characters"
    return None


def _patterns(r: Reader, t: dict[str, Any], key: str, path: str,
              default: tuple[str, ...]) -> tuple[str, ...]:
    value = t.get(key, list(default))
    if not isinstance(value, list) or not all(
            isinstance(v, str) and (v.startswith("/") or v == "*") for v in value):
        r.fail(f"{path}.{key}", "expected a list of path patterns such as \"/pricing*\" "
               "(a leading /, * for any characters)")
        return default
    return tuple(value)


def _translations(r: Reader, t: dict[str, Any], path: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for lang, text in t.items():
        if not LANG_RE.fullmatch(lang):
            r.fail(f"{path}.{lang}", "is not a language code (expected e.g. de = \"...\")")
        elif not isinstance(text, str) or _invitation_text(text):
            r.fail(f"{path}.{lang}", f"expected one line of 1 to {MAX_INVITATION} characters")
        else:
            found[lang] = text
    return found
