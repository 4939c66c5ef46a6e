"""Colour contrast as WCAG 2.2 measures it (1.4.3, 1.4.11): which text colour reads on the
widget's brand colour, and whether the admin's choice reads with white text."""

from __future__ import annotations

LIGHT_TEXT = "#ffffff"
DARK_TEXT = "#111111"
TEXT_CONTRAST = 4.5  # normal text, level AA


def _channel(value: int) -> float:
    c = value / 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def luminance(color: str) -> float:
    """Relative luminance of a `#rrggbb` colour."""
    n = int(color.removeprefix("#"), 16)
    red, green, blue = n >> 16, (n >> 8) & 255, n & 255
    return 0.2126 * _channel(red) + 0.7152 * _channel(green) + 0.0722 * _channel(blue)


def contrast(first: str, second: str) -> float:
    """The contrast ratio of two `#rrggbb` colours, from 1 to 21."""
    light, dark = sorted((luminance(first), luminance(second)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def text_on(background: str) -> str:
    """White or near-black text, whichever contrasts more with `background`."""
    if contrast(background, LIGHT_TEXT) >= contrast(background, DARK_TEXT):
        return LIGHT_TEXT
    return DARK_TEXT
