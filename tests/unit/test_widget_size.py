"""The widget's size budgets, minified and compressed as the bridge sends them (gzip): the
loader is all a page view costs; loader and panel together are the whole widget, CSS
included. Only the served form is measured, since it is what visitors download: comments
in the sources cost them nothing."""

from __future__ import annotations

import gzip
import re

import pytest

from bridge.web.assets import STATIC, served, unwrap

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
    """Template literals hold the CSS and HTML: `calc(100vw - 24px)` needs its spaces; only
    the indented line breaks they are written with go."""
    for name in ("widget.js", "panel.js"):
        source = (STATIC / name).read_text("utf-8")
        minified = served(name).decode("utf-8")
        assert len(minified) < len(source) * 0.9
        assert re.findall(r"`[^`]*`", minified) == [
            unwrap(t) for t in re.findall(r"`[^`]*`", source)]


@pytest.mark.parametrize(("written", "served_as"), [
    ("a{\n  color:red;\n  }\n  b{}", "a{color:red;}b{}"),
    ("<p>\n  <b>x</b>\n  </p>", "<p><b>x</b></p>"),
    ("<div\n    class=x>one\n  two</div>", "<div class=x>one two</div>"),
    ("`\n  <i>`", "`<i>`"),
    ("a\nb", "a\nb"),  # not indented: outside a template after rjsmin, kept
])
def test_indented_line_breaks_in_templates_go(written: str, served_as: str) -> None:
    assert unwrap(written) == served_as

