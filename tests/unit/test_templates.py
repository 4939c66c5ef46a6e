"""Admin-written templates: placeholders, literal braces, and errors that help the admin."""

from __future__ import annotations

import pytest

from bridge.core.templates import TemplateError, placeholders, render

VALUES = {"visitor": "Ann", "agent": "Alice", "queue": "Support"}


def test_render_fills_placeholders() -> None:
    assert render("Hi {visitor}, {agent} will be with you shortly.", VALUES) == (
        "Hi Ann, Alice will be with you shortly."
    )


def test_render_same_placeholder_twice_and_adjacent() -> None:
    assert render("{agent}{agent} {queue}/{visitor}", VALUES) == "AliceAlice Support/Ann"


def test_render_without_placeholders_is_identity() -> None:
    assert render("Plain text, no braces.", {}) == "Plain text, no braces."
    assert render("", VALUES) == ""


def test_double_braces_are_literal() -> None:
    assert render("{{", {}) == "{"
    assert render("}}", {}) == "}"
    assert render('JSON: {{"a": 1}}', {}) == 'JSON: {"a": 1}'
    assert render("{{agent}}", VALUES) == "{agent}"


def test_triple_braces_are_a_literal_brace_around_a_value() -> None:
    assert render("{{{agent}}}", VALUES) == "{Alice}"


def test_unicode_values_and_text() -> None:
    values = {"visitor": "Şükrü", "agent": "Łukasz"}
    assert render("Szia {visitor}! — {agent} 👋", values) == "Szia Şükrü! — Łukasz 👋"


def test_values_are_not_re_expanded() -> None:
    values = {"visitor": "{agent}", "agent": "Alice"}
    assert render("Hi {visitor}, I am {agent}", values) == "Hi {agent}, I am Alice"


@pytest.mark.parametrize("value", ["{{", "}", "{", "\\1", "\\g<0>", "$1", "%s", "{0}"])
def test_values_with_special_characters_are_inserted_verbatim(value: str) -> None:
    assert render("<{visitor}>", {"visitor": value}) == f"<{value}>"


def test_unknown_placeholder_names_the_known_ones() -> None:
    with pytest.raises(TemplateError) as info:
        render("Hi {vistor}", VALUES)
    assert str(info.value) == "unknown placeholder {vistor} (known: {agent}, {queue}, {visitor})"


def test_unknown_placeholder_with_no_values() -> None:
    with pytest.raises(TemplateError, match=r"unknown placeholder \{agent\}"):
        render("{agent}", {})


@pytest.mark.parametrize(
    ("template", "brace", "position"),
    [
        ("Hi {visitor", "{", 3),
        ("Hi visitor}", "}", 10),
        ("{", "{", 0),
        ("a } b", "}", 2),
        ("{Agent}", "{", 0),
        ("{1}", "{", 0),
        ("{ agent }", "{", 0),
        ("{{{", "{", 2),
    ],
)
def test_stray_brace_error_names_brace_and_position(
    template: str, brace: str, position: int
) -> None:
    with pytest.raises(TemplateError) as info:
        render(template, VALUES)
    assert str(info.value) == f"stray {brace!r} at position {position} (write {brace * 2})"


def test_template_error_is_a_value_error() -> None:
    assert issubclass(TemplateError, ValueError)


def test_placeholders() -> None:
    assert placeholders("Hi {visitor}, {agent} here; {visitor} again") == {"visitor", "agent"}
    assert placeholders("no placeholders") == set()
    assert placeholders("") == set()


def test_placeholders_ignores_escaped_braces() -> None:
    assert placeholders("{{agent}} and {queue}") == {"queue"}
    assert placeholders("{{{agent}}}") == {"agent"}


def test_placeholders_does_not_raise_on_stray_braces() -> None:
    assert placeholders("{visitor} } {") == {"visitor"}


def test_placeholders_lists_exactly_what_render_needs() -> None:
    template = "{visitor} waits in {queue}; {{literal}}"
    needed = placeholders(template)
    assert render(template, {k: k.upper() for k in needed}) == "VISITOR waits in QUEUE; {literal}"
    missing_one = {k: "x" for k in sorted(needed)[1:]}
    with pytest.raises(TemplateError):
        render(template, missing_one)
