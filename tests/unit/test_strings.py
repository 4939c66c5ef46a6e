"""The widget's texts per language (bridge/web/strings/*.json): the same keys as English,
the same placeholders, and plain text a translator cannot break the widget with."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bridge.core.templates import placeholders
from bridge.web.app import LOADER_STRINGS

pytestmark = pytest.mark.fast

STRINGS = Path(__file__).resolve().parents[2] / "bridge" / "web" / "strings"
# Every file there is checked; these must be among them.
SHIPPED = ("en", "de", "hu", "pl", "lv", "tr")
LANGUAGES = tuple(sorted(p.stem for p in STRINGS.glob("*.json")))
ANGLES = ("<", ">")


def load(lang: str) -> dict[str, str]:
    data = json.loads((STRINGS / f"{lang}.json").read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{lang}.json: not a JSON object"
    bad = {k: v for k, v in data.items() if not isinstance(v, str)}
    assert not bad, f"{lang}.json: texts that are not strings: {bad}"
    return data


@pytest.fixture(scope="module")
def english() -> dict[str, str]:
    return load("en")


def test_shipped_languages_have_files() -> None:
    missing = sorted(set(SHIPPED) - set(LANGUAGES))
    assert not missing, f"no strings file for {missing} in {STRINGS}"


def test_every_text_the_widget_asks_for_exists(english: dict[str, str]) -> None:
    """The widget has no texts of its own: each key its code names must be served."""
    static = STRINGS.parent / "static"
    code = "".join((static / name).read_text("utf-8") for name in ("widget.js", "panel.js"))
    asked = set(re.findall(r"\bS\.(\w+)", code))
    asked |= set(re.findall(r"data-[sa]=\"?(\w+)", code))  # quoted or not
    asked |= set(re.findall(r"\bfmt\('(\w+)'", code))
    asked |= set(LOADER_STRINGS)
    missing = sorted(asked - english.keys())
    assert not missing, f"the widget asks for texts en.json lacks: {missing}"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_same_keys_as_english(lang: str, english: dict[str, str]) -> None:
    texts = load(lang)
    missing = sorted(english.keys() - texts.keys())
    extra = sorted(texts.keys() - english.keys())
    assert not missing and not extra, f"{lang}.json: missing {missing}, extra {extra}"
    assert list(texts) == list(english), f"{lang}.json: keys not in the order of en.json"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_file_format(lang: str) -> None:
    raw = (STRINGS / f"{lang}.json").read_text(encoding="utf-8")
    expected = json.dumps(json.loads(raw), ensure_ascii=False, indent=2) + "\n"
    assert raw == expected, f"{lang}.json: not 2-space indented UTF-8 with a final newline"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_same_placeholders_as_english(lang: str, english: dict[str, str]) -> None:
    texts = load(lang)
    wrong = {
        key: (sorted(placeholders(texts[key])), sorted(placeholders(text)))
        for key, text in english.items()
        if key in texts and placeholders(texts[key]) != placeholders(text)
    }
    assert not wrong, f"{lang}.json: placeholders (found, expected): {wrong}"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_no_markup(lang: str, english: dict[str, str]) -> None:
    texts = load(lang)
    bad = {
        key: text
        for key, text in texts.items()
        if any(c in text for c in ANGLES)
        and not any(c in english.get(key, "") for c in ANGLES)
    }
    assert not bad, f"{lang}.json: '<' or '>' where English has none: {bad}"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_texts_are_trimmed_and_not_empty(lang: str) -> None:
    texts = load(lang)
    empty = sorted(k for k, v in texts.items() if not v.strip())
    assert not empty, f"{lang}.json: empty texts: {empty}"
    untrimmed = {k: v for k, v in texts.items() if v != v.strip()}
    assert not untrimmed, f"{lang}.json: leading or trailing whitespace: {untrimmed}"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_ellipsis_where_english_has_one(lang: str, english: dict[str, str]) -> None:
    texts = load(lang)
    wrong = sorted(
        key for key, text in english.items()
        if key in texts and ("…" in text) != ("…" in texts[key])
    )
    assert not wrong, f"{lang}.json: '…' differs from English in {wrong}"
    dots = sorted(k for k, v in texts.items() if "..." in v)
    assert not dots, f"{lang}.json: three dots instead of '…' in {dots}"
