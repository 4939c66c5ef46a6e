"""Contrast ratios against WCAG's published reference points, and the text colour choice."""

from __future__ import annotations

import pytest

from bridge.core.colors import DARK_TEXT, LIGHT_TEXT, contrast, text_on

pytestmark = pytest.mark.fast


def test_extremes_and_symmetry() -> None:
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#777777", "#777777") == pytest.approx(1.0)
    assert contrast("#2563eb", "#ffffff") == pytest.approx(contrast("#ffffff", "#2563eb"))


def test_known_ratios() -> None:
    assert contrast("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)  # the AA grey
    assert contrast("#2563eb", "#ffffff") == pytest.approx(5.17, abs=0.01)


@pytest.mark.parametrize(("background", "text"), [
    ("#2563eb", LIGHT_TEXT), ("#000000", LIGHT_TEXT), ("#ffe14d", DARK_TEXT),
    ("#ffffff", DARK_TEXT), ("#22c55e", DARK_TEXT)])
def test_text_on_picks_the_readable_one(background: str, text: str) -> None:
    assert text_on(background) == text
    other = DARK_TEXT if text == LIGHT_TEXT else LIGHT_TEXT
    assert contrast(background, text) >= contrast(background, other)
