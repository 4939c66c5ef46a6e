"""The widget's size budgets, minified and compressed as the bridge sends them (gzip): the
loader is all a page view costs; loader and panel together are the whole widget, CSS
included. Only the served form is measured, since it is what visitors download: comments
in the sources cost them nothing."""

from __future__ import annotations

import gzip
import re

import pytest

from bridge.web.assets import STATIC, served

pytestmark = pytest.mark.fast

LOADER_BUDGET = 4096  # bytes
WIDGET_BUDGET = 12288  # bytes


def gzipped(name: str) -> int:
    return len(gzip.compress(served(name), 6))


def test_the_loader_fits_in_4_kb() -> None:
    assert gzipped("widget.js") <= LOADER_BUDGET


def test_the_whole_widget_fits_in_12_kb() -> None:
    total = gzipped("widget.js") + gzipped("panel.js")
    assert total <= WIDGET_BUDGET, f"widget.js + panel.js are {total} bytes gzipped"


def test_minifying_keeps_the_markup_and_styles_as_written() -> None:
    """Template literals hold the CSS and HTML: `calc(100vw - 24px)` needs its spaces."""
    for name in ("widget.js", "panel.js"):
        source = (STATIC / name).read_text("utf-8")
        minified = served(name).decode("utf-8")
        assert len(minified) < len(source) * 0.9
        assert re.findall(r"`[^`]*`", minified) == re.findall(r"`[^`]*`", source)

