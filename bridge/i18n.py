"""The visitor's language: which one they get, and every text they see in it.

The widget carries no texts of its own: the server sends them, built-in for English, German,
Hungarian, Polish, Latvian and Turkish (`bridge/web/strings/*.json`), with the admin's
`[widget.strings]` over them. The admin's shared texts are written in `[widget]
default_lang`; in another language the built-in text wins where there is one, and the
admin's own translation (`[widget.strings.de]`) wins over both.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from bridge.config import Config
from bridge.core.templates import language_key

STRINGS_DIR = Path(__file__).parent / "web" / "strings"
BUILT_IN_LANGUAGES = ("en", "de", "hu", "pl", "lv", "tr")
# Scripts written right to left, for an admin who adds such a language.
RTL_LANGUAGES = frozenset({"ar", "ckb", "dv", "fa", "he", "ps", "sd", "ug", "ur", "yi"})
# Texts the widget shows only when the admin wrote them (no built-in default).
ADMIN_ONLY = ("consent",)


@cache
def built_in(lang: str) -> dict[str, str]:
    """The built-in texts of one language ({} for a language without them)."""
    if lang not in BUILT_IN_LANGUAGES:
        return {}
    loaded: dict[str, str] = json.loads((STRINGS_DIR / f"{lang}.json").read_text("utf-8"))
    return loaded


def configured_languages(config: Config) -> set[str]:
    """Every language the admin wrote texts in, and the default one."""
    found = {config.widget.default_lang, *config.widget.strings_by_lang, *config.canned_by_lang}
    for queue in config.queues:
        found.update(queue.translations)
    for invitation in config.widget.invitations:
        found.update(invitation.translations)
    return found


def pick_language(accepted: str, config: Config) -> str:
    """The first of the visitor's languages (`de-AT,de,en-US`, best first) that the widget
    speaks, built in or configured; else the default."""
    speaks = set(BUILT_IN_LANGUAGES) | configured_languages(config)
    for tag in accepted.split(","):
        if (key := language_key(tag.strip())) in speaks:
            return key
    return config.widget.default_lang


def text_direction(lang: str) -> str:
    return "rtl" if language_key(lang) in RTL_LANGUAGES else "ltr"


def visitor_strings(config: Config, lang: str) -> dict[str, str]:
    """Every widget text in `lang` (a key `pick_language` gave)."""
    widget = config.widget
    texts = {**built_in("en"), **built_in(widget.default_lang)}
    shared = widget.shared_strings()
    if lang == widget.default_lang:
        texts.update(shared)
    else:
        own = built_in(lang)
        texts.update(own)
        texts.update({k: v for k, v in shared.items() if k not in own})
    texts.update(widget.strings_by_lang.get(lang, {}))
    return texts


def missing_texts(config: Config) -> list[str]:
    """For `check`: each configured language lacking a text its visitors see, with the key
    to add. A built-in translation counts as having the text."""
    widget = config.widget
    problems = _widget_gaps(config, widget.default_lang)
    for lang in sorted(configured_languages(config) - {widget.default_lang}):
        problems += _widget_gaps(config, lang)
        for queue in config.queues:
            written = [k for k in ("name", "topic", "welcome")
                       if getattr(queue, k) and (k != "topic" or queue.topic != queue.name)]
            absent = [k for k in written if k not in queue.translations.get(lang, {})]
            if absent:
                problems.append(f"queues.{queue.id}.translations.{lang}: no {lang} text for "
                                f"{', '.join(absent)}")
        for n, invitation in enumerate(widget.invitations):
            if lang not in invitation.translations:
                problems.append(f"widget.invitations[{n}].translations.{lang}: no {lang} text")
        absent = sorted(set(config.canned) - set(config.canned_by_lang.get(lang, {})))
        if absent:
            problems.append(f"canned.{lang}: no {lang} variant of {_some(absent)}")
    return problems


def _widget_gaps(config: Config, lang: str) -> list[str]:
    """Widget texts a visitor in `lang` would see in another language."""
    widget = config.widget
    own = {**widget.strings_by_lang.get(lang, {}),
           **(widget.shared_strings() if lang == widget.default_lang else {})}
    needed = {*widget.shared_strings(), *built_in("en")}
    lacking = sorted(k for k in needed if k not in own and k not in built_in(lang))
    if not lacking:
        return []
    table = "widget.strings" if lang == widget.default_lang else f"widget.strings.{lang}"
    return [f"{table}: no {lang} text for {_some(lacking)}"]


def _some(keys: list[str], shown: int = 6) -> str:
    more = f" and {len(keys) - shown} more" if len(keys) > shown else ""
    return ", ".join(keys[:shown]) + more
